"""A durable :class:`~omega.storage.message_base.MessageStore` in one SQLite file.

One file (the client names it ``messages.db``) in write-ahead-log mode with
``synchronous=FULL``: every transaction is ``BEGIN IMMEDIATE``, a
transaction that returned has reached the disk (even across a power loss),
and one interrupted by a crash leaves no trace. Statements run on the
caller's thread, the commit of a transaction that wrote in a worker thread
(see :mod:`omega.storage._sqlite_common`). The layout is versioned with
``PRAGMA user_version`` (:data:`MESSAGE_SCHEMA_VERSION`); opening an older
file migrates it forward in one transaction, a newer one is refused.

Search uses an FTS5 index (``unicode61`` tokenizer, diacritics removed). In
a plain store it is an external-content table in the file, kept in sync with
``messages.text`` by triggers.

At-rest encryption (optional): open with ``encryption_key`` (32 bytes) or
``passphrase`` (Argon2id), as :class:`~omega.storage.sqlite.SQLiteKeyStore`.
Display names, device lists, message content and text, and outbox content
and ciphertext are then sealed with XChaCha20-Poly1305, bound to their table,
column and row. An index of the text would give the text away, so an
encrypted store keeps its FTS5 index only in memory: a ``TEMP`` table (with
``temp_store=MEMORY``, never written to disk) filled from the decrypted texts
when the store is opened. Opening therefore costs one decryption per
message. Not hidden: user, conversation and message ids, timestamps,
delivery states, flags, and value sizes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from os import PathLike
from pathlib import Path

import anyio
import anyio.to_thread

from omega.errors import ConfigurationError, CorruptDataError, StorageError
from omega.storage._message_rows import RowCodec, message_row_id
from omega.storage._message_sqlite_tx import SQLiteMessageTransaction
from omega.storage._sealing import PLAIN, Sealer, derive_store_key, new_kdf_parameters
from omega.storage._sqlite_common import SQLiteDatabase
from omega.storage.message_base import MessageStore, MessageStoreTransaction

__all__ = ["MESSAGE_SCHEMA_VERSION", "SQLiteMessageStore"]

MESSAGE_SCHEMA_VERSION = 1
"""Version of the message store layout (``PRAGMA user_version``)."""

_TOKENIZER = "unicode61 remove_diacritics 2"

_SCHEMA_V1 = (
    "CREATE TABLE store_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE contacts (user_id TEXT PRIMARY KEY, display_name BLOB NOT NULL,"
    " identity_key BLOB NOT NULL, verified INTEGER NOT NULL, blocked INTEGER NOT NULL,"
    " read_receipts INTEGER NOT NULL, typing_notifications INTEGER NOT NULL, device_list BLOB,"
    " device_list_sequence INTEGER NOT NULL, pending_identity_key BLOB, held_devices BLOB,"
    " added_at INTEGER NOT NULL)",
    "CREATE TABLE conversations (conversation_id TEXT PRIMARY KEY,"
    " archived INTEGER NOT NULL DEFAULT 0, muted_until INTEGER, last_read_message_id TEXT,"
    " last_message_at INTEGER NOT NULL DEFAULT 0, unread_count INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX conversations_by_activity ON conversations (last_message_at, conversation_id)",
    "CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL,"
    " message_id TEXT NOT NULL, sender_id TEXT NOT NULL, sender_device_key BLOB NOT NULL,"
    " direction TEXT NOT NULL, timestamp INTEGER NOT NULL, received_at INTEGER,"
    " content BLOB NOT NULL, text BLOB NOT NULL, state TEXT NOT NULL, reply_to TEXT,"
    " expires_at INTEGER, edited_at INTEGER, deleted INTEGER NOT NULL,"
    " UNIQUE (conversation_id, message_id))",
    "CREATE INDEX messages_by_time ON messages (conversation_id, timestamp, seq)",
    "CREATE INDEX messages_expiring ON messages (expires_at, seq) WHERE expires_at IS NOT NULL",
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
    " recipient_id TEXT NOT NULL, recipient_device_key BLOB NOT NULL, content BLOB NOT NULL,"
    " ciphertext BLOB, state TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " next_attempt_at INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, ephemeral INTEGER NOT NULL,"
    " UNIQUE (message_id, recipient_device_key))",
    "CREATE INDEX outbox_due ON outbox (next_attempt_at, created_at, seq)"
    " WHERE state IN ('pending', 'sent')",
    "CREATE INDEX outbox_pending ON outbox (created_at, seq) WHERE state IN ('pending', 'sent')",
    "CREATE TABLE seen (sender_device_key BLOB NOT NULL, message_id TEXT NOT NULL,"
    " seen_at INTEGER NOT NULL, PRIMARY KEY (sender_device_key, message_id)) WITHOUT ROWID",
    "CREATE INDEX seen_by_time ON seen (seen_at)",
)

_PLAIN_FTS_V1 = (
    "CREATE VIRTUAL TABLE messages_fts USING fts5"
    f"(text, content='messages', content_rowid='seq', tokenize='{_TOKENIZER}')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
    " INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
    " INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);"
    " END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN"
    " INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);"
    " INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text); END",
)

_TEMP_FTS = f"CREATE VIRTUAL TABLE temp.messages_fts USING fts5(text, tokenize='{_TOKENIZER}')"


def _migrate_to_v1(connection: sqlite3.Connection, encrypted: bool) -> None:
    for statement in _SCHEMA_V1 + (() if encrypted else _PLAIN_FTS_V1):
        connection.execute(statement)


_MIGRATIONS: tuple[Callable[[sqlite3.Connection, bool], None], ...] = (_migrate_to_v1,)
"""``_MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``, inside the open transaction."""


class SQLiteMessageStore(MessageStore):
    """A :class:`~omega.storage.message_base.MessageStore` in one SQLite file.

    Create it with :meth:`open`, never directly.
    """

    def __init__(self, database: SQLiteDatabase, codec: RowCodec, path: Path) -> None:
        super().__init__()
        self._database = database
        self._codec = codec
        self.path = path
        """The database file."""

    @classmethod
    async def open(
        cls,
        path: str | PathLike[str],
        *,
        encryption_key: bytes | None = None,
        passphrase: str | None = None,
    ) -> SQLiteMessageStore:
        """Open (creating if needed) the message store at ``path``.

        Pass at most one of ``encryption_key`` (32 bytes) and ``passphrase``
        to encrypt at rest; a store created with one must be opened with the
        same (:class:`~omega.errors.WrongPassphraseError` otherwise). Opening
        an encrypted store without them, or a plain one with them, raises
        :class:`~omega.errors.ConfigurationError`. A file that is not a
        database, or is truncated or damaged, raises
        :class:`~omega.errors.CorruptDataError`; another application's
        database or a newer layout raises :class:`~omega.errors.StorageError`.
        Outbox entries marked ``ephemeral`` are dropped.
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
                f"cannot open the message store {file}: not a file in an existing folder",
                details={"path": str(file)},
            )
        await anyio.to_thread.run_sync(_check_file_header, file)
        database, codec = await SQLiteDatabase.open(
            file,
            kind="message store",
            prepare=lambda connection: _prepare(connection, encryption_key, passphrase),
            text_factory=_decode_text,
        )
        return cls(database, codec, file)

    def _begin(self) -> AbstractAsyncContextManager[MessageStoreTransaction]:
        return self._database.transaction(SQLiteMessageTransaction(self._database, self._codec))

    async def _close(self) -> None:
        await self._database.close()


def _decode_text(data: bytes) -> str:
    """SQLite TEXT as str; a value that is not UTF-8 is corruption, not an I/O error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptDataError("the message store holds text that is not UTF-8") from exc


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_file_header(file: Path) -> None:
    """Refuse a file that is not an SQLite database, or is shorter than its header says.

    SQLite itself would open a truncated file and fail only when a missing
    page is read; checking the size up front makes a damaged store fail at
    :meth:`SQLiteMessageStore.open`. Skipped while a write-ahead log holds
    pages not yet copied into the file.
    """
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return  # a new database
    with file.open("rb") as stream:
        header = stream.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise CorruptDataError(f"{file} is not a message store: not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96] and page_count > 0
    wal = file.with_name(file.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    if header_size_valid and size < page_count * page_size:
        raise CorruptDataError(
            f"the message store {file} is truncated: {size} bytes of {page_count * page_size}",
            details={"path": str(file)},
        )


def _prepare(
    connection: sqlite3.Connection, encryption_key: bytes | None, passphrase: str | None
) -> RowCodec:
    """Create, check or migrate the schema (in the open transaction); return the row codec."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > MESSAGE_SCHEMA_VERSION:
        raise StorageError(
            f"message store schema version {version} is not supported (this Omega reads "
            f"up to {MESSAGE_SCHEMA_VERSION})",
            details={"version": version},
        )
    if version == 0:
        tables = connection.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        if tables:
            raise StorageError("this database is not an Omega message store")
        sealer, additions = _new_sealer(encryption_key, passphrase)
    else:
        rows = connection.execute("SELECT name, value FROM store_meta").fetchall()
        meta: dict[str, object] = {str(row[0]): row[1] for row in rows}
        sealer = _existing_sealer(meta, encryption_key, passphrase)
        additions = {}
    encrypted = sealer is not PLAIN
    for migrate in _MIGRATIONS[version:]:
        migrate(connection, encrypted)
    connection.execute(f"PRAGMA user_version = {MESSAGE_SCHEMA_VERSION}")
    for name, value in additions.items():
        connection.execute("INSERT INTO store_meta VALUES (?, ?)", (name, value))
    connection.execute("DELETE FROM outbox WHERE ephemeral = 1")
    codec = RowCodec(sealer, encrypted=encrypted)
    if encrypted:
        _fill_memory_index(connection, codec)
    return codec


_INDEX_BATCH = 1000
"""Texts an encrypted store decrypts and indexes per batch."""


def _fill_memory_index(connection: sqlite3.Connection, codec: RowCodec) -> None:
    """Create the TEMP FTS5 table of an encrypted store from its decrypted texts."""
    connection.execute(_TEMP_FTS)
    cursor = connection.execute("SELECT seq, conversation_id, message_id, text FROM messages")
    while rows := cursor.fetchmany(_INDEX_BATCH):
        batch = [(row[0], _open_indexed_text(codec, row)) for row in rows]
        connection.executemany(
            "INSERT INTO messages_fts (rowid, text) VALUES (?, ?)",
            [(sequence, text) for sequence, text in batch if text],
        )


def _open_indexed_text(codec: RowCodec, row: Sequence[object]) -> str:
    conversation_id, message_id, sealed = row[1], row[2], row[3]
    if not isinstance(conversation_id, str) or not isinstance(message_id, str):
        raise CorruptDataError("a stored message id is not text")
    try:
        row_id = message_row_id(conversation_id, message_id)
    except UnicodeEncodeError as exc:
        raise CorruptDataError("a stored message id is not valid Unicode") from exc
    return codec.open_text("messages/text", row_id, sealed)


def _new_sealer(
    encryption_key: bytes | None, passphrase: str | None
) -> tuple[Sealer, dict[str, bytes]]:
    additions: dict[str, bytes] = {}
    if passphrase is not None:
        additions["kdf"] = new_kdf_parameters()
        encryption_key = derive_store_key(passphrase, additions["kdf"])
    sealer = Sealer(encryption_key) if encryption_key is not None else PLAIN
    additions["key_check"] = sealer.key_check()
    return sealer, additions


def _existing_sealer(
    meta: dict[str, object], encryption_key: bytes | None, passphrase: str | None
) -> Sealer:
    key_check = meta.get("key_check")
    if not isinstance(key_check, bytes):
        raise CorruptDataError("the message store has no key check record")
    encrypted = key_check != PLAIN.key_check()
    if encrypted and encryption_key is None and passphrase is None:
        raise ConfigurationError("the message store is encrypted: pass its key or passphrase")
    if not encrypted and (encryption_key is not None or passphrase is not None):
        raise ConfigurationError("the message store is not encrypted: open it without a key")
    if passphrase is not None:
        kdf = meta.get("kdf")
        if kdf is None:
            raise ConfigurationError("the message store is encrypted with a key, not a passphrase")
        if not isinstance(kdf, bytes):
            raise CorruptDataError("the message store's passphrase parameters are malformed")
        encryption_key = derive_store_key(passphrase, kdf)
    sealer = Sealer(encryption_key) if encryption_key is not None else PLAIN
    sealer.check_key(key_check)
    return sealer
