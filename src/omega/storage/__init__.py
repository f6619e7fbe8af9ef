"""Storage: the interfaces and backends where a device keeps its keys and state.

* :mod:`omega.storage.base`: the :class:`KeyStore` interface and its transaction.
* :mod:`omega.storage.memory`: :class:`MemoryKeyStore`, in memory only.
* :mod:`omega.storage.sqlite`: :class:`SQLiteKeyStore`, one SQLite file (WAL),
  optionally encrypted at rest.

Every backend passes :func:`omega.testing.key_store.check_key_store`.
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
from omega.storage.sqlite import SCHEMA_VERSION, SQLiteKeyStore

__all__ = [
    "DEVICE_KEY_SIZE",
    "MAX_GROUP_ID_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_VALUE_SIZE",
    "SCHEMA_VERSION",
    "InboxEntry",
    "KeyStore",
    "KeyStoreTransaction",
    "MemoryKeyStore",
    "SQLiteKeyStore",
]
