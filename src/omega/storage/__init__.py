"""Storage: the interfaces and backends where a device keeps its keys and state.

* :mod:`omega.storage.base`: the :class:`KeyStore` interface and its transaction.
* :mod:`omega.storage.memory`: :class:`MemoryKeyStore`, in memory only.
* :mod:`omega.storage.sqlite`: :class:`SQLiteKeyStore`, one SQLite file (WAL),
  optionally encrypted at rest.
* :mod:`omega.storage.message_base`: the :class:`MessageStore` interface (contacts,
  conversations, message history, outbox, dedupe) and its records.
* :mod:`omega.storage.message_memory`: :class:`MemoryMessageStore`.
* :mod:`omega.storage.message_sqlite`: :class:`SQLiteMessageStore`, one SQLite file
  with an FTS5 search index, optionally encrypted at rest.

Every key store passes :func:`omega.testing.key_store.check_key_store`, every
message store :func:`omega.testing.message_store.check_message_store`.
"""

from __future__ import annotations

from omega.storage.base import (
    DEVICE_KEY_SIZE,
    MAX_GROUP_ID_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MAX_VALUE_SIZE,
    InboxEntry,
    KeyStore,
    KeyStoreTransaction,
)
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import (
    MAX_CONTENT_SIZE,
    MAX_CONVERSATION_ID_LENGTH,
    MAX_SEARCH_QUERY_LENGTH,
    MAX_TEXT_BYTES,
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    Direction,
    MessageStore,
    MessageStoreTransaction,
    OutboxEntry,
    StoredMessage,
    advances,
)
from omega.storage.message_memory import MemoryMessageStore
from omega.storage.message_sqlite import MESSAGE_SCHEMA_VERSION, SQLiteMessageStore
from omega.storage.sqlite import SCHEMA_VERSION, SQLiteKeyStore

__all__ = [
    "DEVICE_KEY_SIZE",
    "MAX_CONTENT_SIZE",
    "MAX_CONVERSATION_ID_LENGTH",
    "MAX_SEARCH_QUERY_LENGTH",
    "MAX_TEXT_BYTES",
    "MAX_GROUP_ID_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_VALUE_SIZE",
    "MESSAGE_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "ContactRecord",
    "ConversationRecord",
    "DeliveryState",
    "Direction",
    "InboxEntry",
    "KeyStore",
    "KeyStoreTransaction",
    "MemoryKeyStore",
    "MemoryMessageStore",
    "MessageStore",
    "MessageStoreTransaction",
    "OutboxEntry",
    "SQLiteKeyStore",
    "SQLiteMessageStore",
    "StoredMessage",
    "advances",
]
