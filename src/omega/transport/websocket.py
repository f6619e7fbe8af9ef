"""The WebSocket transport (``ws://`` and ``wss://``) on the ``websockets`` library.

Addresses are ``/ip4/<ip>/tcp/<port>/ws`` (URI ``ws://<ip>:<port>/``) and
``.../wss`` (TLS, URI ``wss://...``); ``/dns/<name>/tcp/443/wss`` is the
shape that crosses proxies and CDNs. The binding:

* the client asks for the subprotocol :data:`SUBPROTOCOL`; a server that
  does not speak it is refused;
* every Omega frame is one binary WebSocket message; compression is off
  (frames are usually ciphertext, and compressing secrets leaks them);
* an empty *text* message is the end of the sender's stream (WebSocket
  itself has no half-close); any other text message is a protocol error;
* buffering is bounded: at most ``max_buffered_frames`` received messages
  wait for the reader before ``websockets`` stops reading the socket, and a
  send waits while more than ``write_limit`` bytes are unsent.

TLS certificate checks follow the ``ssl.SSLContext`` passed in
(:class:`WebSocketConfig`); peer identity is the secure channel's job on top.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Final

import anyio
import websockets.exceptions
from anyio.abc import TaskStatus
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    DialError,
    FrameTooLargeError,
    MalformedFrameError,
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
    _check_seconds,
)
from omega.transport.tcp import socket_address

__all__ = ["SUBPROTOCOL", "WebSocketConfig", "WebSocketConnection", "WebSocketTransport"]

SUBPROTOCOL: Final = Subprotocol("omega.frames.v1")
"""The WebSocket subprotocol both ends must agree on."""

_END_OF_STREAM: Final = ""

# The one translation of the websockets library's and the socket layer's failures.
_IO_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    websockets.exceptions.ConnectionClosedOK: ConnectionClosedError,
    websockets.exceptions.ConnectionClosed: ConnectionLostError,
    websockets.exceptions.WebSocketException: ConnectionLostError,
    OSError: ConnectionLostError,
}
_DIAL_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {
    websockets.exceptions.WebSocketException: DialError,
    OSError: DialError,
    TimeoutError: DialError,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketConfig(TransportConfig):
    """Settings of the WebSocket transport."""

    tls: bool = False
    """True for ``wss`` (this transport then serves only ``/wss`` addresses)."""
    server_ssl: ssl.SSLContext | None = None
    """Certificate and key a ``wss`` listener presents; required to listen on ``wss``."""
    client_ssl: ssl.SSLContext | None = None
    """How a ``wss`` dialer checks servers; the system's default trust when ``None``."""
    max_buffered_frames: int = 16
    """Received messages held for the reader before the socket is no longer read."""
    write_limit: int = 64 * 1024
    """Unsent bytes above which a send waits (backpressure)."""
    open_timeout: float = 10.0
    """Seconds the TCP, TLS and WebSocket opening handshakes may take together."""
    close_timeout: float = 1.0
    """Seconds a close waits for the peer's closing handshake."""

    def __post_init__(self) -> None:
        TransportConfig.__post_init__(self)
        _check_int(self.max_buffered_frames, "max_buffered_frames", 1, 1 << 16)
        _check_int(self.write_limit, "write_limit", 1, 1 << 30)
        _check_seconds(self.open_timeout, "open_timeout")
        _check_seconds(self.close_timeout, "close_timeout")
        if self.server_ssl is not None and not isinstance(self.server_ssl, ssl.SSLContext):
            raise ConfigurationError("server_ssl must be an ssl.SSLContext")
        if self.client_ssl is not None and not isinstance(self.client_ssl, ssl.SSLContext):
            raise ConfigurationError("client_ssl must be an ssl.SSLContext")


class WebSocketConnection(FrameConnection):
    """Frames as binary WebSocket messages."""

    def __init__(
        self,
        websocket: Connection,
        *,
        max_frame_size: int,
        local_address: Address | None,
        remote_address: Address | None,
    ) -> None:
        self._websocket = websocket
        self._max_frame_size = max_frame_size
        self._local_address = local_address
        self._remote_address = remote_address
        self._send_lock = anyio.Lock(fast_acquire=True)
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
        """Send one frame as one binary message."""
        if len(frame) > self._max_frame_size:
            raise FrameTooLargeError(len(frame), self._max_frame_size)
        async with self._send_lock:
            if self._closed or self._eof_sent:
                raise ConnectionClosedError("cannot send: this side of the connection is closed")
            with map_exceptions(_IO_ERRORS, "WebSocket send failed"):
                await self._websocket.send(bytes(frame))

    async def receive_frame(self) -> bytes:
        """Return the next binary message; ConnectionClosedError after the peer's end."""
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        if self._eof_received:
            raise ConnectionClosedError("the peer has finished sending")
        with map_exceptions(_IO_ERRORS, "WebSocket stream ended"):
            message = await self._websocket.recv()
        if isinstance(message, bytes):
            return message
        if message == _END_OF_STREAM:
            self._eof_received = True
            raise ConnectionClosedError("the peer has finished sending")
        raise MalformedFrameError("the peer sent a WebSocket text message other than the end")

    async def send_eof(self) -> None:
        """Send the end-of-stream text message."""
        async with self._send_lock:
            if self._eof_sent or self._closed:
                return
            self._eof_sent = True
            with map_exceptions(_IO_ERRORS, "WebSocket half-close failed"):
                await self._websocket.send(_END_OF_STREAM)

    async def aclose(self) -> None:
        """Run the WebSocket closing handshake (bounded by ``close_timeout``)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True), map_exceptions(_IO_ERRORS, "close failed"):
            await self._websocket.close()


def _uri(address: Address) -> str:
    scheme = "wss" if address.transport == "wss" else "ws"
    host = f"[{address.host}]" if address.host_kind is HostKind.IP6 else address.host
    return f"{scheme}://{host}:{address.port}/"


class WebSocketTransport(Transport):
    """Dial and listen on ``/ws`` (or, with ``tls``, ``/wss``) addresses."""

    def __init__(self, config: WebSocketConfig | None = None, *, tls: bool | None = None) -> None:
        if config is None:
            config = WebSocketConfig(tls=bool(tls))
        elif tls is not None and tls != config.tls:
            raise ConfigurationError("pass tls either in the config or as an argument, alike")
        self._config = config

    @property
    def config(self) -> WebSocketConfig:
        """This transport's settings."""
        return self._config

    @property
    def _name(self) -> str:
        return "wss" if self._config.tls else "ws"

    def _check(self, address: Address) -> None:
        if address.transport != self._name:
            raise ConfigurationError(f"the {self._name} transport cannot use {address}")

    def _wrap(self, websocket: Connection) -> WebSocketConnection:
        return WebSocketConnection(
            websocket,
            max_frame_size=self._config.max_frame_size,
            local_address=_address(websocket.local_address, self._name),
            remote_address=_address(websocket.remote_address, self._name),
        )

    async def dial(self, address: Address) -> FrameConnection:
        """Open a WebSocket to ``address``; DialError when it cannot be opened."""
        self._check(address)
        family = {HostKind.DNS4: socket.AF_INET, HostKind.DNS6: socket.AF_INET6}.get(
            address.host_kind, socket.AF_UNSPEC
        )
        client_ssl = None
        if self._config.tls:
            client_ssl = self._config.client_ssl or ssl.create_default_context()
        config = self._config
        with map_exceptions(_DIAL_ERRORS, f"cannot open a WebSocket to {address}"):
            websocket: ClientConnection = await connect(
                _uri(address),
                subprotocols=[SUBPROTOCOL],
                compression=None,
                max_size=config.max_frame_size,
                max_queue=config.max_buffered_frames,
                write_limit=config.write_limit,
                ping_interval=None,
                open_timeout=config.open_timeout,
                close_timeout=config.close_timeout,
                ssl=client_ssl,
                family=family,
            )
        if websocket.subprotocol != SUBPROTOCOL:
            await websocket.close()
            raise DialError(f"{address} does not speak {SUBPROTOCOL}")
        return self._wrap(websocket)

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve WebSocket connections on ``address`` (see :meth:`Transport.listen`)."""
        self._check(address)
        config = self._config
        if config.tls and config.server_ssl is None:
            raise ConfigurationError("listening on wss needs WebSocketConfig.server_ssl")
        supervisor: ConnectionSupervisor | None = None

        async def on_connection(websocket: ServerConnection) -> None:
            done = anyio.Event()
            connection = self._wrap(websocket)
            if supervisor is None or not supervisor.admit(connection, on_done=done.set):
                await websocket.close(code=1013, reason="try again later")
                return
            await done.wait()

        with map_exceptions(_DIAL_ERRORS, f"cannot listen on {address}"):
            server = await serve(
                on_connection,
                address.host,
                address.port,
                subprotocols=[SUBPROTOCOL],
                server_header=None,
                compression=None,
                max_size=config.max_frame_size,
                max_queue=config.max_buffered_frames,
                write_limit=config.write_limit,
                ping_interval=None,
                open_timeout=config.open_timeout,
                close_timeout=config.close_timeout,
                ssl=config.server_ssl if config.tls else None,
                start_serving=False,
            )
        addresses = tuple(
            bound
            for sock in server.sockets
            if (bound := socket_address(sock.getsockname(), self._name)) is not None
        )
        with anyio.CancelScope() as scope:
            listener = ServingListener(addresses, scope)
            try:
                async with anyio.create_task_group() as task_group:
                    supervisor = ConnectionSupervisor(
                        handler,
                        task_group,
                        max_connections=config.max_connections,
                        transport=self._name,
                    )
                    await server.start_serving()
                    task_status.started(listener)
                    await anyio.sleep_forever()
            finally:
                server.close()
                with anyio.CancelScope(shield=True):
                    await server.wait_closed()
                listener.finished()


def _address(raw: object, transport: str) -> Address | None:
    try:
        return socket_address(raw, transport)
    except OmegaError:  # pragma: no cover - a socket address we cannot name
        return None
