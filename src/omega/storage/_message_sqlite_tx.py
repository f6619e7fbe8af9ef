"""The transaction of :class:`~omega.storage.message_sqlite.SQLiteMessageStore`."""

from __future__ import annotations

import sqlite3
from typing import cast

from omega.errors import CorruptDataError, StorageError
from omega.storage._message_checks import (
    check_bool,
    check_conversation_id,
    check_instance,
    check_optional_time,
    check_stored_message_id,
    check_time,
    check_user_id,
)
from omega.storage._message_rows import (
    CONTACT_COLUMNS,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    OUTBOX_COLUMNS,
    RowCodec,
)
from omega.storage._message_search import fts5_expression, parse_search_query
from omega.storage._sqlite_common import SQLITE_ERRORS, SQLiteDatabase, check_live
from omega.storage.base import check_device_key, check_limit
from omega.storage.message_base import (
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    MessageStoreTransaction,
    OutboxEntry,
    StoredMessage,
    advances,
)

__all__ = ["SQLITE_ERRORS", "SQLiteMessageTransaction"]


_QUALIFIED_MESSAGE_COLUMNS = ", ".join(f"m.{name.strip()}" for name in MESSAGE_COLUMNS.split(","))


def _placeholders(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


def _assignments(columns: str) -> str:
    return ", ".join(f"{name.strip()} = ?" for name in columns.split(","))


# Statements built from the constant column lists of _message_rows (no caller input).
_INSERT_CONTACT = (
    f"INSERT OR REPLACE INTO contacts ({CONTACT_COLUMNS})"  # noqa: S608
    f" VALUES ({_placeholders(CONTACT_COLUMNS)})"
)
_SELECT_CONTACTS = f"SELECT {CONTACT_COLUMNS} FROM contacts"  # noqa: S608
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({MESSAGE_COLUMNS})"  # noqa: S608
    f" VALUES ({_placeholders(MESSAGE_COLUMNS)})"
    " ON CONFLICT (conversation_id, message_id) DO NOTHING"
)
_SELECT_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages"  # noqa: S608
_UPDATE_MESSAGE = f"UPDATE messages SET {_assignments(MESSAGE_COLUMNS)} WHERE seq = ?"  # noqa: S608
_SEARCH = (
    f"SELECT {_QUALIFIED_MESSAGE_COLUMNS} FROM messages_fts"  # noqa: S608
    " JOIN messages AS m ON m.seq = messages_fts.rowid WHERE messages_fts MATCH ?"
)
_SELECT_CONVERSATIONS = f"SELECT {CONVERSATION_COLUMNS} FROM conversations"  # noqa: S608
_INSERT_OUTBOX = (
    f"INSERT INTO outbox ({OUTBOX_COLUMNS})"  # noqa: S608
    f" VALUES ({_placeholders(OUTBOX_COLUMNS)})"
    " ON CONFLICT (message_id, recipient_device_key) DO NOTHING"
)
_UPDATE_OUTBOX = (
    f"UPDATE outbox SET {_assignments(OUTBOX_COLUMNS)}"  # noqa: S608
    " WHERE message_id = ? AND recipient_device_key = ?"
)
_SELECT_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox"  # noqa: S608


class SQLiteMessageTransaction(MessageStoreTransaction):
    """One ``BEGIN IMMEDIATE`` transaction of a SQLite message store."""

    def __init__(self, database: SQLiteDatabase, codec: RowCodec) -> None:
        self._database = database
        self._codec = codec
        self.live = True

    async def _fetch_all(self, sql: str, parameters: tuple[object, ...]) -> list[sqlite3.Row]:
        check_live(self)
        return self._database.fetch_all(sql, parameters)

    async def _fetch_one(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Row | None:
        rows = await self._fetch_all(sql, parameters)
        return rows[0] if rows else None

    async def _execute(self, sql: str, parameters: tuple[object, ...]) -> tuple[int, int | None]:
        """Run a write; return the number of rows changed and the last inserted rowid."""
        check_live(self)
        return self._database.execute(sql, parameters)

    # contacts

    async def put_contact(self, contact: ContactRecord) -> None:
        check_instance(contact, ContactRecord)
        await self._execute(
            _INSERT_CONTACT,
            self._codec.contact_row(contact),
        )

    async def get_contact(self, user_id: str) -> ContactRecord | None:
        row = await self._fetch_one(
            _SELECT_CONTACTS + " WHERE user_id = ?", (check_user_id(user_id),)
        )
        return None if row is None else self._codec.contact(row)

    async def contacts(self) -> list[ContactRecord]:
        rows = await self._fetch_all(_SELECT_CONTACTS, ())
        contacts = [self._codec.contact(row) for row in rows]
        return sorted(contacts, key=lambda contact: (contact.display_name, contact.user_id))

    async def delete_contact(self, user_id: str) -> bool:
        changed, _ = await self._execute(
            "DELETE FROM contacts WHERE user_id = ?", (check_user_id(user_id),)
        )
        return changed > 0

    # messages

    async def _account(self, conversation_id: str, unread_delta: int) -> None:
        """Update a conversation's figures after one of its messages changed or went.

        ``unread_count`` moves by ``unread_delta``; ``last_message_at`` is
        recomputed through the ``messages_by_time`` index (logarithmic).
        """
        await self._execute(
            "UPDATE conversations SET unread_count = unread_count + ?,"
            " last_message_at = coalesce("
            "(SELECT max(timestamp) FROM messages WHERE conversation_id = ?), 0)"
            " WHERE conversation_id = ?",
            (unread_delta, conversation_id, conversation_id),
        )

    async def _index(self, sequence: int, text: str) -> None:
        """Add a text to the in-memory index of an encrypted store."""
        if self._codec.encrypted and text:
            await self._execute(
                "INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", (sequence, text)
            )

    async def _unindex(self, sequence: int) -> None:
        """Remove a text from the in-memory index of an encrypted store."""
        if self._codec.encrypted:
            await self._execute("DELETE FROM messages_fts WHERE rowid = ?", (sequence,))

    async def add_message(self, message: StoredMessage) -> bool:
        check_instance(message, StoredMessage)
        changed, sequence = await self._execute(
            _INSERT_MESSAGE,
            self._codec.message_row(message),
        )
        if changed == 0:
            return False
        assert sequence is not None
        await self._index(sequence, message.text)
        await self._execute(
            "INSERT INTO conversations (conversation_id, last_message_at, unread_count)"
            " VALUES (?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET"
            " last_message_at = max(last_message_at, excluded.last_message_at),"
            " unread_count = unread_count + excluded.unread_count",
            (message.conversation_id, message.timestamp, int(message.unread)),
        )
        return True

    async def _locate(self, conversation_id: str, message_id: str) -> tuple[int, int] | None:
        """The message's ``seq`` and whether it counts as unread (1 or 0), or ``None``."""
        row = await self._fetch_one(
            "SELECT seq, direction = 'incoming' AND state != 'read' AND deleted = 0"
            " FROM messages WHERE conversation_id = ? AND message_id = ?",
            (conversation_id, message_id),
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        row = await self._fetch_one(
            _SELECT_MESSAGES + " WHERE conversation_id = ? AND message_id = ?",
            (check_conversation_id(conversation_id), check_stored_message_id(message_id)),
        )
        return None if row is None else self._codec.message(row)

    async def replace_message(self, message: StoredMessage) -> None:
        check_instance(message, StoredMessage)
        located = await self._locate(message.conversation_id, message.message_id)
        if located is None:
            raise StorageError(
                "no such message to replace", details={"message_id": message.message_id}
            )
        sequence, was_unread = located
        await self._execute(
            _UPDATE_MESSAGE,
            (*self._codec.message_row(message), sequence),
        )
        await self._unindex(sequence)
        await self._index(sequence, message.text)
        await self._account(message.conversation_id, int(message.unread) - was_unread)

    async def messages(
        self, conversation_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[StoredMessage]:
        check_conversation_id(conversation_id)
        check_limit(limit)
        parameters: tuple[object, ...] = (conversation_id, limit)
        condition = ""
        if check_optional_time(before, "before") is not None:
            condition, parameters = " AND timestamp < ?", (conversation_id, before, limit)
        rows = await self._fetch_all(
            _SELECT_MESSAGES
            + " WHERE conversation_id = ?"
            + condition
            + " ORDER BY timestamp DESC, seq DESC LIMIT ?",
            parameters,
        )
        return [self._codec.message(row) for row in rows]

    async def set_message_state(
        self, conversation_id: str, message_id: str, state: DeliveryState
    ) -> bool:
        check_instance(state, DeliveryState)
        row = await self._fetch_one(
            "SELECT seq, state, direction = 'incoming' AND deleted = 0"
            " FROM messages WHERE conversation_id = ? AND message_id = ?",
            (check_conversation_id(conversation_id), check_stored_message_id(message_id)),
        )
        if row is None:
            return False
        try:
            current = DeliveryState(row[1])
        except ValueError as exc:
            raise CorruptDataError(f"a stored message state is unknown: {row[1]!r}") from exc
        if not advances(current, state):
            return False
        await self._execute("UPDATE messages SET state = ? WHERE seq = ?", (state.value, row[0]))
        if row[2] and state is DeliveryState.READ:  # incoming messages only move DELIVERED -> READ
            await self._execute(
                "UPDATE conversations SET unread_count = unread_count - 1"
                " WHERE conversation_id = ?",
                (conversation_id,),
            )
        return True

    async def delete_message(self, conversation_id: str, message_id: str) -> bool:
        check_conversation_id(conversation_id)
        located = await self._locate(conversation_id, check_stored_message_id(message_id))
        if located is None:
            return False
        sequence, was_unread = located
        await self._execute("DELETE FROM messages WHERE seq = ?", (sequence,))
        await self._unindex(sequence)
        await self._account(conversation_id, -was_unread)
        return True

    async def expired_messages(self, now: int, *, limit: int = 100) -> list[StoredMessage]:
        rows = await self._fetch_all(
            _SELECT_MESSAGES
            + " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, seq LIMIT ?",
            (check_time(now, "now"), check_limit(limit)),
        )
        return [self._codec.message(row) for row in rows]

    async def search(
        self, query: str, *, conversation_id: str | None = None, limit: int = 50
    ) -> list[StoredMessage]:
        parsed = parse_search_query(query)
        parameters: tuple[object, ...] = (fts5_expression(parsed), check_limit(limit))
        condition = ""
        if conversation_id is not None:
            condition = " AND m.conversation_id = ?"
            parameters = (parameters[0], check_conversation_id(conversation_id), limit)
        if not parsed.phrases:
            return []
        rows = await self._fetch_all(
            _SEARCH + condition + " ORDER BY m.timestamp DESC, m.seq DESC LIMIT ?",
            parameters,
        )
        return [self._codec.message(row) for row in rows]

    # conversations

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        row = await self._fetch_one(
            _SELECT_CONVERSATIONS + " WHERE conversation_id = ?",
            (check_conversation_id(conversation_id),),
        )
        return None if row is None else self._codec.conversation(row)

    async def conversations(self, *, archived: bool | None = None) -> list[ConversationRecord]:
        condition, parameters = "", cast(tuple[object, ...], ())
        if archived is not None:
            condition, parameters = " WHERE archived = ?", (int(check_bool(archived, "archived")),)
        rows = await self._fetch_all(
            _SELECT_CONVERSATIONS + condition + " ORDER BY last_message_at DESC, conversation_id",
            parameters,
        )
        return [self._codec.conversation(row) for row in rows]

    async def put_conversation(self, conversation: ConversationRecord) -> None:
        check_instance(conversation, ConversationRecord)
        await self._execute(
            "INSERT INTO conversations"
            " (conversation_id, archived, muted_until, last_read_message_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (conversation_id) DO UPDATE SET archived = excluded.archived,"
            " muted_until = excluded.muted_until,"
            " last_read_message_id = excluded.last_read_message_id",
            (
                conversation.conversation_id,
                int(conversation.archived),
                conversation.muted_until,
                conversation.last_read_message_id,
            ),
        )

    # outbox

    async def add_outbox(self, entry: OutboxEntry) -> bool:
        check_instance(entry, OutboxEntry)
        changed, _ = await self._execute(
            _INSERT_OUTBOX,
            self._codec.outbox_row(entry),
        )
        return changed > 0

    async def update_outbox(self, entry: OutboxEntry) -> None:
        check_instance(entry, OutboxEntry)
        changed, _ = await self._execute(
            _UPDATE_OUTBOX,
            (*self._codec.outbox_row(entry), entry.message_id, entry.recipient_device_key),
        )
        if changed == 0:
            raise StorageError(
                "no such outbox entry to update", details={"message_id": entry.message_id}
            )

    async def outbox_entry(
        self, message_id: str, recipient_device_key: bytes
    ) -> OutboxEntry | None:
        row = await self._fetch_one(
            _SELECT_OUTBOX + " WHERE message_id = ? AND recipient_device_key = ?",
            (check_stored_message_id(message_id), check_device_key(recipient_device_key)),
        )
        return None if row is None else self._codec.outbox_entry(row)

    async def outbox_for_message(self, message_id: str) -> list[OutboxEntry]:
        rows = await self._fetch_all(
            _SELECT_OUTBOX + " WHERE message_id = ? ORDER BY seq",
            (check_stored_message_id(message_id),),
        )
        return [self._codec.outbox_entry(row) for row in rows]

    async def due_outbox(self, now: int, *, limit: int = 100) -> list[OutboxEntry]:
        rows = await self._fetch_all(
            _SELECT_OUTBOX + " WHERE state IN ('pending', 'sent') AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, created_at, seq LIMIT ?",
            (check_time(now, "now"), check_limit(limit)),
        )
        return [self._codec.outbox_entry(row) for row in rows]

    async def pending_outbox(self, *, limit: int = 1000) -> list[OutboxEntry]:
        rows = await self._fetch_all(
            _SELECT_OUTBOX + " WHERE state IN ('pending', 'sent') ORDER BY created_at, seq LIMIT ?",
            (check_limit(limit),),
        )
        return [self._codec.outbox_entry(row) for row in rows]

    async def remove_outbox(self, message_id: str, recipient_device_key: bytes) -> bool:
        changed, _ = await self._execute(
            "DELETE FROM outbox WHERE message_id = ? AND recipient_device_key = ?",
            (check_stored_message_id(message_id), check_device_key(recipient_device_key)),
        )
        return changed > 0

    # dedupe

    async def mark_seen(self, sender_device_key: bytes, message_id: str, now: int) -> bool:
        changed, _ = await self._execute(
            "INSERT INTO seen (sender_device_key, message_id, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (
                check_device_key(sender_device_key),
                check_stored_message_id(message_id),
                check_time(now, "now"),
            ),
        )
        return changed > 0

    async def forget_seen_before(self, cutoff: int) -> int:
        changed, _ = await self._execute(
            "DELETE FROM seen WHERE seen_at < ?", (check_time(cutoff, "cutoff"),)
        )
        return changed
