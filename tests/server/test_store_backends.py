"""Every store backend passes the backend suite; the service runs on each."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from omega.errors import StorageError
from omega.mailbox import DepositOutcome, MemoryBackend, MemoryStoreServer, StoredMessage
from omega.server.store import ShardedBackend, SQLiteBackend
from omega.server.store.sharding import ConsistentHashRing
from omega.server.store.sqlite import _SCHEMA
from omega.testing.clock import ManualClock
from omega.testing.mailbox import check_key_directory, check_mailbox, check_store_backend

pytestmark = pytest.mark.anyio


async def test_sqlite_backend_conforms(tmp_path: Path) -> None:
    async def open_backend() -> SQLiteBackend:
        return await SQLiteBackend.open(tmp_path / "deep" / "store.db")

    await check_store_backend(open_backend)


async def test_the_service_over_sqlite_conforms(tmp_path: Path) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    backend = await SQLiteBackend.open(tmp_path / "store.db")
    async with backend:
        server = MemoryStoreServer(clock=clock, backend=backend)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)
            await server.service.sweep()

        await check_mailbox(server.client, advance=advance)
        await check_key_directory(server.client)


async def test_sqlite_keeps_messages_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with MemoryStoreServer(backend=await SQLiteBackend.open(path)).service.backend as first:
        server = MemoryStoreServer(backend=first)
        from omega.crypto import Identity

        device = Identity.create(device_name="d", created_at=1).device
        await server.client().deposit(device.device_key, "kept", b"x")
    async with await SQLiteBackend.open(path) as second:
        envelopes = await MemoryStoreServer(backend=second).client().fetch(device)
        assert [e.message_id for e in envelopes] == ["kept"]


async def test_sqlite_keeps_revocations_across_reopen_and_migrates_old_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # a file made before revocations existed
        for statement in _SCHEMA:
            if "revoked_devices" not in statement:
                old.execute(statement)
    lost, kept = "a" * 64, "b" * 64
    message = StoredMessage(
        recipient_hash=lost, message_id="m", payload=b"x", deposited_at=1, expires_at=10**15
    )
    async with await SQLiteBackend.open(path) as first:
        quota = {"max_messages": 10, "max_bytes": 100}
        assert await first.insert_message(message, **quota) is DepositOutcome.STORED
        assert await first.revoke_device(lost, revoked_at=5) == 1
    async with await SQLiteBackend.open(path) as second:
        assert await second.is_revoked(lost) is True
        assert await second.is_revoked(kept) is False
        refused = await second.insert_message(message, max_messages=10, max_bytes=100)
        assert refused is DepositOutcome.REVOKED
        assert await second.list_messages(lost, now=0, limit=10) == []


async def test_a_closed_sqlite_backend_raises_storage_errors(tmp_path: Path) -> None:
    backend = await SQLiteBackend.open(":memory:")
    await backend.aclose()
    with pytest.raises(StorageError, match="closed"):
        await backend.count_one_time_prekeys(bytes(32))
    with pytest.raises(StorageError, match="closed"):
        await backend.spend_nonce(bytes(16), 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        await SQLiteBackend.open(tmp_path / "file" / "store.db")


async def test_a_sharded_backend_conforms() -> None:
    async def open_backend() -> ShardedBackend:
        return ShardedBackend({name: MemoryBackend() for name in "abc"})

    await check_store_backend(open_backend)
    server = MemoryStoreServer(backend=await open_backend())
    await check_mailbox(server.client)
    await check_key_directory(server.client)


def test_the_ring_spreads_keys_and_moves_few_when_a_shard_joins() -> None:
    keys = [f"{n:064x}" for n in range(3000)]
    three = ConsistentHashRing(["a", "b", "c"])
    four = ConsistentHashRing(["a", "b", "c", "d"])
    spread = Counter(three.shard_for(key) for key in keys)
    assert all(600 < count < 1400 for count in spread.values()), spread
    moved = sum(three.shard_for(key) != four.shard_for(key) for key in keys)
    assert moved < len(keys) * 0.4, "only about a quarter of the keys move"
    assert all(four.shard_for(k) == "d" for k in keys if three.shard_for(k) != four.shard_for(k))
    with pytest.raises(ValueError, match="shard"):
        ConsistentHashRing([])
    with pytest.raises(ValueError, match="virtual"):
        ConsistentHashRing(["a"], virtual_nodes=0)


def test_the_package_exports_lazily() -> None:
    import omega.server.store as store

    assert store.SQLiteBackend is SQLiteBackend
    with pytest.raises(AttributeError, match="nope"):
        _ = store.nope
