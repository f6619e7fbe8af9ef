"""Storing the ratchet sessions of one remote device as a ``SessionRecord``.

The rules for choosing among them live in :mod:`omega.session.sessions`.
"""

from __future__ import annotations

from omega.crypto import RatchetSession
from omega.errors import MessageDecodeError
from omega.protocol import SessionRecord, decode_message, encode_message
from omega.session.sessions import MAX_SESSIONS
from omega.storage.base import KeyStoreTransaction

__all__ = ["load_sessions", "save_sessions"]

_VERSION = 1


async def load_sessions(tx: KeyStoreTransaction, device_key: bytes) -> list[RatchetSession]:
    """The sessions with ``device_key``, newest first (empty when there is none)."""
    data = await tx.load_session(device_key)
    if data is None:
        return []
    record = decode_message(SessionRecord, data)
    if record.version != _VERSION:
        raise MessageDecodeError(f"unsupported session record version {record.version}")
    return [RatchetSession.from_bytes(state) for state in record.sessions]


async def save_sessions(
    tx: KeyStoreTransaction, device_key: bytes, sessions: list[RatchetSession]
) -> None:
    """Store ``sessions`` (newest first, the oldest beyond :data:`MAX_SESSIONS` dropped)."""
    if not sessions:
        await tx.delete_session(device_key)
        return
    record = SessionRecord(
        version=_VERSION, sessions=[session.to_bytes() for session in sessions[:MAX_SESSIONS]]
    )
    await tx.save_session(device_key, encode_message(record))
