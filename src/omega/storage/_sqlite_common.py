"""What the SQLite stores share: the error map and the database runner.

One :class:`SQLiteDatabase` owns one ``sqlite3`` connection and runs its
blocking steps in a worker thread, one at a time. A transaction costs at most
one hop to that thread (aiosqlite, used before, cost two or three hops per
statement):

* ``BEGIN IMMEDIATE``, every statement and a read-only ``COMMIT`` run on the
  caller's (event loop) thread. In write-ahead-log mode none of them writes
  to the disk: statements work in SQLite's page cache (reading pages from the
  OS cache at worst), so each takes microseconds;
* the ``COMMIT`` of a transaction that changed rows appends the changed pages
  to the log and syncs it (``synchronous=FULL``), then may checkpoint: that
  runs in the worker thread, while the event loop serves everything else;
* opening (schema, migrations, an encrypted store's search index) and closing
  run in the worker thread too, and so does ``BEGIN IMMEDIATE`` when another
  process holds the write lock (it then waits up to :data:`BUSY_TIMEOUT_MS`
  there instead of blocking the event loop).

Transactions run one at a time (an ``anyio.Lock``). A transaction cancelled
or failing anywhere is rolled back before the lock is released (a rollback
writes nothing in WAL mode, so it runs inline and cannot be interrupted); a
commit already handed to the thread completes. Closing waits for the running
transaction, then closes the connection (in the worker thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Protocol, TypeVar

import anyio
import anyio.to_thread

from omega.errors import (
    CorruptDataError,
    LocalProtocolError,
    StorageError,
    map_exceptions,
)

__all__ = ["BUSY_TIMEOUT_MS", "SQLITE_ERRORS", "SQLiteDatabase"]

SQLITE_ERRORS: dict[type[BaseException], type[StorageError]] = {
    sqlite3.OperationalError: StorageError,  # locked, disk full, unreadable file...
    sqlite3.DatabaseError: CorruptDataError,  # "file is not a database", malformed pages
    sqlite3.Error: StorageError,
    OSError: StorageError,
}
"""How sqlite3's exceptions become Omega's (more specific classes first)."""

BUSY_TIMEOUT_MS = 5000
"""How long ``BEGIN IMMEDIATE`` waits, in the worker thread, for another process's write lock."""

R = TypeVar("R")


class _Transaction(Protocol):
    live: bool


T = TypeVar("T", bound=_Transaction)


class _Worker:
    """Runs blocking jobs in a worker thread, one at a time, in order.

    The threads are anyio's (``anyio.to_thread``), so a job's result comes
    back to the event loop in one hop and no thread outlives the event loop;
    a job is never abandoned: a cancelled caller waits for it to finish.
    """

    def __init__(self) -> None:
        self._limiter = anyio.CapacityLimiter(1)

    async def run(self, function: Callable[..., R], *args: object) -> R:
        """Run ``function(*args)`` in a worker thread."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)


class SQLiteDatabase:
    """One SQLite connection and its worker; see the module docstring.

    Create it with :meth:`open`. ``kind`` names the store in error messages.
    """

    def __init__(self, connection: sqlite3.Connection, worker: _Worker, kind: str) -> None:
        self.connection = connection
        """The connection; use it only inside :meth:`transaction` (or before it exists)."""
        self.kind = kind
        self._worker = worker
        # An uncontended transaction does not yield to the event loop just to take the
        # lock (it still checks for cancellation); a writing one yields at its commit.
        self._lock = anyio.Lock(fast_acquire=True)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        kind: str,
        prepare: Callable[[sqlite3.Connection], R],
        text_factory: Callable[[bytes], object] | None = None,
    ) -> tuple[SQLiteDatabase, R]:
        """Connect to ``path`` and run ``prepare(connection)`` in the worker thread.

        The connection is in autocommit mode (transactions are explicit);
        write-ahead logging, ``synchronous=FULL`` and ``temp_store=MEMORY``
        are set, then ``prepare`` runs inside a ``BEGIN IMMEDIATE``
        transaction, committed when it returns. When connecting or
        ``prepare`` fails, the connection is closed and the error (mapped
        through :data:`SQLITE_ERRORS` as "not a usable Omega <kind>") raised.
        """
        worker = _Worker()
        connection = await worker.run(_connect, path, kind)
        try:
            if text_factory is not None:
                connection.text_factory = text_factory
            with map_exceptions(SQLITE_ERRORS, f"not a usable Omega {kind}"):
                prepared = await worker.run(_prepare, connection, kind, prepare)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await worker.run(connection.close)
            raise
        return cls(connection, worker, kind), prepared

    @asynccontextmanager
    async def transaction(self, transaction: T) -> AsyncIterator[T]:
        """Run the block as one ``BEGIN IMMEDIATE`` transaction, ``transaction`` its handle.

        Commits when the block exits normally, rolls back when it raises (or
        is cancelled); either way ``transaction.live`` is False afterwards.
        A commit that failed was rolled back and raises
        :class:`~omega.errors.StorageError`.
        """
        async with self._lock:
            if self._closed:
                raise StorageError(f"the {self.kind} is closed")
            connection = self.connection
            try:
                await self._begin()
                changes = connection.total_changes
                try:
                    yield transaction
                finally:
                    transaction.live = False
                if connection.total_changes == changes:
                    # Nothing written: a COMMIT only releases the lock, no disk access.
                    with map_exceptions(SQLITE_ERRORS, f"{self.kind} commit failed"):
                        connection.execute("COMMIT")
                else:
                    with (
                        anyio.CancelScope(shield=True),
                        map_exceptions(SQLITE_ERRORS, f"{self.kind} commit failed"),
                    ):
                        await self._worker.run(_commit, connection)
            finally:
                if connection.in_transaction:
                    _rollback(connection)

    async def _begin(self) -> None:
        connection = self.connection
        with map_exceptions(SQLITE_ERRORS, f"cannot start a {self.kind} transaction"):
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
                # Another process writes: wait for it in the thread, not on the event loop.
                await self._worker.run(_begin_waiting, connection)

    def fetch_all(self, sql: str, parameters: Sequence[object]) -> list[sqlite3.Row]:
        """Rows of a query (inside a transaction), errors mapped as "<kind> read failed"."""
        with map_exceptions(SQLITE_ERRORS, f"{self.kind} read failed"):
            return self.connection.execute(sql, parameters).fetchall()

    def execute(self, sql: str, parameters: Sequence[object]) -> tuple[int, int | None]:
        """Run a write (inside a transaction); the rows changed and the last inserted rowid."""
        with map_exceptions(SQLITE_ERRORS, f"{self.kind} write failed"):
            cursor = self.connection.execute(sql, parameters)
            return cursor.rowcount, cursor.lastrowid

    async def close(self) -> None:
        """Wait for the running transaction (and its commit), then close the connection.

        Idempotent; not interrupted by a cancellation. Transactions waiting
        for their turn then raise :class:`~omega.errors.StorageError`.
        """
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if self._closed:
                    return
                self._closed = True
                with map_exceptions(SQLITE_ERRORS, f"closing the {self.kind} failed"):
                    await self._worker.run(self.connection.close)


def check_live(transaction: _Transaction) -> None:
    """Refuse to use a transaction handle after its transaction ended."""
    if not transaction.live:
        raise LocalProtocolError("this transaction has ended")


def _connect(path: Path, kind: str) -> sqlite3.Connection:
    with map_exceptions(SQLITE_ERRORS, f"cannot open the {kind} {path}"):
        return sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=0, cached_statements=256
        )


def _prepare(
    connection: sqlite3.Connection, kind: str, prepare: Callable[[sqlite3.Connection], R]
) -> R:
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode is None or mode[0] != "wal":
        raise StorageError(f"the {kind} file system does not support write-ahead logging")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA temp_store=MEMORY")  # temporary tables never reach the disk
    _begin_waiting(connection)
    try:
        result = prepare(connection)
    except BaseException:
        _rollback(connection)
        raise
    _commit(connection)
    return result


def _begin_waiting(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        connection.execute("BEGIN IMMEDIATE")
    finally:
        connection.execute("PRAGMA busy_timeout = 0")


def _commit(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            _rollback(connection)
        raise


def _rollback(connection: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):  # SQLite may have rolled back by itself (an I/O error)
        connection.execute("ROLLBACK")
