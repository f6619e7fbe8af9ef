"""Running handlers: bounded concurrency, per-conversation order, handled tracking."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from omega.bot.base import BotStore
from omega.protocol import MessageContent
from omega.storage.message_base import StoredMessage

__all__ = ["Dispatcher", "Incoming"]

logger = logging.getLogger("omega.bot")


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message waiting for its handlers."""

    message: StoredMessage
    content: MessageContent


class Dispatcher:
    """Queues incoming messages per conversation and runs them under a capacity limit.

    Messages of one conversation run one after another, in arrival order;
    different conversations run concurrently, at most ``limit`` at a time.
    A message is recorded as handled in the store when its processing
    returns (normally or by an exception the processor handled); one that
    was cancelled (shutdown) is not, so the next start processes it.
    """

    def __init__(
        self,
        process: Callable[[Incoming], Awaitable[None]],
        store: BotStore,
        *,
        limit: int,
        max_pending: int,
        wall_clock: Callable[[], int],
    ) -> None:
        self._process = process
        self._store = store
        self._limiter = anyio.CapacityLimiter(limit)
        self._max_pending = max_pending
        self._wall_clock = wall_clock
        self._queues: dict[str, deque[Incoming]] = {}
        self._unfinished: dict[str, int] = {}  # message id -> received_at
        self._space = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._task_group: TaskGroup | None = None
        self._accepting = False
        self.handled_count = 0

    def start(self, task_group: TaskGroup) -> None:
        """Start accepting messages; workers run in ``task_group``."""
        self._task_group = task_group
        self._accepting = True

    def stop_accepting(self) -> None:
        """Take no more messages and start no queued ones (they stay unhandled)."""
        self._accepting = False
        for queue in self._queues.values():
            for item in queue:
                self._unfinished.pop(item.message.message_id, None)
            queue.clear()

    async def wait_idle(self) -> None:
        """Until no handler runs."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        """Messages accepted and not yet finished."""
        return len(self._unfinished)

    def accepted(self, message_id: str) -> bool:
        """Whether the message is queued or running."""
        return message_id in self._unfinished

    def checkpoint(self) -> int:
        """Every message received before this time (Unix ms) is handled."""
        now = self._wall_clock()
        return min(self._unfinished.values(), default=now)

    async def submit(self, item: Incoming) -> None:
        """Queue ``item`` (waits while ``max_pending`` messages are unfinished)."""
        message = item.message
        while self._accepting and len(self._unfinished) >= self._max_pending:
            self._space = anyio.Event() if self._space.is_set() else self._space
            await self._space.wait()
        if not self._accepting or message.message_id in self._unfinished:
            return
        assert self._task_group is not None
        self._unfinished[message.message_id] = message.received_at or self._wall_clock()
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        queue = self._queues.get(message.conversation_id)
        if queue is None:
            queue = self._queues[message.conversation_id] = deque()
            queue.append(item)
            self._task_group.start_soon(self._worker, message.conversation_id, queue)
        else:
            queue.append(item)

    async def _worker(self, conversation_id: str, queue: deque[Incoming]) -> None:
        try:
            while queue and self._accepting:
                item = queue.popleft()
                async with self._limiter:
                    await self._process(item)
                await self._finished(item)
        finally:
            if self._queues.get(conversation_id) is queue:
                del self._queues[conversation_id]
            if not self._queues:
                self._idle.set()

    async def _finished(self, item: Incoming) -> None:
        message = item.message
        self._unfinished.pop(message.message_id, None)
        self._space.set()
        self.handled_count += 1
        try:
            await self._store.mark_handled(
                message.conversation_id,
                message.message_id,
                at=self._wall_clock(),
                checkpoint=self.checkpoint(),
            )
        except Exception:
            logger.exception("event=bot_mark_handled_failed message=%s", message.message_id)
