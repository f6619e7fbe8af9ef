"""The in-memory transport: real connections without sockets, for tests and the simulator.

Peers on one :class:`MemoryNetwork` reach each other by name
(``/memory/<name>``). A connection is two anyio memory object streams of
frames, one per direction, each holding at most ``max_buffered_frames``
frames: a sender waits once that many are unread (backpressure), exactly as
a TCP sender waits on a full socket buffer. It is also the reference
example of how to write a transport (docs/transports.md).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    DialError,
    FrameTooLargeError,
    OmegaError,
    map_exceptions,
)
from omega.transport._serve import ConnectionSupervisor, ServingListener
from omega.transport.address import Address, HostKind
from omega.transport.base import (
    ConnectionHandler,
    FrameConnection,
    Listener,
    Transport,
    TransportConfig,
    _check_int,
)

__all__ = ["MemoryConfig", "MemoryConnection", "MemoryNetwork", "MemoryTransport"]

# The one translation of anyio's stream exceptions for this transport.
_SEND_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    anyio.ClosedResourceError: ConnectionClosedError,
    anyio.BrokenResourceError: ConnectionLostError,
}
_RECEIVE_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    anyio.ClosedResourceError: ConnectionClosedError,
    anyio.EndOfStream: ConnectionClosedError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryConfig(TransportConfig):
    """Settings of the in-memory transport."""

    max_buffered_frames: int = 16
    """Frames one direction holds unread before the sender waits (0 = rendezvous)."""
    max_pending_dials: int = 64
    """Dials a listener holds before it accepts them; more fail with DialError."""

    def __post_init__(self) -> None:
        TransportConfig.__post_init__(self)
        _check_int(self.max_buffered_frames, "max_buffered_frames", 0, 1 << 20)
        _check_int(self.max_pending_dials, "max_pending_dials", 1, 1 << 20)


class MemoryConnection(FrameConnection):
    """One end of an in-memory connection."""

    def __init__(
        self,
        send_stream: MemoryObjectSendStream[bytes],
        receive_stream: MemoryObjectReceiveStream[bytes],
        *,
        max_frame_size: int,
        local_address: Address,
        remote_address: Address,
    ) -> None:
        self._send_stream = send_stream
        self._receive_stream = receive_stream
        self._max_frame_size = max_frame_size
        self._local_address = local_address
        self._remote_address = remote_address
        self._failure: FrameTooLargeError | None = None

    @property
    def max_frame_size(self) -> int:
        """Largest frame, in bytes, sent or accepted."""
        return self._max_frame_size

    @property
    def local_address(self) -> Address:
        """Our ``/memory/...`` name."""
        return self._local_address

    @property
    def remote_address(self) -> Address:
        """The peer's ``/memory/...`` name."""
        return self._remote_address

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame, waiting while ``max_buffered_frames`` are unread."""
        if len(frame) > self._max_frame_size:
            raise FrameTooLargeError(len(frame), self._max_frame_size)
        with map_exceptions(_SEND_ERRORS, "in-memory send failed"):
            await self._send_stream.send(bytes(frame))

    async def receive_frame(self) -> bytes:
        """Return the next frame; the peer's limit may exceed ours, so check it again."""
        if self._failure is not None:
            raise FrameTooLargeError(self._failure.size, self._failure.limit)
        with map_exceptions(_RECEIVE_ERRORS, "in-memory stream ended"):
            frame = await self._receive_stream.receive()
        if len(frame) > self._max_frame_size:
            self._failure = FrameTooLargeError(len(frame), self._max_frame_size)
            self._receive_stream.close()
            raise self._failure
        return frame

    async def send_eof(self) -> None:
        """Close our sending direction; the peer reads what is buffered, then end of stream."""
        self._send_stream.close()
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close both directions; the peer's sends then fail with ConnectionLostError."""
        self.close_now()
        await anyio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """Close both directions without waiting (usable where awaiting is not)."""
        self._send_stream.close()
        self._receive_stream.close()


class _MemoryListenerSlot:
    """What a dialer finds under a name: where to hand the listener's end of a new connection."""

    def __init__(
        self,
        address: Address,
        inbox: MemoryObjectSendStream[MemoryConnection],
        max_frame_size: int,
    ) -> None:
        self.address = address
        self.inbox = inbox
        self.max_frame_size = max_frame_size


class MemoryNetwork:
    """A namespace of in-memory listeners: peers on one network reach each other by name.

    Tests and the simulator create one network per scenario, so that names
    never collide between them.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, _MemoryListenerSlot] = {}
        self._ids = itertools.count(1)

    def _bind(self, address: Address, slot: _MemoryListenerSlot) -> None:
        if address.host in self._listeners:
            raise DialError(f"{address} is already in use", details={"address": str(address)})
        self._listeners[address.host] = slot

    def _unbind(self, address: Address) -> None:
        self._listeners.pop(address.host, None)

    def _lookup(self, address: Address) -> _MemoryListenerSlot:
        slot = self._listeners.get(address.host)
        if slot is None:
            raise DialError(f"nothing listens on {address}", details={"address": str(address)})
        return slot

    def _anonymous_address(self) -> Address:
        return Address(HostKind.MEMORY, f"anonymous-{next(self._ids)}", "memory")


class MemoryTransport(Transport):
    """Dial and listen on ``/memory/<name>`` addresses of one :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, config: MemoryConfig | None = None) -> None:
        self._network = network
        self._config = config if config is not None else MemoryConfig()

    @property
    def config(self) -> MemoryConfig:
        """This transport's settings."""
        return self._config

    def _check(self, address: Address) -> None:
        if not address.is_memory:
            raise ConfigurationError(f"the memory transport cannot use {address}")

    async def dial(self, address: Address) -> FrameConnection:
        """Connect to the listener named by ``address``; DialError when there is none."""
        self._check(address)
        await anyio.lowlevel.checkpoint()
        slot = self._network._lookup(address)
        local = self._network._anonymous_address()
        buffered = self._config.max_buffered_frames
        outbound_send, outbound_receive = anyio.create_memory_object_stream[bytes](buffered)
        inbound_send, inbound_receive = anyio.create_memory_object_stream[bytes](buffered)
        ours = MemoryConnection(
            outbound_send,
            inbound_receive,
            max_frame_size=self._config.max_frame_size,
            local_address=local,
            remote_address=slot.address,
        )
        theirs = MemoryConnection(
            inbound_send,
            outbound_receive,
            max_frame_size=slot.max_frame_size,
            local_address=slot.address,
            remote_address=local,
        )
        try:
            slot.inbox.send_nowait(theirs)
        except anyio.WouldBlock:
            await ours.aclose()
            raise DialError(f"{address} has too many pending connections") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            await ours.aclose()
            raise DialError(f"{address} stopped listening") from None
        return ours

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``/memory/<name>`` until the listener is closed (see :meth:`Transport.listen`)."""
        self._check(address)
        address = address.with_peer(None)
        inbox_send, inbox_receive = anyio.create_memory_object_stream[MemoryConnection](
            self._config.max_pending_dials
        )
        try:
            slot = _MemoryListenerSlot(address, inbox_send, self._config.max_frame_size)
            self._network._bind(address, slot)
        except DialError:
            inbox_send.close()
            inbox_receive.close()
            raise
        with anyio.CancelScope() as scope:
            listener = ServingListener((address,), scope)
            try:
                async with anyio.create_task_group() as task_group:
                    supervisor = ConnectionSupervisor(
                        handler,
                        task_group,
                        max_connections=self._config.max_connections,
                        transport="memory",
                    )
                    task_status.started(listener)
                    async for connection in inbox_receive:
                        if not supervisor.admit(connection):
                            connection.close_now()
            finally:
                self._network._unbind(address)
                inbox_send.close()
                _close_pending(inbox_receive)
                listener.finished()


def _close_pending(inbox: MemoryObjectReceiveStream[MemoryConnection]) -> None:
    """Close the connections dialed but never accepted, so their dialers see the end."""
    while True:
        try:
            inbox.receive_nowait().close_now()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
    inbox.close()
