"""The events part of the :class:`~omega.client.Client` API: streams, handlers, waiting.

A mixin, so that the client module stays small.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

from omega.client.events import Event
from omega.errors import LocalProtocolError

if TYPE_CHECKING:
    from omega.client._core import Core

__all__ = ["EventsMixin"]

E = TypeVar("E", bound=Event)


class EventsMixin:
    """Events as ``async for``, as handlers, and as one awaited event."""

    _core: Core

    async def events(self, *, buffer: int = 1000) -> AsyncIterator[Event]:
        """Every event from now on, until the client closes."""
        receive = self._core.subscribe(buffer)
        async with receive:
            async for event in receive:
                yield event

    def on(self, event_type: type[E]) -> Callable[[Callable[[E], object]], Callable[[E], object]]:
        """Decorator: call the function (sync or async) for every ``event_type`` event.

        Handlers run in the order they were added; one that raises is logged
        and does not stop the client. :meth:`off` removes a handler.
        """

        def register(handler: Callable[[E], object]) -> Callable[[E], object]:
            self._core.add_handler(event_type, handler)  # type: ignore[arg-type]
            return handler

        return register

    def off(self, event_type: type[E], handler: Callable[[E], object]) -> bool:
        """Stop calling ``handler`` for ``event_type`` events; return whether it was added.

        Removes one registration (the earliest) of that exact pair.
        """
        return self._core.remove_handler(event_type, handler)  # type: ignore[arg-type]

    async def wait_for(self, predicate: Callable[[Event], bool], *, timeout: float = 30.0) -> Event:
        """The first event from now on that satisfies ``predicate``.

        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        receive = self._core.subscribe(10_000)
        async with receive:
            with anyio.fail_after(timeout):
                async for event in receive:
                    if predicate(event):
                        return event
        raise LocalProtocolError("the client closed")  # pragma: no cover - closed while waiting
