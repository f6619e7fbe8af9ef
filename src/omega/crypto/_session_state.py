"""The variables of a Double Ratchet session and their versioned serialization.

Private to :mod:`omega.crypto.double_ratchet`, which re-exports the public
names. ``RatchetSessionState`` (messages.proto) is written in version 2;
version 1 (before the pending-initiator record existed) is still read, as a
session with no pending prekey message, and re-serialized as version 2.
docs/crypto.md ("State serialization") describes every field.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from omega.crypto._ed25519 import check_public_key
from omega.crypto._kdf import KEY_SIZE, check_x25519_public_key
from omega.crypto._symmetric import x25519_public
from omega.crypto.devices import MAX_CERTIFICATE_SIZE
from omega.errors import MessageDecodeError
from omega.protocol import (
    DeviceCertificate,
    PendingPrekeyState,
    RatchetSessionState,
    SignedDeviceCertificate,
    decode_message,
)

__all__ = [
    "MAX_PREVIOUS_RATCHET_KEYS",
    "SESSION_STATE_VERSION",
    "PendingPrekey",
    "SessionState",
    "state_from_message",
    "state_to_message",
]

MAX_PREVIOUS_RATCHET_KEYS = 16
"""Former remote ratchet keys remembered to recognise replays from older chains."""

SESSION_STATE_VERSION = 2
"""Version of the ``RatchetSessionState`` serialization written (1 is still read)."""

_READABLE_VERSIONS = (1, SESSION_STATE_VERSION)
_LIMIT = 50_000
_UINT32_MAX = (1 << 32) - 1
# A serialized skipped key: ratchet key (32) || message number (4, BE) || message key (32).
_SKIPPED_RECORD_SIZE = 68

_PUBLIC_CACHE_SIZE = 1024
# SHA-256(private ratchet key) -> its X25519 public key. A session state is loaded
# several times per message and its public ratchet key is not serialized: this saves
# a scalar multiplication per load. Keyed by a digest, never by the private key, so
# the cache keeps no secret alive after the ratchet has moved on (forward secrecy).
_public_keys: OrderedDict[bytes, bytes] = OrderedDict()


def _ratchet_public(private_key: bytes) -> bytes:
    """``x25519_public(private_key)``, remembered for the last few keys seen."""
    tag = hashlib.sha256(private_key).digest()
    public = _public_keys.get(tag)
    if public is None:
        public = x25519_public(private_key)
        _remember_public(tag, public)
    return public


def _remember_public(tag: bytes, public: bytes) -> None:
    if len(_public_keys) >= _PUBLIC_CACHE_SIZE:
        with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
            _public_keys.popitem(last=False)  # drop the oldest (atomic, unlike iterating)
    _public_keys[tag] = public


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingPrekey:
    """What an initiator repeats in every ``PrekeyMessage`` until the responder answers.

    X3DH sets it on a new initiator session; the first successful decrypt
    clears it. The base key is the session's :attr:`RatchetSession.base_key`.
    """

    signed_prekey_id: int
    """The responder's signed prekey the session was started with."""
    one_time_prekey_id: int | None
    """The responder's one-time prekey the session was started with, if any."""
    device_certificate: SignedDeviceCertificate
    """The initiator device's certificate (never mutate it)."""


@dataclass(slots=True, kw_only=True)
class SessionState:
    """The variables of spec section 3.2, with Omega's identities."""

    initiator: bool
    local_identity_key: bytes
    local_device_key: bytes
    remote_identity_key: bytes
    remote_device_key: bytes
    base_key: bytes
    root_key: bytes
    sending_private: bytes | None = None
    sending_public: bytes | None = None
    sending_chain_key: bytes | None = None
    receiving_ratchet_key: bytes | None = None
    receiving_chain_key: bytes | None = None
    sending_number: int = 0
    receiving_number: int = 0
    previous_sending_length: int = 0
    skipped: dict[tuple[bytes, int], bytes] = field(default_factory=dict)
    previous_receiving_keys: list[bytes] = field(default_factory=list)
    pending: PendingPrekey | None = None

    def copy(self) -> SessionState:
        """A copy whose containers can change without touching this state."""
        # Spelled out: dataclasses.replace introspects the fields on every call, and a
        # decrypt that is not the next message of the current chain copies the state.
        return SessionState(
            initiator=self.initiator,
            local_identity_key=self.local_identity_key,
            local_device_key=self.local_device_key,
            remote_identity_key=self.remote_identity_key,
            remote_device_key=self.remote_device_key,
            base_key=self.base_key,
            root_key=self.root_key,
            sending_private=self.sending_private,
            sending_public=self.sending_public,
            sending_chain_key=self.sending_chain_key,
            receiving_ratchet_key=self.receiving_ratchet_key,
            receiving_chain_key=self.receiving_chain_key,
            sending_number=self.sending_number,
            receiving_number=self.receiving_number,
            previous_sending_length=self.previous_sending_length,
            skipped=dict(self.skipped),
            previous_receiving_keys=list(self.previous_receiving_keys),
            pending=self.pending,
        )

    def remember_receiving_key(self, ratchet_key: bytes) -> None:
        """Keep a former remote ratchet key, the last MAX_PREVIOUS_RATCHET_KEYS only."""
        self.previous_receiving_keys.append(ratchet_key)
        del self.previous_receiving_keys[:-MAX_PREVIOUS_RATCHET_KEYS]


def state_to_message(
    state: SessionState, version: int = SESSION_STATE_VERSION
) -> RatchetSessionState:
    """The ``RatchetSessionState`` of ``state`` (``version`` 1 only to check old bytes)."""
    pending = state.pending
    private, public = state.sending_private, state.sending_public
    if private is not None and public is not None:  # the next load will want it
        tag = hashlib.sha256(private).digest()
        if tag not in _public_keys:
            _remember_public(tag, public)
    return RatchetSessionState(
        version=version,
        initiator=state.initiator,
        local_identity_key=state.local_identity_key,
        local_device_key=state.local_device_key,
        remote_identity_key=state.remote_identity_key,
        remote_device_key=state.remote_device_key,
        base_key=state.base_key,
        root_key=state.root_key,
        sending_ratchet_private_key=state.sending_private or b"",
        sending_chain_key=state.sending_chain_key or b"",
        receiving_ratchet_key=state.receiving_ratchet_key or b"",
        receiving_chain_key=state.receiving_chain_key or b"",
        sending_message_number=state.sending_number,
        receiving_message_number=state.receiving_number,
        previous_sending_chain_length=state.previous_sending_length,
        skipped_message_keys=b"".join(
            key + number.to_bytes(4, "big") + message_key
            for (key, number), message_key in state.skipped.items()
        ),
        previous_receiving_ratchet_keys=list(state.previous_receiving_keys),
        pending_prekey=None
        if pending is None
        else PendingPrekeyState(
            signed_prekey_id=pending.signed_prekey_id,
            one_time_prekey_id=pending.one_time_prekey_id,
            device_certificate=pending.device_certificate,
        ),
    )


def _secret(value: bytes, what: str) -> bytes:
    if len(value) != KEY_SIZE:
        raise MessageDecodeError(f"session state {what} must be {KEY_SIZE} bytes")
    return value


def _optional_secret(value: bytes, what: str) -> bytes | None:
    return _secret(value, what) if value else None


def _pending_from_message(message: RatchetSessionState) -> PendingPrekey | None:
    pending = message.pending_prekey
    if pending is None:
        return None
    certificate = pending.device_certificate
    if message.version == 1 or not message.initiator or certificate is None:
        raise MessageDecodeError("session state has an invalid pending prekey record")
    body = decode_message(DeviceCertificate, certificate.certificate, max_size=MAX_CERTIFICATE_SIZE)
    if (body.device_key, body.identity_key) != (
        message.local_device_key,
        message.local_identity_key,
    ):
        raise MessageDecodeError("the pending prekey record holds another device's certificate")
    return PendingPrekey(
        signed_prekey_id=pending.signed_prekey_id,
        one_time_prekey_id=pending.one_time_prekey_id,
        device_certificate=certificate,
    )


def state_from_message(message: RatchetSessionState) -> SessionState:
    """Validate every field and invariant of a decoded session state."""
    if message.version not in _READABLE_VERSIONS:
        raise MessageDecodeError(
            f"unsupported session state version {message.version}",
            details={"version": message.version},
        )
    identities = (message.local_identity_key, message.remote_identity_key)
    for public_key in (*identities, message.local_device_key, message.remote_device_key):
        check_public_key(public_key)
    sending_private = _optional_secret(message.sending_ratchet_private_key, "ratchet key")
    sending_chain = _optional_secret(message.sending_chain_key, "sending chain key")
    receiving_chain = _optional_secret(message.receiving_chain_key, "receiving chain key")
    receiving_key = _optional_secret(message.receiving_ratchet_key, "remote ratchet key")
    if receiving_key is not None:
        check_x25519_public_key(receiving_key)
    if (
        (sending_chain is not None and sending_private is None)
        or (receiving_chain is not None and receiving_key is None)
        or (sending_private is None and receiving_key is None)
        or max(
            message.sending_message_number,
            message.receiving_message_number,
            message.previous_sending_chain_length,
        )
        > _UINT32_MAX + 1
        or len(message.skipped_message_keys) > _LIMIT * _SKIPPED_RECORD_SIZE
        or len(message.previous_receiving_ratchet_keys) > MAX_PREVIOUS_RATCHET_KEYS
    ):
        raise MessageDecodeError("session state is inconsistent")
    records = message.skipped_message_keys
    skipped: dict[tuple[bytes, int], bytes] = {}
    for start in range(0, len(records), _SKIPPED_RECORD_SIZE):
        record = records[start : start + _SKIPPED_RECORD_SIZE]
        key = (check_x25519_public_key(record[:32]), int.from_bytes(record[32:36], "big"))
        if key in skipped or len(record) != _SKIPPED_RECORD_SIZE:
            raise MessageDecodeError("session state holds a malformed or repeated skipped key")
        skipped[key] = record[36:]
    for previous in message.previous_receiving_ratchet_keys:
        check_x25519_public_key(previous)
    return SessionState(
        initiator=message.initiator,
        local_identity_key=message.local_identity_key,
        local_device_key=message.local_device_key,
        remote_identity_key=message.remote_identity_key,
        remote_device_key=message.remote_device_key,
        base_key=check_x25519_public_key(message.base_key, "base key"),
        root_key=_secret(message.root_key, "root key"),
        sending_private=sending_private,
        sending_public=None if sending_private is None else _ratchet_public(sending_private),
        sending_chain_key=sending_chain,
        receiving_ratchet_key=receiving_key,
        receiving_chain_key=receiving_chain,
        sending_number=message.sending_message_number,
        receiving_number=message.receiving_message_number,
        previous_sending_length=message.previous_sending_chain_length,
        skipped=skipped,
        previous_receiving_keys=list(message.previous_receiving_ratchet_keys),
        pending=_pending_from_message(message),
    )
