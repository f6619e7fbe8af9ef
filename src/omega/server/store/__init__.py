"""omega-store: the store-and-forward server and key directory (``omega serve store``).

The rules live in :class:`omega.mailbox.StoreService`; this package adds the
backends (:class:`SQLiteBackend` here; ``omega.server.store.postgres``,
``omega.server.store.redis`` and :class:`ShardedBackend` for scale-out), the
HTTP API (``omega.server.store.app``, Starlette, needs the ``server`` extra)
and the command. This module imports only what the core install provides.
"""

from __future__ import annotations

from omega.mailbox.backend import (
    DepositOutcome,
    Listener,
    Notifier,
    PrekeyRecord,
    StoreBackend,
    StoredMessage,
)
from omega.server.store.sharding import ShardedBackend
from omega.server.store.sqlite import SQLiteBackend

__all__ = [
    "DepositOutcome",
    "Listener",
    "Notifier",
    "PrekeyRecord",
    "SQLiteBackend",
    "ShardedBackend",
    "StoreBackend",
    "StoredMessage",
]
