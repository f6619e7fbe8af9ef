"""A clock that moves only when a test says so."""

from __future__ import annotations

import heapq
import itertools

import anyio

__all__ = ["ManualClock"]


class ManualClock:
    """A :class:`omega.transport.clock.Clock` whose time advances only through :meth:`advance`.

    Sleepers whose deadline is reached wake up in deadline order. A test
    that needs a task to be asleep before it moves time awaits
    :meth:`wait_for_sleepers`, which is event-driven, never a real sleep.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self._asleep: list[float] = []  # deadlines of the tasks asleep now
        self._changed = anyio.Event()

    def now(self) -> float:
        """The manual time."""
        return self._now

    @property
    def sleepers(self) -> int:
        """Tasks currently waiting on this clock."""
        return len(self._asleep)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` moves the time to ``deadline`` or beyond."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._heap, (deadline, next(self._order), event))
        self._asleep.append(deadline)
        self._notify()
        try:
            await event.wait()
        finally:
            self._asleep.remove(deadline)
            event.set()  # a cancelled sleeper leaves nothing to wake

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper it reaches."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        while self._heap and self._heap[0][0] <= self._now:
            heapq.heappop(self._heap)[2].set()

    async def wait_for_sleepers(self, count: int, *, until_after: float | None = None) -> None:
        """Wait until at least ``count`` tasks sleep on this clock.

        With ``until_after``, count only those sleeping until a later time:
        a way to wait for tasks to have gone back to a long sleep.
        """
        while self._count(until_after) < count:
            await self._changed.wait()

    def _count(self, until_after: float | None) -> int:
        if until_after is None:
            return len(self._asleep)
        return sum(deadline > until_after for deadline in self._asleep)
