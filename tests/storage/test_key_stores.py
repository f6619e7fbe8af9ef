"""Every key store backend passes the conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.storage import MemoryKeyStore, SQLiteKeyStore
from omega.testing.key_store import check_key_store

pytestmark = pytest.mark.anyio


async def test_memory_store_conforms() -> None:
    async def open_store() -> MemoryKeyStore:
        return MemoryKeyStore()

    await check_key_store(open_store, durable=False)


async def test_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store() -> SQLiteKeyStore:
        return await SQLiteKeyStore.open(tmp_path / "keys.db")

    await check_key_store(open_store, durable=True)


async def test_encrypted_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store() -> SQLiteKeyStore:
        return await SQLiteKeyStore.open(tmp_path / "keys.db", encryption_key=b"k" * 32)

    await check_key_store(open_store, durable=True)


async def test_passphrase_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store() -> SQLiteKeyStore:
        return await SQLiteKeyStore.open(tmp_path / "keys.db", passphrase="open sesame")

    await check_key_store(open_store, durable=True)
