"""Every message store backend passes the conformance suite; search properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.storage import MemoryMessageStore, SQLiteMessageStore
from omega.testing import check_message_store

pytestmark = pytest.mark.anyio


async def test_memory_store_conforms() -> None:
    async def open_store(name: str) -> MemoryMessageStore:
        return MemoryMessageStore()

    await check_message_store(open_store, durable=False)


async def test_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store(name: str) -> SQLiteMessageStore:
        return await SQLiteMessageStore.open(tmp_path / f"{name}.db")

    await check_message_store(open_store, durable=True)


async def test_encrypted_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store(name: str) -> SQLiteMessageStore:
        return await SQLiteMessageStore.open(tmp_path / f"{name}.db", encryption_key=b"k" * 32)

    await check_message_store(open_store, durable=True)
