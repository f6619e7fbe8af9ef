"""The in-process store server passes the mailbox, key directory and backend suites."""

from __future__ import annotations

import pytest

from omega.mailbox import MemoryBackend, MemoryStoreServer
from omega.testing.clock import ManualClock
from omega.testing.mailbox import check_key_directory, check_mailbox, check_store_backend

pytestmark = pytest.mark.anyio

START = 1_700_000_000.0


async def test_memory_mailbox_conforms() -> None:
    clock = ManualClock(start=START)
    server = MemoryStoreServer(clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    await check_mailbox(server.client, advance=advance)


async def test_memory_mailbox_conforms_with_sweeps() -> None:
    clock = ManualClock(start=START)
    server = MemoryStoreServer(clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        await server.service.sweep()

    await check_mailbox(server.client, advance=advance)


async def test_memory_key_directory_conforms() -> None:
    await check_key_directory(MemoryStoreServer().client)


async def test_memory_backend_conforms() -> None:
    async def open_backend() -> MemoryBackend:
        return MemoryBackend()

    await check_store_backend(open_backend)
