"""The relay server: registers devices and forwards opaque frames between their streams.

:class:`RelayServer` serves the relay protocol (docs/transports.md, "The
relay protocol") on a WebSocket listener, which also answers ``GET /health``
and ``GET /metrics`` over plain HTTP, and optionally on a TCP listener of
length-prefixed frames. Each session starts with a challenge; a session that
does not register in time, or registers with a forged, expired or replayed
proof, gets a RelayError and is closed. Registered sessions open streams to
listening devices, here or (with Redis) on another relay process
(:mod:`omega.server.relay._bus`). The relay never decodes RelayData: it
rewrites the stream id and forwards the bytes. It logs only metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio
from anyio.abc import TaskGroup, TaskStatus
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    ConnectionClosedError,
    DecodeError,
    FrameTooLargeError,
    OmegaError,
    RemoteProtocolError,
)
from omega.protocol import (
    RelayAccept,
    RelayChallenge,
    RelayClose,
    RelayConnect,
    RelayData,
    RelayError,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayRegister,
    RelayRegistered,
    RelayWindow,
)
from omega.server.relay._config import RelayServerConfig
from omega.server.relay._limits import TokenBucket
from omega.server.relay._metrics import CONTENT_TYPE, RelayMetrics
from omega.server.relay._session import End, Outbox, Route, ServerSession, Sink
from omega.transport._relay_protocol import (
    NONCE_LENGTH,
    RELAY_VERSION,
    RelayBody,
    decode_relay_frame,
    encode_relay_frame,
    reason_name,
    verify_registration,
)
from omega.transport._serve import ConnectionSupervisor
from omega.transport.address import Address
from omega.transport.base import FrameConnection
from omega.transport.tcp import TcpConfig, TcpTransport, socket_address
from omega.transport.websocket import SUBPROTOCOL, WebSocketConnection

if TYPE_CHECKING:
    from omega.server.relay._bus import RedisBus

__all__ = ["RelayServer", "log", "logger"]

logger = logging.getLogger("omega.server.relay")
"""The relay's logger: one key=value line per event, metadata only."""

_R = RelayReason
_MAX_REGISTER_SIZE: Final = 4096


def log(level: int, event: str, **fields: object) -> None:
    if logger.isEnabledFor(level):
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        logger.log(level, "event=%s %s", event, text)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _DeviceLimits:
    """The token buckets one device key shares across its sessions."""

    def __init__(self, config: RelayServerConfig, now: float) -> None:
        self.bytes = TokenBucket(config.bytes_per_second, config.burst_bytes, now)
        self.frames = TokenBucket(config.frames_per_second, config.burst_frames, now)
        self.connects = TokenBucket(config.connects_per_second, config.burst_connects, now)
        self.sessions = 0

    def idle(self, now: float) -> bool:
        """True when every bucket is full: forgetting this device grants it nothing."""
        return all(bucket.is_full(now) for bucket in (self.bytes, self.frames, self.connects))


class RelayServer:
    """One relay process (see the module docstring).

    ``await task_group.start(server.serve)`` binds the listeners and returns
    once they accept; :attr:`addresses` then says where. Cancel the task (or
    call :meth:`shutdown`) to stop.
    """

    def __init__(
        self,
        config: RelayServerConfig | None = None,
        *,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
        rng: RandomSource = system_random,
    ) -> None:
        self.config = config if config is not None else RelayServerConfig()
        self.metrics = RelayMetrics()
        """The figures ``/metrics`` exports."""
        self.addresses: tuple[Address, ...] = ()
        """Where the relay listens: the WebSocket address, then the TCP one if any."""
        self._wall_clock_ms = wall_clock_ms
        self._rng = rng
        self._open = 0
        self._serial = 0
        self._listening: dict[bytes, ServerSession] = {}
        self._device_ids: dict[str, bytes] = {}
        self._users: dict[str, list[bytes]] = {}
        self._limits: dict[bytes, _DeviceLimits] = {}
        self._sweep_at = 1024
        self._stopping = False
        self._scope: anyio.CancelScope | None = None
        self.bus: RedisBus | None = None
        """The Redis bus to the other relays, when configured."""

    # ------------------------------------------------------------------ listeners

    async def serve(
        self, *, task_status: TaskStatus[RelayServer] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen until cancelled or :meth:`shutdown`; a task group's ``start`` target."""
        config = self.config
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as task_group:
                if config.redis_url is not None:
                    from omega.server.relay._bus import RedisBus

                    self.bus = RedisBus(self, config.redis_url, config.redis_prefix)
                    await task_group.start(self.bus.run)
                supervisor = ConnectionSupervisor(
                    self.handle_link,
                    task_group,
                    max_connections=config.max_sessions,
                    transport="relay",
                )
                addresses = [await self._serve_websocket(task_group, supervisor)]
                if config.tcp_port is not None:
                    tcp = TcpTransport(TcpConfig(max_frame_size=config.max_frame_size))
                    listen_at = Address.parse(f"/ip4/{config.host}/tcp/{config.tcp_port}")
                    listener = await task_group.start(tcp.listen, listen_at, self.handle_link)
                    addresses.append(listener.addresses[0])
                self.addresses = tuple(addresses)
                log(logging.INFO, "listening", addresses=",".join(map(str, addresses)))
                task_status.started(self)
                await anyio.sleep_forever()

    async def _serve_websocket(
        self, task_group: TaskGroup, supervisor: ConnectionSupervisor
    ) -> Address:
        config = self.config

        async def on_connection(websocket: ServerConnection) -> None:
            done = anyio.Event()
            connection = WebSocketConnection(
                websocket,
                max_frame_size=config.max_frame_size,
                local_address=None,
                remote_address=None,
            )
            if self._stopping or not supervisor.admit(connection, on_done=done.set):
                await websocket.close(code=1013, reason="try again later")
                return
            await done.wait()

        server = await serve(
            on_connection,
            config.host,
            config.port,
            subprotocols=[SUBPROTOCOL],
            server_header=None,
            compression=None,
            max_size=config.max_frame_size,
            max_queue=16,
            ping_interval=None,
            process_request=self._http,
            start_serving=False,
        )
        address = socket_address(server.sockets[0].getsockname(), "ws")
        assert address is not None

        async def run() -> None:
            try:
                await server.start_serving()
                await anyio.sleep_forever()
            finally:
                server.close()
                with anyio.CancelScope(shield=True):
                    await server.wait_closed()

        task_group.start_soon(run)
        return address

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            self.metrics.set("sessions_active", self._open)
            response = connection.respond(200, self.metrics.render())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = CONTENT_TYPE
            return response
        if path == "/health":
            status, code = self.health()
            response = connection.respond(code, json.dumps(status, sort_keys=True) + "\n")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return connection.respond(404, "not found: try /health, /metrics or a WebSocket\n")
        return None

    def health(self) -> tuple[dict[str, object], int]:
        """The ``/health`` document and its HTTP status (503 while stopping)."""
        bus = "off" if self.bus is None else ("up" if self.bus.up else "down")
        state = "stopping" if self._stopping else ("degraded" if bus == "down" else "ok")
        status: dict[str, object] = {
            "status": state,
            "relay_id": self.config.relay_id,
            "sessions": self._open,
            "listening_devices": len(self._listening),
            "bus": bus,
        }
        return status, 503 if self._stopping else 200

    async def shutdown(self) -> None:
        """Refuse new sessions, give open ones ``shutdown_grace`` seconds, then stop."""
        self._stopping = True
        log(logging.INFO, "stopping", sessions=self._open)
        with anyio.move_on_after(self.config.shutdown_grace):
            while self._open:
                await anyio.sleep(0.05)
        if self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------------ sessions

    async def handle_link(self, link: FrameConnection) -> None:
        """Serve one client connection: challenge, registration, then its frames."""
        self._open += 1
        self.metrics.inc("sessions_total")
        try:
            session = await self._register(link)
            if session is not None:
                await self._run_session(session)
        finally:
            self._open -= 1

    async def _send_error(self, link: FrameConnection, reason: RelayReason, message: str) -> None:
        self.metrics.inc("refusals_total", label=reason_name(reason))
        error = encode_relay_frame(RelayError(reason=reason, message=message))
        with anyio.move_on_after(1, shield=True), contextlib.suppress(OmegaError):
            await link.send_frame(error)

    async def _register(self, link: FrameConnection) -> ServerSession | None:
        config = self.config
        if self._stopping:
            await self._send_error(link, _R.SHUTTING_DOWN, "the relay is stopping")
            return None
        nonce = random_bytes(self._rng, NONCE_LENGTH)
        challenge = RelayChallenge(
            version=RELAY_VERSION,
            relay_id=config.relay_id,
            nonce=nonce,
            issued_at=self._wall_clock_ms(),
            max_frame_size=config.max_frame_size,
        )
        await link.send_frame(encode_relay_frame(challenge))
        try:
            with anyio.fail_after(config.registration_timeout):
                raw = await link.receive_frame()
            _, body = decode_relay_frame(raw, max_size=_MAX_REGISTER_SIZE)
            if not isinstance(body, RelayRegister):
                raise RemoteProtocolError("the first frame of a session must be RelayRegister")
            registration = verify_registration(
                body,
                relay_id=config.relay_id,
                nonce=nonce,
                now_ms=self._wall_clock_ms(),
                max_clock_skew_ms=int(config.max_clock_skew * 1000),
            )
        except TimeoutError:
            await self._send_error(link, _R.BAD_REGISTRATION, "registration timed out")
            return None
        except ConnectionClosedError:
            return None
        except (DecodeError, RemoteProtocolError) as exc:
            reason = _R.MALFORMED if isinstance(exc, DecodeError) else _R.BAD_REGISTRATION
            log(logging.INFO, "registration_refused", reason=reason_name(reason), error=exc.code)
            await self._send_error(link, reason, f"registration refused: {exc.message}")
            return None
        limits = self._limits.get(registration.device_key)
        if limits is None:
            limits = self._limits[registration.device_key] = _DeviceLimits(
                config, anyio.current_time()
            )
        if limits.sessions >= config.max_sessions_per_device:
            await self._send_error(link, _R.LIMIT_REACHED, "too many sessions")
            return None
        limits.sessions += 1
        self._serial += 1
        return ServerSession(
            number=self._serial,
            link=link,
            registration=registration,
            outbox=Outbox(config.max_buffered_bytes),
            cancel_scope=anyio.CancelScope(),
        )

    def sweep_limits(self, now: float) -> None:
        """Forget the buckets of devices without sessions whose buckets have refilled.

        Run whenever the table doubles since the last sweep, so memory stays
        proportional to the devices connected or recently active.
        """
        for key in [key for key, limits in self._limits.items() if not limits.sessions]:
            if self._limits[key].idle(now):
                del self._limits[key]
        self._sweep_at = max(1024, 2 * len(self._limits))

    def _attach_listener(self, session: ServerSession) -> None:
        registration = session.registration
        key = registration.device_key
        previous = self._listening.get(key)
        if previous is not None:
            previous.drop("replaced")
        self._listening[key] = session
        self._device_ids[registration.device_id] = key
        devices = self._users.setdefault(registration.user_id, [])
        if key in devices:
            devices.remove(key)
        devices.append(key)
        if self.bus is not None:
            self.bus.announce(registration.user_id, registration.device_id)

    def _detach_listener(self, session: ServerSession) -> None:
        registration = session.registration
        key = registration.device_key
        if self._listening.get(key) is not session:
            return
        del self._listening[key]
        self._device_ids.pop(registration.device_id, None)
        devices = self._users.get(registration.user_id, [])
        if key in devices:
            devices.remove(key)
        if not devices:
            self._users.pop(registration.user_id, None)
        if self.bus is not None:
            self.bus.withdraw(registration.user_id, registration.device_id)

    async def _run_session(self, session: ServerSession) -> None:
        registration = session.registration
        self.metrics.inc("registrations_total")
        log(
            logging.INFO,
            "registered",
            session=session.number,
            device=registration.device_id,
            listen=registration.listen,
        )
        try:
            await session.link.send_frame(
                encode_relay_frame(
                    RelayRegistered(user_id=registration.user_id, device_id=registration.device_id)
                )
            )
            if registration.listen:
                self._attach_listener(session)
            with session.cancel_scope:
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(self._write, session)
                    await self._read(session)
                    session.outbox.close()
        finally:
            self._end_session(session)

    async def _write(self, session: ServerSession) -> None:
        while (frame := await session.outbox.get()) is not None:
            await session.link.send_frame(frame)

    def _end_session(self, session: ServerSession) -> None:
        if session.registration.listen:
            self._detach_listener(session)
        key = session.registration.device_key
        limits = self._limits.get(key)
        if limits is not None:
            limits.sessions -= 1
            if limits.sessions == 0 and limits.idle(anyio.current_time()):
                del self._limits[key]
        if len(self._limits) > self._sweep_at:
            self.sweep_limits(anyio.current_time())
        session.outbox.close()
        for route, end in list(session.routes.values()):
            self.reset(route, end, _R.PEER_GONE)
        reason = session.drop_reason or "closed"
        if session.drop_reason is not None:
            self.metrics.inc("sessions_dropped_total", label=reason)
        log(logging.INFO, "session_ended", session=session.number, reason=reason)

    def reset(self, route: Route, end: End, reason: RelayReason, *, both: bool = False) -> None:
        """Forget ``route``; tell the end that is not ``end`` (and ``end`` too, if ``both``)."""
        other = route.other(end)
        end.sink.detach(end.stream_id)
        other.sink.detach(other.stream_id)
        self.metrics.inc("streams_active", -1)
        for told in (other, end) if both else (other,):
            frame = RelayClose(stream_id=told.stream_id, abort=True, reason=reason)
            told.sink.deliver_nowait(encode_relay_frame(frame))

    async def _throttle(self, session: ServerSession, size: int) -> None:
        limits = self._limits[session.registration.device_key]
        now = anyio.current_time()
        delay = max(limits.bytes.take(size, now), limits.frames.take(1, now))
        self.metrics.inc("frames_received_total")
        self.metrics.inc("bytes_received_total", size)
        if delay > 0:
            self.metrics.inc("throttle_seconds_total", delay)
            await anyio.sleep(delay)

    async def _read(self, session: ServerSession) -> None:
        max_size = self.config.max_frame_size
        while True:
            try:
                raw = await session.link.receive_frame()
            except ConnectionClosedError:
                return
            except FrameTooLargeError as exc:
                await self._send_error(session.link, _R.TOO_LARGE, exc.message)
                session.drop_reason = "too_large"
                return
            await self._throttle(session, len(raw))
            try:
                _, body = decode_relay_frame(raw, max_size=max_size)
                await self._handle(session, body)
            except (DecodeError, RemoteProtocolError) as exc:
                await self._send_error(session.link, _R.MALFORMED, exc.message)
                session.drop_reason = "malformed"
                return

    async def _handle(self, session: ServerSession, body: RelayBody) -> None:
        if isinstance(body, RelayConnect):
            await self._connect(session, body)
        elif isinstance(body, RelayAccept | RelayRefuse):
            await self._answer(session, body)
        elif isinstance(body, RelayData | RelayWindow | RelayClose):
            await self.forward_from(session, body)
        else:
            raise RemoteProtocolError(f"a client may not send {type(body).__name__}")

    async def _refuse(self, sink: Sink, stream_id: int, reason: RelayReason, message: str) -> None:
        self.metrics.inc("refusals_total", label=reason_name(reason))
        refusal = RelayRefuse(stream_id=stream_id, reason=reason, message=message)
        await sink.deliver(encode_relay_frame(refusal))

    def listeners(self) -> list[ServerSession]:
        """The sessions devices listen on here."""
        return list(self._listening.values())

    def find_listener(self, user_id: str, device_id: str) -> ServerSession | None:
        """The local listening session for this target, if any (newest device of a user)."""
        if device_id:
            key = self._device_ids.get(device_id)
            session = self._listening.get(key) if key is not None else None
            if session is None or (user_id and session.registration.user_id != user_id):
                return None
            return session
        devices = self._users.get(user_id)
        return self._listening[devices[-1]] if devices else None

    async def _connect(self, session: ServerSession, connect: RelayConnect) -> None:
        stream_id = connect.stream_id
        if stream_id % 2 == 0 or stream_id in session.routes:
            raise RemoteProtocolError(f"stream id {stream_id} is even or already in use")
        limits = self._limits[session.registration.device_key]
        if len(session.routes) >= self.config.max_streams_per_session:
            await self._refuse(session, stream_id, _R.LIMIT_REACHED, "too many streams")
            return
        if not limits.connects.try_take(1, anyio.current_time()):
            await self._refuse(session, stream_id, _R.RATE_LIMITED, "slow down")
            return
        target_user = connect.target_user_id
        if target_user:
            try:
                target_user = user_id_from_public_key(public_key_from_user_id(target_user))
            except OmegaError:
                raise RemoteProtocolError("the target user id is not a user id") from None
        target = self.find_listener(target_user, connect.target_device_id)
        source = End(session, stream_id)
        if target is None:
            if self.bus is not None and await self.bus.connect(
                session, source, target_user, connect.target_device_id
            ):
                return
            await self._refuse(session, stream_id, _R.NOT_REGISTERED, "no such device listens here")
            return
        if len(target.routes) >= self.config.max_streams_per_session:
            await self._refuse(session, stream_id, _R.LIMIT_REACHED, "target is busy")
            return
        target_end = End(target, target.allocate_stream_id())
        route = Route(source, target_end)
        self.attach(route)
        self.metrics.inc("streams_total", label="local")
        registration = session.registration
        incoming = RelayIncoming(
            stream_id=target_end.stream_id,
            source_user_id=registration.user_id,
            source_device_id=registration.device_id,
        )
        await self.deliver(target_end.sink, encode_relay_frame(incoming))

    def attach(self, route: Route) -> None:
        """Record ``route`` on its local ends."""
        for end in (route.source, route.target):
            if isinstance(end.sink, ServerSession):
                end.sink.routes[end.stream_id] = (route, end)
        self.metrics.inc("streams_active")

    async def deliver(self, sink: Sink, frame: bytes) -> None:
        """Queue ``frame`` for ``sink``; drop a session stalled for ``stall_timeout``."""
        with anyio.move_on_after(self.config.stall_timeout):
            await sink.deliver(frame)
            return
        if isinstance(sink, ServerSession):
            log(logging.WARNING, "session_stalled", session=sink.number)
            sink.drop("stalled")

    async def _answer(self, session: ServerSession, body: RelayAccept | RelayRefuse) -> None:
        entry = session.routes.get(body.stream_id)
        if entry is not None:  # else the source gave up meanwhile
            await self.answer(entry, body)

    async def answer(self, entry: tuple[Route, End], body: RelayAccept | RelayRefuse) -> None:
        """Forward the target's answer to the source of the route."""
        route, end = entry
        if end is not route.target or route.accepted:
            raise RemoteProtocolError("only the target answers a stream, once")
        source = route.source
        if isinstance(body, RelayAccept):
            route.accepted = True
            await self.deliver(
                source.sink, encode_relay_frame(RelayAccept(stream_id=source.stream_id))
            )
            return
        end.sink.detach(end.stream_id)
        source.sink.detach(source.stream_id)
        self.metrics.inc("streams_active", -1)
        refusal = RelayRefuse(stream_id=source.stream_id, reason=body.reason, message=body.message)
        self.metrics.inc("refusals_total", label=reason_name(body.reason))
        await self.deliver(source.sink, encode_relay_frame(refusal))

    async def forward_from(
        self,
        sink: Sink,
        body: RelayData | RelayWindow | RelayClose,
        entry: tuple[Route, End] | None = None,
    ) -> None:
        """Forward a stream frame that arrived from ``sink`` to the other end of its route."""
        if entry is None:
            assert isinstance(sink, ServerSession)
            entry = sink.routes.get(body.stream_id)
            if entry is None:
                return  # a late frame for a stream already reset
        route, end = entry
        other = route.other(end)
        if isinstance(body, RelayData):
            frame = encode_relay_frame(RelayData(stream_id=other.stream_id, data=body.data))
            self.metrics.inc("frames_forwarded_total")
            self.metrics.inc("bytes_forwarded_total", len(body.data))
        elif isinstance(body, RelayWindow):
            frame = encode_relay_frame(RelayWindow(stream_id=other.stream_id, frames=body.frames))
        else:
            frame = encode_relay_frame(
                RelayClose(stream_id=other.stream_id, abort=body.abort, reason=body.reason)
            )
            end.eof = True
            if body.abort or other.eof:
                end.sink.detach(end.stream_id)
                other.sink.detach(other.stream_id)
                self.metrics.inc("streams_active", -1)
        await self.deliver(other.sink, frame)
