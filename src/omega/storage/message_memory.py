"""An in-memory :class:`~omega.storage.message_base.MessageStore`, for tests, bots and simulations.

Nothing survives the process. A transaction changes the state in place and
keeps an undo journal, so rolling back costs only what the transaction
changed; a transaction that raises leaves the store exactly as it was.
Search evaluates the same parsed query as the SQLite store's FTS5 index
(:mod:`omega.storage._message_search`) by scanning the texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from omega.errors import LocalProtocolError, StorageError
from omega.storage._message_checks import (
    check_bool,
    check_conversation_id,
    check_instance,
    check_optional_time,
    check_stored_message_id,
    check_time,
    check_user_id,
)
from omega.storage._message_search import TextMatcher, normalized_tokens, parse_search_query
from omega.storage.base import check_device_key, check_limit
from omega.storage.message_base import (
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    MessageStore,
    MessageStoreTransaction,
    OutboxEntry,
    StoredMessage,
    advances,
)

__all__ = ["MemoryMessageStore"]

_MISSING: Any = object()
_UNACKNOWLEDGED = (DeliveryState.PENDING, DeliveryState.SENT)
_MAX_CACHED_TEXTS = 100_000


@dataclass
class _State:
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    conversations: dict[str, ConversationRecord] = field(default_factory=dict)
    # conversation id -> message id -> (insertion sequence, message)
    messages: dict[str, dict[str, tuple[int, StoredMessage]]] = field(default_factory=dict)
    outbox: dict[tuple[str, bytes], tuple[int, OutboxEntry]] = field(default_factory=dict)
    seen: dict[tuple[bytes, str], int] = field(default_factory=dict)
    sequence: list[int] = field(default_factory=lambda: [0])
    # A cache, not state (never rolled back): text -> its normalized search tokens.
    search_tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)


class _MemoryTransaction(MessageStoreTransaction):
    def __init__(self, state: _State) -> None:
        self._state = state
        self._journal: list[Callable[[], None]] = []
        self.live = True

    def rollback(self) -> None:
        for undo in reversed(self._journal):
            undo()
        self._journal.clear()

    def _live(self) -> _State:
        if not self.live:
            raise LocalProtocolError("this transaction has ended")
        return self._state

    def _set(self, mapping: MutableMapping[Any, Any], key: object, value: object) -> None:
        old = mapping.get(key, _MISSING)
        self._journal.append(lambda: _restore(mapping, key, old))
        mapping[key] = value

    def _pop(self, mapping: MutableMapping[Any, Any], key: object) -> Any:
        old = mapping.pop(key, _MISSING)
        if old is not _MISSING:
            self._journal.append(lambda: _restore(mapping, key, old))
        return None if old is _MISSING else old

    def _next_sequence(self) -> int:
        counter = self._live().sequence
        counter[0] += 1
        self._journal.append(lambda: counter.__setitem__(0, counter[0] - 1))
        return counter[0]

    # contacts

    async def put_contact(self, contact: ContactRecord) -> None:
        check_instance(contact, ContactRecord)
        self._set(self._live().contacts, contact.user_id, contact)

    async def get_contact(self, user_id: str) -> ContactRecord | None:
        return self._live().contacts.get(check_user_id(user_id))

    async def contacts(self) -> list[ContactRecord]:
        return sorted(self._live().contacts.values(), key=lambda c: (c.display_name, c.user_id))

    async def delete_contact(self, user_id: str) -> bool:
        check_user_id(user_id)
        return self._pop(self._live().contacts, user_id) is not None

    # messages

    def _conversation_messages(self, conversation_id: str) -> dict[str, tuple[int, StoredMessage]]:
        return self._live().messages.get(check_conversation_id(conversation_id), {})

    def _account(
        self, conversation_id: str, old: StoredMessage | None, new: StoredMessage | None
    ) -> None:
        """Update a conversation's figures for one message going from ``old`` to ``new``.

        Constant time, except when the newest message loses its timestamp
        (deleted or re-dated): then the conversation is scanned.
        """
        state = self._live()
        current = state.conversations.get(conversation_id)
        if current is None:
            current = ConversationRecord(conversation_id=conversation_id)
        last = current.last_message_at
        if new is not None and new.timestamp >= last:
            last = new.timestamp
        elif old is not None and old.timestamp == last:
            rows = state.messages.get(conversation_id, {}).values()
            last = max((message.timestamp for _, message in rows), default=0)
        unread = current.unread_count + (new is not None and new.unread)
        unread -= old is not None and old.unread
        updated = dataclasses.replace(current, last_message_at=last, unread_count=unread)
        if updated != current or conversation_id not in state.conversations:
            self._set(state.conversations, conversation_id, updated)

    async def add_message(self, message: StoredMessage) -> bool:
        check_instance(message, StoredMessage)
        state = self._live()
        conversation = state.messages.get(message.conversation_id)
        if conversation is None:
            conversation = {}
            self._set(state.messages, message.conversation_id, conversation)
        if message.message_id in conversation:
            return False
        self._set(conversation, message.message_id, (self._next_sequence(), message))
        self._account(message.conversation_id, None, message)
        return True

    async def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        row = self._conversation_messages(conversation_id).get(check_stored_message_id(message_id))
        return None if row is None else row[1]

    async def replace_message(self, message: StoredMessage) -> None:
        check_instance(message, StoredMessage)
        conversation = self._conversation_messages(message.conversation_id)
        row = conversation.get(message.message_id)
        if row is None:
            raise StorageError(
                "no such message to replace",
                details={"message_id": message.message_id},
            )
        self._set(conversation, message.message_id, (row[0], message))
        self._account(message.conversation_id, row[1], message)

    async def messages(
        self, conversation_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[StoredMessage]:
        check_limit(limit)
        check_optional_time(before, "before")
        rows = [
            row
            for row in self._conversation_messages(conversation_id).values()
            if before is None or row[1].timestamp < before
        ]
        rows.sort(key=lambda row: (row[1].timestamp, row[0]), reverse=True)
        return [message for _, message in rows[:limit]]

    async def set_message_state(
        self, conversation_id: str, message_id: str, state: DeliveryState
    ) -> bool:
        check_instance(state, DeliveryState)
        current = await self.get_message(conversation_id, message_id)
        if current is None or not advances(current.state, state):
            return False
        await self.replace_message(dataclasses.replace(current, state=state))
        return True

    async def delete_message(self, conversation_id: str, message_id: str) -> bool:
        conversation = self._conversation_messages(conversation_id)
        row = self._pop(conversation, check_stored_message_id(message_id))
        if row is None:
            return False
        self._account(conversation_id, row[1], None)
        return True

    def _all_messages(self) -> Iterator[tuple[int, StoredMessage]]:
        for conversation in self._live().messages.values():
            yield from conversation.values()

    async def expired_messages(self, now: int, *, limit: int = 100) -> list[StoredMessage]:
        check_time(now, "now")
        check_limit(limit)
        rows = [
            (message.expires_at, sequence, message)
            for sequence, message in self._all_messages()
            if message.expires_at is not None and message.expires_at <= now
        ]
        rows.sort(key=lambda row: (row[0], row[1]))
        return [message for _, _, message in rows[:limit]]

    async def search(
        self, query: str, *, conversation_id: str | None = None, limit: int = 50
    ) -> list[StoredMessage]:
        matcher = TextMatcher(parse_search_query(query))
        check_limit(limit)
        if conversation_id is None:
            candidates = list(self._all_messages())
        else:
            candidates = list(self._conversation_messages(conversation_id).values())
        rows = [row for row in candidates if matcher.matches_tokens(self._tokens(row[1].text))]
        rows.sort(key=lambda row: (row[1].timestamp, row[0]), reverse=True)
        return [message for _, message in rows[:limit]]

    def _tokens(self, text: str) -> tuple[str, ...]:
        cache = self._live().search_tokens
        tokens = cache.get(text)
        if tokens is None:
            if len(cache) >= _MAX_CACHED_TEXTS:
                cache.clear()
            tokens = cache[text] = normalized_tokens(text)
        return tokens

    # conversations

    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return self._live().conversations.get(check_conversation_id(conversation_id))

    async def conversations(self, *, archived: bool | None = None) -> list[ConversationRecord]:
        if archived is not None:
            check_bool(archived, "archived")
        records = [
            record
            for record in self._live().conversations.values()
            if archived is None or record.archived is archived
        ]
        return sorted(records, key=lambda c: (-c.last_message_at, c.conversation_id))

    async def put_conversation(self, conversation: ConversationRecord) -> None:
        check_instance(conversation, ConversationRecord)
        state = self._live()
        current = state.conversations.get(conversation.conversation_id)
        if current is None:
            current = ConversationRecord(conversation_id=conversation.conversation_id)
        self._set(
            state.conversations,
            conversation.conversation_id,
            dataclasses.replace(
                current,
                archived=conversation.archived,
                muted_until=conversation.muted_until,
                last_read_message_id=conversation.last_read_message_id,
            ),
        )

    # outbox

    async def add_outbox(self, entry: OutboxEntry) -> bool:
        check_instance(entry, OutboxEntry)
        outbox = self._live().outbox
        key = (entry.message_id, entry.recipient_device_key)
        if key in outbox:
            return False
        self._set(outbox, key, (self._next_sequence(), entry))
        return True

    async def update_outbox(self, entry: OutboxEntry) -> None:
        check_instance(entry, OutboxEntry)
        outbox = self._live().outbox
        key = (entry.message_id, entry.recipient_device_key)
        row = outbox.get(key)
        if row is None:
            raise StorageError(
                "no such outbox entry to update", details={"message_id": entry.message_id}
            )
        self._set(outbox, key, (row[0], entry))

    async def outbox_entry(
        self, message_id: str, recipient_device_key: bytes
    ) -> OutboxEntry | None:
        key = (check_stored_message_id(message_id), check_device_key(recipient_device_key))
        row = self._live().outbox.get(key)
        return None if row is None else row[1]

    async def outbox_for_message(self, message_id: str) -> list[OutboxEntry]:
        check_stored_message_id(message_id)
        rows = sorted(row for key, row in self._live().outbox.items() if key[0] == message_id)
        return [entry for _, entry in rows]

    async def due_outbox(self, now: int, *, limit: int = 100) -> list[OutboxEntry]:
        check_time(now, "now")
        check_limit(limit)
        rows = [
            (entry.next_attempt_at, entry.created_at, sequence, entry)
            for sequence, entry in self._live().outbox.values()
            if entry.state in _UNACKNOWLEDGED and entry.next_attempt_at <= now
        ]
        rows.sort(key=lambda row: row[:3])
        return [row[3] for row in rows[:limit]]

    async def pending_outbox(self, *, limit: int = 1000) -> list[OutboxEntry]:
        check_limit(limit)
        rows = [
            (entry.created_at, sequence, entry)
            for sequence, entry in self._live().outbox.values()
            if entry.state in _UNACKNOWLEDGED
        ]
        rows.sort(key=lambda row: row[:2])
        return [row[2] for row in rows[:limit]]

    async def remove_outbox(self, message_id: str, recipient_device_key: bytes) -> bool:
        key = (check_stored_message_id(message_id), check_device_key(recipient_device_key))
        return self._pop(self._live().outbox, key) is not None

    # dedupe

    async def mark_seen(self, sender_device_key: bytes, message_id: str, now: int) -> bool:
        key = (check_device_key(sender_device_key), check_stored_message_id(message_id))
        check_time(now, "now")
        seen = self._live().seen
        if key in seen:
            return False
        self._set(seen, key, now)
        return True

    async def forget_seen_before(self, cutoff: int) -> int:
        check_time(cutoff, "cutoff")
        seen = self._live().seen
        doomed = [key for key, seen_at in seen.items() if seen_at < cutoff]
        for key in doomed:
            self._pop(seen, key)
        return len(doomed)


def _restore(mapping: MutableMapping[Any, Any], key: object, old: object) -> None:
    if old is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = old


class MemoryMessageStore(MessageStore):
    """A :class:`~omega.storage.message_base.MessageStore` that lives in memory only."""

    def __init__(self) -> None:
        super().__init__()
        self._state = _State()
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[MessageStoreTransaction]:
        async with self._lock:
            transaction = _MemoryTransaction(self._state)
            try:
                yield transaction
            except BaseException:
                transaction.rollback()
                raise
            finally:
                transaction.live = False

    async def _close(self) -> None:
        self._state = _State()
