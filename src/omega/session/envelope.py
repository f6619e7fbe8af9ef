"""Message envelopes: what one device sends another (docs/client-protocol.md).

Every user message, receipt and typing notification travels as one
``Message`` envelope per recipient device. Its ``encrypted_content`` is the
pairwise-encrypted ``MessageContent`` (:class:`~omega.protocol.EncryptionKind`
says how).

Envelopes are **not signed** (docs/crypto.md, "Per-message authentication"):
the ratchet's AEAD already proves to the recipient which device wrote the
content, and a signature would turn every envelope into a transferable proof
of who wrote to whom and when, for any relay or store that keeps it. What the
AEAD does not cover, the clear routing fields the recipient acts on, is bound
instead *inside* the ciphertext: ``MessageContent.message_id``,
``timestamp`` and ``conversation_id`` repeat the envelope's ``message_id``,
``timestamp`` and ``recipient_id``, and :func:`check_binding` refuses an
envelope whose clear fields differ from the authenticated copies. The
sender is authenticated by decryption itself: a ratchet session belongs to
one remote device of one user, and a prekey message carries the sending
device's certificate.

Other metadata stays inside the ciphertext too: Omega clients send the
clear-text ``reply_to``, ``ttl_days``, ``ttl_seconds`` and ``mentions`` fields
unset (their values travel in ``MessageContent``), always send ``type`` as
``TEXT`` and leave ``signature`` empty; :func:`verify_envelope` refuses
envelopes that set metadata and ignores a signature.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass

from omega.crypto.account import LocalDevice
from omega.crypto.identity import public_key_from_user_id
from omega.errors import (
    ConfigurationError,
    InvalidEnvelopeError,
    InvalidUserIdError,
)
from omega.protocol import EncryptionKind, Message, MessageContent, MessageType

__all__ = [
    "MAX_CIPHERTEXT_SIZE",
    "EnvelopeInfo",
    "bind_content",
    "check_binding",
    "seal_envelope",
    "verify_envelope",
]

MAX_CIPHERTEXT_SIZE = 320 * 1024
"""Largest ``encrypted_content`` accepted, in bytes (256 KiB of content plus overhead)."""

_KEY_SIZE = 32
_MAX_ID_LENGTH = 256
_MIN_INT64, _MAX_INT64 = -(1 << 63), (1 << 63) - 1
_KNOWN_ENCRYPTIONS = frozenset(int(kind) for kind in EncryptionKind)


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
    """Build the envelope of ``encrypted_content`` for one recipient device.

    ``encrypted_content`` must encrypt a ``MessageContent`` bound to the same
    ``message_id``, ``timestamp`` and ``recipient_id`` (see :func:`bind_content`).

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
    """The device the envelope claims to come from; decryption proves it."""
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
    """Check the clear fields of an envelope addressed to ``local_device_key``.

    Checks, in order: the recipient device is us; ids, timestamp and the
    sender device key are well formed; no clear-text metadata field is set;
    the ciphertext is not empty and within :data:`MAX_CIPHERTEXT_SIZE`; the
    encryption kind is known. Raises :class:`~omega.errors.InvalidEnvelopeError`
    whose ``details["reason"]`` is a stable code naming the first failed check:
    ``wrong_device``, ``bad_message_id``, ``bad_sender_id``,
    ``bad_recipient_id``, ``bad_timestamp``, ``bad_device_key``,
    ``cleartext_metadata``, ``no_content``, ``too_large`` or
    ``unknown_encryption``. Nothing here proves who sent it: decryption does,
    and :func:`check_binding` then ties these fields to the decrypted content.
    """
    if not hmac.compare_digest(message.recipient_device_key, local_device_key):
        raise _refuse("wrong_device", "addressed to another device", message)
    problem = _problem(message)
    if problem is not None:
        raise _refuse(*problem, message)
    return EnvelopeInfo(
        message_id=message.message_id,
        sender_id=message.sender_id.lower(),
        recipient_id=message.recipient_id,
        sender_device_key=message.sender_device_key,
        timestamp=message.timestamp,
        encryption=EncryptionKind(int(message.encryption)),
    )


def bind_content(
    content: MessageContent, *, message_id: str, timestamp: int, conversation_id: str
) -> MessageContent:
    """A copy of ``content`` carrying the envelope fields it must be delivered under."""
    bound = dataclasses.replace(content)
    bound.message_id = message_id
    bound.timestamp = timestamp
    bound.conversation_id = conversation_id
    return bound


def check_binding(info: EnvelopeInfo, content: MessageContent) -> None:
    """Refuse decrypted ``content`` whose bound fields differ from its envelope's.

    Raises :class:`~omega.errors.InvalidEnvelopeError` with reason
    ``binding_mismatch``: a relay or store changed the message id, timestamp
    or conversation of an envelope, or moved a ciphertext into another one.
    """
    if (
        content.message_id != info.message_id
        or content.timestamp != info.timestamp
        or content.conversation_id != info.recipient_id
    ):
        raise InvalidEnvelopeError(
            f"refused envelope {info.message_id[:64]!r}: its routing fields differ from "
            "the ones bound inside its encrypted content",
            details={"reason": "binding_mismatch"},
        )
