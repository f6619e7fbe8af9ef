"""SQLite message store specifics: encryption, hostile files, migrations, crashes, cancellation."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from omega.errors import (
    ConfigurationError,
    CorruptDataError,
    StorageError,
    WrongPassphraseError,
)
from omega.storage import (
    MESSAGE_SCHEMA_VERSION,
    ContactRecord,
    DeliveryState,
    OutboxEntry,
    SQLiteKeyStore,
    SQLiteMessageStore,
    message_sqlite,
)
from omega.testing.message_store import sample_message, user_id

pytestmark = pytest.mark.anyio

KEY = b"K" * 32
ALICE = user_id(1)
SECRET_TEXT = "meet me at the old mill"
DEVICE = bytes(range(100, 132))


async def _fill(path: Path, **options: object) -> None:
    from omega.crypto import IdentityKeyPair

    identity = IdentityKeyPair.from_seed(bytes([2]) * 32)
    store = await SQLiteMessageStore.open(path, **options)  # type: ignore[arg-type]
    async with store, store.transaction() as tx:
        await tx.put_contact(
            ContactRecord(
                user_id=ALICE,
                display_name="Secret Name",
                identity_key=identity.public_key,
                device_list=b"DEVICE-LIST-BYTES",
                added_at=1,
            )
        )
        message = sample_message("m1", text=SECRET_TEXT, content=b"CONTENT-BYTES")
        await tx.add_message(message)
        await tx.add_outbox(
            OutboxEntry(
                message_id="m1",
                recipient_id=ALICE,
                recipient_device_key=DEVICE,
                content=b"OUTBOX-PLAINTEXT",
                created_at=1,
                expires_at=2,
            )
        )


def _sql(path: Path, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


async def test_plain_store_keeps_its_index_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)
    names = {row[0] for row in _sql(path, "SELECT name FROM sqlite_schema")}
    assert {"messages_fts", "messages_fts_insert", "messages_fts_update"} <= names
    assert _sql(path, "PRAGMA user_version") == [(MESSAGE_SCHEMA_VERSION,)]
    assert _sql(path, "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'mill'") == [(1,)]
    assert SECRET_TEXT.encode() in path.read_bytes()


async def test_encryption_hides_content_and_keeps_no_index_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    await _fill(path, encryption_key=KEY)
    data = path.read_bytes()
    for secret in (b"Secret Name", b"DEVICE-LIST", b"CONTENT-BYTES", b"OUTBOX-PLAIN", b"old mill"):
        assert secret not in data
    names = {row[0] for row in _sql(path, "SELECT name FROM sqlite_schema")}
    assert not any(name.startswith("messages_fts") for name in names)
    async with (
        await SQLiteMessageStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        assert [m.message_id for m in await tx.search("old mi")] == ["m1"]
        contact = await tx.get_contact(ALICE)
        assert contact is not None
        assert contact.display_name == "Secret Name"
    assert not any(p.name.startswith("etilqs") for p in tmp_path.iterdir())


async def test_wrong_key_wrong_passphrase_and_wrong_mode(tmp_path: Path) -> None:
    await _fill(tmp_path / "key.db", encryption_key=KEY)
    with pytest.raises(WrongPassphraseError):
        await SQLiteMessageStore.open(tmp_path / "key.db", encryption_key=b"X" * 32)
    with pytest.raises(ConfigurationError, match="is encrypted"):
        await SQLiteMessageStore.open(tmp_path / "key.db")
    with pytest.raises(ConfigurationError, match="with a key, not a passphrase"):
        await SQLiteMessageStore.open(tmp_path / "key.db", passphrase="p")
    await _fill(tmp_path / "plain.db")
    with pytest.raises(ConfigurationError, match="is not encrypted"):
        await SQLiteMessageStore.open(tmp_path / "plain.db", encryption_key=KEY)
    await _fill(tmp_path / "pass.db", passphrase="right")
    with pytest.raises(WrongPassphraseError):
        await SQLiteMessageStore.open(tmp_path / "pass.db", passphrase="wrong")
    async with (
        await SQLiteMessageStore.open(tmp_path / "pass.db", passphrase="right") as store,
        store.transaction() as tx,
    ):
        assert [m.message_id for m in await tx.search("mill")] == ["m1"]


async def test_bad_open_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        await SQLiteMessageStore.open(tmp_path / "m.db", encryption_key=KEY, passphrase="p")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        await SQLiteMessageStore.open(tmp_path / "m.db", encryption_key=b"short")
    with pytest.raises(StorageError, match="not a file in an existing folder"):
        await SQLiteMessageStore.open(tmp_path)
    with pytest.raises(StorageError, match="not a file in an existing folder"):
        await SQLiteMessageStore.open(tmp_path / "missing" / "m.db")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"this is not sqlite" * 100, id="garbage"),
        pytest.param(lambda data: data[:50], id="shorter-than-a-header"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-to-half"),
        pytest.param(lambda data: data[:4096], id="truncated-to-one-page"),
        pytest.param(lambda data: data[:100] + b"\xff" * (len(data) - 100), id="pages-overwritten"),
    ],
)
async def test_a_damaged_file_is_corrupt_data(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(CorruptDataError):
        await SQLiteMessageStore.open(path)


async def test_another_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with await SQLiteKeyStore.open(path):
        pass
    with pytest.raises(StorageError, match="not an Omega message store"):
        await SQLiteMessageStore.open(path)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)
    _sql(path, f"PRAGMA user_version = {MESSAGE_SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="schema version 2 is not supported"):
        await SQLiteMessageStore.open(path)


async def test_missing_key_check_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)
    _sql(path, "DELETE FROM store_meta WHERE name = 'key_check'")
    with pytest.raises(CorruptDataError, match="key check"):
        await SQLiteMessageStore.open(path)


async def test_an_older_file_is_migrated_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)

    def to_v2(connection: sqlite3.Connection, encrypted: bool) -> None:
        connection.execute("ALTER TABLE messages ADD COLUMN pinned INTEGER DEFAULT 0")

    monkeypatch.setattr(message_sqlite, "MESSAGE_SCHEMA_VERSION", 2)
    monkeypatch.setattr(message_sqlite, "_MIGRATIONS", (*message_sqlite._MIGRATIONS, to_v2))
    async with await SQLiteMessageStore.open(path) as store, store.transaction() as tx:
        assert [m.message_id for m in await tx.search("mill")] == ["m1"], "data survives"
    assert _sql(path, "PRAGMA user_version") == [(2,)]
    assert _sql(path, "SELECT pinned FROM messages") == [(0,)]


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("UPDATE messages SET state = 'lost'", "get_message"),
        ("UPDATE messages SET deleted = 7", "get_message"),
        ("UPDATE messages SET timestamp = 'noon'", "get_message"),
        ("UPDATE messages SET text = CAST(x'ff' AS TEXT)", "get_message"),
        ("UPDATE messages SET content = 'text, not bytes'", "get_message"),
        ("UPDATE messages SET sender_id = 'omega1bad'", "search"),
        ("UPDATE messages SET state = 'lost'", "set_message_state"),
        ("UPDATE contacts SET identity_key = zeroblob(32)", "get_contact"),
        ("UPDATE contacts SET verified = 2", "get_contact"),
        ("UPDATE conversations SET unread_count = -1", "get_conversation"),
        ("UPDATE outbox SET recipient_device_key = 'x'", "pending_outbox"),
        ("UPDATE outbox SET state = 'gone'", "outbox_entry"),
    ],
)
async def test_a_tampered_row_is_corrupt_data(tmp_path: Path, sql: str, read: str) -> None:
    path = tmp_path / "messages.db"
    await _fill(path)
    _sql(path, sql)
    calls = {
        "get_message": lambda tx: tx.get_message(ALICE, "m1"),
        "search": lambda tx: tx.search("mill"),
        "set_message_state": lambda tx: tx.set_message_state(ALICE, "m1", DeliveryState.READ),
        "get_contact": lambda tx: tx.get_contact(ALICE),
        "get_conversation": lambda tx: tx.get_conversation(ALICE),
        "pending_outbox": lambda tx: tx.pending_outbox(),
        "outbox_entry": lambda tx: tx.outbox_entry("m1", DEVICE),
    }
    async with await SQLiteMessageStore.open(path) as store, store.transaction() as tx:
        with pytest.raises(CorruptDataError):
            await calls[read](tx)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE messages SET content = substr(content, 1, 30) || x'00' || substr(content, 32)",
        "UPDATE messages SET content = text",
        "UPDATE messages SET conversation_id = 'elsewhere'",
    ],
)
async def test_altered_or_moved_sealed_values_are_detected(tmp_path: Path, sql: str) -> None:
    path = tmp_path / "messages.db"
    await _fill(path, encryption_key=KEY)
    _sql(path, sql)

    async def read_everything() -> None:
        async with (
            await SQLiteMessageStore.open(path, encryption_key=KEY) as store,
            store.transaction() as tx,
        ):
            await tx.messages(ALICE)
            await tx.messages("elsewhere")

    with pytest.raises(CorruptDataError):
        await read_everything()


async def test_ephemeral_outbox_entries_do_not_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    typing = OutboxEntry(
        message_id="typing-1",
        recipient_id=ALICE,
        recipient_device_key=DEVICE,
        content=b"typing",
        created_at=1,
        expires_at=2,
        ephemeral=True,
    )
    lasting = dataclasses.replace(typing, message_id="m1", ephemeral=False)
    async with await SQLiteMessageStore.open(path) as store, store.transaction() as tx:
        await tx.add_outbox(typing)
        await tx.add_outbox(lasting)
        assert len(await tx.pending_outbox()) == 2
    async with await SQLiteMessageStore.open(path) as store, store.transaction() as tx:
        assert await tx.pending_outbox() == [lasting]


@pytest.mark.parametrize("encrypted", [False, True])
async def test_cancellation_inside_a_transaction_rolls_back(
    tmp_path: Path, encrypted: bool
) -> None:
    options = {"encryption_key": KEY} if encrypted else {}
    path = tmp_path / "messages.db"
    async with await SQLiteMessageStore.open(path, **options) as store:  # type: ignore[arg-type]
        entered = anyio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.add_message(sample_message("m1", text="never committed"))
                entered.set()
                await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            group.start_soon(writer)
            await entered.wait()
            group.cancel_scope.cancel()
        async with store.transaction() as tx:
            assert await tx.get_message(ALICE, "m1") is None
            assert await tx.search("never") == []
            assert await tx.get_conversation(ALICE) is None


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, anyio
    from omega.storage import SQLiteMessageStore
    from omega.testing.message_store import sample_message

    async def main():
        store = await SQLiteMessageStore.open(sys.argv[1])
        async with store.transaction() as tx:
            await tx.add_message(sample_message("kept", text="committed words"))
        async with store.transaction() as tx:
            await tx.add_message(sample_message("torn", text="torn words"))
            await tx.mark_seen(bytes(32), "torn", 1)
            print("in transaction", flush=True)
            await anyio.sleep(60)

    anyio.run(main)
    """
)


async def test_killed_mid_transaction_leaves_only_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "in transaction"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    async with await SQLiteMessageStore.open(path) as store, store.transaction() as tx:
        assert [m.message_id for m in await tx.messages(ALICE)] == ["kept"]
        assert [m.message_id for m in await tx.search("words")] == ["kept"]
        assert await tx.mark_seen(bytes(32), "torn", 2) is True
    assert _sql(path, "PRAGMA integrity_check") == [("ok",)]
    assert _sql(path, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')") == []


async def test_the_in_memory_index_is_rebuilt_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "messages.db"
    monkeypatch.setattr(message_sqlite, "_INDEX_BATCH", 2)
    texts = ["red apple", "green apple", "", "apple pie", "no fruit"]
    async with (
        await SQLiteMessageStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        for index, text in enumerate(texts):
            await tx.add_message(sample_message(f"m{index}", timestamp=index, text=text))
    async with (
        await SQLiteMessageStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        assert [m.message_id for m in await tx.search("apple")] == ["m3", "m1", "m0"]
        assert [m.message_id for m in await tx.search("fruit")] == ["m4"]
