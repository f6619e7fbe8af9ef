"""The QUIC transport (RFC 9000, TLS 1.3) on aioquic: one bidirectional stream per connection.

Addresses are ``/ip4/<ip>/udp/<port>/quic-v1`` (and ``/ip6``, ``/dns``).
Each :meth:`QuicTransport.dial` opens a new bidirectional stream, on the
QUIC connection the transport already holds to that address or a new one,
so many logical channels to one peer share one QUIC connection and its
congestion control, without head-of-line blocking between them. A listener
hands each stream a peer opens to its handler. The stream carries frames of
:mod:`omega.protocol.framing`; FIN is the half-close. A stream becomes
visible to the listener with the dialer's first frame, so the dialer speaks
first (the secure channel's handshake always does). ALPN is :data:`ALPN`.

Buffering is bounded both ways. aioquic grants a peer more stream credit
whenever it has used half of it, whether or not anyone read the data; this
transport replaces that rule with its own: a stream's credit is what its
reader has consumed plus ``receive_window``, so a reader that stops makes
its peer's sender stop (see :class:`_FlowControlledConnection`). A send
returns once at most ``write_limit`` bytes of the stream remain unsent.

TLS authenticates the server's certificate as configured
(:class:`QuicConfig`); Omega identities are bound by the secure channel on
top, as on every transport.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, cast

import anyio
from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.stream import QuicStream
from anyio.abc import TaskStatus

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    DialError,
    FrameError,
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
    _check_seconds,
)
from omega.transport.tcp import socket_address

__all__ = ["ALPN", "QuicConfig", "QuicStreamConnection", "QuicTransport"]

ALPN: Final = "omega/1"
"""The ALPN protocol both ends must agree on."""

_STREAM_ERROR_CANCELLED: Final = 0x0
_STREAM_ERROR_REFUSED: Final = 0x1
_STREAM_ERROR_MALFORMED: Final = 0x2

# The one translation of aioquic's and the socket layer's failures.
_IO_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    ValueError: ConnectionLostError,
    RuntimeError: ConnectionLostError,
    AssertionError: ConnectionLostError,
    OSError: ConnectionLostError,
}
_DIAL_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    ConnectionError: DialError,
    OSError: DialError,
    TimeoutError: DialError,
    ssl.SSLError: DialError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class QuicConfig(TransportConfig):
    """Settings of the QUIC transport."""

    certificate: Any = None
    """The listener's X.509 certificate (a ``cryptography`` object); required to listen."""
    private_key: Any = None
    """The certificate's private key (a ``cryptography`` object)."""
    trusted_certificates: bytes | None = None
    """PEM certificates a dialer trusts besides the system's (e.g. a self-signed one)."""
    verify_certificates: bool = True
    """Whether a dialer checks the server certificate (the secure channel still binds ids)."""
    server_name: str | None = None
    """TLS server name to check; the address's host when ``None``."""
    receive_window: int = 1 << 20
    """Bytes a stream's peer may send beyond what its reader consumed."""
    write_limit: int = 256 * 1024
    """Unsent bytes of a stream above which a send waits."""
    open_timeout: float = 10.0
    """Seconds the QUIC and TLS handshake may take."""
    idle_timeout: float = 60.0
    """Seconds without packets after which a QUIC connection is dead."""

    def __post_init__(self) -> None:
        TransportConfig.__post_init__(self)
        _check_int(self.receive_window, "receive_window", 65536, 1 << 30)
        _check_int(self.write_limit, "write_limit", 1024, 1 << 30)
        _check_seconds(self.open_timeout, "open_timeout")
        _check_seconds(self.idle_timeout, "idle_timeout")
        if (self.certificate is None) != (self.private_key is None):
            raise ConfigurationError("certificate and private_key go together")


class _FlowControlledConnection(QuicConnection):
    """aioquic's QuicConnection, granting stream credit only for data the reader consumed.

    aioquic doubles a stream's receive limit whenever the peer has used half
    of it. For streams registered here, the limit is instead
    ``consumed + receive_window``, raised as the reader consumes; aioquic's
    doubling is kept from running by hiding the stream's progress from it
    while it writes the MAX_STREAM_DATA frame.
    """

    _omega_credit: dict[int, int]

    @classmethod
    def adopt(cls, connection: QuicConnection) -> _FlowControlledConnection:
        """Give a connection aioquic created (a server's) this class's behaviour."""
        connection.__class__ = cls
        adopted = cast(_FlowControlledConnection, connection)
        adopted._omega_credit = {}
        return adopted

    def grant(self, stream_id: int, limit: int) -> None:
        """Let the peer send up to offset ``limit`` on ``stream_id`` (never lowered)."""
        self._omega_credit[stream_id] = max(limit, self._omega_credit.get(stream_id, 0))

    def forget(self, stream_id: int) -> None:
        """Stop managing the credit of a finished stream."""
        self._omega_credit.pop(stream_id, None)

    def send_backlog(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` not yet sent once (0 for an unknown stream)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender.next_offset

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: Any, stream: QuicStream
    ) -> None:
        limit = self._omega_credit.get(stream.stream_id) if stream.stream_id is not None else None
        if limit is None or not stream.max_stream_data_local:
            super()._write_stream_limits(builder, space, stream)
            return
        stream.max_stream_data_local = max(stream.max_stream_data_local, limit)
        receiver = stream.receiver
        highest = receiver.highest_offset
        receiver.highest_offset = 0  # hide progress from aioquic's own doubling rule
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            receiver.highest_offset = highest


class QuicStreamConnection(FrameConnection):
    """Frames over one bidirectional QUIC stream."""

    def __init__(self, protocol: _OmegaQuicProtocol, stream_id: int, config: QuicConfig) -> None:
        self._protocol = protocol
        self._quic = protocol.flow_controlled
        self.stream_id = stream_id
        self._config = config
        self._decoder = FrameDecoder(config.max_frame_size)
        self._frames: deque[bytes] = deque()
        self._unread = 0
        self._received = 0
        self._readable = anyio.Event()
        self._eof_received = False
        self._eof_sent = False
        self._closed = False
        self._failure: OmegaError | None = None
        self._send_failure: OmegaError | None = None
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._quic.grant(stream_id, config.receive_window)

    @property
    def max_frame_size(self) -> int:
        """Largest frame, in bytes, sent or accepted."""
        return self._config.max_frame_size

    @property
    def local_address(self) -> Address | None:
        """Our UDP endpoint."""
        return self._protocol.local_address

    @property
    def remote_address(self) -> Address | None:
        """The peer's UDP endpoint."""
        return self._protocol.remote_address

    # --- called by the protocol ----------------------------------------------------------

    def data_received(self, data: bytes, end_stream: bool) -> None:
        """Take stream bytes from aioquic (no await: called from its event loop callback)."""
        if self._failure is None and not self._closed:
            self._received += len(data)
            try:
                for frame in self._decoder.feed(data):
                    self._frames.append(frame)
                    self._unread += len(frame)
            except FrameError as exc:
                self._failure = exc
                self._quic.stop_stream(self.stream_id, _STREAM_ERROR_MALFORMED)
            if end_stream:
                self._eof_received = True
            self._grant_credit()
        self._wake()

    def _grant_credit(self) -> None:
        # Bytes of a partial frame count as consumed (the decoder bounds them by
        # max_frame_size); only whole frames waiting for the reader hold credit back.
        consumed = self._received - self._unread
        self._quic.grant(self.stream_id, consumed + self._config.receive_window)

    def failed(self, error: OmegaError) -> None:
        """The stream or the whole connection broke."""
        if self._failure is None:
            self._failure = error
        if self._send_failure is None:
            self._send_failure = error
        self._wake()

    def stop_sending_received(self) -> None:
        """The peer will read nothing more from us."""
        if self._send_failure is None:
            self._send_failure = ConnectionLostError("the peer stopped reading this stream")
        self._wake()

    def _wake(self) -> None:
        self._readable.set()
        self._readable = anyio.Event()

    # --- FrameConnection -----------------------------------------------------------------

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame; wait while more than ``write_limit`` bytes are unsent."""
        data = encode_frame(frame, max_frame_size=self._config.max_frame_size)
        async with self._send_lock:
            self._check_can_send()
            with map_exceptions(_IO_ERRORS, "QUIC send failed"):
                self._quic.send_stream_data(self.stream_id, data)
            self._protocol.transmit()
            if self._quic.send_backlog(self.stream_id) <= self._config.write_limit:
                await anyio.lowlevel.checkpoint()
            while self._quic.send_backlog(self.stream_id) > self._config.write_limit:
                await self._protocol.progress.wait()
                self._check_can_send()

    def _check_can_send(self) -> None:
        if self._closed or self._eof_sent:
            raise ConnectionClosedError("cannot send: this side of the stream is closed")
        if self._send_failure is not None:
            raise ConnectionLostError(f"cannot send: {self._send_failure}")

    async def receive_frame(self) -> bytes:
        """Return the next frame; ConnectionClosedError after the peer's FIN."""
        async with self._receive_lock:
            while not self._frames:
                if self._closed:
                    raise ConnectionClosedError("the stream is closed")
                if self._failure is not None:
                    raise self._failure
                if self._eof_received:
                    if self._decoder.buffered:
                        raise ConnectionLostError("the peer ended the stream in a frame")
                    raise ConnectionClosedError("the peer has finished sending")
                await self._readable.wait()
            frame = self._frames.popleft()
            self._unread -= len(frame)
            self._grant_credit()
            self._protocol.transmit()
            return frame

    async def send_eof(self) -> None:
        """Send FIN after the frames already sent."""
        async with self._send_lock:
            if self._eof_sent or self._closed or self._send_failure is not None:
                return
            self._eof_sent = True
            with map_exceptions(_IO_ERRORS, "QUIC half-close failed"):
                self._quic.send_stream_data(self.stream_id, b"", end_stream=True)
            self._protocol.transmit()

    async def aclose(self) -> None:
        """Send FIN if not sent, ask the peer to stop sending, forget the stream."""
        if self._closed:
            return
        self._closed = True
        try:
            with map_exceptions(_IO_ERRORS, "QUIC stream close failed"):
                if not self._eof_sent and self._send_failure is None:
                    self._eof_sent = True
                    self._quic.send_stream_data(self.stream_id, b"", end_stream=True)
                if not self._eof_received and self._failure is None:
                    self._quic.stop_stream(self.stream_id, _STREAM_ERROR_CANCELLED)
        except ConnectionLostError:
            pass  # the stream is already reset or finished: nothing left to say
        self._protocol.stream_closed(self)
        self._protocol.transmit()
        await anyio.lowlevel.checkpoint()


class _OmegaQuicProtocol(QuicConnectionProtocol):
    """aioquic's asyncio protocol, routing stream events to QuicStreamConnections."""

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: QuicStreamHandler | None = None,
        *,
        config: QuicConfig,
        on_stream: Any = None,
        transport_name: str = "quic",
    ) -> None:
        super().__init__(_FlowControlledConnection.adopt(quic), stream_handler)
        self.flow_controlled = cast(_FlowControlledConnection, self._quic)
        self._config = config
        self._on_stream = on_stream
        self._streams: dict[int, QuicStreamConnection] = {}
        self._finished: set[int] = set()  # streams closed here; their late data is dropped
        self.progress = anyio.Event()
        self.terminated: OmegaError | None = None
        self.local_address: Address | None = None
        self.remote_address: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Record the UDP endpoints as addresses."""
        super().connection_made(transport)
        self.local_address = socket_address(transport.get_extra_info("sockname"), "quic")

    def open_stream(self) -> QuicStreamConnection:
        """A new locally initiated bidirectional stream."""
        if self.terminated is not None:
            raise ConnectionLostError(f"the QUIC connection is gone: {self.terminated}")
        stream_id = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(stream_id, b"")  # allocates the id now
        stream = QuicStreamConnection(self, stream_id, self._config)
        self._streams[stream_id] = stream
        return stream

    def stream_closed(self, stream: QuicStreamConnection) -> None:
        """Forget a stream its owner closed."""
        self._streams.pop(stream.stream_id, None)
        self._finished.add(stream.stream_id)
        self.flow_controlled.forget(stream.stream_id)

    def transmit(self) -> None:
        """Send what aioquic has to send, then wake senders waiting for progress."""
        super().transmit()
        self.progress.set()
        self.progress = anyio.Event()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        """Route aioquic's events to the streams."""
        if isinstance(event, events.StreamDataReceived):
            stream = self._streams.get(event.stream_id)
            if stream is None:
                stream = self._accept_stream(event.stream_id)
                if stream is None:
                    return
            if self.remote_address is None:
                self.remote_address = socket_address(self._quic.get_peer_address(), "quic")
            stream.data_received(event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.failed(ConnectionLostError("the peer reset the stream"))
        elif isinstance(event, events.StopSendingReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.stop_sending_received()
        elif isinstance(event, events.ConnectionTerminated):
            self.terminated = ConnectionLostError(
                f"QUIC connection closed: {event.reason_phrase or event.error_code}",
                details={"error_code": event.error_code},
            )
            for stream in list(self._streams.values()):
                stream.failed(self.terminated)
            self.progress.set()

    def _accept_stream(self, stream_id: int) -> QuicStreamConnection | None:
        if stream_id in self._finished:
            return None  # late data for a stream we already closed: aioquic stopped it
        client_initiated_bidi = stream_id % 4 == 0
        if (
            self._on_stream is None
            or not client_initiated_bidi
            or self._quic.configuration.is_client
        ):
            self._quic.stop_stream(stream_id, _STREAM_ERROR_REFUSED)
            return None
        stream = QuicStreamConnection(self, stream_id, self._config)
        self._streams[stream_id] = stream
        if not self._on_stream(stream):
            self.stream_closed(stream)
            self._quic.stop_stream(stream_id, _STREAM_ERROR_REFUSED)
            self._quic.reset_stream(stream_id, _STREAM_ERROR_REFUSED)
            return None
        return stream


class QuicTransport(Transport):
    """Dial and listen on ``/udp/<port>/quic-v1`` addresses.

    The transport keeps one QUIC connection per dialed address and opens a
    stream on it per :meth:`dial`; :meth:`aclose` closes those connections.
    """

    def __init__(self, config: QuicConfig | None = None) -> None:
        self._config = config if config is not None else QuicConfig()
        self._connections: dict[tuple[str, str, int], _OmegaQuicProtocol] = {}
        self._endpoints: list[asyncio.BaseTransport] = []
        self._dial_lock = anyio.Lock(fast_acquire=True)

    @property
    def config(self) -> QuicConfig:
        """This transport's settings."""
        return self._config

    def _check(self, address: Address) -> None:
        if address.transport != "quic":
            raise ConfigurationError(f"the QUIC transport cannot use {address}")

    def _quic_configuration(self, *, is_client: bool) -> QuicConfiguration:
        config = self._config
        configuration = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            idle_timeout=config.idle_timeout,
            max_stream_data=config.receive_window,
            max_data=4 * config.receive_window,
        )
        if is_client:
            configuration.server_name = config.server_name
            configuration.verify_mode = (
                ssl.CERT_REQUIRED if config.verify_certificates else ssl.CERT_NONE
            )
            if config.trusted_certificates is not None:
                configuration.cadata = config.trusted_certificates
        else:
            configuration.certificate = config.certificate
            configuration.private_key = config.private_key
        return configuration

    async def dial(self, address: Address) -> FrameConnection:
        """Open a stream to ``address`` (a new QUIC connection only when none is alive)."""
        self._check(address)
        protocol = await self._connection_to(address)
        with map_exceptions(_IO_ERRORS, f"cannot open a QUIC stream to {address}"):
            return protocol.open_stream()

    async def _connection_to(self, address: Address) -> _OmegaQuicProtocol:
        key = (address.host_kind.value, address.host, address.port or 0)
        async with self._dial_lock:
            protocol = self._connections.get(key)
            if protocol is None or protocol.terminated is not None:
                protocol = await self._connect(address)
                self._connections[key] = protocol
            return protocol

    async def _connect(self, address: Address) -> _OmegaQuicProtocol:
        port = address.port or 0
        family = {HostKind.IP4: socket.AF_INET, HostKind.DNS4: socket.AF_INET}.get(
            address.host_kind,
            socket.AF_INET6 if address.host_kind in (HostKind.IP6, HostKind.DNS6) else 0,
        )
        configuration = self._quic_configuration(is_client=True)
        if configuration.server_name is None:
            configuration.server_name = address.host
        loop = asyncio.get_running_loop()
        with map_exceptions(_DIAL_ERRORS, f"cannot reach {address}"):
            resolved = await anyio.getaddrinfo(
                address.host, port, family=family, type=socket.SOCK_DGRAM
            )
            remote = resolved[0][4]
            local = ("::", 0) if resolved[0][0] == socket.AF_INET6 else ("0.0.0.0", 0)  # noqa: S104
            endpoint, protocol = await loop.create_datagram_endpoint(
                lambda: _OmegaQuicProtocol(
                    QuicConnection(configuration=configuration), config=self._config
                ),
                local_addr=local,
            )
        self._endpoints.append(endpoint)
        try:
            with (
                map_exceptions(_DIAL_ERRORS, f"QUIC handshake with {address} failed"),
                anyio.fail_after(self._config.open_timeout),
            ):
                protocol.connect((str(remote[0]), int(remote[1])))
                await protocol.wait_connected()
        except BaseException:
            protocol.close()
            endpoint.close()
            raise
        protocol.remote_address = socket_address(remote, "quic")
        return protocol

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the streams peers open on ``address`` (see :meth:`Transport.listen`)."""
        self._check(address)
        if self._config.certificate is None:
            raise ConfigurationError("listening on QUIC needs QuicConfig.certificate")
        configuration = self._quic_configuration(is_client=False)
        supervisor: ConnectionSupervisor | None = None

        def on_stream(stream: QuicStreamConnection) -> bool:
            return supervisor is not None and supervisor.admit(stream)

        def create_protocol(
            quic: QuicConnection, stream_handler: QuicStreamHandler | None = None
        ) -> _OmegaQuicProtocol:
            return _OmegaQuicProtocol(
                quic, stream_handler, config=self._config, on_stream=on_stream
            )

        loop = asyncio.get_running_loop()
        with map_exceptions(_DIAL_ERRORS, f"cannot listen on {address}"):
            endpoint, server = await loop.create_datagram_endpoint(
                lambda: QuicServer(configuration=configuration, create_protocol=create_protocol),
                local_addr=(address.host, address.port or 0),
            )
        bound = socket_address(endpoint.get_extra_info("sockname"), "quic")
        with anyio.CancelScope() as scope:
            listener = ServingListener((bound,) if bound is not None else (), scope)
            try:
                async with anyio.create_task_group() as task_group:
                    supervisor = ConnectionSupervisor(
                        handler,
                        task_group,
                        max_connections=self._config.max_connections,
                        transport="quic",
                    )
                    task_status.started(listener)
                    await anyio.sleep_forever()
            finally:
                server.close()
                listener.finished()

    async def aclose(self) -> None:
        """Close every QUIC connection this transport dialed."""
        protocols = list(self._connections.values())
        self._connections.clear()
        for protocol in protocols:
            protocol.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            for protocol in protocols:
                await protocol.wait_closed()
        for endpoint in self._endpoints:
            endpoint.close()
        self._endpoints.clear()
        if protocols:
            logger.debug("closed %d QUIC connections", len(protocols))
