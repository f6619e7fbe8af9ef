"""Both bot stores pass the conformance suite; the SQLite one persists and encrypts."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.bot import MemoryBotStore, SQLiteBotStore
from omega.bot.base import BotStore
from omega.bot.testing import check_bot_store
from omega.errors import ConfigurationError, CorruptDataError, StorageError

pytestmark = pytest.mark.anyio


async def test_memory_store_conforms() -> None:
    async def factory() -> BotStore:
        return MemoryBotStore()

    await check_bot_store(factory)


@pytest.mark.parametrize("key", [None, bytes(range(32))])
async def test_sqlite_store_conforms(tmp_path: Path, key: bytes | None) -> None:
    async def factory() -> BotStore:
        return await SQLiteBotStore.open(tmp_path / "bot.db", encryption_key=key)

    await check_bot_store(factory)


async def test_sqlite_store_persists_and_needs_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await SQLiteBotStore.open(path, encryption_key=b"k" * 32) as store:
        await store.save_state("conv", {"secret": "tomatoes"})
        await store.mark_handled("conv", "m1", at=5, checkpoint=7)
        await store.set_handoff("conv", "human")
    assert b"tomatoes" not in path.read_bytes()
    async with await SQLiteBotStore.open(path, encryption_key=b"k" * 32) as store:
        assert await store.load_state("conv") == {"secret": "tomatoes"}
        assert await store.is_handled("conv", "m1")
        assert await store.checkpoint() == 7
        assert await store.handoffs() == {"conv": "human"}
    async with await SQLiteBotStore.open(path, encryption_key=b"x" * 32) as store:
        with pytest.raises(CorruptDataError):
            await store.load_state("conv")
    with pytest.raises(ConfigurationError):
        await SQLiteBotStore.open(path, encryption_key=b"short")
    store = await SQLiteBotStore.open(path)
    await store.aclose()
    await store.aclose()
    with pytest.raises(StorageError, match="closed"):
        await store.checkpoint()
    with pytest.raises(StorageError, match="cannot open"):
        await SQLiteBotStore.open(tmp_path / "missing" / "dir" / "bot.db")


async def test_sqlite_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "bot.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageError, match="cannot open"):
        await SQLiteBotStore.open(tmp_path / "bot.db")
    with pytest.raises(StorageError, match="cannot open"):
        await SQLiteBotStore.open(tmp_path)
