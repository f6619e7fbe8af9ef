"""omega-store: the store-and-forward server and key directory (``omega serve store``).

The rules live in :class:`omega.mailbox.StoreService`; this package adds the
backends and the APIs:

* :class:`SQLiteBackend` (:mod:`~omega.server.store.sqlite`): one file, the default.
* :class:`PostgresBackend` (:mod:`~omega.server.store.postgres`): daily partitions.
* :class:`RedisNotifier`, :class:`RedisNonceBackend` (:mod:`~omega.server.store.hotpath`).
* :class:`ShardedBackend` (:mod:`~omega.server.store.sharding`): consistent hashing.
* :func:`create_app` (:mod:`~omega.server.store.app`): the HTTP API (Starlette).
* :func:`create_grpc_server`, :class:`StoreServicer` (:mod:`~omega.server.store.grpc`):
  the gRPC API (grpclib).
* :mod:`~omega.server.store.command`: ``omega serve store``.

The backend interface is :class:`omega.mailbox.backend.StoreBackend` (its
suite: :func:`omega.testing.mailbox.check_store_backend`). Names are
imported on first use, so that importing the command module for
``omega --help`` needs neither the ``server`` extra nor a database driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omega.mailbox.backend import StoreBackend
    from omega.server.store.app import create_app
    from omega.server.store.grpc import StoreServicer, create_grpc_server
    from omega.server.store.hotpath import RedisNonceBackend, RedisNotifier
    from omega.server.store.postgres import PostgresBackend
    from omega.server.store.sharding import ShardedBackend
    from omega.server.store.sqlite import SQLiteBackend

__all__ = [
    "PostgresBackend",
    "RedisNonceBackend",
    "RedisNotifier",
    "SQLiteBackend",
    "ShardedBackend",
    "StoreBackend",
    "StoreServicer",
    "create_app",
    "create_grpc_server",
]

_WHERE = {
    "PostgresBackend": "omega.server.store.postgres",
    "RedisNonceBackend": "omega.server.store.hotpath",
    "RedisNotifier": "omega.server.store.hotpath",
    "SQLiteBackend": "omega.server.store.sqlite",
    "ShardedBackend": "omega.server.store.sharding",
    "StoreBackend": "omega.mailbox.backend",
    "StoreServicer": "omega.server.store.grpc",
    "create_app": "omega.server.store.app",
    "create_grpc_server": "omega.server.store.grpc",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
