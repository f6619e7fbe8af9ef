"""Every message store backend passes the conformance suite; search properties."""

from __future__ import annotations

import pytest

from omega.storage import MemoryMessageStore
from omega.testing.message_store import check_message_store

pytestmark = pytest.mark.anyio


async def test_memory_store_conforms() -> None:
    async def open_store(name: str) -> MemoryMessageStore:
        return MemoryMessageStore()

    await check_message_store(open_store, durable=False)
