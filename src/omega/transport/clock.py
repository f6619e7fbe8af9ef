"""Clocks for the drivers: the real one, and the interface tests replace it through.

Drivers that keep time (the connection manager's timeouts and keep-alives)
take a :class:`Clock` instead of calling anyio directly, so a test can move
time forward by hand (:class:`omega.testing.clock.ManualClock`) and see a
five-minute idle timeout fire without waiting five minutes.
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """A monotonic clock in seconds, and a way to sleep on it."""

    def now(self) -> float:
        """The current time, in seconds of an arbitrary monotonic origin."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`now` has reached ``deadline`` (at once if it has)."""
        ...


class SystemClock:
    """The event loop's clock (``anyio.current_time`` and ``anyio.sleep_until``)."""

    def now(self) -> float:
        """The event loop's monotonic time."""
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep on the event loop's clock."""
        await anyio.sleep_until(deadline)
