"""The connection manager: one authenticated connection per peer device, kept alive.

:class:`ConnectionManager` owns a :class:`~omega.transport.secure_channel.SecureTransport`
per transport name (from a :class:`~omega.transport.registry.TransportRegistry`)
and the connections made with them:

* **Reuse.** :meth:`~ConnectionManager.connect` returns the live connection
  to that user (and device, if named) when there is one; concurrent calls
  for the same peer share one attempt. When both peers dial each other at
  once, both keep the connection initiated by the peer with the smaller
  device key, so exactly one survives.
* **Happy eyeballs** (RFC 8305's idea, applied to a peer's addresses): the
  first address is dialed at once, each next one ``dial_stagger`` seconds
  later or as soon as the previous attempt failed; the first attempt that
  *authenticates* as the expected user wins and the others are cancelled.
  The whole attempt is bounded by ``dial_timeout``.
* **Limits.** At most ``max_connections`` connections (more raise
  :class:`~omega.errors.ConnectionLimitError`; inbound extras are dropped
  with a log line) and ``max_concurrent_handshakes`` outbound handshakes at
  once (more wait their turn); inbound handshakes are limited by the secure
  channel's own ``max_concurrent_handshakes``.
* **Keep-alives and idle timeout.** A connection that received nothing for
  ``keepalive_interval`` sends ``Frame{ping}``; without a ``Frame{pong}`` with
  the same nonce within ``keepalive_timeout`` it is closed. A connection
  without application frames in either direction for ``idle_timeout`` is
  closed after sending ``Frame{close: GOING_AWAY}``. Peers answer pings
  themselves; the application never sees ping, pong or close frames.
* **Backpressure.** Each connection holds at most ``receive_queue`` received
  frames for the application; beyond that it stops reading, and the secure
  channel and transport underneath make the sender wait.

Time comes from an injectable :class:`~omega.transport.clock.Clock`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLimitError,
    DecodeError,
    DialError,
    HandshakeError,
    LocalProtocolError,
    OmegaError,
    PeerIdentityMismatchError,
    TransportTimeoutError,
)
from omega.protocol import Close, CloseReason, Frame, Ping, Pong, decode_message, encode_message
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener, _check_int, _check_seconds
from omega.transport.clock import Clock, SystemClock
from omega.transport.noise import NoiseCredentials, PeerIdentity
from omega.transport.registry import TransportRegistry
from omega.transport.secure_channel import SecureChannelConfig, SecureConnection, SecureTransport

__all__ = ["ConnectionManager", "ManagerConfig", "PeerConnection"]

logger = logging.getLogger("omega.transport")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerConfig:
    """Settings of the connection manager."""

    max_connections: int = 256
    """Live connections, inbound and outbound together."""
    max_concurrent_handshakes: int = 16
    """Outbound dials and handshakes running at once; more wait."""
    dial_stagger: float = 0.25
    """Seconds between starting attempts on a peer's successive addresses."""
    dial_timeout: float = 10.0
    """Seconds :meth:`ConnectionManager.connect` may take in all."""
    idle_timeout: float = 300.0
    """Seconds without application frames, either way, before a connection is closed."""
    keepalive_interval: float = 30.0
    """Seconds without receiving anything before a Ping is sent."""
    keepalive_timeout: float = 10.0
    """Seconds a Ping waits for its Pong before the connection is declared dead."""
    receive_queue: int = 64
    """Received frames held for the application per connection before reading stops."""
    accept_queue: int = 64
    """Inbound connections held for :meth:`ConnectionManager.accept`; more are dropped."""

    def __post_init__(self) -> None:
        _check_int(self.max_connections, "max_connections", 1, 1 << 20)
        _check_int(self.max_concurrent_handshakes, "max_concurrent_handshakes", 1, 1 << 16)
        _check_int(self.receive_queue, "receive_queue", 1, 1 << 20)
        _check_int(self.accept_queue, "accept_queue", 1, 1 << 20)
        for name in ("dial_stagger", "dial_timeout", "idle_timeout"):
            _check_seconds(getattr(self, name), name)
        _check_seconds(self.keepalive_interval, "keepalive_interval")
        _check_seconds(self.keepalive_timeout, "keepalive_timeout")


class PeerConnection:
    """A managed, authenticated connection to one peer device, carrying ``Frame`` messages."""

    def __init__(
        self,
        manager: ConnectionManager,
        channel: SecureConnection,
        *,
        initiator: bool,
        address: Address | None,
    ) -> None:
        self._manager = manager
        self._channel = channel
        self.initiator = initiator
        """True when we dialed this connection."""
        self.address = address
        """The address it was dialed on or accepted from."""
        now = manager.clock.now()
        self.last_received = now
        self.last_activity = now
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[Frame](
            manager.config.receive_queue
        )
        self._pong: tuple[int, anyio.Event] | None = None
        self._inbox_closed = False
        self.close_reason: str = ""
        """Why the connection ended, once it has."""
        self.closed = anyio.Event()
        """Set once the connection is closed."""

    @property
    def peer(self) -> PeerIdentity:
        """The verified peer device."""
        return self._channel.peer

    async def send(self, frame: Frame) -> None:
        """Send one application frame (waits while the peer is not reading)."""
        await self.send_encoded(encode_message(frame))

    async def send_encoded(self, data: bytes) -> None:
        """Send one application frame already encoded as a ``Frame`` (the outbox keeps them so)."""
        if self.closed.is_set():
            raise ConnectionClosedError(f"connection closed: {self.close_reason}")
        self.last_activity = self._manager.clock.now()
        await self._channel.send_frame(data)

    async def receive(self) -> Frame:
        """The next application frame; ConnectionClosedError once the connection ended."""
        try:
            return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._close_inbox()
            raise ConnectionClosedError(
                f"connection closed: {self.close_reason or 'closed'}"
            ) from None

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while True:
            try:
                yield await self.receive()
            except ConnectionClosedError:
                return

    async def aclose(self) -> None:
        """Close the connection (the peer sees a clean end of stream)."""
        await self._shutdown("closed locally")

    async def _shutdown(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        self._inbox_send.close()
        if self._inbox.statistics().current_buffer_used == 0:
            self._close_inbox()  # else the application may still drain what arrived
        with anyio.CancelScope(shield=True):
            await self._channel.aclose()
        self._manager._unregister(self)
        self.closed.set()

    def _close_inbox(self) -> None:
        """Drop frames nobody will read any more."""
        self._inbox.close()
        self._inbox_closed = True


async def _until(clock: Clock, deadline: float, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``work``; return ``None`` if ``clock`` reaches ``deadline`` first (it is cancelled).

    An exception of ``work`` propagates as itself, not inside an exception group.
    """
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as task_group:

        async def alarm() -> None:
            await clock.sleep_until(deadline)
            task_group.cancel_scope.cancel()

        task_group.start_soon(alarm)
        try:
            result.append(await work())
        except Exception as exc:  # re-raised below, outside the task group
            failure.append(exc)
        task_group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return result[0] if result else None


class ConnectionManager:
    """One connection per peer device over every registered transport (see the module doc).

    Use it as ``async with ConnectionManager(...) as manager:``; leaving the
    block closes every connection and listener it holds.
    """

    def __init__(
        self,
        registry: TransportRegistry,
        credentials: NoiseCredentials,
        *,
        config: ManagerConfig | None = None,
        channel_config: SecureChannelConfig | None = None,
        clock: Clock | None = None,
        rng: RandomSource = system_random,
    ) -> None:
        self.config = config if config is not None else ManagerConfig()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._registry = registry
        self._credentials = credentials
        self._channel_config = channel_config
        self._rng = rng
        self._transports: dict[str, SecureTransport] = {}
        self._connections: list[PeerConnection] = []
        self._closed_with_frames: list[PeerConnection] = []
        self._pending: dict[tuple[str, bytes | None], anyio.Event] = {}
        self._handshakes = anyio.Semaphore(self.config.max_concurrent_handshakes)
        self._task_group: TaskGroup | None = None
        self._accept_send: MemoryObjectSendStream[PeerConnection] | None = None
        self._accept_receive: MemoryObjectReceiveStream[PeerConnection] | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._closed or self._task_group is not None:
            raise LocalProtocolError("a ConnectionManager is entered once")
        self._accept_send, self._accept_receive = anyio.create_memory_object_stream[PeerConnection](
            self.config.accept_queue
        )
        self._task_group = await anyio.create_task_group().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        task_group = self._tasks()
        try:
            for connection in list(self._connections):
                await connection._shutdown("manager closed")
            task_group.cancel_scope.cancel()
        finally:
            for connection in self._closed_with_frames:
                connection._close_inbox()
            self._closed = True
            send, receive = self._accept_streams()
            send.close()
            receive.close()
            # The block's own exception propagates as itself: the group only had our tasks.
            await task_group.__aexit__(None, None, None)
            self._task_group = None
            for transport in self._transports.values():
                await transport.aclose()
        return None

    def _accept_streams(
        self,
    ) -> tuple[MemoryObjectSendStream[PeerConnection], MemoryObjectReceiveStream[PeerConnection]]:
        if self._accept_send is None or self._accept_receive is None:
            raise LocalProtocolError("use the ConnectionManager in an 'async with' block")
        return self._accept_send, self._accept_receive

    def _tasks(self) -> TaskGroup:
        if self._task_group is None:
            raise LocalProtocolError("use the ConnectionManager in an 'async with' block")
        return self._task_group

    @property
    def connections(self) -> tuple[PeerConnection, ...]:
        """The live connections."""
        return tuple(self._connections)

    def get(self, user_id: str, device_key: bytes | None = None) -> PeerConnection | None:
        """The live connection to ``user_id`` (and ``device_key``, if given), if any."""
        for connection in self._connections:
            peer = connection.peer
            if peer.user_id == user_id and (
                device_key is None or hmac.compare_digest(peer.device_key, device_key)
            ):
                return connection
        return None

    def _transport(self, name: str) -> SecureTransport:
        if name not in self._transports:
            self._transports[name] = SecureTransport(
                self._registry.create(name), self._credentials, self._channel_config, rng=self._rng
            )
        return self._transports[name]

    async def listen(self, address: Address) -> Listener:
        """Accept connections on ``address``; they appear in :meth:`accept`."""
        transport = self._transport(address.transport)
        listener: Listener = await self._tasks().start(transport.listen, address, self._inbound)
        return listener

    async def accept(self) -> PeerConnection:
        """The next inbound connection."""
        try:
            return await self._accept_streams()[1].receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise ConnectionClosedError("the connection manager is closed") from None

    async def connect(
        self, user_id: str, addresses: Sequence[Address], *, device_key: bytes | None = None
    ) -> PeerConnection:
        """Return the connection to ``user_id``, dialing ``addresses`` when there is none.

        Raises :class:`~omega.errors.PeerIdentityMismatchError` when the
        addresses answered as someone else,
        :class:`~omega.errors.DialError` when none answered,
        :class:`~omega.errors.TransportTimeoutError` after ``dial_timeout``
        and :class:`~omega.errors.ConnectionLimitError` at the limit.
        """
        try:
            user_id = user_id_from_public_key(public_key_from_user_id(user_id))
        except OmegaError as exc:
            raise ConfigurationError(f"not a user id: {user_id!r}") from exc
        if not addresses:
            raise ConfigurationError("connect needs at least one address")
        key = (user_id, device_key)
        while (pending := self._pending.get(key)) is not None:
            await pending.wait()
        existing = self.get(user_id, device_key)
        if existing is not None:
            return existing
        if len(self._connections) >= self.config.max_connections:
            raise ConnectionLimitError(f"{self.config.max_connections} connections already open")
        done = self._pending[key] = anyio.Event()
        try:
            deadline = self.clock.now() + self.config.dial_timeout
            dialed = await _until(
                self.clock, deadline, lambda: self._dial_any(user_id, addresses, device_key)
            )
            if dialed is None:
                raise TransportTimeoutError(
                    f"no address of {user_id} authenticated within {self.config.dial_timeout} s"
                )
            channel, address = dialed
            return self._register(channel, initiator=True, address=address)
        finally:
            del self._pending[key]
            done.set()

    async def _dial_any(
        self, user_id: str, addresses: Sequence[Address], device_key: bytes | None
    ) -> tuple[SecureConnection, Address]:
        winners: list[tuple[SecureConnection, Address]] = []
        errors: list[OmegaError] = []
        async with anyio.create_task_group() as task_group:

            async def attempt(address: Address, failed: anyio.Event) -> None:
                try:
                    async with self._handshakes:
                        channel = await self._transport(address.transport).dial_peer(
                            address, user_id=user_id, device_key=device_key
                        )
                except OmegaError as exc:
                    logger.info("dialing %s at %s failed: %s", user_id, address, exc)
                    errors.append(exc)
                    failed.set()
                    return
                winners.append((channel, address))
                task_group.cancel_scope.cancel()

            for index, address in enumerate(addresses):
                failed = anyio.Event()
                task_group.start_soon(attempt, address, failed)
                if index + 1 < len(addresses):
                    stagger = self.clock.now() + self.config.dial_stagger
                    await _until(self.clock, stagger, failed.wait)
        for extra, _ in winners[1:]:
            await extra.aclose()  # finished in the same instant as the winner
        if winners:
            return winners[0]
        raise _best_error(user_id, errors)

    def _register(
        self, channel: SecureConnection, *, initiator: bool, address: Address | None
    ) -> PeerConnection:
        peer = channel.peer
        existing = self.get(peer.user_id, peer.device_key)
        if existing is None and len(self._connections) >= self.config.max_connections:
            raise ConnectionLimitError(f"{self.config.max_connections} connections already open")
        connection = PeerConnection(self, channel, initiator=initiator, address=address)
        if existing is not None and not self._prefer_new(existing, connection):
            self._tasks().start_soon(connection._shutdown, "duplicate of a live connection")
            return existing
        if existing is not None:
            self._tasks().start_soon(existing._shutdown, "replaced by a newer connection")
        self._connections.append(connection)
        self._tasks().start_soon(self._serve, connection)
        return connection

    def _prefer_new(self, existing: PeerConnection, new: PeerConnection) -> bool:
        if existing.initiator == new.initiator:
            return True  # a fresh connection replaces a stale one
        # Both dialed at once: both sides keep the one the smaller device key initiated.
        ours_smaller = self._credentials.device_key_pair.public_key < new.peer.device_key
        return new.initiator == ours_smaller

    def _unregister(self, connection: PeerConnection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        if not connection._inbox_closed:
            self._closed_with_frames.append(connection)

    async def _inbound(self, channel: FrameConnection) -> None:
        if not isinstance(channel, SecureConnection):  # pragma: no cover - SecureTransport's
            raise LocalProtocolError("the manager's listeners hand over secure connections")
        connection = self._register(channel, initiator=False, address=channel.remote_address)
        if connection._channel is not channel:
            return
        try:
            self._accept_streams()[0].send_nowait(connection)
        except anyio.WouldBlock:
            await connection._shutdown("too many connections waiting to be accepted")
            raise ConnectionLimitError(
                "accept queue full: the application is not accepting"
            ) from None
        await connection.closed.wait()

    async def _serve(self, connection: PeerConnection) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._keep_alive, connection, task_group.cancel_scope)
                try:
                    await self._read(connection)
                except OmegaError as exc:
                    self._failed(connection, exc)
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            await connection._shutdown(connection.close_reason or "the peer finished")

    def _failed(self, connection: PeerConnection, exc: OmegaError) -> None:
        peer = connection.peer
        if connection.close_reason:
            # We are closing it ourselves: the end of the stream is expected.
            logger.debug("connection to %s closed: %s", peer.user_id, connection.close_reason)
            return
        connection.close_reason = str(exc)
        logger.warning(
            "connection to %s (%s) failed: %s [%s]", peer.user_id, peer.device_id, exc, exc.code
        )

    async def _read(self, connection: PeerConnection) -> None:
        channel = connection._channel
        while True:
            try:
                data = await channel.receive_frame()
            except ConnectionClosedError:
                return
            frame = decode_message(Frame, data, max_size=channel.max_frame_size)
            connection.last_received = self.clock.now()
            if frame.ping is not None:
                await channel.send_frame(encode_message(Frame(pong=Pong(nonce=frame.ping.nonce))))
            elif frame.pong is not None:
                if connection._pong is not None and connection._pong[0] == frame.pong.nonce:
                    connection._pong[1].set()
            elif frame.close is not None:
                connection.close_reason = f"the peer closed: {frame.close.reason.name}"
                return
            else:
                connection.last_activity = connection.last_received
                try:
                    await connection._inbox_send.send(frame)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # closed locally, or the application stopped reading

    async def _keep_alive(self, connection: PeerConnection, scope: anyio.CancelScope) -> None:
        try:
            await self._keep_alive_until_dead(connection)
        except OmegaError as exc:
            self._failed(connection, exc)
        scope.cancel()

    async def _keep_alive_until_dead(self, connection: PeerConnection) -> None:
        config = self.config
        clock = self.clock
        channel = connection._channel
        while True:
            idle_at = connection.last_activity + config.idle_timeout
            ping_at = connection.last_received + config.keepalive_interval
            await clock.sleep_until(min(idle_at, ping_at))
            now = clock.now()
            if now >= connection.last_activity + config.idle_timeout:
                connection.close_reason = f"idle for {config.idle_timeout} s"
                closing = Frame(close=Close(reason=CloseReason.GOING_AWAY, detail="idle"))
                with anyio.move_on_after(1.0):
                    await channel.send_frame(encode_message(closing))
                return
            if now >= connection.last_received + config.keepalive_interval:
                nonce = int.from_bytes(random_bytes(self._rng, 8), "big")
                answered = anyio.Event()
                connection._pong = (nonce, answered)
                await channel.send_frame(encode_message(Frame(ping=Ping(nonce=nonce))))
                await _until(clock, now + config.keepalive_timeout, answered.wait)
                connection._pong = None
                if not answered.is_set():
                    raise TransportTimeoutError(
                        f"no answer to a keep-alive within {config.keepalive_timeout} s"
                    )


def _best_error(user_id: str, errors: Sequence[OmegaError]) -> OmegaError:
    """The most telling failure among a peer's addresses."""
    for kind in (PeerIdentityMismatchError, HandshakeError, DecodeError):
        for error in errors:
            if isinstance(error, kind):
                return error
    summary = "; ".join(str(error) for error in errors) or "no attempt finished"
    return DialError(f"no address of {user_id} answered: {summary}", details={"user_id": user_id})
