# ruff: noqa: S608 - the only interpolated name is the schema, checked against _SCHEMA_NAME
"""The scale-out store backend: PostgreSQL through asyncpg.

The original plan's ``messages`` table (``recipient_hash``,
``message_id``, ``encrypted_payload``, ``created_at``, ``ttl_seconds``;
times are Unix milliseconds) indexed on ``(recipient_hash, created_at)``,
range-partitioned by ``expires_at`` with one partition per UTC day: expiry
drops whole partitions instead of deleting rows. Partitions are created
``partition_days_ahead`` days in advance (at open and on every sweep), which
must exceed the server's ``max_ttl_seconds``.

Deposits to one mailbox are serialised by a transaction-scoped advisory
lock on the recipient hash, so the duplicate check, the quota check and the
insert are atomic across server processes; revoking a device's mailbox
(``revoked_devices``) takes the same lock, so no deposit slips past it. One-time prekeys are claimed
with ``DELETE ... WHERE ... FOR UPDATE SKIP LOCKED ... RETURNING``: two
concurrent claims never get the same key. Every connection error becomes a
:class:`~omega.errors.StorageError` for that call; the pool replaces broken
connections, so the next call works again.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio

from omega.errors import ConfigurationError, StorageError, map_exceptions
from omega.mailbox.backend import DepositOutcome, PrekeyRecord, StoreBackend, StoredMessage

__all__ = ["PostgresBackend"]

_DAY_MS = 86_400_000
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _errors() -> dict[type[BaseException], type[StorageError]]:
    import asyncpg  # type: ignore[import-untyped]

    return {
        asyncpg.PostgresError: StorageError,
        asyncpg.InterfaceError: StorageError,
        asyncpg.InternalClientError: StorageError,  # a connection killed mid-operation
        OSError: StorageError,
        TimeoutError: StorageError,
    }


def _ddl(schema: str) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE IF NOT EXISTS {schema}.messages (seq bigserial,"
        " recipient_hash varchar(64) NOT NULL, message_id text NOT NULL,"
        " encrypted_payload bytea NOT NULL, created_at bigint NOT NULL,"
        " ttl_seconds integer NOT NULL, expires_at bigint NOT NULL)"
        " PARTITION BY RANGE (expires_at)",
        f"CREATE INDEX IF NOT EXISTS idx_recipient_ttl ON {schema}.messages"
        " (recipient_hash, created_at)",
        f"CREATE INDEX IF NOT EXISTS idx_recipient_id ON {schema}.messages"
        " (recipient_hash, message_id)",
        f"CREATE TABLE IF NOT EXISTS {schema}.nonces"
        " (nonce bytea PRIMARY KEY, expires_at bigint NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {schema}.device_lists (user_id text PRIMARY KEY,"
        " sequence bigint NOT NULL, signed bytea NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {schema}.signed_prekeys (device_key bytea PRIMARY KEY,"
        " user_id text NOT NULL, certificate bytea NOT NULL, signed_prekey bytea NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {schema}.one_time_prekeys (device_key bytea NOT NULL,"
        " prekey_id bigint NOT NULL, public_key bytea NOT NULL,"
        " PRIMARY KEY (device_key, prekey_id))",
        # added after the first release: CREATE ... IF NOT EXISTS migrates older schemas
        f"CREATE TABLE IF NOT EXISTS {schema}.revoked_devices (recipient_hash text PRIMARY KEY,"
        " revoked_at bigint NOT NULL)",
    ]


class PostgresBackend(StoreBackend):
    """A :class:`~omega.mailbox.backend.StoreBackend` in PostgreSQL (``server`` extra).

    Open with ``await PostgresBackend.open(dsn, schema="omega_store")``.
    """

    def __init__(self, pool: Any, *, schema: str, partition_days_ahead: int) -> None:
        self._pool: Any = pool
        self.schema = schema
        self._days_ahead = partition_days_ahead
        self._partitions: set[int] = set()
        self._partition_lock = anyio.Lock()
        self._errors = _errors()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str = "omega_store",
        partition_days_ahead: int = 32,
        min_connections: int = 1,
        max_connections: int = 10,
        now_ms: int,
    ) -> PostgresBackend:
        """Connect, create the schema if needed and the partitions up to ``now_ms`` + ahead."""
        import asyncpg

        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(f"invalid PostgreSQL schema name {schema!r}")
        if partition_days_ahead < 2:
            raise ConfigurationError("partition_days_ahead must be at least 2")
        with map_exceptions(_errors(), "cannot connect to PostgreSQL"):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_connections,
                max_size=max_connections,
                server_settings={"application_name": f"omega-store-{schema}"},
            )
        backend = cls(pool, schema=schema, partition_days_ahead=partition_days_ahead)
        try:
            async with (
                backend._connection("create the schema") as connection,
                connection.transaction(),
            ):
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", schema
                )
                for statement in _ddl(schema):
                    await connection.execute(statement)
            await backend.ensure_partitions(now_ms)
        except BaseException:
            await backend.aclose()
            raise
        return backend

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[Any]:
        if self._pool is None:
            raise StorageError("the PostgreSQL backend is closed")
        with map_exceptions(self._errors, f"PostgreSQL failed to {what}"):
            async with self._pool.acquire() as connection:
                yield connection

    def _partition(self, day: int) -> str:
        return f"{self.schema}.messages_d{day}"

    async def ensure_partitions(self, now_ms: int) -> None:
        """Create the daily partitions from today to ``partition_days_ahead`` days ahead."""
        first = now_ms // _DAY_MS
        for day in range(first, first + self._days_ahead + 1):
            await self._ensure_partition(day)

    async def _ensure_partition(self, day: int) -> None:
        if day in self._partitions:
            return
        import asyncpg

        async with self._partition_lock, self._connection("create a partition") as connection:
            # another process may create it at the same moment
            with suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
                await connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._partition(day)} PARTITION OF"
                    f" {self.schema}.messages FOR VALUES FROM ({day * _DAY_MS})"
                    f" TO ({(day + 1) * _DAY_MS})"
                )
            self._partitions.add(day)

    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        await self._ensure_partition(message.expires_at // _DAY_MS)
        s = self.schema
        async with self._connection("store a message") as db, db.transaction():
            await db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", message.recipient_hash
            )
            if await db.fetchval(
                f"SELECT 1 FROM {s}.revoked_devices WHERE recipient_hash = $1",
                message.recipient_hash,
            ):
                return DepositOutcome.REVOKED
            row = await db.fetchrow(
                "SELECT count(*) AS held, coalesce(sum(octet_length(encrypted_payload)), 0)"
                " AS used, coalesce(bool_or(message_id = $2), false) AS duplicate"
                f" FROM {s}.messages WHERE recipient_hash = $1",
                message.recipient_hash,
                message.message_id,
            )
            if row["duplicate"]:
                return DepositOutcome.DUPLICATE
            if row["held"] + 1 > max_messages or row["used"] + len(message.payload) > max_bytes:
                return DepositOutcome.MAILBOX_FULL
            await db.execute(
                f"INSERT INTO {s}.messages (recipient_hash, message_id, encrypted_payload,"
                " created_at, ttl_seconds, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                message.recipient_hash,
                message.message_id,
                message.payload,
                message.deposited_at,
                (message.expires_at - message.deposited_at) // 1000,
                message.expires_at,
            )
        return DepositOutcome.STORED

    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        async with self._connection("list messages") as db:
            rows = await db.fetch(
                "SELECT message_id, encrypted_payload, created_at, expires_at"
                f" FROM {self.schema}.messages WHERE recipient_hash = $1 AND expires_at > $2"
                " ORDER BY created_at, seq LIMIT $3",
                recipient_hash,
                now,
                limit,
            )
        return [
            StoredMessage(
                recipient_hash=recipient_hash,
                message_id=row["message_id"],
                payload=bytes(row["encrypted_payload"]),
                deposited_at=row["created_at"],
                expires_at=row["expires_at"],
            )
            for row in rows
        ]

    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        if not message_ids:
            return 0
        async with self._connection("delete messages") as db:
            status: str = await db.execute(
                f"DELETE FROM {self.schema}.messages"
                " WHERE recipient_hash = $1 AND message_id = ANY($2::text[])",
                recipient_hash,
                list(message_ids),
            )
        return int(status.rsplit(maxsplit=1)[-1])

    async def purge_expired(self, now: int) -> int:
        """Drop partitions that ended, delete expired rows of the current one, spent nonces."""
        removed = 0
        s = self.schema
        async with self._connection("purge expired messages") as db:
            names = await db.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n"
                " ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = 'messages'",
                s,
            )
            for record in names:
                day = int(record["relname"].removeprefix("messages_d"))
                if (day + 1) * _DAY_MS <= now:
                    async with db.transaction():
                        removed += await db.fetchval(
                            f"SELECT count(*) FROM {s}.{record['relname']}"
                        )
                        await db.execute(f"DROP TABLE {s}.{record['relname']}")
                    self._partitions.discard(day)
            status: str = await db.execute(f"DELETE FROM {s}.messages WHERE expires_at <= $1", now)
            removed += int(status.rsplit(maxsplit=1)[-1])
            await db.execute(f"DELETE FROM {s}.nonces WHERE expires_at <= $1", now)
        await self.ensure_partitions(now)
        return removed

    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        async with self._connection("spend a nonce") as db:
            status: str = await db.execute(
                f"INSERT INTO {self.schema}.nonces (nonce, expires_at) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                nonce,
                expires_at,
            )
        return status.endswith(" 1")

    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        async with self._connection("read a device list") as db:
            row = await db.fetchrow(
                f"SELECT sequence, signed FROM {self.schema}.device_lists WHERE user_id = $1",
                user_id,
            )
        return None if row is None else (int(row["sequence"]), bytes(row["signed"]))

    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        s = self.schema
        async with self._connection("store a device list") as db:
            if expected_sequence is None:
                status: str = await db.execute(
                    f"INSERT INTO {s}.device_lists (user_id, sequence, signed)"
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    user_id,
                    sequence,
                    signed,
                )
            else:
                status = await db.execute(
                    f"UPDATE {s}.device_lists SET sequence = $2, signed = $3"
                    " WHERE user_id = $1 AND sequence = $4",
                    user_id,
                    sequence,
                    signed,
                    expected_sequence,
                )
        return status.endswith(" 1")

    async def put_prekeys(
        self,
        device_key: bytes,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        s = self.schema
        async with self._connection("store prekeys") as db, db.transaction():
            previous = await db.fetchval(
                f"SELECT user_id FROM {s}.signed_prekeys WHERE device_key = $1 FOR UPDATE",
                device_key,
            )
            if previous is not None and previous != user_id:
                await db.execute(
                    f"DELETE FROM {s}.one_time_prekeys WHERE device_key = $1", device_key
                )
            await db.execute(
                f"INSERT INTO {s}.signed_prekeys (device_key, user_id, certificate, signed_prekey)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (device_key) DO UPDATE SET"
                " user_id = $2, certificate = $3, signed_prekey = $4",
                device_key,
                user_id,
                certificate,
                signed_prekey,
            )
            if one_time_prekeys:
                await db.execute(
                    f"INSERT INTO {s}.one_time_prekeys (device_key, prekey_id, public_key)"
                    " SELECT $1, unnest($2::bigint[]), unnest($3::bytea[]) ON CONFLICT DO NOTHING",
                    device_key,
                    [prekey_id for prekey_id, _ in one_time_prekeys],
                    [key for _, key in one_time_prekeys],
                )
            count: int = await db.fetchval(
                f"SELECT count(*) FROM {s}.one_time_prekeys WHERE device_key = $1", device_key
            )
        return count

    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        s = self.schema
        async with self._connection("claim prekeys") as db, db.transaction():
            row = await db.fetchrow(
                f"SELECT certificate, signed_prekey FROM {s}.signed_prekeys"
                " WHERE device_key = $1 AND user_id = $2",
                device_key,
                user_id,
            )
            if row is None:
                return None
            claimed = await db.fetchrow(
                f"DELETE FROM {s}.one_time_prekeys WHERE (device_key, prekey_id) ="
                f" (SELECT device_key, prekey_id FROM {s}.one_time_prekeys WHERE device_key = $1"
                " ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING prekey_id, public_key",
                device_key,
            )
        return PrekeyRecord(
            user_id=user_id,
            certificate=bytes(row["certificate"]),
            signed_prekey=bytes(row["signed_prekey"]),
            one_time_prekey=None
            if claimed is None
            else (int(claimed["prekey_id"]), bytes(claimed["public_key"])),
        )

    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        async with self._connection("count prekeys") as db:
            count: int = await db.fetchval(
                f"SELECT count(*) FROM {self.schema}.one_time_prekeys WHERE device_key = $1",
                device_key,
            )
        return count

    async def delete_prekeys(self, device_key: bytes) -> None:
        s = self.schema
        async with self._connection("delete prekeys") as db, db.transaction():
            await db.execute(f"DELETE FROM {s}.one_time_prekeys WHERE device_key = $1", device_key)
            await db.execute(f"DELETE FROM {s}.signed_prekeys WHERE device_key = $1", device_key)

    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        s = self.schema
        async with self._connection("revoke a device") as db, db.transaction():
            # the deposit's lock: a deposit under way finishes first, later ones see the mark
            await db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", recipient_hash
            )
            await db.execute(
                f"INSERT INTO {s}.revoked_devices (recipient_hash, revoked_at) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                recipient_hash,
                revoked_at,
            )
            status: str = await db.execute(
                f"DELETE FROM {s}.messages WHERE recipient_hash = $1", recipient_hash
            )
        return int(status.rsplit(maxsplit=1)[-1])

    async def is_revoked(self, recipient_hash: str) -> bool:
        async with self._connection("check a revocation") as db:
            found = await db.fetchval(
                f"SELECT 1 FROM {self.schema}.revoked_devices WHERE recipient_hash = $1",
                recipient_hash,
            )
        return found is not None

    async def drop_schema(self) -> None:
        """Drop the whole schema and everything in it (tests, decommissioning)."""
        async with self._connection("drop the schema") as db:
            await db.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self._partitions.clear()

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with map_exceptions(self._errors, "cannot close the PostgreSQL pool"):
                await pool.close()
