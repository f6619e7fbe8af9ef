"""The transport interfaces: frame connections, listeners and transports.

Every way Omega reaches a peer (in-memory, TCP, WebSocket, QUIC, and the
secure channel layered on any of them) implements these small ABCs:

* :class:`FrameConnection`: a reliable, ordered, bidirectional stream of
  frames (byte strings of at most :attr:`~FrameConnection.max_frame_size`
  bytes), with half-close (:meth:`~FrameConnection.send_eof`) and
  :meth:`~FrameConnection.aclose`.
* :class:`Listener`: a handle on a bound listening endpoint;
  :meth:`~Listener.aclose` stops it.
* :class:`Transport`: :meth:`~Transport.dial` an :class:`~omega.transport.address.Address`,
  or :meth:`~Transport.listen` on one and run a handler per inbound connection.

Structured concurrency: :meth:`Transport.listen` runs until its listener is
closed or its task is cancelled, and every handler runs in a task of its own
inside it, so a listener never outlives the task group that started it::

    async with anyio.create_task_group() as task_group:
        listener = await task_group.start(transport.listen, address, handler)
        ...
        await listener.aclose()

:func:`listening` wraps exactly that in an ``async with``.

End of stream is a typed error, never a sentinel:
:meth:`FrameConnection.receive_frame` raises
:class:`~omega.errors.ConnectionClosedError` once the peer has finished
sending (and ``async for frame in connection`` stops there), and
:class:`~omega.errors.ConnectionLostError` when the stream broke instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskStatus

from omega.errors import ConfigurationError, ConnectionClosedError, FrameTooLargeError
from omega.protocol.framing import DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT
from omega.transport.address import Address

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "ConnectionHandler",
    "FrameConnection",
    "Listener",
    "Transport",
    "TransportConfig",
    "listening",
]

DEFAULT_MAX_CONNECTIONS = 1024
"""How many inbound connections one listener serves at once unless configured."""

ConnectionHandler = Callable[["FrameConnection"], Awaitable[None]]
"""What a listener runs for each inbound connection; the connection is closed when it returns."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Settings every transport shares; each transport's config extends it."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest frame, in bytes, sent or accepted (1..2**31-1; default 1 MiB)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Inbound connections one listener serves at once; more are closed on arrival."""

    def __post_init__(self) -> None:
        _check_int(self.max_frame_size, "max_frame_size", 1, MAX_FRAME_SIZE_LIMIT)
        _check_int(self.max_connections, "max_connections", 1, 1 << 20)


def _check_int(value: object, name: str, low: int, high: int) -> None:
    """Raise ConfigurationError unless ``value`` is an int in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{name} must be an int in {low}..{high}, got {value!r}", details={name: value}
        )


def _check_seconds(value: object, name: str, *, allow_none: bool = False) -> None:
    """Raise ConfigurationError unless ``value`` is a positive, finite number of seconds."""
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < float("inf")
    ):
        raise ConfigurationError(
            f"{name} must be a positive number of seconds, got {value!r}", details={name: value}
        )


class FrameConnection(ABC):
    """A reliable, ordered, bidirectional stream of frames.

    Implementations are safe to use from one sending task and one receiving
    task at a time. Every failure is an :class:`~omega.errors.OmegaError`:
    :class:`~omega.errors.ConnectionClosedError` at the end of the peer's
    stream or after :meth:`aclose`, :class:`~omega.errors.ConnectionLostError`
    when the connection broke, :class:`~omega.errors.FrameTooLargeError` for a
    frame over :attr:`max_frame_size`, other :class:`~omega.errors.FrameError`
    and :class:`~omega.errors.TransportError` subclasses for a stream that
    cannot be decoded or a channel that cannot be trusted.
    """

    @property
    @abstractmethod
    def max_frame_size(self) -> int:
        """Largest frame, in bytes, this connection sends and accepts."""

    @property
    def local_address(self) -> Address | None:
        """Our end of the connection, when the transport knows it."""
        return None

    @property
    def remote_address(self) -> Address | None:
        """The peer's end of the connection, when the transport knows it."""
        return None

    @abstractmethod
    async def send_frame(self, frame: bytes) -> None:
        """Send one frame; wait while the peer is not reading (backpressure).

        Raises :class:`~omega.errors.FrameTooLargeError` for a frame over
        :attr:`max_frame_size` (nothing is sent), and
        :class:`~omega.errors.ConnectionClosedError` /
        :class:`~omega.errors.ConnectionLostError` once the connection can no
        longer carry frames.
        """

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send several frames in order, as :meth:`send_frame` would one by one.

        Transports that can hand them to the network in one write override
        this (the secure channel sends each frame's records through it).
        Either every frame is refused up front for its size, or they are
        sent in order; a failure midway leaves the later ones unsent.
        """
        for frame in frames:
            if len(frame) > self.max_frame_size:
                raise FrameTooLargeError(len(frame), self.max_frame_size)
        for frame in frames:
            await self.send_frame(frame)

    @abstractmethod
    async def receive_frame(self) -> bytes:
        """Wait for the next frame from the peer and return it.

        Raises :class:`~omega.errors.ConnectionClosedError` once the peer has
        finished sending (its :meth:`send_eof` or :meth:`aclose`), and the
        errors listed on the class for anything else.
        """

    @abstractmethod
    async def send_eof(self) -> None:
        """Half-close: tell the peer we will send no more frames; we may still receive.

        The peer's :meth:`receive_frame` raises
        :class:`~omega.errors.ConnectionClosedError` once it has received every
        frame sent before. Idempotent.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection in both directions and release its resources. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate_frames()

    async def _iterate_frames(self) -> AsyncIterator[bytes]:
        """Yield frames until the peer's clean end of stream."""
        while True:
            try:
                frame = await self.receive_frame()
            except ConnectionClosedError:
                return
            yield frame


class Listener(ABC):
    """A bound listening endpoint, serving connections until closed."""

    @property
    @abstractmethod
    def addresses(self) -> tuple[Address, ...]:
        """Where peers can reach this listener (with real ports when 0 was asked for)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting, cancel every handler and close their connections. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class Transport(ABC):
    """A way to reach peers: dial addresses and listen on them.

    A transport may hold resources shared by its connections (a QUIC
    endpoint, an in-memory network); :meth:`aclose` releases them.
    """

    @abstractmethod
    async def dial(self, address: Address) -> FrameConnection:
        """Connect to ``address`` and return the open connection.

        Raises :class:`~omega.errors.DialError` when no connection can be
        made and :class:`~omega.errors.ConfigurationError` for an address of
        another transport. Cancel the calling scope (or wrap it in
        ``anyio.fail_after``) to bound how long it may take.
        """

    @abstractmethod
    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``address``; run ``handler`` for each inbound connection until closed.

        Meant for ``await task_group.start(transport.listen, address,
        handler)``, which returns the :class:`Listener` once bound. Each
        handler runs in its own task; the connection is closed when it
        returns. A handler that raises an :class:`~omega.errors.OmegaError`
        loses its connection with a log line on ``omega.transport`` while
        the listener keeps serving everyone else; any other exception is a
        bug and propagates. Inbound connections beyond the transport's
        ``max_connections`` are closed on arrival, with a log line.

        Raises :class:`~omega.errors.DialError` when the address cannot be
        bound.
        """

    async def aclose(self) -> None:  # noqa: B027 - most transports hold nothing
        """Release what the transport holds; its connections must be closed first."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def listening(
    transport: Transport, address: Address, handler: ConnectionHandler
) -> AsyncIterator[Listener]:
    """Listen on ``address`` for the duration of an ``async with`` block.

    >>> async def main(transport, address, handler):  # doctest: +SKIP
    ...     async with listening(transport, address, handler) as listener:
    ...         print(listener.addresses)
    """
    async with anyio.create_task_group() as task_group:
        listener: Listener = await task_group.start(transport.listen, address, handler)
        try:
            yield listener
        finally:
            await listener.aclose()
