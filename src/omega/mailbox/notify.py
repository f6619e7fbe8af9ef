"""In-process arrival notifications (one server process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from omega.mailbox.backend import Listener, Notifier

__all__ = ["MemoryNotifier"]


class _EventListener(Listener):
    def __init__(self) -> None:
        self.event = anyio.Event()

    async def wait(self) -> None:
        await self.event.wait()


class MemoryNotifier(Notifier):
    """Wakes the listeners of this process; memory is one entry per active listener."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_EventListener]] = {}

    def listen(self, recipient_hash: str) -> AbstractAsyncContextManager[Listener]:
        """Subscribe to ``recipient_hash`` while the block runs."""
        return self._listen(recipient_hash)

    @asynccontextmanager
    async def _listen(self, recipient_hash: str) -> AsyncIterator[Listener]:
        listener = _EventListener()
        self._listeners.setdefault(recipient_hash, set()).add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(recipient_hash, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(recipient_hash, None)

    async def notify(self, recipient_hash: str) -> None:
        """Wake every listener of ``recipient_hash``."""
        for listener in self._listeners.get(recipient_hash, ()):
            listener.event.set()

    @property
    def listener_count(self) -> int:
        """Listeners subscribed now (for tests and metrics)."""
        return sum(len(listeners) for listeners in self._listeners.values())
