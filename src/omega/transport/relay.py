"""The relay transport: reach a device through a relay when no direct connection is possible.

A relay (``omega serve relay``, :mod:`omega.server.relay`) forwards opaque
frames between two devices that registered with it. Relay addresses name
the relay and, for dialing, the target (docs/transports.md, "Relay")::

    /dns/relay.example/tcp/443/wss/relay                    listen: register here
    /dns/relay.example/tcp/443/wss/relay/<device id>        dial that device
    /dns/relay.example/tcp/443/wss/relay/<user id>          dial any device of that user

:meth:`RelayTransport.listen` opens a session to the relay, registers this
device (a signature over the relay's fresh challenge with the device key,
whose certificate names the user), and hands each stream the relay forwards
to the handler. :meth:`RelayTransport.dial` opens a session of its own,
registers, and asks the relay for a stream to the target. Both speak the
relay protocol (:mod:`omega.transport._relay_protocol`) in frames of the TCP
or WebSocket transport. The relay sees only what the connection carries: run
the secure channel on top (``SecureTransport(RelayTransport(...), ...)``)
and that is Noise ciphertext, authenticated end to end.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio
from anyio.abc import TaskStatus

from omega.crypto.account import Identity
from omega.crypto.devices import DeviceKeyPair
from omega.errors import (
    ConfigurationError,
    DialError,
    OmegaError,
    TransportTimeoutError,
)
from omega.protocol import (
    RelayAccept,
    RelayChallenge,
    RelayConnect,
    RelayError,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayRegistered,
    SignedDeviceCertificate,
)
from omega.transport._relay_protocol import (
    FRAME_OVERHEAD,
    RELAY_VERSION,
    decode_relay_frame,
    encode_relay_frame,
    sign_registration,
)
from omega.transport._relay_session import RelaySession, RelayStream, refused
from omega.transport._serve import ConnectionSupervisor, ServingListener, logger
from omega.transport.address import Address
from omega.transport.base import (
    ConnectionHandler,
    FrameConnection,
    Listener,
    Transport,
    TransportConfig,
    _check_seconds,
)
from omega.transport.noise import NoiseCredentials
from omega.transport.tcp import TcpConfig, TcpTransport
from omega.transport.websocket import WebSocketConfig, WebSocketTransport

__all__ = ["RelayConfig", "RelayCredentials", "RelayTransport"]

_MAX_CHALLENGE_SIZE: Final = 1024
_MAX_REGISTERED_SIZE: Final = 1024
_T = TypeVar("_T", RelayChallenge, RelayRegistered)


@dataclass(frozen=True, slots=True, eq=False)
class RelayCredentials:
    """What a device registers with: its device key and the user's certificate for it."""

    device_key_pair: DeviceKeyPair
    """The device's Ed25519 key pair; signs the relay's challenge."""
    device_certificate: SignedDeviceCertificate
    """The user's certificate for the device key."""

    @classmethod
    def from_identity(cls, identity: Identity) -> RelayCredentials:
        """The credentials of this device of ``identity``."""
        return cls(identity.device.key_pair, identity.device.certificate.to_signed())

    @classmethod
    def from_noise(cls, credentials: NoiseCredentials) -> RelayCredentials:
        """The device key and certificate the secure channel's credentials hold."""
        return cls(credentials.device_key_pair, credentials.device_certificate)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig(TransportConfig):
    """Settings of the relay transport (``max_connections`` bounds one listener's streams)."""

    client_ssl: ssl.SSLContext | None = None
    """How ``/wss`` relays are checked; the system's default trust when ``None``."""
    open_timeout: float = 10.0
    """Seconds to reach the relay, register, and (for a dial) have the target accept."""

    def __post_init__(self) -> None:
        TransportConfig.__post_init__(self)
        _check_seconds(self.open_timeout, "open_timeout")
        if self.client_ssl is not None and not isinstance(self.client_ssl, ssl.SSLContext):
            raise ConfigurationError("client_ssl must be an ssl.SSLContext")


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class RelayTransport(Transport):
    """Dial and listen on relay addresses (``.../relay[/<target>]``)."""

    def __init__(
        self,
        credentials: RelayCredentials,
        config: RelayConfig | None = None,
        *,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        if not isinstance(credentials, RelayCredentials):
            raise ConfigurationError("RelayTransport needs RelayCredentials")
        self._credentials = credentials
        self._config = config if config is not None else RelayConfig()
        self._wall_clock_ms = wall_clock_ms

    @property
    def config(self) -> RelayConfig:
        """This transport's settings."""
        return self._config

    def _carrier(self, via: str) -> Transport:
        link_size = self._config.max_frame_size + FRAME_OVERHEAD
        if via == "tcp":
            return TcpTransport(TcpConfig(max_frame_size=link_size))
        return WebSocketTransport(
            WebSocketConfig(
                tls=via == "wss",
                client_ssl=self._config.client_ssl,
                max_frame_size=link_size,
                open_timeout=self._config.open_timeout,
            )
        )

    @staticmethod
    def _check(address: Address) -> None:
        if not address.is_relay:
            raise ConfigurationError(f"the relay transport cannot use {address}")

    async def _open_session(self, address: Address, *, listen: bool) -> RelaySession:
        """Reach the relay and register; the caller bounds how long it may take."""
        via = address.via
        assert via is not None  # checked by _check
        link = await self._carrier(via).dial(address.relay_address())
        try:
            challenge = await self._receive(link, RelayChallenge, _MAX_CHALLENGE_SIZE)
            if challenge.version != RELAY_VERSION:
                raise DialError(f"{address}: unsupported relay version {challenge.version}")
            register = sign_registration(
                challenge,
                device_key_pair=self._credentials.device_key_pair,
                device_certificate=self._credentials.device_certificate,
                timestamp=self._wall_clock_ms(),
                listen=listen,
            )
            await link.send_frame(encode_relay_frame(register))
            registered = await self._receive(link, RelayRegistered, _MAX_REGISTERED_SIZE)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await link.aclose()
            raise
        link_size = min(self._config.max_frame_size, challenge.max_frame_size) + FRAME_OVERHEAD
        return RelaySession(
            link,
            max_link_frame_size=link_size,
            user_id=registered.user_id,
            device_id=registered.device_id,
        )

    @staticmethod
    async def _receive(link: FrameConnection, kind: type[_T], max_size: int) -> _T:
        try:
            raw = await link.receive_frame()
            _, body = decode_relay_frame(raw, max_size=max_size)
        except OmegaError as exc:
            raise DialError(f"the relay did not answer as a relay: {exc}") from exc
        if isinstance(body, RelayError):
            raise refused(body, "the relay refused the registration")
        if not isinstance(body, kind):
            raise DialError(f"the relay sent {type(body).__name__} instead of {kind.__name__}")
        return body

    def _data_size(self, session: RelaySession) -> int:
        return session.link.max_frame_size - FRAME_OVERHEAD

    async def dial(self, address: Address) -> FrameConnection:
        """Register at the relay and open a stream to the address's target."""
        self._check(address)
        target = address.relay_target
        if target is None:
            raise ConfigurationError(f"{address} names no target after /relay")
        try:
            with anyio.fail_after(self._config.open_timeout):
                session = await self._open_session(address, listen=False)
        except TimeoutError:
            raise TransportTimeoutError(f"reaching the relay at {address} timed out") from None
        try:
            return await self._connect(session, address, target)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await session.aclose()
            raise

    async def _connect(self, session: RelaySession, address: Address, target: str) -> RelayStream:
        stream_id = session.next_stream_id()
        stream = RelayStream(
            session,
            stream_id,
            max_frame_size=self._data_size(session),
            local_address=address.with_relay_target(session.device_id).with_peer(None),
            remote_address=address,
            owns_session=True,
        )
        is_device = len(target) == 16
        await session.send(
            RelayConnect(
                stream_id=stream_id,
                target_user_id="" if is_device else target,
                target_device_id=target if is_device else "",
            )
        )
        try:
            with anyio.fail_after(self._config.open_timeout):
                while stream_id not in session.dial_results:
                    if session.failure is not None:
                        raise DialError(f"{address}: {session.failure.message}")
                    await session.progress()
        except TimeoutError:
            raise TransportTimeoutError(f"{address} did not answer through the relay") from None
        result = session.dial_results[stream_id]
        if isinstance(result, RelayRefuse):
            raise refused(result, f"the relay could not connect to {address}")
        return stream

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Register at the relay; serve the streams it forwards (see :meth:`Transport.listen`)."""
        self._check(address)
        try:
            with anyio.fail_after(self._config.open_timeout):
                session = await self._open_session(address.with_relay_target(None), listen=True)
        except TimeoutError:
            raise TransportTimeoutError(f"reaching the relay at {address} timed out") from None
        base = address.with_relay_target(None).with_peer(None)
        addresses = (
            base.with_relay_target(session.device_id),
            base.with_relay_target(session.user_id),
        )
        try:
            with anyio.CancelScope() as scope:
                listener = ServingListener(addresses, scope)
                try:
                    async with anyio.create_task_group() as task_group:
                        supervisor = ConnectionSupervisor(
                            handler,
                            task_group,
                            max_connections=self._config.max_connections,
                            transport="relay",
                        )
                        task_status.started(listener)
                        await self._serve(session, supervisor, addresses[0])
                finally:
                    listener.finished()
        finally:
            with anyio.CancelScope(shield=True):
                await session.aclose()

    async def _serve(
        self, session: RelaySession, supervisor: ConnectionSupervisor, local: Address
    ) -> None:
        session.has_reader = True
        while session.failure is None:
            while session.incoming:
                await self._answer(session, session.incoming.popleft(), supervisor, local)
            await session.progress()
        logger.warning("relay listener at %s stopped: %s", local, session.failure.message)

    async def _answer(
        self,
        session: RelaySession,
        incoming: RelayIncoming,
        supervisor: ConnectionSupervisor,
        local: Address,
    ) -> None:
        if incoming.stream_id in session.streams:
            await session.send(
                RelayRefuse(stream_id=incoming.stream_id, reason=RelayReason.MALFORMED)
            )
            return
        source = local.with_relay_target(incoming.source_device_id or None)
        stream = RelayStream(
            session,
            incoming.stream_id,
            max_frame_size=self._data_size(session),
            local_address=local,
            remote_address=source,
            owns_session=False,
        )
        if not supervisor.admit(stream):
            session.forget(incoming.stream_id)
            await session.send(
                RelayRefuse(
                    stream_id=incoming.stream_id,
                    reason=RelayReason.REFUSED,
                    message="too many connections",
                )
            )
            return
        await session.send(RelayAccept(stream_id=incoming.stream_id))
