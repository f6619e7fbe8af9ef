"""What the SQLite stores share: the error map and the transaction protocol."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import aiosqlite
import anyio

from omega.errors import CorruptDataError, StorageError, map_exceptions

__all__ = ["SQLITE_ERRORS", "sqlite_transaction"]

SQLITE_ERRORS: dict[type[BaseException], type[StorageError]] = {
    sqlite3.OperationalError: StorageError,  # locked, disk full, unreadable file...
    sqlite3.DatabaseError: CorruptDataError,  # "file is not a database", malformed pages
    sqlite3.Error: StorageError,
    OSError: StorageError,
}
"""How sqlite3's exceptions become Omega's (more specific classes first)."""


class _Transaction(Protocol):
    live: bool


T = TypeVar("T", bound=_Transaction)


@asynccontextmanager
async def sqlite_transaction(
    connection: aiosqlite.Connection, lock: anyio.Lock, transaction: T, *, kind: str
) -> AsyncIterator[T]:
    """Run ``transaction`` as one ``BEGIN IMMEDIATE`` transaction of ``connection``.

    One at a time (``lock``); commits when the block exits normally, rolls back
    when it raises; either way the transaction object is dead afterwards, and
    the commit or rollback is not interrupted by a cancellation.
    """
    async with lock:
        with map_exceptions(SQLITE_ERRORS, f"cannot start a {kind} transaction"):
            await connection.execute("BEGIN IMMEDIATE")
        try:
            yield transaction
        except BaseException:
            transaction.live = False
            with anyio.CancelScope(shield=True):
                await connection.rollback()
            raise
        transaction.live = False
        with anyio.CancelScope(shield=True), map_exceptions(SQLITE_ERRORS, f"{kind} commit failed"):
            await connection.commit()
