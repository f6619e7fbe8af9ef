"""The search part of the message store conformance suite (see :mod:`.message_store`)."""

from __future__ import annotations

import contextlib
import dataclasses

from omega.crypto import IdentityKeyPair
from omega.errors import ConfigurationError
from omega.storage.message_base import (
    DeliveryState,
    Direction,
    MessageStore,
    MessageStoreTransaction,
    StoredMessage,
)

__all__ = ["HOSTILE_QUERIES", "check_search", "check_search_rollback"]

_ALICE = IdentityKeyPair.from_seed(bytes([2]) * 32).user_id
_BOB = IdentityKeyPair.from_seed(bytes([3]) * 32).user_id

HOSTILE_QUERIES = (
    '"',
    '""',
    '"""',
    "*",
    "hello*",
    "^hello",
    "text:hello",
    "{text}: hello",
    "hello OR world",
    "hello AND",
    "AND",
    "NOT hello",
    "NEAR(hello world, 2)",
    "(",
    ")",
    "'); DROP TABLE messages; --",
    "\x00",
    "hello\x00world",
    'hello"world',
    "\\",
    "-hello",
    "+hello",
    "hello ^ *",
    "\ud800 hello",
    "🙂",
    "%_%",
    "?",
    "rowid:1",
    "messages_fts:hello",
    "x" * 1000,
)
"""Queries that must neither break the backend nor raise anything but a ConfigurationError."""

_TEXTS = {
    "s1": (_ALICE, 100, "Hello World"),
    "s2": (_ALICE, 200, "hello, wonderful world!"),
    "s3": (_ALICE, 300, "Café au lait"),
    "s4": (_ALICE, 400, "e-mail me at bob@example.com"),
    "s5": (_BOB, 500, "say hello"),
    "s6": (_ALICE, 600, "HELLOWORLD"),
    "s7": (_ALICE, 700, "release notes: NOT AND OR NEAR"),
    "s8": (_ALICE, 800, ""),
    "s9": (_ALICE, 900, "日本語のテキスト"),
}

_EXPECTED = {
    "hello": ["s6", "s5", "s2", "s1"],
    "HeLLo": ["s6", "s5", "s2", "s1"],
    "hello ": ["s5", "s2", "s1"],
    '"hello"': ["s5", "s2", "s1"],
    "world hello": ["s2", "s1"],
    "wor": ["s2", "s1"],
    "wor hello": [],
    '"hello world"': ["s1"],
    '"hello wor': ["s1"],
    '"hello wor"': [],
    "cafe": ["s3"],
    "CAFÉ": ["s3"],
    "caf": ["s3"],
    "au lait": ["s3"],
    "e-mail": ["s4"],
    "mail": ["s4"],
    "bob@example.com": ["s4"],
    "example.co": ["s4"],
    "NOT": ["s7"],
    "AND OR": ["s7"],
    "NEAR(": ["s7"],
    "release NOT": ["s7"],
    "hello OR world": [],
    "text:hello": [],
    "-hello": ["s6", "s5", "s2", "s1"],
    "日本": ["s9"],
    "": [],
    "   ": [],
    "!!! ... ***": [],
    '""': [],
}


def _message(message_id: str) -> StoredMessage:
    conversation_id, timestamp, text = _TEXTS[message_id]
    return StoredMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_id=conversation_id,
        sender_device_key=bytes(32),
        direction=Direction.INCOMING,
        timestamp=timestamp,
        received_at=timestamp,
        content=text.encode(),
        text=text,
        state=DeliveryState.DELIVERED,
    )


async def _found(tx: MessageStoreTransaction, query: str, **options: object) -> list[str]:
    found = await tx.search(query, **options)  # type: ignore[arg-type]
    assert all(isinstance(message, StoredMessage) for message in found)
    return [message.message_id for message in found]


async def check_search(store: MessageStore) -> None:
    """Search semantics: words, phrases, prefix, case, diacritics, filters, re-indexing."""
    async with store.transaction() as tx:
        for message_id in _TEXTS:
            await tx.add_message(_message(message_id))
    async with store.transaction() as tx:
        for query, expected in _EXPECTED.items():
            found = await _found(tx, query)
            assert found == expected, f"search({query!r}) found {found}, expected {expected}"
        assert await tx.search("hello") == [_message(i) for i in ("s6", "s5", "s2", "s1")]
        assert await _found(tx, "hello", conversation_id=_BOB) == ["s5"], "conversation filter"
        assert await _found(tx, "hello", limit=2) == ["s6", "s5"], "limit keeps the newest"
        for query in HOSTILE_QUERIES:
            with contextlib.suppress(ConfigurationError):
                await tx.search(query)
        assert await _found(tx, "hello ") == ["s5", "s2", "s1"], "hostile queries broke nothing"
    async with store.transaction() as tx:
        await tx.replace_message(dataclasses.replace(_message("s1"), text="goodbye"))
        tombstone = dataclasses.replace(_message("s2"), content=b"", text="", deleted=True)
        await tx.replace_message(tombstone)
        await tx.delete_message(_BOB, "s5")
        assert await _found(tx, "hello ") == [], "replaced, tombstoned and deleted texts go"
        assert await _found(tx, "goodbye") == ["s1"], "a replaced text is indexed"
    async with store.transaction() as tx:
        assert await _found(tx, "goodb") == ["s1"], "re-indexing is committed"


async def check_search_rollback(store: MessageStore) -> None:
    """A rolled-back transaction leaves the search index as it was."""
    async with store.transaction() as tx:
        await tx.add_message(_message("s1"))
        await tx.add_message(_message("s3"))
    try:
        async with store.transaction() as tx:
            await tx.add_message(_message("s2"))
            await tx.replace_message(dataclasses.replace(_message("s1"), text="changed"))
            await tx.delete_message(_ALICE, "s3")
            assert await _found(tx, "changed") == ["s1"], "a transaction sees its writes"
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with store.transaction() as tx:
        assert await _found(tx, "hello ") == ["s1"], "rolled-back adds and edits are not found"
        assert await _found(tx, "changed") == [], "rolled-back edits are not found"
        assert await _found(tx, "cafe") == ["s3"], "rolled-back deletes are found again"
