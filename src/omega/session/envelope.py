"""Signed message envelopes: what one device sends another (docs/client-protocol.md).

Every user message, receipt and typing notification travels as one
``Message`` envelope per recipient device. Its ``encrypted_content`` is the
pairwise-encrypted ``MessageContent`` (:class:`~omega.protocol.EncryptionKind`
says how), and its ``signature`` is the sending device's Ed25519 signature
over :func:`signature_input`::

    b"omega/message/v1" || lp(message_id) || lp(sender_id) || lp(recipient_id)
        || u32(type) || i64(timestamp) || u32(encryption)
        || lp(sender_device_key) || lp(recipient_device_key) || lp(encrypted_content)

where ``lp(x)`` is ``u32(len(x)) || x``, strings are UTF-8 and integers are
big-endian (``i64`` two's complement). The signature lets a recipient
refuse a forged envelope before spending any work on decryption and binds
the routing fields (message id, timestamp, recipient) that the ratchet's AEAD
does not cover.

Metadata stays inside the ciphertext: Omega clients send the clear-text
``reply_to``, ``ttl_days``, ``ttl_seconds`` and ``mentions`` fields unset
(their values travel in ``MessageContent``) and always send ``type`` as
``TEXT``; :func:`verify_envelope` refuses envelopes that set them.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from omega.crypto._ed25519 import verify_signature
from omega.crypto.account import LocalDevice
from omega.crypto.identity import public_key_from_user_id
from omega.errors import (
    ConfigurationError,
    InvalidEnvelopeError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidUserIdError,
)
from omega.protocol import EncryptionKind, Message, MessageType

__all__ = [
    "ENVELOPE_SIGNATURE_CONTEXT",
    "MAX_CIPHERTEXT_SIZE",
    "EnvelopeInfo",
    "seal_envelope",
    "signature_input",
    "verify_envelope",
]

ENVELOPE_SIGNATURE_CONTEXT = b"omega/message/v1"
"""Domain separation prefix of the envelope signature."""

MAX_CIPHERTEXT_SIZE = 320 * 1024
"""Largest ``encrypted_content`` accepted, in bytes (256 KiB of content plus overhead)."""

_SIGNATURE_SIZE = 64
_KEY_SIZE = 32
_MAX_ID_LENGTH = 256
_MIN_INT64, _MAX_INT64 = -(1 << 63), (1 << 63) - 1
_KNOWN_ENCRYPTIONS = frozenset(int(kind) for kind in EncryptionKind)


def _length_prefixed(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def signature_input(message: Message) -> bytes:
    """The exact bytes the sending device signs for ``message`` (module docstring)."""
    return b"".join(
        (
            ENVELOPE_SIGNATURE_CONTEXT,
            _length_prefixed(message.message_id.encode("utf-8")),
            _length_prefixed(message.sender_id.encode("utf-8")),
            _length_prefixed(message.recipient_id.encode("utf-8")),
            struct.pack(">I", int(message.type)),
            struct.pack(">q", message.timestamp),
            struct.pack(">I", int(message.encryption)),
            _length_prefixed(message.sender_device_key),
            _length_prefixed(message.recipient_device_key),
            _length_prefixed(message.encrypted_content),
        )
    )


def _id_ok(value: str) -> bool:
    if not 0 < len(value) <= _MAX_ID_LENGTH:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only possible in a Message built locally
        return False
    return True


def _problem(message: Message) -> tuple[str, str] | None:
    """The reason code and explanation of the first malformed field of ``message``, or None.

    Everything but the recipient device and the signature: the checks that
    :func:`seal_envelope` and :func:`verify_envelope` share.
    """
    if not _id_ok(message.message_id):
        return "bad_message_id", f"message id must be 1..{_MAX_ID_LENGTH} characters"
    try:
        public_key_from_user_id(message.sender_id)
    except InvalidUserIdError as exc:
        return "bad_sender_id", f"bad sender id: {exc.message}"
    if not _id_ok(message.recipient_id):
        return "bad_recipient_id", f"recipient id must be 1..{_MAX_ID_LENGTH} characters"
    if not _MIN_INT64 <= message.timestamp <= _MAX_INT64:
        return "bad_timestamp", "timestamp must be a signed 64-bit integer"
    if len(message.sender_device_key) != _KEY_SIZE:
        return "bad_device_key", f"sender device key must be {_KEY_SIZE} bytes"
    if (
        message.reply_to is not None
        or message.ttl_days is not None
        or message.ttl_seconds is not None
        or message.mentions
        or message.type != MessageType.TEXT
    ):
        return "cleartext_metadata", "clear-text metadata fields must be unset"
    if not message.encrypted_content:
        return "no_content", "no encrypted content"
    if len(message.encrypted_content) > MAX_CIPHERTEXT_SIZE:
        return "too_large", f"encrypted content exceeds {MAX_CIPHERTEXT_SIZE} bytes"
    # betterproto2 turns an unknown enum value into a pseudo-member instead of
    # raising, so EncryptionKind(value) would accept anything: compare numbers.
    if int(message.encryption) not in _KNOWN_ENCRYPTIONS:
        return "unknown_encryption", f"unknown encryption kind {int(message.encryption)}"
    return None


def seal_envelope(
    device: LocalDevice,
    *,
    message_id: str,
    sender_id: str,
    recipient_id: str,
    recipient_device_key: bytes,
    timestamp: int,
    encryption: EncryptionKind,
    encrypted_content: bytes,
) -> Message:
    """Build and sign the envelope of ``encrypted_content`` for one recipient device.

    Raises :class:`~omega.errors.ConfigurationError` for anything
    :func:`verify_envelope` would refuse: a device key of the wrong size, a
    malformed id, a timestamp outside int64, an unknown encryption kind, or
    content that is empty or larger than :data:`MAX_CIPHERTEXT_SIZE`.
    """
    if len(recipient_device_key) != _KEY_SIZE:
        raise ConfigurationError(f"a device key is {_KEY_SIZE} bytes")
    message = Message(
        message_id=message_id,
        sender_id=sender_id,
        recipient_id=recipient_id,
        type=MessageType.TEXT,
        timestamp=timestamp,
        encrypted_content=encrypted_content,
        sender_device_key=device.device_key,
        recipient_device_key=recipient_device_key,
        encryption=encryption,
    )
    problem = _problem(message)
    if problem is not None:
        raise ConfigurationError(problem[1], details={"reason": problem[0]})
    message.signature = device.key_pair.sign(signature_input(message))
    return message


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeInfo:
    """The checked routing fields of a received envelope."""

    message_id: str
    """The message id the sender chose."""
    sender_id: str
    """The user id the sender claims (checked against its device by the caller)."""
    recipient_id: str
    """The conversation: our user id, the contact's user id (a copy of our own
    message sent from another of our devices), or a group id."""
    sender_device_key: bytes
    """The sending device, whose signature verified."""
    timestamp: int
    """The sender's clock when it sent, Unix milliseconds."""
    encryption: EncryptionKind
    """How ``encrypted_content`` is encrypted."""


def _refuse(reason: str, explanation: str, message: Message) -> InvalidEnvelopeError:
    return InvalidEnvelopeError(
        f"refused envelope {message.message_id[:64]!r}: {explanation}",
        details={"reason": reason},
    )


def verify_envelope(message: Message, *, local_device_key: bytes) -> EnvelopeInfo:
    """Check an envelope addressed to ``local_device_key`` and its signature.

    Checks, in order: the recipient device is us; ids, timestamp and the
    sender device key are well formed; no clear-text metadata field is set;
    the ciphertext is not empty and within :data:`MAX_CIPHERTEXT_SIZE`; the
    encryption kind is known; the signature verifies under
    ``sender_device_key``. Raises :class:`~omega.errors.InvalidEnvelopeError`
    whose ``details["reason"]`` is a stable code naming the first failed check:
    ``wrong_device``, ``bad_message_id``, ``bad_sender_id``,
    ``bad_recipient_id``, ``bad_timestamp``, ``bad_device_key``,
    ``cleartext_metadata``, ``no_content``, ``too_large``,
    ``unknown_encryption``, ``bad_signature_size`` or ``bad_signature`` (an
    :class:`~omega.errors.InvalidSignatureError` or
    :class:`~omega.errors.InvalidKeyError` is its cause). Whether the sending
    device belongs to ``sender_id`` is the caller's check (the session or the
    prekey message's certificate proves it).
    """
    if not hmac.compare_digest(message.recipient_device_key, local_device_key):
        raise _refuse("wrong_device", "addressed to another device", message)
    problem = _problem(message)
    if problem is not None:
        raise _refuse(*problem, message)
    if len(message.signature) != _SIGNATURE_SIZE:
        raise _refuse("bad_signature_size", f"signature must be {_SIGNATURE_SIZE} bytes", message)
    try:
        verify_signature(message.sender_device_key, signature_input(message), message.signature)
    except (InvalidKeyError, InvalidSignatureError) as exc:
        raise _refuse("bad_signature", "the signature does not verify", message) from exc
    return EnvelopeInfo(
        message_id=message.message_id,
        sender_id=message.sender_id.lower(),
        recipient_id=message.recipient_id,
        sender_device_key=message.sender_device_key,
        timestamp=message.timestamp,
        encryption=EncryptionKind(int(message.encryption)),
    )
