"""SQLite specifics: at-rest encryption, hostile files, crashes and cancellation."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from omega.client._group_store import load_session, write_changes
from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.errors import (
    ConfigurationError,
    CorruptDataError,
    LocalProtocolError,
    StorageError,
    WrongPassphraseError,
)
from omega.groups import GroupConfig
from omega.protocol import GroupSessionState, decode_message
from omega.storage import InboxEntry, SQLiteKeyStore

pytestmark = pytest.mark.anyio

DEVICE = bytes(range(100, 132))
KEY = b"K" * 32


async def _write_session(path: Path, **options: object) -> None:
    entry = InboxEntry(message_id="m1", sender_device_key=DEVICE, plaintext=b"hello", received_at=5)
    store = await SQLiteKeyStore.open(path, **options)  # type: ignore[arg-type]
    async with store, store.transaction() as tx:
        await tx.save_session(DEVICE, b"ratchet state")
        await tx.add_to_inbox(entry)


async def test_encryption_hides_identifiers_and_values(tmp_path: Path) -> None:
    plain, sealed = tmp_path / "plain.db", tmp_path / "sealed.db"
    await _write_session(plain)
    await _write_session(sealed, encryption_key=KEY)
    # Closing the last connection checkpoints the write-ahead log into the file.
    plain_bytes, sealed_bytes = plain.read_bytes(), sealed.read_bytes()
    assert DEVICE in plain_bytes
    assert b"ratchet state" in plain_bytes
    for secret in (DEVICE, b"ratchet state", b"hello", b"m1\x00"):
        assert secret not in sealed_bytes


async def test_wrong_key_and_wrong_passphrase(tmp_path: Path) -> None:
    await _write_session(tmp_path / "key.db", encryption_key=KEY)
    with pytest.raises(WrongPassphraseError):
        await SQLiteKeyStore.open(tmp_path / "key.db", encryption_key=b"X" * 32)
    await _write_session(tmp_path / "pass.db", passphrase="right")
    with pytest.raises(WrongPassphraseError):
        await SQLiteKeyStore.open(tmp_path / "pass.db", passphrase="wrong")
    async with (
        await SQLiteKeyStore.open(tmp_path / "pass.db", passphrase="right") as store,
        store.transaction() as tx,
    ):
        assert await tx.load_session(DEVICE) == b"ratchet state"


@pytest.mark.parametrize(
    ("created_with", "opened_with", "message"),
    [
        ({"encryption_key": KEY}, {}, "is encrypted"),
        ({}, {"encryption_key": KEY}, "is not encrypted"),
        ({"encryption_key": KEY}, {"passphrase": "p"}, "with a key, not a passphrase"),
    ],
)
async def test_opening_in_the_wrong_mode(
    tmp_path: Path, created_with: dict[str, object], opened_with: dict[str, object], message: str
) -> None:
    await _write_session(tmp_path / "keys.db", **created_with)
    with pytest.raises(ConfigurationError, match=message):
        await SQLiteKeyStore.open(tmp_path / "keys.db", **opened_with)  # type: ignore[arg-type]


async def test_bad_open_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        await SQLiteKeyStore.open(tmp_path / "k.db", encryption_key=KEY, passphrase="p")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        await SQLiteKeyStore.open(tmp_path / "k.db", encryption_key=b"short")
    with pytest.raises(ConfigurationError, match="empty"):
        await SQLiteKeyStore.open(tmp_path / "k.db", passphrase="")


def _tamper(path: Path, sql: str) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql)
    connection.close()


async def test_tampered_value_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path, encryption_key=KEY)
    _tamper(path, "UPDATE sessions SET state = substr(state, 1, 30) || x'00' || substr(state, 32)")
    async with (
        await SQLiteKeyStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        with pytest.raises(CorruptDataError, match="fails authentication"):
            await tx.load_session(DEVICE)


async def test_values_moved_between_columns_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path, encryption_key=KEY)
    _tamper(path, "UPDATE inbox SET plaintext = message_id")
    async with (
        await SQLiteKeyStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        with pytest.raises(CorruptDataError):
            await tx.inbox()


async def test_unreadable_inbox_entry_in_a_plain_store(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path)
    _tamper(path, "UPDATE inbox SET message_id = x'ff'")
    async with await SQLiteKeyStore.open(path) as store, store.transaction() as tx:
        with pytest.raises(CorruptDataError, match="cannot be read back"):
            await tx.inbox()


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptDataError):
        await SQLiteKeyStore.open(path)


async def test_a_directory_or_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a file in an existing folder"):
        await SQLiteKeyStore.open(tmp_path)
    with pytest.raises(StorageError, match="not a file in an existing folder"):
        await SQLiteKeyStore.open(tmp_path / "missing" / "keys.db")


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path)
    _tamper(path, "UPDATE meta SET value = x'00000003' WHERE name = 'schema_version'")
    with pytest.raises(StorageError, match="schema version 3 is not supported"):
        await SQLiteKeyStore.open(path)


async def test_missing_key_check_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path)
    _tamper(path, "DELETE FROM meta WHERE name = 'key_check'")
    with pytest.raises(CorruptDataError, match="key check"):
        await SQLiteKeyStore.open(path)


async def test_bad_passphrase_parameters_are_corruption(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    await _write_session(path, passphrase="p")
    _tamper(path, "UPDATE meta SET value = x'00' WHERE name = 'kdf'")
    with pytest.raises(CorruptDataError, match="malformed"):
        await SQLiteKeyStore.open(path, passphrase="p")
    _tamper(path, "UPDATE meta SET value = zeroblob(32) WHERE name = 'kdf'")
    with pytest.raises(CorruptDataError, match="out of bounds"):
        await SQLiteKeyStore.open(path, passphrase="p")


async def test_cancellation_inside_a_transaction_rolls_back(tmp_path: Path) -> None:
    async with await SQLiteKeyStore.open(tmp_path / "keys.db") as store:
        entered = anyio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.save_session(DEVICE, b"never committed")
                entered.set()
                await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            group.start_soon(writer)
            await entered.wait()
            group.cancel_scope.cancel()
        async with store.transaction() as tx:
            assert await tx.load_session(DEVICE) is None


async def test_transaction_after_close(tmp_path: Path) -> None:
    store = await SQLiteKeyStore.open(tmp_path / "keys.db")
    async with store.transaction() as tx:
        pass
    await store.aclose()
    with pytest.raises(LocalProtocolError):
        await tx.session_device_keys()
    with pytest.raises(StorageError, match="closed"):
        async with store.transaction():
            pass


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, anyio
    from omega.storage import SQLiteKeyStore

    async def main():
        store = await SQLiteKeyStore.open(sys.argv[1], encryption_key=b"K" * 32)
        async with store.transaction() as tx:
            await tx.save_session(bytes(32), b"committed")
        async with store.transaction() as tx:
            await tx.save_session(bytes(32), b"torn")
            await tx.save_session(bytes(range(32)), b"torn")
            print("in transaction", flush=True)
            await anyio.sleep(60)

    anyio.run(main)
    """
)


async def test_killed_mid_transaction_leaves_only_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
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
    async with (
        await SQLiteKeyStore.open(path, encryption_key=KEY) as store,
        store.transaction() as tx,
    ):
        assert await tx.load_session(bytes(32)) == b"committed"
        assert await tx.load_session(bytes(range(32))) is None
        assert await tx.session_device_keys() == [bytes(32)]
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()


_LEGACY = Path(__file__).parent.parent / "groups" / "data"


async def test_a_version_1_file_is_migrated_and_its_group_converted(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    path.write_bytes((_LEGACY / "key_store_v1.db").read_bytes())
    legacy = (_LEGACY / "group_session_v1_member1.bin").read_bytes()
    with pytest.raises(WrongPassphraseError):
        await SQLiteKeyStore.open(path, encryption_key=b"W" * 32)
    assert _sql(path, "SELECT value FROM meta WHERE name = 'schema_version'") == [
        (b"\x00\x00\x00\x01",)
    ], "a failed open migrates nothing"
    device = _member_device(1)
    store = await SQLiteKeyStore.open(path, encryption_key=KEY)
    async with store, store.transaction() as tx:
        [group_id] = await tx.group_state_ids()
        parts = await tx.load_group_parts(group_id)
        assert parts is not None
        assert (parts.record, parts.outbound, parts.senders) == (legacy, None, {})
        assert await tx.load_session(bytes(32)) is None
        session = await load_session(tx, group_id, device, GroupConfig())
        assert session is not None
        await write_changes(tx, group_id, session.take_changes())
    assert _sql(path, "SELECT value FROM meta WHERE name = 'schema_version'") == [
        (b"\x00\x00\x00\x02",)
    ]
    store = await SQLiteKeyStore.open(path, encryption_key=KEY)
    async with store, store.transaction() as tx:
        parts = await tx.load_group_parts(group_id)
        assert parts is not None
        assert decode_message(GroupSessionState, parts.record).version == 2
        assert parts.outbound is not None
        assert len(parts.senders) == 1
        reloaded = await load_session(tx, group_id, device, GroupConfig())
        assert reloaded is not None
        assert reloaded.to_bytes() == legacy, "the same session, now stored in parts"
    assert _sql(path, "SELECT count(*) FROM group_senders") == [(1,)]


def _sql(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return [tuple(row) for row in connection.execute(sql).fetchall()]
    finally:
        connection.close()


def _member_device(index: int) -> LocalDevice:
    """The device of test user ``index`` of tests/groups/group_helpers.py."""
    seed = index.to_bytes(4, "big")
    identity = IdentityKeyPair.from_seed(b"identity" + seed + bytes(20))
    key_pair = DeviceKeyPair.from_seed(b"device--" + seed + bytes(20))
    signed = certify_device(
        identity, key_pair.public_key, name="phone", created_at=1_700_000_000_000
    )
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return LocalDevice(key_pair=key_pair, certificate=certificate)
