"""One client session on the relay, its bounded outbound queue, and the routes between sessions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from omega.transport._relay_protocol import VerifiedRegistration
from omega.transport.base import FrameConnection

__all__ = ["End", "Outbox", "Route", "ServerSession", "Sink"]


class Outbox:
    """Frames waiting to be written to one session, bounded in bytes.

    :meth:`put` waits while ``limit`` bytes or more are queued;
    :meth:`put_nowait` refuses instead. After :meth:`close`, puts drop their
    frame and :meth:`get` drains what is left, then returns ``None``.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self.size = 0
        """Bytes queued."""
        self._space = anyio.Event()
        self._ready = anyio.Event()
        self.closed = False
        """True once closed."""

    def _wake(self, ready: bool) -> None:
        event = self._ready if ready else self._space
        event.set()
        if ready:
            self._ready = anyio.Event()
        else:
            self._space = anyio.Event()

    def put_nowait(self, frame: bytes, *, force: bool = False) -> bool:
        """Queue ``frame`` unless the queue is full (or closed); say whether it did.

        ``force`` queues it even over the limit: for the relay's own small
        control frames, at most one per stream.
        """
        if self.closed:
            return True
        if self.size >= self._limit and not force:
            return False
        self._frames.append(frame)
        self.size += len(frame)
        self._wake(ready=True)
        return True

    async def put(self, frame: bytes) -> None:
        """Queue ``frame``, waiting while the queue is full."""
        while not self.put_nowait(frame):
            await self._space.wait()

    async def get(self) -> bytes | None:
        """The next frame to write; ``None`` once closed and drained."""
        while not self._frames:
            if self.closed:
                return None
            await self._ready.wait()
        frame = self._frames.popleft()
        self.size -= len(frame)
        self._wake(ready=False)
        return frame

    def close(self) -> None:
        """Stop accepting frames; wake everyone waiting."""
        self.closed = True
        self._wake(ready=True)
        self._wake(ready=False)


class Sink(Protocol):
    """Where frames for one end of a route go: a local session, or another relay."""

    @property
    def label(self) -> str:
        """Who this is, for logs."""
        ...

    async def deliver(self, frame: bytes) -> None:
        """Queue ``frame`` (an encoded RelayFrame) for this end."""
        ...

    def deliver_nowait(self, frame: bytes) -> None:
        """Queue a small control frame without waiting."""
        ...

    def detach(self, stream_id: int) -> None:
        """Forget the route under ``stream_id``."""
        ...


@dataclass(eq=False)
class End:
    """One end of a route: a sink and the stream id the route has there."""

    sink: Sink
    stream_id: int
    eof: bool = False
    """This end has sent its end of stream."""


@dataclass(eq=False)
class Route:
    """A stream between two ends, as the relay forwards it."""

    source: End
    """The end that sent RelayConnect."""
    target: End
    """The end that received RelayIncoming."""
    accepted: bool = False
    """The target accepted the stream."""
    key: str = ""
    """Its id on the Redis bus, when its ends are on different relays."""

    def other(self, end: End) -> End:
        """The end that is not ``end``."""
        return self.target if end is self.source else self.source


@dataclass(eq=False)
class ServerSession:
    """A registered client session on this relay."""

    number: int
    """Serial number of the session in this process, for logs."""
    link: FrameConnection
    """The connection to the client."""
    registration: VerifiedRegistration
    """Who registered."""
    outbox: Outbox
    """Frames waiting to be written to the client."""
    cancel_scope: anyio.CancelScope
    """Cancelled to drop the session."""
    routes: dict[int, tuple[Route, End]] = field(default_factory=dict)
    """The session's streams: stream id -> (route, this session's end of it)."""
    next_stream_id: int = 2
    """The next even stream id the relay gives an inbound stream."""
    drop_reason: str | None = None
    """Why the relay dropped the session, once it has."""

    @property
    def label(self) -> str:
        """``user id/device id#number``, for logs."""
        return f"{self.registration.device_id}#{self.number}"

    def allocate_stream_id(self) -> int:
        """A fresh even stream id for an inbound stream."""
        while self.next_stream_id in self.routes:
            self.next_stream_id += 2
        stream_id = self.next_stream_id
        self.next_stream_id += 2
        return stream_id

    async def deliver(self, frame: bytes) -> None:
        """Queue ``frame`` for the client, waiting while its queue is full."""
        await self.outbox.put(frame)

    def deliver_nowait(self, frame: bytes) -> None:
        """Queue a small control frame now, even over the queue's limit."""
        self.outbox.put_nowait(frame, force=True)

    def detach(self, stream_id: int) -> None:
        """Forget the route under ``stream_id``."""
        self.routes.pop(stream_id, None)

    def drop(self, reason: str) -> None:
        """End the session from outside its task."""
        if self.drop_reason is None:
            self.drop_reason = reason
        self.outbox.close()
        self.cancel_scope.cancel()
