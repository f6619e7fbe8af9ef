"""The secure channel: a Noise XX handshake, then encrypted frames, over any frame connection.

:func:`secure_handshake` drives :class:`~omega.transport.noise.NoiseHandshake`
over a :class:`~omega.transport.base.FrameConnection` (one handshake message
per frame) and returns a :class:`SecureConnection`, itself a frame
connection whose frames are sealed by the record layer of
:mod:`omega.transport._records`. :class:`SecureTransport` wraps any
:class:`~omega.transport.base.Transport` so that every connection it dials
or accepts is authenticated and encrypted before the application sees it::

    secure = SecureTransport(TcpTransport(), credentials)
    connection = await secure.dial(Address.parse("/ip4/127.0.0.1/tcp/4001/omega/omega1..."))
    connection.peer.user_id   # verified; a different user raised PeerIdentityMismatchError

The underlying connection must carry frames of at least 65535 bytes (every
transport does by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import anyio
from anyio.abc import TaskStatus

from omega.crypto.random import RandomSource, system_random
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLimitError,
    ConnectionLostError,
    FrameTooLargeError,
    HandshakeError,
    OmegaError,
    TransportTimeoutError,
)
from omega.protocol.framing import DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT
from omega.transport._records import MAX_NOISE_MESSAGE_SIZE, RecordReceiver, RecordSender
from omega.transport._serve import logger
from omega.transport.address import Address
from omega.transport.base import (
    ConnectionHandler,
    FrameConnection,
    Listener,
    Transport,
    _check_int,
    _check_seconds,
)
from omega.transport.noise import (
    HandshakeCompleted,
    NoiseCredentials,
    NoiseHandshake,
    PeerIdentity,
    Role,
)

__all__ = [
    "DEFAULT_REKEY_INTERVAL",
    "SecureChannelConfig",
    "SecureConnection",
    "SecureTransport",
    "secure_handshake",
]

DEFAULT_REKEY_INTERVAL: Final = 1 << 20
"""Messages one key encrypts before the sender rekeys: 2**20, far below the 2**64 nonces."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureChannelConfig:
    """Settings of the secure channel."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest application frame sent or accepted (bytes; split into records of 65518)."""
    rekey_interval: int = DEFAULT_REKEY_INTERVAL
    """Messages a sending key encrypts before it is replaced (2..2**32)."""
    handshake_timeout: float = 10.0
    """Seconds a handshake may take before TransportTimeoutError."""
    close_timeout: float = 1.0
    """Seconds :meth:`SecureConnection.aclose` waits to send the end-of-stream record."""
    max_concurrent_handshakes: int = 64
    """Inbound handshakes one listener runs at once; more are refused (ConnectionLimitError)."""

    def __post_init__(self) -> None:
        _check_int(self.max_frame_size, "max_frame_size", 1, MAX_FRAME_SIZE_LIMIT)
        _check_int(self.rekey_interval, "rekey_interval", 2, 2**32)
        _check_seconds(self.handshake_timeout, "handshake_timeout")
        _check_seconds(self.close_timeout, "close_timeout")
        _check_int(self.max_concurrent_handshakes, "max_concurrent_handshakes", 1, 1 << 20)


class SecureConnection(FrameConnection):
    """An authenticated, encrypted frame connection to a verified peer device."""

    def __init__(
        self,
        inner: FrameConnection,
        completed: HandshakeCompleted,
        sender: RecordSender,
        receiver: RecordReceiver,
        config: SecureChannelConfig,
    ) -> None:
        self._inner = inner
        self._peer = completed.peer
        self._handshake_hash = completed.handshake_hash
        self._sender = sender
        self._receiver = receiver
        self._config = config
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._send_broken: OmegaError | None = None
        self._eof_sent = False
        self._closed = False

    @property
    def peer(self) -> PeerIdentity:
        """The verified peer: user id, identity key, device key, certificate."""
        return self._peer

    @property
    def handshake_hash(self) -> bytes:
        """Noise's handshake hash, equal on both ends: a channel binding."""
        return self._handshake_hash

    @property
    def max_frame_size(self) -> int:
        """Largest application frame sent or accepted."""
        return self._config.max_frame_size

    @property
    def local_address(self) -> Address | None:
        """The underlying connection's local address."""
        return self._inner.local_address

    @property
    def remote_address(self) -> Address | None:
        """The underlying remote address, with the peer's verified user id."""
        remote = self._inner.remote_address
        return remote.with_peer(self._peer.user_id) if remote is not None else None

    @property
    def messages_sent(self) -> int:
        """Noise transport messages sent (= the next sending nonce)."""
        return self._sender.nonce

    @property
    def rekeys(self) -> tuple[int, int]:
        """How many times the sending and the receiving key were replaced."""
        return self._sender.rekeys, self._receiver.rekeys

    async def send_frame(self, frame: bytes) -> None:
        """Encrypt and send one frame (several records when it exceeds 65518 bytes)."""
        if len(frame) > self._config.max_frame_size:
            raise FrameTooLargeError(len(frame), self._config.max_frame_size)
        async with self._send_lock:
            self._check_can_send()
            await self._send_messages(self._sender.seal_frame(frame))

    def _check_can_send(self) -> None:
        if self._closed or self._eof_sent:
            raise ConnectionClosedError("cannot send: this side of the channel is closed")
        if self._send_broken is not None:
            raise ConnectionLostError(
                f"the channel broke during an earlier send: {self._send_broken}"
            )

    async def _send_messages(self, messages: list[bytes]) -> None:
        # Nonces are spent once sealed: a send cut short would desynchronise the peer,
        # so any failure or cancellation here retires the sending direction for good.
        done = False
        try:
            if len(messages) == 1:
                await self._inner.send_frame(messages[0])
            else:
                await self._inner.send_frames(messages)
            done = True
        except OmegaError as exc:
            self._send_broken = exc
            raise
        finally:
            if not done and self._send_broken is None:
                self._send_broken = ConnectionLostError("a send was cancelled midway")

    async def receive_frame(self) -> bytes:
        """Return the next decrypted frame; ConnectionClosedError after the authenticated end."""
        async with self._receive_lock:
            while True:
                if self._closed:
                    raise ConnectionClosedError("the channel is closed")
                if self._receiver.ended:
                    raise ConnectionClosedError("the peer has finished sending")
                try:
                    message = await self._inner.receive_frame()
                except ConnectionClosedError as exc:
                    raise ConnectionLostError(
                        "the stream ended without the peer's authenticated end of stream "
                        "(truncated, or the peer went away)"
                    ) from exc
                frame = self._receiver.open(message)
                if frame is not None:
                    return frame

    async def send_eof(self) -> None:
        """Send the authenticated end-of-stream record; receiving goes on."""
        async with self._send_lock:
            if self._eof_sent or self._closed:
                return
            self._check_can_send()
            await self._send_messages(self._sender.seal_end_of_stream())
            self._eof_sent = True
        await self._inner.send_eof()

    async def aclose(self) -> None:
        """Send the end of stream if not yet sent (waiting at most ``close_timeout``), close."""
        if self._closed:
            return
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._config.close_timeout):
                if not self._eof_sent and self._send_broken is None:
                    await self.send_eof()
        except OmegaError:
            pass  # closing anyway; the peer will see the stream end unauthenticated
        finally:
            self._closed = True
            await self._inner.aclose()


async def secure_handshake(
    inner: FrameConnection,
    role: Role,
    credentials: NoiseCredentials,
    *,
    config: SecureChannelConfig | None = None,
    expected_user_id: str | None = None,
    expected_device_key: bytes | None = None,
    rng: RandomSource = system_random,
) -> SecureConnection:
    """Run the handshake over ``inner`` as ``role``; return the established channel.

    Takes ownership of ``inner``: it is closed when the handshake fails or is
    cancelled. Raises :class:`~omega.errors.PeerIdentityMismatchError` when
    the peer is not ``expected_user_id`` (or ``expected_device_key``),
    :class:`~omega.errors.HandshakeError` for every other failure of the peer
    or the connection, and :class:`~omega.errors.TransportTimeoutError` after
    ``handshake_timeout``.
    """
    config = config if config is not None else SecureChannelConfig()
    if inner.max_frame_size < MAX_NOISE_MESSAGE_SIZE:
        raise ConfigurationError(
            f"the secure channel needs frames of {MAX_NOISE_MESSAGE_SIZE} bytes; "
            f"the connection carries {inner.max_frame_size}"
        )
    handshake = NoiseHandshake(
        role,
        credentials,
        rng=rng,
        expected_user_id=expected_user_id,
        expected_device_key=expected_device_key,
    )
    try:
        try:
            with anyio.fail_after(config.handshake_timeout):
                completed = await _run_handshake(inner, handshake)
        except TimeoutError as exc:  # our own deadline, not a library's failure
            raise TransportTimeoutError(
                f"handshake timed out after {config.handshake_timeout} s",
                details={"timeout": config.handshake_timeout},
            ) from exc
    except BaseException:
        with anyio.CancelScope(shield=True):
            await inner.aclose()
        raise
    keys = handshake.transport_keys()
    return SecureConnection(
        inner,
        completed,
        RecordSender(keys.send, rekey_interval=config.rekey_interval),
        RecordReceiver(keys.receive, max_frame_size=config.max_frame_size),
        config,
    )


async def _run_handshake(inner: FrameConnection, handshake: NoiseHandshake) -> HandshakeCompleted:
    if handshake.role is Role.INITIATOR:
        handshake.start()
    while True:
        try:
            for message in handshake.messages_to_send():
                await inner.send_frame(message)
            event = handshake.next_event()
            if isinstance(event, HandshakeCompleted):
                return event
            message = await inner.receive_frame()
        except HandshakeError:
            raise
        except OmegaError as exc:
            raise HandshakeError(
                f"the connection failed during the handshake: {exc}", details={"cause": exc.code}
            ) from exc
        handshake.receive_message(message)


class SecureTransport(Transport):
    """Any transport, with every connection authenticated and encrypted (Noise XX).

    :meth:`dial` expects the user named by the address's ``/omega/<user
    id>`` suffix, when it has one; :meth:`dial_peer` names the user (and
    optionally the device) explicitly.
    """

    def __init__(
        self,
        inner: Transport,
        credentials: NoiseCredentials,
        config: SecureChannelConfig | None = None,
        *,
        rng: RandomSource = system_random,
    ) -> None:
        self._inner = inner
        self._credentials = credentials
        self._config = config if config is not None else SecureChannelConfig()
        self._rng = rng

    @property
    def config(self) -> SecureChannelConfig:
        """The secure channel's settings."""
        return self._config

    @property
    def inner(self) -> Transport:
        """The transport underneath."""
        return self._inner

    async def dial(self, address: Address) -> SecureConnection:
        """Dial and authenticate; the peer must be ``address.peer`` when the address names one."""
        return await self.dial_peer(address, user_id=address.peer)

    async def dial_peer(
        self, address: Address, *, user_id: str | None, device_key: bytes | None = None
    ) -> SecureConnection:
        """Dial ``address`` expecting ``user_id`` (and ``device_key``, if given)."""
        raw = await self._inner.dial(address)
        return await secure_handshake(
            raw,
            Role.INITIATOR,
            self._credentials,
            config=self._config,
            expected_user_id=user_id,
            expected_device_key=device_key,
            rng=self._rng,
        )

    async def listen(
        self,
        address: Address,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[Listener] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on the inner transport; run ``handler`` on each authenticated connection.

        Connections whose handshake fails, times out, or arrives while
        ``max_concurrent_handshakes`` are running are dropped with a log line.
        """
        handshakes = anyio.Semaphore(self._config.max_concurrent_handshakes)

        async def accept(raw: FrameConnection) -> None:
            try:
                handshakes.acquire_nowait()
            except anyio.WouldBlock:
                raise ConnectionLimitError(
                    f"{self._config.max_concurrent_handshakes} handshakes already running"
                ) from None
            try:
                secure = await secure_handshake(
                    raw, Role.RESPONDER, self._credentials, config=self._config, rng=self._rng
                )
            finally:
                handshakes.release()
            logger.debug("secure channel established with %s", secure.peer.user_id)
            async with secure:
                await handler(secure)

        await self._inner.listen(address, accept, task_status=task_status)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
