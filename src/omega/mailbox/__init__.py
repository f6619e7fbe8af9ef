"""Store-and-forward mailboxes and the key directory, as a client sees a store server.

* :mod:`omega.mailbox.base`: the :class:`Mailbox` and :class:`KeyDirectory` interfaces.
* :mod:`omega.mailbox.memory`: :class:`MemoryStoreServer`, an in-process server.
* :mod:`omega.mailbox.http`: :class:`StoreClient`, a client of ``omega serve store``.
* :mod:`omega.mailbox.grpc`: :class:`GrpcStoreClient`, the same over gRPC (needs grpclib,
  so it is not imported here).
* :mod:`omega.mailbox.service`: :class:`StoreService`, the one service layer every API uses,
  over a :class:`StoreBackend` (:mod:`omega.mailbox.backend`).
"""

from __future__ import annotations

from omega.mailbox._auth import AuthProof, auth_message, recipient_hash
from omega.mailbox.backend import (
    DepositOutcome,
    Listener,
    Notifier,
    PrekeyRecord,
    StoreBackend,
    StoredMessage,
)
from omega.mailbox.base import KeyDirectory, Mailbox, StoredEnvelope
from omega.mailbox.config import DEFAULT_TTL_SECONDS, StoreConfig, WallClock
from omega.mailbox.directory import DirectoryService
from omega.mailbox.memory import MemoryBackend, MemoryStoreClient, MemoryStoreServer
from omega.mailbox.notify import MemoryNotifier
from omega.mailbox.service import REVOKED_DEVICE, StoreService

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "REVOKED_DEVICE",
    "AuthProof",
    "DepositOutcome",
    "DirectoryService",
    "KeyDirectory",
    "Listener",
    "Mailbox",
    "MemoryBackend",
    "MemoryNotifier",
    "MemoryStoreClient",
    "MemoryStoreServer",
    "Notifier",
    "PrekeyRecord",
    "StoreBackend",
    "StoreConfig",
    "StoreService",
    "StoredEnvelope",
    "StoredMessage",
    "WallClock",
    "auth_message",
    "recipient_hash",
]
