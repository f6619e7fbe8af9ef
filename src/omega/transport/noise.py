"""The secure channel's handshake: Noise XX binding each side to its Omega device, sans I/O.

Pattern ``Noise_XX_25519_ChaChaPoly_SHA256`` (Noise Protocol Framework,
revision 34, section 7.5), prologue :data:`PROLOGUE`::

    -> e                  message 1, payload empty
    <- e, ee, s, es       message 2, payload: the responder's HandshakePayload
    -> s, se              message 3, payload: the initiator's HandshakePayload

Each side's payload is an encoded ``HandshakePayload``: its device
certificate (the user's identity key vouching for the device key) and
``static_key_signature``, the device key's Ed25519 signature over
``b"omega/noise-static/v1" || the side's 32-byte Noise static public key``
(the binding libp2p's Noise handshake uses). A side accepts the other's
payload when the certificate verifies under the identity key it names and
the signature verifies under the certified device key over the static key
the handshake just authenticated; the peer is then that user's device.
Every Noise message travels as one encoded ``HandshakeMessage {version = 1,
noise_message}``, in canonical protobuf encoding, one per frame.

The initiator learns and checks the responder's identity from message 2,
before it reveals its own in message 3; ``expected_user_id`` and
``expected_device_key`` make a mismatch a
:class:`~omega.errors.PeerIdentityMismatchError`. Any other failure (a
malformed, truncated, forged or replayed message; a bad certificate or
signature) is a :class:`~omega.errors.HandshakeError`, and the handshake is
dead from then on.

:class:`NoiseHandshake` is a table-driven state machine in the style of h11:
:meth:`~NoiseHandshake.start` (initiator), then
:meth:`~NoiseHandshake.receive_message` for each message the peer sends;
:meth:`~NoiseHandshake.messages_to_send` returns what to send;
:meth:`~NoiseHandshake.next_event` reports :class:`HandshakeCompleted`.
Randomness is injected; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import enum
import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from omega.crypto.account import Identity
from omega.crypto.devices import (
    MAX_CERTIFICATE_SIZE,
    DeviceCertificateInfo,
    DeviceKeyPair,
    verify_device_certificate,
)
from omega.crypto.identity import (
    public_key_from_user_id,
    user_id_from_public_key,
    verify_signature,
)
from omega.crypto.random import RandomSource, system_random
from omega.errors import (
    ConfigurationError,
    HandshakeError,
    LocalProtocolError,
    OmegaError,
    PeerIdentityMismatchError,
)
from omega.protocol import (
    DeviceCertificate,
    HandshakeMessage,
    HandshakePayload,
    SignedDeviceCertificate,
    decode_message,
    encode_message,
)
from omega.transport._noise_cipher import (
    DH_LENGTH,
    TAG_LENGTH,
    CipherState,
    SymmetricState,
    dh,
    generate_private_key,
    public_key_of,
)

__all__ = [
    "HANDSHAKE_VERSION",
    "MAX_HANDSHAKE_MESSAGE_SIZE",
    "MAX_HANDSHAKE_PAYLOAD_SIZE",
    "PROLOGUE",
    "PROTOCOL_NAME",
    "STATIC_KEY_CONTEXT",
    "HandshakeCompleted",
    "HandshakeEvent",
    "HandshakeInput",
    "HandshakeState",
    "NoiseCredentials",
    "NoiseHandshake",
    "PeerIdentity",
    "Role",
    "TransportKeys",
]

PROTOCOL_NAME: Final = b"Noise_XX_25519_ChaChaPoly_SHA256"
"""The Noise protocol name; 32 bytes, so it is ``h``'s initial value as is."""
PROLOGUE: Final = b"omega/noise/v1"
"""Mixed into ``h`` before the first message: both sides must use it."""
STATIC_KEY_CONTEXT: Final = b"omega/noise-static/v1"
"""Domain separation of the device key's signature over a Noise static key."""
HANDSHAKE_VERSION: Final = 1
"""``HandshakeMessage.version`` of this handshake."""
MAX_HANDSHAKE_PAYLOAD_SIZE: Final = 2048
"""Largest encoded HandshakePayload accepted (a certificate is at most 1 KiB)."""
MAX_HANDSHAKE_MESSAGE_SIZE: Final = 4096
"""Largest encoded HandshakeMessage accepted, in bytes."""

_STATIC_LENGTH = DH_LENGTH + TAG_LENGTH  # an encrypted static public key


class Role(enum.Enum):
    """Which side of the handshake: the dialer initiates."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class HandshakeState(enum.Enum):
    """Where a handshake stands."""

    INITIATOR_START = "initiator_start"
    RESPONDER_START = "responder_start"
    AWAITING_MESSAGE_2 = "awaiting_message_2"
    AWAITING_MESSAGE_3 = "awaiting_message_3"
    ESTABLISHED = "established"
    FAILED = "failed"


class HandshakeInput(enum.Enum):
    """What drives a handshake forward."""

    START = "start"
    MESSAGE_RECEIVED = "message_received"


_TRANSITIONS: Final[dict[tuple[HandshakeState, HandshakeInput], HandshakeState]] = {
    (HandshakeState.INITIATOR_START, HandshakeInput.START): HandshakeState.AWAITING_MESSAGE_2,
    (HandshakeState.RESPONDER_START, HandshakeInput.MESSAGE_RECEIVED): (
        HandshakeState.AWAITING_MESSAGE_3
    ),
    (HandshakeState.AWAITING_MESSAGE_2, HandshakeInput.MESSAGE_RECEIVED): (
        HandshakeState.ESTABLISHED
    ),
    (HandshakeState.AWAITING_MESSAGE_3, HandshakeInput.MESSAGE_RECEIVED): (
        HandshakeState.ESTABLISHED
    ),
}
"""The whole state machine: anything not in here is refused and kills the handshake."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is at the other end of a completed handshake, verified."""

    user_id: str
    """The peer's canonical user id."""
    identity_key: bytes
    """The peer's Ed25519 identity key (what ``user_id`` encodes)."""
    device_key: bytes
    """The peer device's Ed25519 key, certified by the identity key."""
    static_key: bytes = field(repr=False)
    """The peer's X25519 Noise static key, signed by the device key."""
    certificate: DeviceCertificateInfo = field(repr=False)
    """The verified device certificate the peer presented."""

    @property
    def device_id(self) -> str:
        """Short display id of the peer device."""
        return self.certificate.device_id


class HandshakeEvent:
    """Base of everything a handshake reports."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeCompleted(HandshakeEvent):
    """Both sides are authenticated; transport messages may flow."""

    peer: PeerIdentity
    """The verified peer."""
    handshake_hash: bytes
    """Noise's ``h`` at the end of the handshake: equal on both sides, unique per channel."""


@dataclass(slots=True)
class TransportKeys:
    """The two CipherStates of Split(), oriented for one side."""

    send: CipherState
    """Encrypts what we send."""
    receive: CipherState
    """Decrypts what we receive."""


@dataclass(frozen=True, slots=True, eq=False)
class NoiseCredentials:
    """What one device proves itself with: its device key, certificate and Noise static key."""

    device_key_pair: DeviceKeyPair
    """The device's Ed25519 key pair; signs the static key."""
    device_certificate: SignedDeviceCertificate
    """The user's certificate for the device key."""
    static_private_key: bytes = field(repr=False)
    """The X25519 Noise static private key (32 bytes)."""
    static_public_key: bytes = field(init=False)
    """Its public key."""
    payload: bytes = field(init=False, repr=False)
    """The encoded HandshakePayload this device sends."""
    certificate: DeviceCertificateInfo = field(init=False, repr=False)
    """The verified certificate."""

    def __post_init__(self) -> None:
        if not isinstance(self.static_private_key, bytes) or len(self.static_private_key) != 32:
            raise ConfigurationError("a Noise static private key is 32 bytes")
        try:
            info = _verify_certificate(self.device_certificate)
        except OmegaError as exc:
            raise ConfigurationError(f"unusable device certificate: {exc}") from exc
        if not hmac.compare_digest(info.device_key, self.device_key_pair.public_key):
            raise ConfigurationError("the device certificate is for another device key")
        static_public_key = public_key_of(self.static_private_key)
        signature = self.device_key_pair.sign(STATIC_KEY_CONTEXT + static_public_key)
        payload = encode_message(
            HandshakePayload(
                device_certificate=self.device_certificate, static_key_signature=signature
            )
        )
        object.__setattr__(self, "static_public_key", static_public_key)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "certificate", info)

    @classmethod
    def generate(
        cls,
        device_key_pair: DeviceKeyPair,
        device_certificate: SignedDeviceCertificate,
        *,
        rng: RandomSource = system_random,
    ) -> NoiseCredentials:
        """Credentials with a fresh Noise static key drawn from ``rng``."""
        return cls(device_key_pair, device_certificate, generate_private_key(rng))

    @classmethod
    def from_identity(
        cls, identity: Identity, *, rng: RandomSource = system_random
    ) -> NoiseCredentials:
        """Credentials for this device of ``identity``, with a fresh Noise static key."""
        return cls.generate(
            identity.device.key_pair, identity.device.certificate.to_signed(), rng=rng
        )

    @property
    def user_id(self) -> str:
        """The user id of the device's owner."""
        return user_id_from_public_key(self.certificate.identity_key)


def _verify_certificate(signed: SignedDeviceCertificate | None) -> DeviceCertificateInfo:
    """Verify a certificate under the identity key it names (a self-certifying identity)."""
    if signed is None:
        raise HandshakeError("handshake payload carries no device certificate")
    inner = decode_message(DeviceCertificate, signed.certificate, max_size=MAX_CERTIFICATE_SIZE)
    return verify_device_certificate(signed, identity_key=inner.identity_key)


def _verify_payload(payload: bytes, static_key: bytes) -> PeerIdentity:
    """Check a peer's HandshakePayload against the static key it authenticated with."""
    message = decode_message(HandshakePayload, payload, max_size=MAX_HANDSHAKE_PAYLOAD_SIZE)
    info = _verify_certificate(message.device_certificate)
    verify_signature(info.device_key, STATIC_KEY_CONTEXT + static_key, message.static_key_signature)
    return PeerIdentity(
        user_id=user_id_from_public_key(info.identity_key),
        identity_key=info.identity_key,
        device_key=info.device_key,
        static_key=static_key,
        certificate=info,
    )


def encode_handshake_message(noise_message: bytes) -> bytes:
    """Wrap one Noise handshake message in its ``HandshakeMessage`` frame payload."""
    return encode_message(HandshakeMessage(version=HANDSHAKE_VERSION, noise_message=noise_message))


def decode_handshake_message(data: bytes) -> bytes:
    """Unwrap a ``HandshakeMessage``: strictly, canonically encoded, version 1."""
    message = decode_message(HandshakeMessage, data, max_size=MAX_HANDSHAKE_MESSAGE_SIZE)
    if message.version != HANDSHAKE_VERSION:
        raise HandshakeError(
            f"unsupported handshake version {message.version}",
            details={"version": message.version},
        )
    # Re-encoded from its two fields, not from the parsed message, which keeps unknown ones.
    if encode_handshake_message(message.noise_message) != bytes(data):
        raise HandshakeError("handshake message is not canonically encoded")
    return message.noise_message


class NoiseHandshake:
    """One side of the Noise XX handshake with Omega identities (see the module docstring)."""

    def __init__(
        self,
        role: Role,
        credentials: NoiseCredentials,
        *,
        rng: RandomSource = system_random,
        prologue: bytes = PROLOGUE,
        expected_user_id: str | None = None,
        expected_device_key: bytes | None = None,
    ) -> None:
        if expected_user_id is not None:
            expected_user_id = _canonical_user_id(expected_user_id)
        self.role = role
        self._credentials = credentials
        self._rng = rng
        self._expected_user_id = expected_user_id
        self._expected_device_key = expected_device_key
        self._symmetric = SymmetricState(PROTOCOL_NAME)
        self._symmetric.mix_hash(prologue)
        self._ephemeral_private = b""
        self._remote_ephemeral = b""
        self._remote_static = b""
        self._state = (
            HandshakeState.INITIATOR_START
            if role is Role.INITIATOR
            else HandshakeState.RESPONDER_START
        )
        self._outbox: list[bytes] = []
        self._events: deque[HandshakeEvent] = deque()
        self._peer: PeerIdentity | None = None
        self._keys: TransportKeys | None = None

    @property
    def state(self) -> HandshakeState:
        """The current state."""
        return self._state

    @property
    def complete(self) -> bool:
        """True once the handshake is established on this side."""
        return self._state is HandshakeState.ESTABLISHED

    @property
    def peer(self) -> PeerIdentity | None:
        """The verified peer, once its payload was checked."""
        return self._peer

    def start(self) -> None:
        """Initiator only: produce message 1."""
        self._advance(HandshakeInput.START, b"")

    def receive_message(self, data: bytes) -> None:
        """Process one ``HandshakeMessage`` frame from the peer, queueing our answer if any.

        Raises :class:`~omega.errors.HandshakeError` (or its subclass
        :class:`~omega.errors.PeerIdentityMismatchError`) for anything the
        peer got wrong, :class:`~omega.errors.LocalProtocolError` when no
        message is expected now.
        """
        self._advance(HandshakeInput.MESSAGE_RECEIVED, data)

    def messages_to_send(self) -> list[bytes]:
        """Return (and forget) the ``HandshakeMessage`` frames to send, in order."""
        outbox, self._outbox = self._outbox, []
        return outbox

    def next_event(self) -> HandshakeEvent | None:
        """Return the next event, or ``None``."""
        return self._events.popleft() if self._events else None

    def transport_keys(self) -> TransportKeys:
        """Hand over the transport CipherStates, once; the handshake keeps no copy."""
        if self._keys is None:
            raise LocalProtocolError("no transport keys: handshake incomplete or keys taken")
        keys, self._keys = self._keys, None
        return keys

    def _advance(self, event: HandshakeInput, data: bytes) -> None:
        state = self._state
        target = _TRANSITIONS.get((state, event))
        if target is None:
            self._state = HandshakeState.FAILED
            raise LocalProtocolError(
                f"handshake cannot {event.value} in state {state.value}",
                details={"state": state.value, "input": event.value},
            )
        action: Callable[[NoiseHandshake, bytes], None] = _ACTIONS[state]
        try:
            action(self, data)
        except HandshakeError:
            self._fail()
            raise
        except OmegaError as exc:
            self._fail()
            raise HandshakeError(f"handshake failed: {exc}", details={"cause": exc.code}) from exc
        self._state = target

    def _fail(self) -> None:
        self._state = HandshakeState.FAILED
        self._outbox = []
        self._keys = None

    # --- the Noise message patterns -------------------------------------------------------

    def _write_message_1(self, _: bytes) -> None:  # -> e
        self._ephemeral_private = generate_private_key(self._rng)
        ephemeral = public_key_of(self._ephemeral_private)
        self._symmetric.mix_hash(ephemeral)
        payload = self._symmetric.encrypt_and_hash(b"")
        self._outbox.append(encode_handshake_message(ephemeral + payload))

    def _read_message_1_write_message_2(self, data: bytes) -> None:
        message = decode_handshake_message(data)
        if len(message) != DH_LENGTH:
            raise HandshakeError(
                f"message 1 must be exactly {DH_LENGTH} bytes, got {len(message)}",
                details={"size": len(message)},
            )
        self._remote_ephemeral = message
        self._symmetric.mix_hash(message)
        self._symmetric.decrypt_and_hash(b"")
        # <- e, ee, s, es
        self._ephemeral_private = generate_private_key(self._rng)
        ephemeral = public_key_of(self._ephemeral_private)
        self._symmetric.mix_hash(ephemeral)
        self._symmetric.mix_key(dh(self._ephemeral_private, self._remote_ephemeral))
        static = self._symmetric.encrypt_and_hash(self._credentials.static_public_key)
        self._symmetric.mix_key(dh(self._credentials.static_private_key, self._remote_ephemeral))
        payload = self._symmetric.encrypt_and_hash(self._credentials.payload)
        self._outbox.append(encode_handshake_message(ephemeral + static + payload))

    def _read_message_2_write_message_3(self, data: bytes) -> None:
        message = decode_handshake_message(data)
        if len(message) < DH_LENGTH + _STATIC_LENGTH + TAG_LENGTH:
            raise HandshakeError("message 2 is too short", details={"size": len(message)})
        self._remote_ephemeral = message[:DH_LENGTH]
        self._symmetric.mix_hash(self._remote_ephemeral)
        self._symmetric.mix_key(dh(self._ephemeral_private, self._remote_ephemeral))
        self._remote_static = self._symmetric.decrypt_and_hash(
            message[DH_LENGTH : DH_LENGTH + _STATIC_LENGTH]
        )
        self._symmetric.mix_key(dh(self._ephemeral_private, self._remote_static))
        payload = self._symmetric.decrypt_and_hash(message[DH_LENGTH + _STATIC_LENGTH :])
        self._accept_peer(_verify_payload(payload, self._remote_static))
        # -> s, se
        static = self._symmetric.encrypt_and_hash(self._credentials.static_public_key)
        self._symmetric.mix_key(dh(self._credentials.static_private_key, self._remote_ephemeral))
        payload_out = self._symmetric.encrypt_and_hash(self._credentials.payload)
        self._outbox.append(encode_handshake_message(static + payload_out))
        self._finish()

    def _read_message_3(self, data: bytes) -> None:
        message = decode_handshake_message(data)
        if len(message) < _STATIC_LENGTH + TAG_LENGTH:
            raise HandshakeError("message 3 is too short", details={"size": len(message)})
        self._remote_static = self._symmetric.decrypt_and_hash(message[:_STATIC_LENGTH])
        self._symmetric.mix_key(dh(self._ephemeral_private, self._remote_static))
        payload = self._symmetric.decrypt_and_hash(message[_STATIC_LENGTH:])
        self._accept_peer(_verify_payload(payload, self._remote_static))
        self._finish()

    def _accept_peer(self, peer: PeerIdentity) -> None:
        expected = self._expected_user_id
        if expected is not None and peer.user_id != expected:
            raise PeerIdentityMismatchError(
                f"expected user {expected}, but the peer is {peer.user_id}",
                details={"expected": expected, "actual": peer.user_id},
            )
        device = self._expected_device_key
        if device is not None and not hmac.compare_digest(peer.device_key, device):
            raise PeerIdentityMismatchError(
                f"the peer is user {peer.user_id} but not the device expected",
                details={"expected_device_key": device.hex(), "actual": peer.device_key.hex()},
            )
        self._peer = peer

    def _finish(self) -> None:
        first, second = self._symmetric.split()
        if self.role is Role.INITIATOR:
            self._keys = TransportKeys(send=first, receive=second)
        else:
            self._keys = TransportKeys(send=second, receive=first)
        self._ephemeral_private = b""
        if self._peer is None:  # pragma: no cover - both paths set it first
            raise AssertionError("handshake finished without a verified peer")
        self._events.append(
            HandshakeCompleted(peer=self._peer, handshake_hash=self._symmetric.handshake_hash)
        )


_ACTIONS: Final[dict[HandshakeState, Callable[[NoiseHandshake, bytes], None]]] = {
    HandshakeState.INITIATOR_START: NoiseHandshake._write_message_1,
    HandshakeState.RESPONDER_START: NoiseHandshake._read_message_1_write_message_2,
    HandshakeState.AWAITING_MESSAGE_2: NoiseHandshake._read_message_2_write_message_3,
    HandshakeState.AWAITING_MESSAGE_3: NoiseHandshake._read_message_3,
}
"""What each state does with its one valid input (see ``_TRANSITIONS``)."""


def _canonical_user_id(user_id: str) -> str:
    try:
        return user_id_from_public_key(public_key_from_user_id(user_id))
    except OmegaError as exc:
        raise ConfigurationError(f"expected_user_id is not a valid user id: {exc}") from exc
