"""The embedded store backend: one SQLite file through aiosqlite (WAL, one writer).

Tables (docs/servers.md, "Schema"): ``messages`` (the original plan's
columns; ``(recipient_hash, message_id)`` unique, indexed on
``(recipient_hash, created_at)``), ``nonces`` (spent challenges),
``device_lists``, ``signed_prekeys``, ``one_time_prekeys`` and
``revoked_devices`` (mailboxes of revoked devices, kept for good). Every write is
one ``BEGIN IMMEDIATE`` transaction, so duplicate and quota checks and the
insert are atomic, and a one-time prekey is deleted by the claim that reads it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path

import aiosqlite
import anyio

from omega.errors import StorageError, map_exceptions
from omega.mailbox.backend import DepositOutcome, PrekeyRecord, StoreBackend, StoredMessage

__all__ = ["SQLiteBackend"]

_ERRORS: dict[type[BaseException], type[StorageError]] = {
    sqlite3.Error: StorageError,
    OSError: StorageError,
    ValueError: StorageError,  # aiosqlite: "no active connection"
}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " recipient_hash TEXT NOT NULL, message_id TEXT NOT NULL,"
    " encrypted_payload BLOB NOT NULL, created_at INTEGER NOT NULL,"
    " ttl_seconds INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    " UNIQUE (recipient_hash, message_id))",
    "CREATE INDEX IF NOT EXISTS idx_recipient_ttl ON messages (recipient_hash, created_at)",
    "CREATE INDEX IF NOT EXISTS idx_expiry ON messages (expires_at)",
    "CREATE TABLE IF NOT EXISTS nonces (nonce BLOB PRIMARY KEY, expires_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS device_lists (user_id TEXT PRIMARY KEY,"
    " sequence INTEGER NOT NULL, signed BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS signed_prekeys (device_key BLOB PRIMARY KEY,"
    " user_id TEXT NOT NULL, certificate BLOB NOT NULL, signed_prekey BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS one_time_prekeys (device_key BLOB NOT NULL,"
    " prekey_id INTEGER NOT NULL, public_key BLOB NOT NULL, PRIMARY KEY (device_key, prekey_id))",
    # added after the first release: CREATE ... IF NOT EXISTS migrates older files
    "CREATE TABLE IF NOT EXISTS revoked_devices (recipient_hash TEXT PRIMARY KEY,"
    " revoked_at INTEGER NOT NULL)",
)


class SQLiteBackend(StoreBackend):
    """A :class:`~omega.mailbox.backend.StoreBackend` in one SQLite file.

    Open with ``await SQLiteBackend.open(path)`` (``":memory:"`` for a
    throwaway database).
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection: aiosqlite.Connection | None = connection
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: str | PathLike[str]) -> SQLiteBackend:
        """Open (creating if needed) the database at ``path``."""
        with map_exceptions(_ERRORS, f"cannot open store database {path}"):
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(str(path), isolation_level=None)
            try:
                await connection.execute("PRAGMA journal_mode=WAL")
                await connection.execute("PRAGMA synchronous=NORMAL")
                await connection.execute("PRAGMA busy_timeout=5000")
                for statement in _SCHEMA:
                    await connection.execute(statement)
            except BaseException:
                await connection.close()
                raise
        return cls(connection)

    @asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError("the store database is closed")
            with map_exceptions(_ERRORS, f"store database failed to {what}"):
                await connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT")

    @asynccontextmanager
    async def _statement(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for statements that are atomic on their own (autocommit)."""
        async with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError("the store database is closed")
            with map_exceptions(_ERRORS, f"store database failed to {what}"):
                yield connection

    async def _query(self, what: str, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        async with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError("the store database is closed")
            with map_exceptions(_ERRORS, f"store database failed to {what}"):
                async with connection.execute(sql, params) as cursor:
                    return list(await cursor.fetchall())

    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        # One statement (atomic in SQLite): insert unless revoked or full; a duplicate
        # is ignored.
        async with self._statement("store a message") as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO messages (recipient_hash, message_id, encrypted_payload,"
                " created_at, ttl_seconds, expires_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6"
                " WHERE (SELECT count(*) < ?7 AND coalesce(sum(length(encrypted_payload)), 0)"
                " + length(?3) <= ?8 FROM messages WHERE recipient_hash = ?1)"
                " AND NOT EXISTS (SELECT 1 FROM revoked_devices WHERE recipient_hash = ?1)",
                (
                    message.recipient_hash,
                    message.message_id,
                    message.payload,
                    message.deposited_at,
                    (message.expires_at - message.deposited_at) // 1000,
                    message.expires_at,
                    max_messages,
                    max_bytes,
                ),
            )
            if cursor.rowcount == 1:
                return DepositOutcome.STORED
            async with db.execute(
                "SELECT 1 FROM revoked_devices WHERE recipient_hash = ?",
                (message.recipient_hash,),
            ) as found:
                if await found.fetchone() is not None:
                    return DepositOutcome.REVOKED
            async with db.execute(
                "SELECT 1 FROM messages WHERE recipient_hash = ? AND message_id = ?",
                (message.recipient_hash, message.message_id),
            ) as found:
                duplicate = await found.fetchone() is not None
        return DepositOutcome.DUPLICATE if duplicate else DepositOutcome.MAILBOX_FULL

    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        rows = await self._query(
            "list messages",
            "SELECT message_id, encrypted_payload, created_at, expires_at FROM messages"
            " WHERE recipient_hash = ? AND expires_at > ? ORDER BY created_at, seq LIMIT ?",
            (recipient_hash, now, limit),
        )
        return [
            StoredMessage(
                recipient_hash=recipient_hash,
                message_id=row[0],
                payload=bytes(row[1]),
                deposited_at=row[2],
                expires_at=row[3],
            )
            for row in rows
        ]

    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        if not message_ids:
            return 0
        marks = ", ".join("?" * len(message_ids))
        async with self._statement("delete messages") as db:
            cursor = await db.execute(
                f"DELETE FROM messages WHERE recipient_hash = ? AND message_id IN ({marks})",  # noqa: S608
                (recipient_hash, *message_ids),
            )
            return cursor.rowcount

    async def purge_expired(self, now: int) -> int:
        async with self._transaction("purge expired messages") as db:
            cursor = await db.execute("DELETE FROM messages WHERE expires_at <= ?", (now,))
            removed = cursor.rowcount
            await db.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
            return removed

    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        async with self._statement("spend a nonce") as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)",
                (nonce, expires_at),
            )
            return cursor.rowcount == 1

    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        rows = await self._query(
            "read a device list",
            "SELECT sequence, signed FROM device_lists WHERE user_id = ?",
            (user_id,),
        )
        return None if not rows else (int(rows[0][0]), bytes(rows[0][1]))

    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        async with self._statement("store a device list") as db:
            if expected_sequence is None:
                cursor = await db.execute(
                    "INSERT OR IGNORE INTO device_lists (user_id, sequence, signed)"
                    " VALUES (?, ?, ?)",
                    (user_id, sequence, signed),
                )
            else:
                cursor = await db.execute(
                    "UPDATE device_lists SET sequence = ?, signed = ?"
                    " WHERE user_id = ? AND sequence = ?",
                    (sequence, signed, user_id, expected_sequence),
                )
            return cursor.rowcount == 1

    async def put_prekeys(
        self,
        device_key: bytes,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        async with self._transaction("store prekeys") as db:
            async with db.execute(
                "SELECT user_id FROM signed_prekeys WHERE device_key = ?", (device_key,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is not None and row[0] != user_id:
                await db.execute("DELETE FROM one_time_prekeys WHERE device_key = ?", (device_key,))
            await db.execute(
                "INSERT OR REPLACE INTO signed_prekeys"
                " (device_key, user_id, certificate, signed_prekey) VALUES (?, ?, ?, ?)",
                (device_key, user_id, certificate, signed_prekey),
            )
            await db.executemany(
                "INSERT OR IGNORE INTO one_time_prekeys (device_key, prekey_id, public_key)"
                " VALUES (?, ?, ?)",
                [(device_key, prekey_id, key) for prekey_id, key in one_time_prekeys],
            )
            async with db.execute(
                "SELECT count(*) FROM one_time_prekeys WHERE device_key = ?", (device_key,)
            ) as cursor:
                counted = await cursor.fetchone()
            return 0 if counted is None else int(counted[0])

    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        async with self._transaction("claim prekeys") as db:
            async with db.execute(
                "SELECT certificate, signed_prekey FROM signed_prekeys"
                " WHERE device_key = ? AND user_id = ?",
                (device_key, user_id),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            async with db.execute(
                "DELETE FROM one_time_prekeys WHERE device_key = ? AND prekey_id ="
                " (SELECT min(prekey_id) FROM one_time_prekeys WHERE device_key = ?)"
                " RETURNING prekey_id, public_key",
                (device_key, device_key),
            ) as cursor:
                claimed = await cursor.fetchone()
            return PrekeyRecord(
                user_id=user_id,
                certificate=bytes(row[0]),
                signed_prekey=bytes(row[1]),
                one_time_prekey=None if claimed is None else (int(claimed[0]), bytes(claimed[1])),
            )

    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        rows = await self._query(
            "count prekeys",
            "SELECT count(*) FROM one_time_prekeys WHERE device_key = ?",
            (device_key,),
        )
        return int(rows[0][0])

    async def delete_prekeys(self, device_key: bytes) -> None:
        async with self._transaction("delete prekeys") as db:
            await db.execute("DELETE FROM one_time_prekeys WHERE device_key = ?", (device_key,))
            await db.execute("DELETE FROM signed_prekeys WHERE device_key = ?", (device_key,))

    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        async with self._transaction("revoke a device") as db:
            await db.execute(
                "INSERT OR IGNORE INTO revoked_devices (recipient_hash, revoked_at) VALUES (?, ?)",
                (recipient_hash, revoked_at),
            )
            cursor = await db.execute(
                "DELETE FROM messages WHERE recipient_hash = ?", (recipient_hash,)
            )
            return cursor.rowcount

    async def is_revoked(self, recipient_hash: str) -> bool:
        rows = await self._query(
            "check a revocation",
            "SELECT 1 FROM revoked_devices WHERE recipient_hash = ?",
            (recipient_hash,),
        )
        return bool(rows)

    async def aclose(self) -> None:
        """Close the database; idempotent."""
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                with map_exceptions(_ERRORS, "cannot close the store database"):
                    await connection.close()
