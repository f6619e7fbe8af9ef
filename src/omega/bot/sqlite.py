"""A bot store in one SQLite file (``bot.db`` in the bot's data directory).

Tables::

    handled(conversation_id TEXT, message_id TEXT, handled_at INTEGER,
            PRIMARY KEY (conversation_id, message_id))
    meta(name TEXT PRIMARY KEY, value INTEGER)          -- 'checkpoint'
    state(conversation_id TEXT PRIMARY KEY, value BLOB) -- JSON object
    handoff(customer_id TEXT PRIMARY KEY, human_id TEXT)

With an ``encryption_key`` (32 bytes; :meth:`omega.bot.Bot.from_data_dir`
derives it from the device key like the client's own databases) each state
value is stored as ``nonce(24) || XSalsa20-Poly1305(key, nonce, json)``
(libsodium's ``crypto_secretbox``); ids and times stay in clear so the bot can
query them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Self

import aiosqlite
import anyio
import nacl.exceptions
import nacl.secret

from omega.bot.base import BotStore, encode_state
from omega.errors import ConfigurationError, CorruptDataError, StorageError

__all__ = ["SQLiteBotStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled (
    conversation_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    handled_at INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS handled_at ON handled (handled_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (conversation_id TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS handoff (customer_id TEXT PRIMARY KEY, human_id TEXT NOT NULL);
"""


class SQLiteBotStore(BotStore):
    """A :class:`~omega.bot.base.BotStore` in one SQLite file (WAL)."""

    def __init__(
        self, connection: aiosqlite.Connection, path: Path, box: nacl.secret.SecretBox | None
    ) -> None:
        self._connection: aiosqlite.Connection | None = connection
        self._path = path
        self._box = box
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: str | PathLike[str], *, encryption_key: bytes | None = None) -> Self:
        """Open (creating it if needed) the store at ``path``."""
        if encryption_key is not None and len(encryption_key) != nacl.secret.SecretBox.KEY_SIZE:
            raise ConfigurationError("the bot store's encryption key is 32 bytes")
        box = nacl.secret.SecretBox(encryption_key) if encryption_key is not None else None
        path = Path(path)
        # Checked up front: aiosqlite leaves its worker thread to fail noisily on a failed connect.
        if path.is_dir() or not path.parent.is_dir():
            raise StorageError(
                f"cannot open the bot store {path}: not a file in an existing folder"
            )
        try:
            connection = await aiosqlite.connect(path)
        except sqlite3.Error as exc:  # pragma: no cover - checked above
            raise StorageError(f"cannot open the bot store {path}: {exc}") from exc
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.executescript(_SCHEMA)
            await connection.commit()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await connection.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open the bot store {path}: {exc}") from exc
            raise
        return cls(connection, path, box)

    def _db(self) -> aiosqlite.Connection:
        if self._connection is None:
            raise StorageError("the bot store is closed")
        return self._connection

    async def _write(self, *statements: tuple[str, tuple[object, ...]]) -> int:
        async with self._lock:
            db = self._db()
            try:
                changed = 0
                for sql, parameters in statements:
                    cursor = await db.execute(sql, parameters)
                    changed += cursor.rowcount
                await db.commit()
            except sqlite3.Error as exc:
                await db.rollback()
                raise StorageError(f"bot store write failed: {exc}") from exc
            return changed

    async def _one(self, sql: str, parameters: tuple[object, ...]) -> Any:
        async with self._lock:
            try:
                async with self._db().execute(sql, parameters) as cursor:
                    return await cursor.fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"bot store read failed: {exc}") from exc

    async def is_handled(self, conversation_id: str, message_id: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM handled WHERE conversation_id = ? AND message_id = ?",
            (conversation_id, message_id),
        )
        return row is not None

    async def mark_handled(
        self, conversation_id: str, message_id: str, *, at: int, checkpoint: int | None = None
    ) -> None:
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT OR REPLACE INTO handled VALUES (?, ?, ?)",
                (conversation_id, message_id, at),
            )
        ]
        if checkpoint is not None:
            statements.append(
                ("INSERT OR REPLACE INTO meta VALUES ('checkpoint', ?)", (checkpoint,))
            )
        await self._write(*statements)

    async def checkpoint(self) -> int | None:
        row = await self._one("SELECT value FROM meta WHERE name = 'checkpoint'", ())
        return int(row[0]) if row is not None else None

    async def set_checkpoint(self, at: int) -> None:
        await self._write(("INSERT OR REPLACE INTO meta VALUES ('checkpoint', ?)", (at,)))

    async def prune_handled(self, before: int) -> int:
        return await self._write(("DELETE FROM handled WHERE handled_at < ?", (before,)))

    async def load_state(self, conversation_id: str) -> dict[str, Any]:
        row = await self._one(
            "SELECT value FROM state WHERE conversation_id = ?", (conversation_id,)
        )
        if row is None:
            return {}
        data = bytes(row[0])
        try:
            if self._box is not None:
                data = self._box.decrypt(data)
            value = json.loads(data)
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise CorruptDataError(
                f"the state of {conversation_id} in {self._path} cannot be read: {exc}"
            ) from exc
        if not isinstance(value, dict):
            raise CorruptDataError(f"the state of {conversation_id} is not a JSON object")
        return value

    async def save_state(self, conversation_id: str, state: Mapping[str, Any]) -> None:
        data = encode_state(state)
        if not state:
            await self._write(("DELETE FROM state WHERE conversation_id = ?", (conversation_id,)))
            return
        if self._box is not None:
            data = bytes(self._box.encrypt(data))
        await self._write(("INSERT OR REPLACE INTO state VALUES (?, ?)", (conversation_id, data)))

    async def handoffs(self) -> dict[str, str]:
        async with (
            self._lock,
            self._db().execute("SELECT customer_id, human_id FROM handoff") as cursor,
        ):
            return {str(row[0]): str(row[1]) for row in await cursor.fetchall()}

    async def set_handoff(self, customer_id: str, human_id: str | None) -> None:
        if human_id is None:
            await self._write(("DELETE FROM handoff WHERE customer_id = ?", (customer_id,)))
        else:
            await self._write(
                ("INSERT OR REPLACE INTO handoff VALUES (?, ?)", (customer_id, human_id))
            )

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
