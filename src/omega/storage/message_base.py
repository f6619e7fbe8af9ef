"""The message store interface: a device's application state, outside its secrets.

A :class:`MessageStore` holds, for one device:

* **contacts** (:class:`ContactRecord`): accepted identity keys, device lists,
  per-contact settings;
* **conversations** (:class:`ConversationRecord`) and their **message
  history** (:class:`StoredMessage`) with delivery states, edits, tombstones
  and disappearing-message deadlines, searchable by text;
* the **outbox** (:class:`OutboxEntry`): one entry per message and recipient
  device, kept until that device acknowledged it or it expired;
* the **seen set**: (sender device, message id) pairs already received, to
  drop duplicates of a retried envelope.

Secrets (ratchet sessions, prekeys) live in the
:class:`~omega.storage.base.KeyStore`, never here.

Everything happens in a transaction, with the rules of the key store: it
commits when its block exits normally and rolls back, leaving the store
exactly as it was, when the block raises or is cancelled; transactions of one
store run one at a time, and opening one inside another on the same store
raises :class:`~omega.errors.LocalProtocolError`::

    async with store.transaction() as tx:
        if await tx.mark_seen(device_key, message_id, now):
            await tx.add_message(StoredMessage(...))

Delivery states only move forward: ``PENDING < SENT < DELIVERED < READ``;
``FAILED`` can follow ``PENDING`` or ``SENT`` and nothing follows it
(:func:`advances`). :meth:`MessageStoreTransaction.set_message_state` keeps
that rule; :meth:`~MessageStoreTransaction.replace_message` and
:meth:`~MessageStoreTransaction.update_outbox` store what they are given
(that is how a user's "retry" resets a failed message).

Implementations: :class:`~omega.storage.message_memory.MemoryMessageStore`
and :class:`~omega.storage.message_sqlite.SQLiteMessageStore`. A new backend
proves itself by passing :func:`omega.testing.message_store.check_message_store`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

from omega.errors import ConfigurationError
from omega.storage._message_checks import (
    MAX_CONTENT_SIZE,
    MAX_CONVERSATION_ID_LENGTH,
    MAX_TEXT_BYTES,
    check_bool,
    check_content,
    check_conversation_id,
    check_device_list,
    check_display_name,
    check_identity_key,
    check_optional_device_key,
    check_optional_time,
    check_stored_message_id,
    check_text,
    check_time,
    check_user_id,
)
from omega.storage._message_search import MAX_SEARCH_QUERY_LENGTH
from omega.storage._transactional import TransactionalStore
from omega.storage.base import check_device_key

__all__ = [
    "MAX_CONTENT_SIZE",
    "MAX_CONVERSATION_ID_LENGTH",
    "MAX_SEARCH_QUERY_LENGTH",
    "MAX_TEXT_BYTES",
    "ContactRecord",
    "ConversationRecord",
    "DeliveryState",
    "Direction",
    "MessageStore",
    "MessageStoreTransaction",
    "OutboxEntry",
    "StoredMessage",
    "advances",
]


class DeliveryState(enum.Enum):
    """Where a message stands; see :func:`advances` for the allowed moves."""

    PENDING = "pending"
    """Stored, not yet handed to the network."""
    SENT = "sent"
    """Handed to a peer or a store-and-forward server."""
    DELIVERED = "delivered"
    """Acknowledged by the recipient device (every device, for an aggregate)."""
    READ = "read"
    """Read by the recipient (a read receipt arrived, or we read an incoming message)."""
    FAILED = "failed"
    """Given up on; terminal."""


_RANK = {
    DeliveryState.PENDING: 0,
    DeliveryState.SENT: 1,
    DeliveryState.DELIVERED: 2,
    DeliveryState.READ: 3,
}


def advances(current: DeliveryState, new: DeliveryState) -> bool:
    """Whether a message in state ``current`` may move to ``new``.

    Forward along ``PENDING < SENT < DELIVERED < READ``; to ``FAILED`` only
    from ``PENDING`` or ``SENT``; never out of ``FAILED``, never to itself.
    """
    if current is DeliveryState.FAILED:
        return False
    if new is DeliveryState.FAILED:
        return current in (DeliveryState.PENDING, DeliveryState.SENT)
    return _RANK[new] > _RANK[current]


class Direction(enum.Enum):
    """Whether we received or wrote a message."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


def _check_enum(value: object, kind: type[enum.Enum], what: str) -> None:
    if not isinstance(value, kind):
        raise ConfigurationError(f"{what} must be a {kind.__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRecord:
    """A contact: whom we accepted, under which identity key, and their settings."""

    user_id: str
    """The contact's canonical ``omega1...`` user id."""
    display_name: str
    """The name shown for them (a label of at most 64 UTF-8 bytes, may be empty)."""
    identity_key: bytes
    """The accepted Ed25519 identity key: the 32 bytes ``user_id`` encodes."""
    verified: bool = False
    """Whether the user verified the safety number."""
    blocked: bool = False
    """Whether the user blocked them."""
    read_receipts: bool = True
    """Whether to send them read receipts."""
    typing_notifications: bool = True
    """Whether to send them typing notifications."""
    device_list: bytes | None = None
    """The last accepted encoded ``SignedDeviceList`` (at most 64 KiB)."""
    device_list_sequence: int = -1
    """Its sequence number; -1 when there is none."""
    pending_identity_key: bytes | None = None
    """A changed identity key seen for them, not yet accepted by the user (32 bytes)."""
    held_devices: bytes | None = None
    """Keys (32 bytes each, concatenated) of devices added to their list since the
    user verified them: messages to those devices wait until the user accepts."""
    added_at: int
    """When they were added, Unix milliseconds."""

    def __post_init__(self) -> None:
        check_user_id(self.user_id)
        check_display_name(self.display_name)
        check_identity_key(self.user_id, self.identity_key)
        for name in ("verified", "blocked", "read_receipts", "typing_notifications"):
            check_bool(getattr(self, name), name)
        check_device_list(self.device_list)
        sequence = self.device_list_sequence
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise ConfigurationError("device_list_sequence must be an int")
        if not -1 <= sequence < 1 << 63:
            raise ConfigurationError("device_list_sequence must be in -1..2**63-1")
        check_optional_device_key(self.pending_identity_key, "pending_identity_key")
        held = self.held_devices
        if held is not None and (
            not isinstance(held, bytes) or not held or len(held) % 32 or len(held) > 32 * 1024
        ):
            raise ConfigurationError("held_devices must be whole 32-byte device keys")
        check_time(self.added_at, "added_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One message of a conversation's history, incoming or outgoing."""

    message_id: str
    """The message's id, unique within its conversation."""
    conversation_id: str
    """The contact's user id (a group id later)."""
    sender_id: str
    """The author's user id."""
    sender_device_key: bytes
    """The 32-byte key of the device that wrote it."""
    direction: Direction
    """Whether we received or wrote it."""
    timestamp: int
    """The sender's timestamp, Unix milliseconds (orders the history)."""
    received_at: int | None
    """When we stored an incoming message, Unix ms; ``None`` for an outgoing one."""
    content: bytes
    """The encoded ``omega.protocol.MessageContent`` (plaintext, at most 256 KiB)."""
    text: str = ""
    """Searchable text (body, caption, location name...); at most 256 KiB of UTF-8."""
    state: DeliveryState
    """Outgoing: the aggregated delivery state. Incoming: DELIVERED or READ."""
    reply_to: str | None = None
    """The id of the message it replies to."""
    expires_at: int | None = None
    """Disappearing message: delete it at this Unix ms."""
    edited_at: int | None = None
    """When it was last edited, Unix ms."""
    deleted: bool = False
    """Deleted for everyone: a tombstone whose content and text are empty."""

    def __post_init__(self) -> None:
        check_stored_message_id(self.message_id)
        check_conversation_id(self.conversation_id)
        check_user_id(self.sender_id, "sender_id")
        check_device_key(self.sender_device_key)
        _check_enum(self.direction, Direction, "direction")
        check_time(self.timestamp, "timestamp")
        check_content(self.content, "content")
        check_text(self.text)
        _check_enum(self.state, DeliveryState, "state")
        if self.direction is Direction.INCOMING:
            if self.received_at is None:
                raise ConfigurationError("an incoming message has a received_at time")
            check_time(self.received_at, "received_at")
            if self.state not in (DeliveryState.DELIVERED, DeliveryState.READ):
                raise ConfigurationError("an incoming message is DELIVERED or READ")
        elif self.received_at is not None:
            raise ConfigurationError("an outgoing message has no received_at time")
        if self.reply_to is not None:
            check_stored_message_id(self.reply_to)
        check_optional_time(self.expires_at, "expires_at")
        check_optional_time(self.edited_at, "edited_at")
        check_bool(self.deleted, "deleted")
        if self.deleted and (self.content or self.text):
            raise ConfigurationError("a deleted message keeps no content or text")

    @property
    def unread(self) -> bool:
        """Whether it counts in its conversation's ``unread_count``."""
        return (
            self.direction is Direction.INCOMING
            and self.state is not DeliveryState.READ
            and not self.deleted
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationRecord:
    """A conversation's settings and the figures the store maintains for it."""

    conversation_id: str
    """The contact's user id (a group id later)."""
    archived: bool = False
    """Whether the user archived it."""
    muted_until: int | None = None
    """Notifications muted until this Unix ms."""
    last_read_message_id: str | None = None
    """The last message the user has seen."""
    last_message_at: int = 0
    """Maintained by the store: the largest timestamp of its messages (0 without any)."""
    unread_count: int = 0
    """Maintained by the store: incoming messages neither READ nor deleted."""

    def __post_init__(self) -> None:
        check_conversation_id(self.conversation_id)
        check_bool(self.archived, "archived")
        check_optional_time(self.muted_until, "muted_until")
        if self.last_read_message_id is not None:
            check_stored_message_id(self.last_read_message_id)
        check_time(self.last_message_at, "last_message_at")
        check_time(self.unread_count, "unread_count")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """One message on its way to one recipient device."""

    message_id: str
    """The message's id."""
    recipient_id: str
    """The recipient's user id (ours, for our other devices)."""
    recipient_device_key: bytes
    """The 32-byte key of the recipient device."""
    content: bytes
    """The encoded ``MessageContent`` plaintext, to encrypt for this device."""
    ciphertext: bytes | None = None
    """The encoded ``omega.protocol.Frame`` to (re)send, once encrypted."""
    state: DeliveryState = DeliveryState.PENDING
    """PENDING until sent, SENT until acknowledged, then DELIVERED/READ, or FAILED."""
    attempts: int = 0
    """How many times it was sent."""
    next_attempt_at: int = 0
    """When to (re)send it next, Unix ms."""
    created_at: int
    """When it was queued, Unix ms."""
    expires_at: int
    """Give up (state FAILED) after this Unix ms."""
    ephemeral: bool = False
    """Typing notifications and the like: a SQLite store drops these when it is opened."""

    def __post_init__(self) -> None:
        check_stored_message_id(self.message_id)
        check_user_id(self.recipient_id, "recipient_id")
        check_device_key(self.recipient_device_key)
        check_content(self.content, "content")
        if self.ciphertext is not None:
            check_content(self.ciphertext, "ciphertext")
        _check_enum(self.state, DeliveryState, "state")
        check_time(self.attempts, "attempts")
        check_time(self.next_attempt_at, "next_attempt_at")
        check_time(self.created_at, "created_at")
        check_time(self.expires_at, "expires_at")
        check_bool(self.ephemeral, "ephemeral")


class MessageStoreTransaction(ABC):
    """Reads and writes inside one transaction of a :class:`MessageStore`.

    Only valid inside its ``async with`` block; using it afterwards raises
    :class:`~omega.errors.LocalProtocolError`. Invalid arguments (a malformed
    id, a key that is not 32 bytes, a limit outside 1..10000, a time that is
    not Unix milliseconds) raise :class:`~omega.errors.ConfigurationError` and
    change nothing.
    """

    # contacts

    @abstractmethod
    async def put_contact(self, contact: ContactRecord) -> None:
        """Insert ``contact``, or replace the contact with its user id."""

    @abstractmethod
    async def get_contact(self, user_id: str) -> ContactRecord | None:
        """The contact with ``user_id``, or ``None``."""

    @abstractmethod
    async def contacts(self) -> list[ContactRecord]:
        """Every contact, sorted by display name, then user id."""

    @abstractmethod
    async def delete_contact(self, user_id: str) -> bool:
        """Delete the contact (not its conversation); return whether there was one."""

    # messages

    @abstractmethod
    async def add_message(self, message: StoredMessage) -> bool:
        """Add ``message``; False (and no change) if its id is already in its conversation.

        Creates the conversation if needed and updates its ``last_message_at``
        and ``unread_count``.
        """

    @abstractmethod
    async def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        """The message, or ``None``."""

    @abstractmethod
    async def replace_message(self, message: StoredMessage) -> None:
        """Replace the stored message with the same conversation and id (edits, tombstones).

        Raises :class:`~omega.errors.StorageError` if there is none. Every
        field is taken as given, including the state.
        """

    @abstractmethod
    async def messages(
        self, conversation_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``timestamp < before``, newest first.

        Messages with equal timestamps come newest-added first.
        """

    @abstractmethod
    async def set_message_state(
        self, conversation_id: str, message_id: str, state: DeliveryState
    ) -> bool:
        """Move the message to ``state`` if :func:`advances` allows it; return whether it moved.

        False for an unknown message.
        """

    @abstractmethod
    async def delete_message(self, conversation_id: str, message_id: str) -> bool:
        """Remove the message entirely; return whether there was one."""

    @abstractmethod
    async def expired_messages(self, now: int, *, limit: int = 100) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``expires_at <= now``, soonest deadline first."""

    @abstractmethod
    async def search(
        self, query: str, *, conversation_id: str | None = None, limit: int = 50
    ) -> list[StoredMessage]:
        """Messages whose text matches ``query``, newest first.

        The query is words and double-quoted phrases, all of which must
        occur; the last word matches as a prefix. It is never interpreted as
        FTS or SQL syntax. See :mod:`omega.storage._message_search`.
        """

    # conversations

    @abstractmethod
    async def get_conversation(self, conversation_id: str) -> ConversationRecord | None:
        """The conversation, or ``None``."""

    @abstractmethod
    async def conversations(self, *, archived: bool | None = None) -> list[ConversationRecord]:
        """Conversations (only archived or unarchived ones if given), newest activity first.

        Ties are broken by conversation id.
        """

    @abstractmethod
    async def put_conversation(self, conversation: ConversationRecord) -> None:
        """Create a conversation, or update its settings.

        Sets ``archived``, ``muted_until`` and ``last_read_message_id``.
        Its ``last_message_at`` and ``unread_count`` are ignored: the store
        maintains them.
        """

    # outbox

    @abstractmethod
    async def add_outbox(self, entry: OutboxEntry) -> bool:
        """Add ``entry``; False (and no change) if (message id, device key) is there already."""

    @abstractmethod
    async def update_outbox(self, entry: OutboxEntry) -> None:
        """Replace the entry with the same key; StorageError if there is none."""

    @abstractmethod
    async def outbox_entry(
        self, message_id: str, recipient_device_key: bytes
    ) -> OutboxEntry | None:
        """The entry, or ``None``."""

    @abstractmethod
    async def outbox_for_message(self, message_id: str) -> list[OutboxEntry]:
        """Every entry of the message, in the order they were added."""

    @abstractmethod
    async def due_outbox(self, now: int, *, limit: int = 100) -> list[OutboxEntry]:
        """Entries PENDING or SENT with ``next_attempt_at <= now``.

        Ordered by ``next_attempt_at``, then ``created_at``, then the order
        they were added.
        """

    @abstractmethod
    async def pending_outbox(self, *, limit: int = 1000) -> list[OutboxEntry]:
        """Entries PENDING or SENT, by ``created_at`` then the order they were added."""

    @abstractmethod
    async def remove_outbox(self, message_id: str, recipient_device_key: bytes) -> bool:
        """Remove the entry; return whether there was one."""

    # dedupe of received envelopes

    @abstractmethod
    async def mark_seen(self, sender_device_key: bytes, message_id: str, now: int) -> bool:
        """Record that ``message_id`` came from the device; False if it was seen before."""

    @abstractmethod
    async def forget_seen_before(self, cutoff: int) -> int:
        """Forget pairs first seen before ``cutoff`` Unix ms; return how many."""


class MessageStore(TransactionalStore[MessageStoreTransaction]):
    """A device's contacts, conversations, history and outbox; see the module docstring."""

    _kind = "message store"
