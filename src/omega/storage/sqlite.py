"""A durable :class:`~omega.storage.base.KeyStore` in one SQLite file (WAL).

The default store of an Omega device: one file, no server. Every
transaction is an SQLite ``BEGIN IMMEDIATE`` transaction in write-ahead-log
mode with ``synchronous=FULL``, so a transaction that returned has reached
the disk (even across a power loss), and one interrupted by a crash (even
``kill -9``) leaves no trace. Statements run on the caller's thread, the
commit of a transaction that wrote in a worker thread: one thread hop per
writing transaction, none for a reading one (see
:mod:`omega.storage._sqlite_common`).

At-rest encryption (optional): open the store with ``encryption_key`` (32
bytes, e.g. kept in the OS keyring) or ``passphrase`` (stretched with
Argon2id; salt and cost stored in the file). Every stored value is then
sealed with XChaCha20-Poly1305 under a key derived from it, with associated
data naming the table, column and row, so values cannot be swapped between
rows unnoticed; row identifiers (device keys, group and message ids) are
replaced by keyed BLAKE2b hashes, so the file does not reveal whom the device
talks to. A wrong key or passphrase raises
:class:`~omega.errors.WrongPassphraseError`; a value that fails to open
raises :class:`~omega.errors.CorruptDataError`. What is not hidden: the
number of sessions, sender keys and inbox entries, and value sizes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from os import PathLike
from pathlib import Path

from omega.errors import (
    ConfigurationError,
    CorruptDataError,
    StorageError,
)
from omega.storage._sealing import PLAIN, Sealer, derive_store_key, new_kdf_parameters
from omega.storage._sqlite_common import SQLiteDatabase, check_live
from omega.storage.base import (
    InboxEntry,
    KeyStore,
    KeyStoreTransaction,
    check_blob_name,
    check_device_key,
    check_group_id,
    check_limit,
    check_message_ids,
    check_value,
)

__all__ = ["SCHEMA_VERSION", "SQLiteKeyStore"]

SCHEMA_VERSION = 2
"""Version of the file layout; a file with a newer version is refused.

1: one ``group_states`` row held a device's whole group session. 2 adds the
``group_outbound`` and ``group_senders`` tables (the group session split in
parts); a version 1 file is migrated when opened (the new tables are created,
its rows stay as they are and are converted by the client's next save).
"""


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS singletons (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sessions"
    " (id BLOB PRIMARY KEY, device_key BLOB NOT NULL, state BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sender_keys"
    " (id BLOB PRIMARY KEY, group_ref BLOB NOT NULL, state BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sender_keys_by_group ON sender_keys (group_ref)",
    "CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id BLOB UNIQUE NOT NULL, message_id BLOB NOT NULL, sender_device_key BLOB NOT NULL,"
    " plaintext BLOB NOT NULL, received_at BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS group_states"
    " (id BLOB PRIMARY KEY, group_id BLOB NOT NULL, state BLOB NOT NULL)",
    # Version 2: the group session in parts (a version 1 file gets them when opened).
    "CREATE TABLE IF NOT EXISTS group_outbound (id BLOB PRIMARY KEY, state BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS group_senders (id BLOB PRIMARY KEY, group_ref BLOB NOT NULL,"
    " device_key BLOB NOT NULL, state BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS group_senders_by_group ON group_senders (group_ref)",
)

_MIGRATABLE_VERSIONS = frozenset({1})
"""Older layouts :func:`_prepare` upgrades (creating the tables they lack is the migration)."""


class _SQLiteTransaction(KeyStoreTransaction):
    def __init__(self, database: SQLiteDatabase, sealer: Sealer) -> None:
        self._database = database
        self._sealer = sealer
        self.live = True

    async def _fetch_one(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Row | None:
        rows = await self._fetch_all(sql, parameters)
        return rows[0] if rows else None

    async def _fetch_all(self, sql: str, parameters: tuple[object, ...]) -> list[sqlite3.Row]:
        check_live(self)
        return self._database.fetch_all(sql, parameters)

    async def _execute(self, sql: str, parameters: tuple[object, ...]) -> int:
        check_live(self)
        return self._database.execute(sql, parameters)[0]

    async def _load_singleton(self, name: str) -> bytes | None:
        row = await self._fetch_one(
            "SELECT CAST(value AS BLOB) FROM singletons WHERE name = ?", (name,)
        )
        return None if row is None else self._sealer.open(f"singletons/{name}", b"", row[0])

    async def _save_singleton(self, name: str, value: bytes) -> None:
        sealed = self._sealer.seal(f"singletons/{name}", b"", check_value(value, name))
        await self._execute(
            "INSERT INTO singletons (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, sealed),
        )

    async def load_identity(self) -> bytes | None:
        return await self._load_singleton("identity")

    async def save_identity(self, data: bytes) -> None:
        await self._save_singleton("identity", data)

    async def load_prekeys(self) -> bytes | None:
        return await self._load_singleton("prekeys")

    async def save_prekeys(self, data: bytes) -> None:
        await self._save_singleton("prekeys", data)

    async def load_session(self, device_key: bytes) -> bytes | None:
        row_id = self._sealer.row_id("sessions", check_device_key(device_key))
        row = await self._fetch_one(
            "SELECT CAST(state AS BLOB) FROM sessions WHERE id = ?", (row_id,)
        )
        return None if row is None else self._sealer.open("sessions/state", row_id, row[0])

    async def save_session(self, device_key: bytes, state: bytes) -> None:
        row_id = self._sealer.row_id("sessions", check_device_key(device_key))
        await self._execute(
            "INSERT INTO sessions (id, device_key, state) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (
                row_id,
                self._sealer.seal("sessions/device_key", row_id, device_key),
                self._sealer.seal("sessions/state", row_id, check_value(state, "session state")),
            ),
        )

    async def delete_session(self, device_key: bytes) -> bool:
        row_id = self._sealer.row_id("sessions", check_device_key(device_key))
        return await self._execute("DELETE FROM sessions WHERE id = ?", (row_id,)) > 0

    async def session_device_keys(self) -> list[bytes]:
        rows = await self._fetch_all("SELECT id, CAST(device_key AS BLOB) FROM sessions", ())
        return sorted(self._sealer.open("sessions/device_key", row[0], row[1]) for row in rows)

    def _sender_key_ids(self, group_id: str, device_key: bytes) -> tuple[bytes, bytes]:
        group = check_group_id(group_id).encode("utf-8")
        check_device_key(device_key)
        group_ref = self._sealer.row_id("sender_keys/group", group)
        return self._sealer.row_id("sender_keys", group + b"\x00" + device_key), group_ref

    async def load_sender_key(self, group_id: str, device_key: bytes) -> bytes | None:
        row_id, _ = self._sender_key_ids(group_id, device_key)
        row = await self._fetch_one(
            "SELECT CAST(state AS BLOB) FROM sender_keys WHERE id = ?", (row_id,)
        )
        return None if row is None else self._sealer.open("sender_keys/state", row_id, row[0])

    async def save_sender_key(self, group_id: str, device_key: bytes, state: bytes) -> None:
        row_id, group_ref = self._sender_key_ids(group_id, device_key)
        sealed = self._sealer.seal(
            "sender_keys/state", row_id, check_value(state, "sender key state")
        )
        await self._execute(
            "INSERT INTO sender_keys (id, group_ref, state) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (row_id, group_ref, sealed),
        )

    async def delete_sender_keys(self, group_id: str) -> int:
        group_ref = self._sealer.row_id("sender_keys/group", check_group_id(group_id).encode())
        return await self._execute("DELETE FROM sender_keys WHERE group_ref = ?", (group_ref,))

    async def add_to_inbox(self, entry: InboxEntry) -> bool:
        row_id = self._sealer.row_id("inbox", entry.message_id.encode("utf-8"))
        seal = self._sealer.seal
        added = await self._execute(
            "INSERT INTO inbox (id, message_id, sender_device_key, plaintext, received_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                row_id,
                seal("inbox/message_id", row_id, entry.message_id.encode("utf-8")),
                seal("inbox/sender_device_key", row_id, entry.sender_device_key),
                seal("inbox/plaintext", row_id, entry.plaintext),
                seal(
                    "inbox/received_at", row_id, entry.received_at.to_bytes(8, "big", signed=True)
                ),
            ),
        )
        return added > 0

    async def inbox(self, limit: int = 100) -> list[InboxEntry]:
        rows = await self._fetch_all(
            "SELECT id, CAST(message_id AS BLOB), CAST(sender_device_key AS BLOB),"
            " CAST(plaintext AS BLOB), CAST(received_at AS BLOB) FROM inbox ORDER BY seq LIMIT ?",
            (check_limit(limit),),
        )
        entries = []
        for row_id, message_id, sender, plaintext, received_at in rows:
            open_ = self._sealer.open
            try:
                entries.append(
                    InboxEntry(
                        message_id=open_("inbox/message_id", row_id, message_id).decode("utf-8"),
                        sender_device_key=open_("inbox/sender_device_key", row_id, sender),
                        plaintext=open_("inbox/plaintext", row_id, plaintext),
                        received_at=int.from_bytes(
                            open_("inbox/received_at", row_id, received_at), "big", signed=True
                        ),
                    )
                )
            except (UnicodeDecodeError, ConfigurationError) as exc:
                raise CorruptDataError(f"an inbox entry cannot be read back: {exc}") from exc
        return entries

    async def remove_from_inbox(self, message_ids: Sequence[str]) -> int:
        removed = 0
        for message_id in set(check_message_ids(message_ids)):
            row_id = self._sealer.row_id("inbox", message_id.encode("utf-8"))
            removed += await self._execute("DELETE FROM inbox WHERE id = ?", (row_id,))
        return removed

    async def load_blob(self, name: str) -> bytes | None:
        return await self._load_singleton("blob:" + check_blob_name(name))

    async def save_blob(self, name: str, data: bytes) -> None:
        await self._save_singleton("blob:" + check_blob_name(name), data)

    async def delete_blob(self, name: str) -> bool:
        singleton = "blob:" + check_blob_name(name)
        return await self._execute("DELETE FROM singletons WHERE name = ?", (singleton,)) > 0

    def _group_row(self, group_id: str) -> bytes:
        return self._sealer.row_id("group_states", check_group_id(group_id).encode("utf-8"))

    async def load_group_state(self, group_id: str) -> bytes | None:
        row_id = self._group_row(group_id)
        row = await self._fetch_one(
            "SELECT CAST(state AS BLOB) FROM group_states WHERE id = ?", (row_id,)
        )
        return None if row is None else self._sealer.open("group_states/state", row_id, row[0])

    async def save_group_state(self, group_id: str, state: bytes) -> None:
        row_id = self._group_row(group_id)
        await self._execute(
            "INSERT INTO group_states (id, group_id, state) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (
                row_id,
                self._sealer.seal("group_states/group_id", row_id, group_id.encode("utf-8")),
                self._sealer.seal("group_states/state", row_id, check_value(state, "group state")),
            ),
        )

    async def delete_group_state(self, group_id: str) -> bool:
        row_id = self._group_row(group_id)
        group_ref = self._sealer.row_id("group_sender_ref", group_id.encode("utf-8"))
        deleted = await self._execute("DELETE FROM group_states WHERE id = ?", (row_id,))
        deleted += await self._execute(
            "DELETE FROM group_outbound WHERE id = ?", (self._outbound_row(group_id),)
        )
        deleted += await self._execute(
            "DELETE FROM group_senders WHERE group_ref = ?", (group_ref,)
        )
        return deleted > 0

    async def group_state_ids(self) -> list[str]:
        rows = await self._fetch_all("SELECT id, CAST(group_id AS BLOB) FROM group_states", ())
        return sorted(
            self._sealer.open("group_states/group_id", row[0], row[1]).decode("utf-8")
            for row in rows
        )

    def _outbound_row(self, group_id: str) -> bytes:
        return self._sealer.row_id("group_outbound", check_group_id(group_id).encode("utf-8"))

    async def load_group_outbound(self, group_id: str) -> bytes | None:
        row_id = self._outbound_row(group_id)
        row = await self._fetch_one(
            "SELECT CAST(state AS BLOB) FROM group_outbound WHERE id = ?", (row_id,)
        )
        return None if row is None else self._sealer.open("group_outbound/state", row_id, row[0])

    async def save_group_outbound(self, group_id: str, state: bytes) -> None:
        row_id = self._outbound_row(group_id)
        sealed = self._sealer.seal(
            "group_outbound/state", row_id, check_value(state, "outbound sender key")
        )
        await self._execute(
            "INSERT INTO group_outbound (id, state) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (row_id, sealed),
        )

    def _sender_rows(self, group_id: str, device_key: bytes) -> tuple[bytes, bytes]:
        group = check_group_id(group_id).encode("utf-8")
        check_device_key(device_key)
        group_ref = self._sealer.row_id("group_sender_ref", group)
        return self._sealer.row_id("group_senders", group + b"\x00" + device_key), group_ref

    async def load_group_sender(self, group_id: str, device_key: bytes) -> bytes | None:
        row_id, _ = self._sender_rows(group_id, device_key)
        row = await self._fetch_one(
            "SELECT CAST(state AS BLOB) FROM group_senders WHERE id = ?", (row_id,)
        )
        return None if row is None else self._sealer.open("group_senders/state", row_id, row[0])

    async def save_group_sender(self, group_id: str, device_key: bytes, state: bytes) -> None:
        row_id, group_ref = self._sender_rows(group_id, device_key)
        seal = self._sealer.seal
        await self._execute(
            "INSERT INTO group_senders (id, group_ref, device_key, state) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            (
                row_id,
                group_ref,
                seal("group_senders/device_key", row_id, device_key),
                seal("group_senders/state", row_id, check_value(state, "sender record")),
            ),
        )

    async def delete_group_sender(self, group_id: str, device_key: bytes) -> bool:
        row_id, _ = self._sender_rows(group_id, device_key)
        return await self._execute("DELETE FROM group_senders WHERE id = ?", (row_id,)) > 0

    async def load_group_senders(self, group_id: str) -> dict[bytes, bytes]:
        group_ref = self._sealer.row_id("group_sender_ref", check_group_id(group_id).encode())
        rows = await self._fetch_all(
            "SELECT id, CAST(device_key AS BLOB), CAST(state AS BLOB) FROM group_senders"
            " WHERE group_ref = ?",
            (group_ref,),
        )
        open_ = self._sealer.open
        senders = {
            open_("group_senders/device_key", row_id, device_key): open_(
                "group_senders/state", row_id, state
            )
            for row_id, device_key, state in rows
        }
        return dict(sorted(senders.items()))


class SQLiteKeyStore(KeyStore):
    """A :class:`~omega.storage.base.KeyStore` in one SQLite file; see the module docstring.

    Create it with :meth:`open`, never directly.
    """

    def __init__(self, database: SQLiteDatabase, sealer: Sealer, path: Path) -> None:
        super().__init__()
        self._database = database
        self._sealer = sealer
        self.path = path
        """The database file."""

    @classmethod
    async def open(
        cls,
        path: str | PathLike[str],
        *,
        encryption_key: bytes | None = None,
        passphrase: str | None = None,
    ) -> SQLiteKeyStore:
        """Open (creating if needed) the key store at ``path``.

        Pass at most one of ``encryption_key`` (32 bytes) and ``passphrase``
        to encrypt values at rest; a store created with one must be opened
        with the same (:class:`~omega.errors.WrongPassphraseError` otherwise).
        Opening an encrypted store without them, or a plain one with them,
        raises :class:`~omega.errors.ConfigurationError`; a file that is not
        an Omega key store raises :class:`~omega.errors.StorageError` or
        :class:`~omega.errors.CorruptDataError`.
        """
        if encryption_key is not None and passphrase is not None:
            raise ConfigurationError("pass an encryption key or a passphrase, not both")
        if encryption_key is not None and (
            not isinstance(encryption_key, bytes) or len(encryption_key) != 32
        ):
            raise ConfigurationError("an encryption key is 32 bytes")
        file = Path(path)
        if file.is_dir() or not file.parent.is_dir():
            raise StorageError(
                f"cannot open the key store {file}: not a file in an existing folder",
                details={"path": str(file)},
            )
        database, sealer = await SQLiteDatabase.open(
            file,
            kind="key store",
            prepare=lambda connection: _prepare(connection, encryption_key, passphrase),
        )
        return cls(database, sealer, file)

    def _begin(self) -> AbstractAsyncContextManager[KeyStoreTransaction]:
        return self._database.transaction(_SQLiteTransaction(self._database, self._sealer))

    async def _close(self) -> None:
        await self._database.close()


def _prepare(
    connection: sqlite3.Connection, encryption_key: bytes | None, passphrase: str | None
) -> Sealer:
    """Create or check the schema and return the value sealer (in the open transaction)."""
    for statement in _SCHEMA:
        connection.execute(statement)
    rows = connection.execute("SELECT name, value FROM meta").fetchall()
    meta = {name: bytes(value) for name, value in rows}
    sealer, additions = _sealer_for(meta, encryption_key, passphrase)
    for name, value in additions.items():
        connection.execute(
            "INSERT INTO meta VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
    return sealer


def _sealer_for(
    meta: dict[str, bytes], encryption_key: bytes | None, passphrase: str | None
) -> tuple[Sealer, dict[str, bytes]]:
    """Check the file's metadata against how it is opened; return the sealer and new metadata."""
    wants_encryption = encryption_key is not None or passphrase is not None
    if not meta:  # a new store
        additions = {"schema_version": SCHEMA_VERSION.to_bytes(4, "big")}
        if passphrase is not None:
            kdf = new_kdf_parameters()
            additions["kdf"] = kdf
            encryption_key = derive_store_key(passphrase, kdf)
        sealer = Sealer(encryption_key) if encryption_key is not None else PLAIN
        additions["key_check"] = sealer.key_check()
        return sealer, additions
    version = int.from_bytes(meta.get("schema_version", b""), "big")
    upgrade = {}
    if version in _MIGRATABLE_VERSIONS:  # _SCHEMA created the tables it lacked
        upgrade["schema_version"] = SCHEMA_VERSION.to_bytes(4, "big")
    elif version != SCHEMA_VERSION:
        raise StorageError(
            f"key store schema version {version} is not supported (this Omega reads "
            f"{SCHEMA_VERSION})",
            details={"version": version},
        )
    if "key_check" not in meta:
        raise CorruptDataError("the key store has no key check record")
    encrypted = meta["key_check"] != PLAIN.key_check()
    if encrypted and not wants_encryption:
        raise ConfigurationError("the key store is encrypted: pass its key or passphrase")
    if not encrypted and wants_encryption:
        raise ConfigurationError("the key store is not encrypted: open it without a key")
    if passphrase is not None:
        if "kdf" not in meta:
            raise ConfigurationError("the key store is encrypted with a key, not a passphrase")
        encryption_key = derive_store_key(passphrase, meta["kdf"])
    sealer = Sealer(encryption_key) if encryption_key is not None else PLAIN
    sealer.check_key(meta["key_check"])
    return sealer, upgrade
