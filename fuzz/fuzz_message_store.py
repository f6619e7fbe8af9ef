"""Fuzz what the message store reads from untrusted places: its file's rows, and search queries.

Run: ``python fuzz/fuzz_message_store.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first byte picks a target:

* a row decoder (contact, message, conversation, outbox entry) of a plain or
  an encrypted store, fed a valid row with one column replaced by a value
  built from the input (None, an int, bytes, text, or another column's
  value). Anything but an OmegaError escaping, or an accepted row whose record
  does not survive a re-encode, is a crash;
* the search query parser, fed the input as text: it must accept any string
  of at most 1000 characters, produce an FTS5 expression made only of quoted
  phrases, which a real SQLite FTS5 table accepts without an error, and
  evaluate the same query in Python without raising.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Callable, Sequence

from omega.crypto import IdentityKeyPair
from omega.errors import ConfigurationError, OmegaError
from omega.storage import (
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    Direction,
    OutboxEntry,
    StoredMessage,
)
from omega.storage._message_rows import RowCodec
from omega.storage._message_search import (
    TextMatcher,
    fts5_expression,
    parse_search_query,
)
from omega.storage._sealing import PLAIN, Sealer

_IDENTITY = IdentityKeyPair.from_seed(bytes(range(32)))
_USER = _IDENTITY.user_id
_CODECS = (RowCodec(PLAIN, encrypted=False), RowCodec(Sealer(b"K" * 32), encrypted=True))

_CONTACT = ContactRecord(
    user_id=_USER,
    display_name="Alice",
    identity_key=_IDENTITY.public_key,
    device_list=b"list",
    device_list_sequence=3,
    added_at=1,
)
_MESSAGE = StoredMessage(
    message_id="m1",
    conversation_id=_USER,
    sender_id=_USER,
    sender_device_key=bytes(32),
    direction=Direction.INCOMING,
    timestamp=5,
    received_at=6,
    content=b"content",
    text="hello world",
    state=DeliveryState.DELIVERED,
    reply_to="m0",
    expires_at=9,
)
_CONVERSATION = ConversationRecord(conversation_id=_USER, muted_until=4, unread_count=2)
_OUTBOX = OutboxEntry(
    message_id="m1",
    recipient_id=_USER,
    recipient_device_key=bytes(32),
    content=b"content",
    ciphertext=b"frame",
    created_at=1,
    expires_at=2,
)

_FTS = sqlite3.connect(":memory:")
_FTS.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='unicode61 remove_diacritics 2')")
_FTS.execute("INSERT INTO t (text) VALUES ('hello wonderful world'), ('Café au lait')")
_PHRASES = re.compile(r'"(?:[^"]|"")*"\*?(?: AND "(?:[^"]|"")*"\*?)*')


def _conversation_row(codec: RowCodec, record: ConversationRecord) -> tuple[object, ...]:
    return (
        record.conversation_id,
        int(record.archived),
        record.muted_until,
        record.last_read_message_id,
        record.last_message_at,
        record.unread_count,
    )


_Case = tuple[
    Callable[[RowCodec], tuple[object, ...]],
    Callable[[RowCodec, Sequence[object]], object],
    Callable[[RowCodec, object], tuple[object, ...]],
]
_CASES: tuple[_Case, ...] = (
    (
        lambda codec: codec.contact_row(_CONTACT),
        RowCodec.contact,
        lambda codec, record: codec.contact_row(record),  # type: ignore[arg-type]
    ),
    (
        lambda codec: codec.message_row(_MESSAGE),
        RowCodec.message,
        lambda codec, record: codec.message_row(record),  # type: ignore[arg-type]
    ),
    (
        lambda codec: _conversation_row(codec, _CONVERSATION),
        RowCodec.conversation,
        _conversation_row,  # type: ignore[arg-type]
    ),
    (
        lambda codec: codec.outbox_row(_OUTBOX),
        RowCodec.outbox_entry,
        lambda codec, record: codec.outbox_row(record),  # type: ignore[arg-type]
    ),
)


def _value(kind: int, payload: bytes, row: Sequence[object]) -> object:
    if kind == 0:
        return None
    if kind == 1:
        return int.from_bytes(payload[:9], "big", signed=True)
    if kind == 2:
        return payload
    if kind == 3:
        return payload.decode("utf-8", "replace")
    return row[payload[0] % len(row)] if payload else True


def _fuzz_row(data: bytes) -> None:
    if len(data) < 3:
        return
    build, decode, encode = _CASES[data[0] % len(_CASES)]
    codec = _CODECS[data[0] // len(_CASES) % 2]
    row = list(build(codec))
    row[data[1] % len(row)] = _value(data[2] % 5, data[3:], row)
    try:
        record = decode(codec, row)
    except OmegaError:
        return
    again = decode(codec, encode(codec, record))
    if again != record:
        raise AssertionError(f"a decoded row changed across a re-encode: {record!r}")


def _fuzz_query(data: bytes) -> None:
    query = data.decode("utf-8", "replace")
    try:
        parsed = parse_search_query(query)
    except ConfigurationError:
        if len(query) <= 1000:
            raise
        return
    TextMatcher(parsed).matches("hello wonderful world, Café au lait")
    if not parsed.phrases:
        return
    expression = fts5_expression(parsed)
    if not _PHRASES.fullmatch(expression):
        raise AssertionError(f"the query {query!r} became {expression!r}")
    _FTS.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    if not data:
        return
    if data[0] % 3 == 0:
        _fuzz_query(data[1:])
    else:
        _fuzz_row(data[1:])


def main() -> None:
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
