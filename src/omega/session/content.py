"""Message content: building, checking and describing ``MessageContent``.

``MessageContent`` is the plaintext of every envelope (docs/client-protocol.md):
exactly one kind in its ``content`` oneof, plus the in-ciphertext
``reply_to``, ``mentions`` and ``ttl_seconds``. This module checks contents
the caller builds (:func:`encode_content`) and contents a peer sent
(:func:`decode_content`) with the same rules, and extracts what a
conversation list or a search index needs.
"""

from __future__ import annotations

import math

from omega.crypto.identity import public_key_from_user_id
from omega.errors import (
    ConfigurationError,
    InvalidUserIdError,
    MessageDecodeError,
    MessageTooLargeError,
)
from omega.protocol import MessageContent, decode_message, encode_message

__all__ = [
    "CONTENT_KINDS",
    "EPHEMERAL_KINDS",
    "MAX_CONTENT_SIZE",
    "MAX_MENTIONS",
    "MAX_RECEIPT_IDS",
    "MAX_TTL_SECONDS",
    "content_kind",
    "decode_content",
    "encode_content",
    "searchable_text",
]

MAX_CONTENT_SIZE = 256 * 1024
"""Largest encoded ``MessageContent``, in bytes."""

MAX_MENTIONS = 256
"""Most user ids one message may mention."""

MAX_TTL_SECONDS = 366 * 24 * 3600
"""Longest disappearing-message lifetime: a year and a day."""

MAX_RECEIPT_IDS = 1000
"""Most message ids one receipt may name."""

CONTENT_KINDS = (
    "text",
    "media",
    "location",
    "contact",
    "sticker",
    "reaction",
    "edit",
    "delete",
    "receipt",
    "typing",
    "sender_key_distribution",
    "group_update",
    "group_sync",
    "sync",
)
"""The names of the ``MessageContent.content`` oneof, in field order."""

EPHEMERAL_KINDS = frozenset({"typing"})
"""Kinds that are never stored, retried after a restart, or acknowledged."""

_TARGETED_KINDS = {"reaction", "edit", "delete"}


def _kinds(content: MessageContent) -> list[str]:
    # Not betterproto2.which_one_of: betterproto2's parser keeps every member
    # of a oneof that appears on the wire, and which_one_of then raises
    # RuntimeError. Content naming several kinds is refused instead.
    return [kind for kind in CONTENT_KINDS if getattr(content, kind) is not None]


def content_kind(content: MessageContent) -> str:
    """The name of the kind ``content`` carries (one of :data:`CONTENT_KINDS`).

    ``""`` when it carries none, or (refused by :func:`encode_content` and
    :func:`decode_content`) more than one.
    """
    kinds = _kinds(content)
    return kinds[0] if len(kinds) == 1 else ""


def _problem(content: MessageContent) -> str | None:
    kinds = _kinds(content)
    if len(kinds) != 1:
        return "content has no kind" if not kinds else f"content has several kinds: {kinds}"
    kind = kinds[0]
    if content.reply_to is not None and not 0 < len(content.reply_to) <= 256:
        return "reply_to must be a message id of 1..256 characters"
    if len(content.mentions) > MAX_MENTIONS:
        return f"more than {MAX_MENTIONS} mentions"
    for user_id in content.mentions:
        try:
            public_key_from_user_id(user_id)
        except InvalidUserIdError:
            return f"mention {user_id[:80]!r} is not a user id"
    if content.ttl_seconds is not None and not 0 < content.ttl_seconds <= MAX_TTL_SECONDS:
        return f"ttl_seconds must be in 1..{MAX_TTL_SECONDS}"
    if kind in _TARGETED_KINDS:
        target = getattr(content, kind).target_message_id
        if not 0 < len(target) <= 256:
            return f"{kind} needs a target message id of 1..256 characters"
    if kind == "location":
        location = content.location
        assert location is not None
        if not (math.isfinite(location.latitude) and -90 <= location.latitude <= 90):
            return "latitude must be in -90..90"
        if not (math.isfinite(location.longitude) and -180 <= location.longitude <= 180):
            return "longitude must be in -180..180"
    if kind == "receipt":
        receipt = content.receipt
        assert receipt is not None
        if not 0 < len(receipt.message_ids) <= MAX_RECEIPT_IDS:
            return f"a receipt names 1..{MAX_RECEIPT_IDS} message ids"
        if any(not 0 < len(message_id) <= 256 for message_id in receipt.message_ids):
            return "a receipt names message ids of 1..256 characters"
    if kind == "edit":
        edit = content.edit
        assert edit is not None
        if edit.text is None:
            return "an edit carries the new text"
    return None


def encode_content(content: MessageContent) -> bytes:
    """Check ``content`` and return its encoding.

    Raises :class:`~omega.errors.ConfigurationError` naming the problem, and
    its subclass :class:`~omega.errors.MessageTooLargeError` when the encoding
    exceeds :data:`MAX_CONTENT_SIZE`.
    """
    problem = _problem(content)
    if problem is not None:
        raise ConfigurationError(problem)
    data = encode_message(content)
    if len(data) > MAX_CONTENT_SIZE:
        raise MessageTooLargeError(
            f"the message is {len(data)} bytes; the limit is {MAX_CONTENT_SIZE}",
            details={"size": len(data), "limit": MAX_CONTENT_SIZE},
        )
    return data


def decode_content(data: bytes) -> MessageContent:
    """Decode and check content a peer sent; raise :class:`~omega.errors.MessageDecodeError`."""
    if len(data) > MAX_CONTENT_SIZE:
        raise MessageDecodeError(f"content of {len(data)} bytes exceeds {MAX_CONTENT_SIZE}")
    content = decode_message(MessageContent, data)
    problem = _problem(content)
    if problem is not None:
        raise MessageDecodeError(f"invalid message content: {problem}")
    return content


def searchable_text(content: MessageContent) -> str:
    """The words a search should find ``content`` by (may be empty)."""
    kind = content_kind(content)
    if kind == "text" and content.text is not None:
        return content.text.text
    if kind == "media" and content.media is not None:
        return " ".join(part for part in (content.media.caption, content.media.file_name) if part)
    if kind == "location" and content.location is not None:
        location = content.location
        return " ".join(part for part in (location.name, location.address) if part)
    if kind == "contact" and content.contact is not None:
        return content.contact.display_name
    if kind == "sticker" and content.sticker is not None:
        return content.sticker.emoji
    if kind == "edit" and content.edit is not None and content.edit.text is not None:
        return content.edit.text.text
    return ""
