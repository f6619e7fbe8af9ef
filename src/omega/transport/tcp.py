"""The TCP transport: frames of :mod:`omega.protocol.framing` over anyio socket streams.

Addresses are ``/ip4/<ip>/tcp/<port>``, ``/ip6/<ip>/tcp/<port>`` and
``/dns[4|6]/<name>/tcp/<port>``. Buffering is bounded both ways: a send
returns only once the kernel took the bytes (anyio keeps no user-space write
buffer), so a peer that stops reading makes its sender wait; and a
connection reads from its socket only while its owner waits in
:meth:`~TcpConnection.receive_frame`, holding at most one partial frame plus
the frames of one ``receive_chunk_size`` read.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import anyio
from anyio import TypedAttributeProvider
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskStatus

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    DialError,
    OmegaError,
    map_exceptions,
)
from omega.protocol.framing import FrameDecoder, encode_frame
from omega.transport._serve import ConnectionSupervisor, ServingListener, logger
from omega.transport.address import Address, HostKind
from omega.transport.base import (
    ConnectionHandler,
    FrameConnection,
    Listener,
    Transport,
    TransportConfig,
    _check_int,
)

__all__ = [
    "StreamFrameConnection",
    "TcpConfig",
    "TcpTransport",
    "connect_tcp",
    "socket_address",
]

# The one translation of socket and anyio stream failures for this transport.
_IO_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    anyio.ClosedResourceError: ConnectionClosedError,
    anyio.BrokenResourceError: ConnectionLostError,
    OSError: ConnectionLostError,
}
_DIAL_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {OSError: DialError}


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpConfig(TransportConfig):
    """Settings of the TCP transport."""

    receive_chunk_size: int = 256 * 1024
    """Most bytes read from the socket at once (bounds what a connection buffers)."""
    backlog: int = 128
    """Connections the kernel queues before the listener accepts them."""

    def __post_init__(self) -> None:
        TransportConfig.__post_init__(self)
        _check_int(self.receive_chunk_size, "receive_chunk_size", 1024, 1 << 24)
        _check_int(self.backlog, "backlog", 1, 65535)


def _attribute(typed: TypedAttributeProvider, attribute: object) -> object:
    """A typed attribute of an anyio stream or listener, ``None`` when it has none."""
    return typed.extra(attribute, None)  # noqa: S610 - anyio's typed attributes, not Django


def socket_address(raw: object, transport: str = "tcp") -> Address | None:
    """Turn a socket address tuple into an :class:`Address` (None if it is not IP)."""
    if not isinstance(raw, tuple) or len(raw) < 2:
        return None
    host, port = str(raw[0]), int(raw[1])
    kind = HostKind.IP6 if ":" in host else HostKind.IP4
    return Address(kind, host.split("%", 1)[0], transport, port)


class StreamFrameConnection(FrameConnection):
    """Frames over any anyio byte stream (a TCP socket here; TLS streams work alike)."""

    def __init__(
        self,
        stream: ByteStream,
        *,
        max_frame_size: int,
        receive_chunk_size: int = 256 * 1024,
        local_address: Address | None = None,
        remote_address: Address | None = None,
    ) -> None:
        self._stream = stream
        self._max_frame_size = max_frame_size
        self._chunk_size = receive_chunk_size
        self._decoder = FrameDecoder(max_frame_size)
        self._pending: deque[bytes] = deque()
        self._local_address = local_address
        self._remote_address = remote_address
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._eof_sent = False
        self._eof_received = False
        self._closed = False

    @property
    def max_frame_size(self) -> int:
        """Largest frame, in bytes, sent or accepted."""
        return self._max_frame_size

    @property
    def local_address(self) -> Address | None:
        """Our end of the socket."""
        return self._local_address

    @property
    def remote_address(self) -> Address | None:
        """The peer's end of the socket."""
        return self._remote_address

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame; returns once the kernel holds it."""
        data = encode_frame(frame, max_frame_size=self._max_frame_size)
        async with self._send_lock:
            if self._closed or self._eof_sent:
                raise ConnectionClosedError("cannot send: this side of the connection is closed")
            with map_exceptions(_IO_ERRORS, "send failed"):
                await self._stream.send(data)

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send several frames with one write to the socket."""
        data = b"".join(
            [encode_frame(frame, max_frame_size=self._max_frame_size) for frame in frames]
        )
        async with self._send_lock:
            if self._closed or self._eof_sent:
                raise ConnectionClosedError("cannot send: this side of the connection is closed")
            with map_exceptions(_IO_ERRORS, "send failed"):
                await self._stream.send(data)

    async def receive_frame(self) -> bytes:
        """Return the next frame, reading from the socket only as much as needed."""
        async with self._receive_lock:
            while not self._pending:
                if self._closed:
                    raise ConnectionClosedError("the connection is closed")
                if self._eof_received:
                    raise ConnectionClosedError("the peer has finished sending")
                try:
                    with map_exceptions(_IO_ERRORS, "receive failed"):
                        chunk = await self._stream.receive(self._chunk_size)
                except anyio.EndOfStream:
                    self._eof_received = True
                    if self._decoder.buffered:
                        raise ConnectionLostError(
                            "the peer closed the stream in the middle of a frame",
                            details={"buffered": self._decoder.buffered},
                        ) from None
                    continue
                self._pending.extend(self._decoder.feed(chunk))
            return self._pending.popleft()

    async def send_eof(self) -> None:
        """Half-close: send a FIN after the frames already sent."""
        async with self._send_lock:
            if self._eof_sent or self._closed:
                return
            self._eof_sent = True
            with map_exceptions(_IO_ERRORS, "half-close failed"):
                await self._stream.send_eof()

    async def aclose(self) -> None:
        """Close the socket."""
        if self._closed:
            return
        self._closed = True
        with map_exceptions(_IO_ERRORS, "close failed"):
            await self._stream.aclose()


class TcpTransport(Transport):
    """Dial and listen on TCP addresses."""

    def __init__(self, config: TcpConfig | None = None) -> None:
        self._config = config if config is not None else TcpConfig()

    @property
    def config(self) -> TcpConfig:
        """This transport's settings."""
        return self._config

    def _check(self, address: Address) -> None:
        if address.transport != "tcp":
            raise ConfigurationError(f"the TCP transport cannot use {address}")

    def _wrap(self, stream: ByteStream) -> StreamFrameConnection:
        return StreamFrameConnection(
            stream,
            max_frame_size=self._config.max_frame_size,
            receive_chunk_size=self._config.receive_chunk_size,
            local_address=socket_address(_attribute(stream, SocketAttribute.local_address)),
            remote_address=socket_address(_attribute(stream, SocketAttribute.remote_address)),
        )

    async def dial(self, address: Address) -> FrameConnection:
        """Connect to ``address``; DialError when refused, unreachable or unresolvable."""
        self._check(address)
        return self._wrap(await connect_tcp(address))

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve TCP connections on ``address`` (see :meth:`Transport.listen`)."""
        self._check(address)
        with map_exceptions(_DIAL_ERRORS, f"cannot listen on {address}"):
            multi = await anyio.create_tcp_listener(
                local_host=address.host, local_port=address.port or 0, backlog=self._config.backlog
            )
        sockets = [raw for raw in multi.listeners if isinstance(raw, SocketListener)]
        addresses = tuple(
            bound
            for raw in sockets
            if (bound := socket_address(_attribute(raw, SocketAttribute.local_address))) is not None
        )
        with anyio.CancelScope() as scope:
            listener = ServingListener(addresses, scope)
            try:
                async with multi, anyio.create_task_group() as task_group:
                    supervisor = ConnectionSupervisor(
                        handler,
                        task_group,
                        max_connections=self._config.max_connections,
                        transport="tcp",
                    )
                    for raw in sockets:
                        task_group.start_soon(self._accept_loop, raw, supervisor)
                    task_status.started(listener)
            finally:
                listener.finished()

    async def _accept_loop(self, raw: SocketListener, supervisor: ConnectionSupervisor) -> None:
        while True:
            try:
                stream = await raw.accept()
            except OSError as exc:  # e.g. EMFILE: keep serving those already connected
                logger.warning("tcp listener failed to accept a connection: %s", exc)
                await anyio.sleep(0.1)
                continue
            connection = self._wrap(stream)
            if not supervisor.admit(connection):
                await stream.aclose()


async def connect_tcp(address: Address) -> ByteStream:
    """Open a TCP stream to the host and port of ``address`` (any transport over TCP).

    ``/dns`` names use anyio's happy eyeballs over every resolved address;
    ``/dns4`` and ``/dns6`` resolve in one family and try its addresses in
    order. Raises :class:`~omega.errors.DialError`.
    """
    port = address.port or 0
    with map_exceptions(_DIAL_ERRORS, f"cannot connect to {address}"):
        if address.host_kind in (HostKind.DNS4, HostKind.DNS6):
            family = socket.AF_INET if address.host_kind is HostKind.DNS4 else socket.AF_INET6
            resolved = await anyio.getaddrinfo(
                address.host, port, family=family, type=socket.SOCK_STREAM
            )
            last_error: OSError = OSError(f"{address.host} has no {family.name} address")
            for *_, sockaddr in resolved:
                try:
                    return await anyio.connect_tcp(str(sockaddr[0]), port)
                except OSError as exc:
                    last_error = exc
            raise last_error
        return await anyio.connect_tcp(address.host, port)
