"""The Double Ratchet between two devices (Signal's Double Ratchet specification, rev. 1).

A :class:`RatchetSession` is the state of one device's session with one
remote device. It is created by X3DH (:mod:`omega.crypto.x3dh`), then
:meth:`RatchetSession.encrypt` and :meth:`RatchetSession.decrypt` turn
plaintexts into encoded ``RatchetMessage`` bytes and back. It performs no
I/O; the only randomness it needs (a new ratchet key pair) comes from the
``rng`` passed to :meth:`~RatchetSession.encrypt`.

Functions (spec section 5.2; labels and lengths in docs/crypto.md and
:mod:`omega.crypto._kdf`): KDF_RK is HKDF-SHA256 salted with the root key,
KDF_CK is HMAC-SHA256 with 0x01 (message key) and 0x02 (next chain key), and
each message key expands by HKDF into an AES-256-GCM key and nonce. The
AEAD's associated data is :func:`associated_data` then the header bytes.

New ratchet key pairs are generated when the next message is *sent*, not
when a new remote key is received (section 6.5, "Deferring new ratchet key
generation"), so :meth:`~RatchetSession.decrypt` needs no randomness.

Bounds: one message may make the receiver skip at most ``max_skip``
message keys in each of the two chains it touches (section 3.5,
SkipMessageKeys), and a session keeps at most ``max_skipped_keys`` skipped
keys, evicting the oldest. A message whose key is spent or evicted raises
:class:`~omega.errors.DuplicateMessageError`. A decrypt works on a copy of
the state and commits only after the AEAD accepted the message: a failure
of any kind leaves the session exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from omega.crypto import _symmetric
from omega.crypto._kdf import KEY_SIZE, TAG_SIZE, check_x25519_public_key
from omega.crypto._session_state import (
    MAX_PREVIOUS_RATCHET_KEYS,
    SESSION_STATE_VERSION,
    PendingPrekey,
    SessionState,
    state_from_message,
    state_to_message,
)
from omega.crypto._symmetric import generate_x25519, x25519
from omega.crypto.identity import user_id_from_public_key
from omega.crypto.random import RandomSource, system_random
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecryptionError,
    DuplicateMessageError,
    LocalProtocolError,
    MessageDecodeError,
    RemoteProtocolError,
    TooManySkippedMessagesError,
)
from omega.protocol import (
    RatchetHeader,
    RatchetMessage,
    RatchetSessionState,
    decode_message,
    encode_message,
)

__all__ = [
    "HEADER_VERSION",
    "MAX_HEADER_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "MAX_PREVIOUS_RATCHET_KEYS",
    "MAX_SESSION_STATE_SIZE",
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "SESSION_STATE_VERSION",
    "PendingPrekey",
    "RatchetSession",
    "SessionConfig",
    "associated_data",
]

MAX_SKIP = 1000
"""Default bound on message keys one message may skip in one receiving chain."""

MAX_SKIPPED_KEYS = 2000
"""Default bound on skipped message keys a session stores; the oldest are evicted."""

MAX_PLAINTEXT_SIZE = 256 * 1024
"""Default largest plaintext a session encrypts or accepts, in bytes."""

HEADER_VERSION = 1
"""Version carried in (and authenticated with) every ``RatchetHeader``."""

MAX_HEADER_SIZE = 64
"""Largest encoded ``RatchetHeader`` accepted, in bytes (a valid one is at most 48)."""

MAX_SESSION_STATE_SIZE = 4 * 1024 * 1024
"""Largest serialized session :meth:`RatchetSession.from_bytes` reads (fits a key store value)."""

_LIMIT = 50_000
_MAX_PLAINTEXT_LIMIT = 1024 * 1024  # a frame's size
_UINT32_MAX = (1 << 32) - 1
# RatchetMessage framing: two tags and two length varints, generously.
_MESSAGE_FRAMING = 16


def _check_limit(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an int in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Per-session bounds of a :class:`RatchetSession`."""

    max_skip: int = MAX_SKIP
    """Most message keys one message may skip per receiving chain, 0..50000."""
    max_skipped_keys: int = MAX_SKIPPED_KEYS
    """Most skipped message keys kept per session, max_skip..50000; oldest evicted."""
    max_plaintext_size: int = MAX_PLAINTEXT_SIZE
    """Largest plaintext encrypted or accepted, 1..1 MiB."""

    def __post_init__(self) -> None:
        _check_limit("max_skip", self.max_skip, 0, _LIMIT)
        _check_limit("max_skipped_keys", self.max_skipped_keys, self.max_skip, _LIMIT)
        _check_limit("max_plaintext_size", self.max_plaintext_size, 1, _MAX_PLAINTEXT_LIMIT)

    @property
    def max_message_size(self) -> int:
        """Largest encoded ``RatchetMessage`` accepted: plaintext bound plus overhead."""
        return self.max_plaintext_size + TAG_SIZE + MAX_HEADER_SIZE + _MESSAGE_FRAMING


def associated_data(
    initiator_device_key: bytes,
    responder_device_key: bytes,
    initiator_identity_key: bytes,
    responder_identity_key: bytes,
) -> bytes:
    """The session's AD: both device keys (initiator first), then both identity keys.

    128 bytes of raw Ed25519 public keys, the same on both sides; every
    ratchet message's AEAD authenticates it before the header bytes.
    """
    return (
        initiator_device_key
        + responder_device_key
        + initiator_identity_key
        + responder_identity_key
    )


class RatchetSession:
    """One device's Double Ratchet session with one remote device.

    Build it with :mod:`omega.crypto.x3dh` (or the low-level
    :meth:`for_initiator` and :meth:`for_responder`), or load it with
    :meth:`from_bytes`. Not thread-safe; persist :meth:`to_bytes` after every
    successful :meth:`encrypt` and :meth:`decrypt`.
    """

    __slots__ = ("_associated_data", "_config", "_max_message_size", "_state")

    def __init__(self, state: SessionState, config: SessionConfig) -> None:
        self._state = state
        self._config = config
        self._max_message_size = config.max_message_size  # a property: read once, not per message
        if state.initiator:
            order = (state.local_device_key, state.remote_device_key)
            identities = (state.local_identity_key, state.remote_identity_key)
        else:
            order = (state.remote_device_key, state.local_device_key)
            identities = (state.remote_identity_key, state.local_identity_key)
        self._associated_data = associated_data(*order, *identities)

    @classmethod
    def for_initiator(
        cls,
        *,
        shared_secret: bytes,
        remote_ratchet_key: bytes,
        local_identity_key: bytes,
        local_device_key: bytes,
        remote_identity_key: bytes,
        remote_device_key: bytes,
        base_key: bytes,
        config: SessionConfig | None = None,
        rng: RandomSource = system_random,
        pending_prekey: PendingPrekey | None = None,
    ) -> RatchetSession:
        """RatchetInitAlice (spec section 3.3): the side that sends first.

        ``remote_ratchet_key`` is the responder's signed prekey; one key pair
        is drawn from ``rng``. ``pending_prekey`` is what X3DH repeats in
        every message until the responder answers (see :attr:`pending_prekey`).
        Raises :class:`~omega.errors.InvalidKeyError` for an unusable remote key.
        """
        _check_secret(shared_secret)
        private, public = generate_x25519(rng)
        root_key, chain_key = _symmetric.kdf_rk(shared_secret, x25519(private, remote_ratchet_key))
        state = SessionState(
            initiator=True,
            local_identity_key=local_identity_key,
            local_device_key=local_device_key,
            remote_identity_key=remote_identity_key,
            remote_device_key=remote_device_key,
            base_key=base_key,
            root_key=root_key,
            sending_private=private,
            sending_public=public,
            sending_chain_key=chain_key,
            receiving_ratchet_key=remote_ratchet_key,
            pending=pending_prekey,
        )
        return cls(state, config or SessionConfig())

    @classmethod
    def for_responder(
        cls,
        *,
        shared_secret: bytes,
        ratchet_private_key: bytes,
        local_identity_key: bytes,
        local_device_key: bytes,
        remote_identity_key: bytes,
        remote_device_key: bytes,
        base_key: bytes,
        config: SessionConfig | None = None,
    ) -> RatchetSession:
        """RatchetInitBob (spec section 3.3): ``ratchet_private_key`` is the signed prekey's.

        The session can decrypt at once; it encrypts after its first decrypt.
        """
        _check_secret(shared_secret)
        state = SessionState(
            initiator=False,
            local_identity_key=local_identity_key,
            local_device_key=local_device_key,
            remote_identity_key=remote_identity_key,
            remote_device_key=remote_device_key,
            base_key=base_key,
            root_key=shared_secret,
            sending_private=ratchet_private_key,
        )
        return cls(state, config or SessionConfig())

    @property
    def config(self) -> SessionConfig:
        """The session's bounds."""
        return self._config

    @property
    def is_initiator(self) -> bool:
        """True on the side that started the session with X3DH."""
        return self._state.initiator

    @property
    def remote_device_key(self) -> bytes:
        """The remote device's Ed25519 public key."""
        return self._state.remote_device_key

    @property
    def remote_identity_key(self) -> bytes:
        """The remote user's Ed25519 identity key."""
        return self._state.remote_identity_key

    @property
    def remote_user_id(self) -> str:
        """The remote user's id."""
        return user_id_from_public_key(self._state.remote_identity_key)

    @property
    def base_key(self) -> bytes:
        """The initiator's X3DH ephemeral key that created this session."""
        return self._state.base_key

    @property
    def pending_prekey(self) -> PendingPrekey | None:
        """Set on an initiator until it has decrypted a message from the responder.

        While it is set, :func:`omega.crypto.x3dh.encrypt_message` wraps every
        outgoing message in a ``PrekeyMessage`` with these values, so the
        responder can open any of them first. ``None`` on responders.
        """
        return self._state.pending

    @property
    def associated_data(self) -> bytes:
        """The 128-byte AD this session authenticates (see :func:`associated_data`)."""
        return self._associated_data

    @property
    def skipped_message_key_count(self) -> int:
        """How many skipped message keys the session holds."""
        return len(self._state.skipped)

    def encrypt(self, plaintext: bytes, *, rng: RandomSource = system_random) -> bytes:
        """Encrypt ``plaintext`` into an encoded ``RatchetMessage`` (spec section 3.4).

        Draws a new ratchet key pair from ``rng`` when a DH ratchet step is
        due. Raises :class:`~omega.errors.ConfigurationError` for a plaintext
        that is not bytes or exceeds ``max_plaintext_size``, and
        :class:`~omega.errors.LocalProtocolError` when the session cannot
        send (message numbers exhausted).
        """
        if not isinstance(plaintext, bytes):
            raise ConfigurationError(f"plaintext must be bytes, not {type(plaintext).__name__}")
        if len(plaintext) > self._config.max_plaintext_size:
            raise ConfigurationError(
                f"plaintext of {len(plaintext)} bytes exceeds {self._config.max_plaintext_size}",
                details={"size": len(plaintext), "limit": self._config.max_plaintext_size},
            )
        state = self._state
        root_key, chain_key = state.root_key, state.sending_chain_key
        private, public = state.sending_private, state.sending_public
        if chain_key is None or public is None:
            if state.receiving_ratchet_key is None:
                raise LocalProtocolError("the session has received no ratchet key to send to")
            private, public = generate_x25519(rng)
            root_key, chain_key = _symmetric.kdf_rk(
                root_key, x25519(private, state.receiving_ratchet_key)
            )
        number = state.sending_number
        if number >= _UINT32_MAX:
            raise LocalProtocolError("the sending chain is exhausted; start a new session")
        # The header {HEADER_VERSION, public, PN, N} and the sealed RatchetMessage, encoded.
        next_chain_key, message = _symmetric.seal_ratchet_message(
            chain_key,
            plaintext,
            self._associated_data,
            HEADER_VERSION,
            public,
            state.previous_sending_length,
            number,
        )
        # Commit only now that nothing can fail any more.
        state.root_key, state.sending_chain_key = root_key, next_chain_key
        state.sending_private, state.sending_public = private, public
        state.sending_number = number + 1
        return message

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt an encoded ``RatchetMessage`` (spec section 3.5) and return the plaintext.

        On any failure the session is left exactly as it was. Raises
        :class:`~omega.errors.MessageDecodeError` for malformed or oversized
        bytes or an unknown header version,
        :class:`~omega.errors.InvalidKeyError` for an unusable ratchet key,
        :class:`~omega.errors.DecryptionError` when authentication fails,
        :class:`~omega.errors.DuplicateMessageError` for a message whose key
        is spent (a replay) or was evicted,
        :class:`~omega.errors.TooManySkippedMessagesError` when the message
        would skip more than ``max_skip`` keys in a chain, and
        :class:`~omega.errors.RemoteProtocolError` when the peer changed its
        ratchet key twice without hearing from us.
        """
        state = self._state
        key, chain_key = state.receiving_ratchet_key, state.receiving_chain_key
        if (
            key is not None
            and chain_key is not None
            and (not state.skipped or (key, state.receiving_number) not in state.skipped)
        ):
            # The next message of the current chain, in the canonical encoding, opened in one
            # compiled call; anything else (or the pure build) declines to the strict path.
            opened = _symmetric.open_ratchet_message(
                chain_key,
                data,
                self._associated_data,
                key,
                state.receiving_number,
                self._max_message_size,
                self._config.max_plaintext_size,
            )
            if opened is not None:
                state.receiving_chain_key, plaintext = opened
                state.receiving_number += 1
                state.pending = None
                return plaintext
        message = decode_message(RatchetMessage, data, max_size=self._max_message_size)
        header = decode_message(RatchetHeader, message.header, max_size=MAX_HEADER_SIZE)
        if header.version != HEADER_VERSION:
            raise MessageDecodeError(
                f"unsupported ratchet header version {header.version}",
                details={"version": header.version},
            )
        if header.ratchet_key != self._state.receiving_ratchet_key:  # that one was checked
            check_x25519_public_key(header.ratchet_key, "ratchet key")
        if len(message.ciphertext) < TAG_SIZE:
            raise DecryptionError("ratchet message ciphertext is shorter than its tag")
        if len(message.ciphertext) - TAG_SIZE > self._config.max_plaintext_size:
            raise MessageDecodeError("ratchet message plaintext would exceed the size limit")
        associated = self._associated_data + message.header
        if (
            header.message_number == state.receiving_number
            and header.ratchet_key == state.receiving_ratchet_key
            and state.receiving_chain_key is not None
            and (header.ratchet_key, header.message_number) not in state.skipped
        ):
            # The next message of the current chain, the common case: nothing to skip, no
            # stored key can match (they are all older), so no copy of the state is needed.
            state.receiving_chain_key, plaintext = _symmetric.open_step(
                state.receiving_chain_key, message.ciphertext, associated
            )
            state.receiving_number += 1
            state.pending = None
            return plaintext
        work = state.copy()
        plaintext = self._decrypt(work, header, associated, message)
        work.pending = None  # the responder has answered: no more prekey messages
        self._state = work
        return plaintext

    def _decrypt(
        self,
        state: SessionState,
        header: RatchetHeader,
        associated: bytes,
        message: RatchetMessage,
    ) -> bytes:
        skipped_key = state.skipped.pop((header.ratchet_key, header.message_number), None)
        if skipped_key is not None:
            return _symmetric.aead_decrypt(skipped_key, message.ciphertext, associated)
        if header.ratchet_key != state.receiving_ratchet_key:
            if header.ratchet_key in state.previous_receiving_keys:
                raise _duplicate(header)
            self._skip(state, header.previous_chain_length)
            _receive_ratchet_step(state, header.ratchet_key)
        if header.message_number < state.receiving_number:
            raise _duplicate(header)
        self._skip(state, header.message_number)
        if state.receiving_chain_key is None:  # the initiator's DHr before any reply
            raise RemoteProtocolError("no receiving chain exists for this ratchet key")
        state.receiving_chain_key, plaintext = _symmetric.open_step(
            state.receiving_chain_key, message.ciphertext, associated
        )
        state.receiving_number += 1
        while len(state.skipped) > self._config.max_skipped_keys:
            del state.skipped[next(iter(state.skipped))]
        return plaintext

    def _skip(self, state: SessionState, until: int) -> None:
        """SkipMessageKeys (spec section 3.5), bounded by ``max_skip``."""
        if until > state.receiving_number + self._config.max_skip:
            raise TooManySkippedMessagesError(
                f"message would skip {until - state.receiving_number} message keys, "
                f"more than the limit of {self._config.max_skip}",
                details={"skip": until - state.receiving_number, "limit": self._config.max_skip},
            )
        if state.receiving_chain_key is None or state.receiving_ratchet_key is None:
            return
        chain_key = state.receiving_chain_key
        while state.receiving_number < until:
            chain_key, message_key = _symmetric.kdf_ck(chain_key)
            state.skipped[(state.receiving_ratchet_key, state.receiving_number)] = message_key
            state.receiving_number += 1
        state.receiving_chain_key = chain_key

    def to_bytes(self) -> bytes:
        """Serialize to a versioned ``RatchetSessionState`` (secret: store it encrypted)."""
        return encode_message(state_to_message(self._state))

    @classmethod
    def from_bytes(cls, data: bytes, *, config: SessionConfig | None = None) -> RatchetSession:
        """Load a session serialized by :meth:`to_bytes`; ``from_bytes(b).to_bytes() == b``.

        Anything malformed, inconsistent or not in the exact encoding
        :meth:`to_bytes` writes raises :class:`~omega.errors.MessageDecodeError`.
        If the state holds more skipped keys than ``config`` allows, the
        oldest are evicted (and the bytes then differ). A version 1 state
        (written before pending prekey records existed) loads as a session
        without one and is written back as version 2.
        """
        config = config or SessionConfig()
        message = decode_message(RatchetSessionState, data, max_size=MAX_SESSION_STATE_SIZE)
        try:
            state = state_from_message(message)
        except CryptoError as exc:
            raise MessageDecodeError(f"invalid session state: {exc.message}") from exc
        if encode_message(state_to_message(state, message.version)) != bytes(data):
            raise MessageDecodeError("session state is not in canonical encoding")
        while len(state.skipped) > config.max_skipped_keys:
            del state.skipped[next(iter(state.skipped))]
        return cls(state, config)

    def __repr__(self) -> str:
        role = "initiator" if self._state.initiator else "responder"
        return f"RatchetSession({role}, remote_device_key={self._state.remote_device_key.hex()!r})"


def _check_secret(shared_secret: bytes) -> None:
    if not isinstance(shared_secret, bytes) or len(shared_secret) != KEY_SIZE:
        raise ConfigurationError(f"the X3DH shared secret is {KEY_SIZE} bytes")


def _duplicate(header: RatchetHeader) -> DuplicateMessageError:
    return DuplicateMessageError(
        f"ratchet message {header.message_number} was decrypted already or its key was evicted",
        details={"message_number": header.message_number},
    )


def _receive_ratchet_step(state: SessionState, ratchet_key: bytes) -> None:
    """The receiving half of DHRatchet (spec section 3.5); sending is deferred (6.5)."""
    if state.sending_private is None:
        raise RemoteProtocolError("the peer changed its ratchet key twice without hearing from us")
    if state.receiving_ratchet_key is not None:
        state.remember_receiving_key(state.receiving_ratchet_key)
    state.previous_sending_length = state.sending_number
    state.sending_number = 0
    state.receiving_number = 0
    state.receiving_ratchet_key = ratchet_key
    state.root_key, state.receiving_chain_key = _symmetric.kdf_rk(
        state.root_key, x25519(state.sending_private, ratchet_key)
    )
    state.sending_private = state.sending_public = state.sending_chain_key = None
