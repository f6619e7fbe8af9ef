"""How message store records become SQLite rows, and rows become records again.

Rows come from a file, so decoding trusts nothing: every value is checked
for its type and range and every record is rebuilt through its validating
constructor; anything unexpected raises
:class:`~omega.errors.CorruptDataError`. Sealed columns (display names,
device lists, message content and text, outbox content and ciphertext) go
through a :class:`~omega.storage._sealing.Sealer` whose associated data
names the table, column and row, so a value moved to another row or column
fails to open. With :data:`~omega.storage._sealing.PLAIN` they are stored as
they are (text as SQLite TEXT, so that FTS5 can index it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from omega.errors import ConfigurationError, CorruptDataError
from omega.storage._sealing import Sealer
from omega.storage.message_base import (
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    Direction,
    OutboxEntry,
    StoredMessage,
)

__all__ = [
    "CONTACT_COLUMNS",
    "CONVERSATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "OUTBOX_COLUMNS",
    "RowCodec",
    "message_row_id",
    "outbox_row_id",
]

CONTACT_COLUMNS = (
    "user_id, display_name, identity_key, verified, blocked, read_receipts,"
    " typing_notifications, device_list, device_list_sequence, pending_identity_key, held_devices,"
    " added_at"
)
MESSAGE_COLUMNS = (
    "conversation_id, message_id, sender_id, sender_device_key, direction, timestamp,"
    " received_at, content, text, state, reply_to, expires_at, edited_at, deleted"
)
CONVERSATION_COLUMNS = (
    "conversation_id, archived, muted_until, last_read_message_id, last_message_at, unread_count"
)
OUTBOX_COLUMNS = (
    "message_id, recipient_id, recipient_device_key, content, ciphertext, state, attempts,"
    " next_attempt_at, created_at, expires_at, ephemeral"
)

Row = Sequence[object]
_T = TypeVar("_T")


def message_row_id(conversation_id: str, message_id: str) -> bytes:
    """The row identifier that sealed message values are bound to."""
    return conversation_id.encode("utf-8") + b"\x00" + message_id.encode("utf-8")


def outbox_row_id(message_id: str, recipient_device_key: bytes) -> bytes:
    """The row identifier that sealed outbox values are bound to."""
    return message_id.encode("utf-8") + b"\x00" + recipient_device_key


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise CorruptDataError(f"expected text in the message store, found {type(value).__name__}")
    return value


def _bool(value: object) -> bool:
    if isinstance(value, bool) or value not in (0, 1):
        raise CorruptDataError(f"expected a 0/1 flag in the message store, found {value!r}")
    return value == 1


def _decoded(what: str, build: Callable[[], _T]) -> _T:
    try:
        return build()
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise CorruptDataError(f"a stored {what} cannot be read back: {exc}") from exc


class RowCodec:
    """Encodes records to rows and decodes rows to records under one sealer."""

    def __init__(self, sealer: Sealer, *, encrypted: bool) -> None:
        self._sealer = sealer
        self.encrypted = encrypted
        """Whether sealed columns are encrypted (then text is stored as BLOB)."""

    def _seal(self, column: str, row_id: bytes, value: bytes | None) -> bytes | None:
        return None if value is None else self._sealer.seal(column, row_id, value)

    def _open(self, column: str, row_id: bytes, value: object) -> bytes:
        if not isinstance(value, bytes):
            raise CorruptDataError(f"expected bytes in {column}, found {type(value).__name__}")
        return self._sealer.open(column, row_id, value)

    def _open_optional(self, column: str, row_id: bytes, value: object) -> bytes | None:
        return None if value is None else self._open(column, row_id, value)

    def seal_text(self, column: str, row_id: bytes, text: str) -> str | bytes:
        """``text`` as stored: itself in a plain store, sealed UTF-8 in an encrypted one."""
        if not self.encrypted:
            return text
        return self._sealer.seal(column, row_id, text.encode("utf-8"))

    def open_text(self, column: str, row_id: bytes, value: object) -> str:
        """The text :meth:`seal_text` stored."""
        if not self.encrypted:
            return _str(value)
        try:
            return self._open(column, row_id, value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptDataError(f"a stored {column} is not UTF-8") from exc

    # contacts

    def contact_row(self, contact: ContactRecord) -> tuple[object, ...]:
        """The row of ``contact``, in CONTACT_COLUMNS order."""
        row_id = contact.user_id.encode("utf-8")
        return (
            contact.user_id,
            self.seal_text("contacts/display_name", row_id, contact.display_name),
            contact.identity_key,
            int(contact.verified),
            int(contact.blocked),
            int(contact.read_receipts),
            int(contact.typing_notifications),
            self._seal("contacts/device_list", row_id, contact.device_list),
            contact.device_list_sequence,
            contact.pending_identity_key,
            contact.held_devices,
            contact.added_at,
        )

    def contact(self, row: Row) -> ContactRecord:
        """The contact stored in ``row``; CorruptDataError if it is not a valid one."""
        user_id = _str(row[0])
        row_id = user_id.encode("utf-8")
        return _decoded(
            "contact",
            lambda: ContactRecord(
                user_id=user_id,
                display_name=self.open_text("contacts/display_name", row_id, row[1]),
                identity_key=row[2],  # type: ignore[arg-type]
                verified=_bool(row[3]),
                blocked=_bool(row[4]),
                read_receipts=_bool(row[5]),
                typing_notifications=_bool(row[6]),
                device_list=self._open_optional("contacts/device_list", row_id, row[7]),
                device_list_sequence=row[8],  # type: ignore[arg-type]
                pending_identity_key=row[9],  # type: ignore[arg-type]
                held_devices=row[10],  # type: ignore[arg-type]
                added_at=row[11],  # type: ignore[arg-type]
            ),
        )

    # messages

    def message_row(self, message: StoredMessage) -> tuple[object, ...]:
        """The row of ``message``, in MESSAGE_COLUMNS order."""
        row_id = message_row_id(message.conversation_id, message.message_id)
        return (
            message.conversation_id,
            message.message_id,
            message.sender_id,
            message.sender_device_key,
            message.direction.value,
            message.timestamp,
            message.received_at,
            self._sealer.seal("messages/content", row_id, message.content),
            self.seal_text("messages/text", row_id, message.text),
            message.state.value,
            message.reply_to,
            message.expires_at,
            message.edited_at,
            int(message.deleted),
        )

    def message(self, row: Row) -> StoredMessage:
        """The message stored in ``row``; CorruptDataError if it is not a valid one."""
        conversation_id, message_id = _str(row[0]), _str(row[1])
        row_id = _decoded("message", lambda: message_row_id(conversation_id, message_id))
        return _decoded(
            "message",
            lambda: StoredMessage(
                conversation_id=conversation_id,
                message_id=message_id,
                sender_id=row[2],  # type: ignore[arg-type]
                sender_device_key=row[3],  # type: ignore[arg-type]
                direction=Direction(row[4]),
                timestamp=row[5],  # type: ignore[arg-type]
                received_at=row[6],  # type: ignore[arg-type]
                content=self._open("messages/content", row_id, row[7]),
                text=self.open_text("messages/text", row_id, row[8]),
                state=DeliveryState(row[9]),
                reply_to=row[10],  # type: ignore[arg-type]
                expires_at=row[11],  # type: ignore[arg-type]
                edited_at=row[12],  # type: ignore[arg-type]
                deleted=_bool(row[13]),
            ),
        )

    # conversations

    def conversation(self, row: Row) -> ConversationRecord:
        """The conversation stored in ``row``; CorruptDataError if it is not a valid one."""
        return _decoded(
            "conversation",
            lambda: ConversationRecord(
                conversation_id=row[0],  # type: ignore[arg-type]
                archived=_bool(row[1]),
                muted_until=row[2],  # type: ignore[arg-type]
                last_read_message_id=row[3],  # type: ignore[arg-type]
                last_message_at=row[4],  # type: ignore[arg-type]
                unread_count=row[5],  # type: ignore[arg-type]
            ),
        )

    # outbox

    def outbox_row(self, entry: OutboxEntry) -> tuple[object, ...]:
        """The row of ``entry``, in OUTBOX_COLUMNS order."""
        row_id = outbox_row_id(entry.message_id, entry.recipient_device_key)
        return (
            entry.message_id,
            entry.recipient_id,
            entry.recipient_device_key,
            self._sealer.seal("outbox/content", row_id, entry.content),
            self._seal("outbox/ciphertext", row_id, entry.ciphertext),
            entry.state.value,
            entry.attempts,
            entry.next_attempt_at,
            entry.created_at,
            entry.expires_at,
            int(entry.ephemeral),
        )

    def outbox_entry(self, row: Row) -> OutboxEntry:
        """The outbox entry stored in ``row``; CorruptDataError if it is not a valid one."""
        message_id, device_key = _str(row[0]), row[2]
        if not isinstance(device_key, bytes):
            raise CorruptDataError("a stored outbox device key is not bytes")
        row_id = _decoded("outbox entry", lambda: outbox_row_id(message_id, device_key))
        return _decoded(
            "outbox entry",
            lambda: OutboxEntry(
                message_id=message_id,
                recipient_id=row[1],  # type: ignore[arg-type]
                recipient_device_key=device_key,
                content=self._open("outbox/content", row_id, row[3]),
                ciphertext=self._open_optional("outbox/ciphertext", row_id, row[4]),
                state=DeliveryState(row[5]),
                attempts=row[6],  # type: ignore[arg-type]
                next_attempt_at=row[7],  # type: ignore[arg-type]
                created_at=row[8],  # type: ignore[arg-type]
                expires_at=row[9],  # type: ignore[arg-type]
                ephemeral=_bool(row[10]),
            ),
        )
