"""Sync messages: packing, chunking, reassembly and the shape checks."""

from __future__ import annotations

import os

import pytest

from omega.errors import ConfigurationError, InvalidSyncUpdateError
from omega.protocol import (
    MessageContent,
    SyncChunk,
    SyncContent,
    SyncStateVector,
    SyncUpdate,
    encode_message,
)
from omega.session.content import MAX_CONTENT_SIZE
from omega.sync import (
    MAX_PENDING_TRANSFERS,
    SYNC_PAYLOAD_SIZE,
    Reassembler,
    check_sync_content,
    pack_sync,
)

SENDER = bytes(32)


def test_small_updates_share_messages_and_large_ones_are_chunked_and_reassembled() -> None:
    big = os.urandom(SYNC_PAYLOAD_SIZE * 2 + 10)
    updates = {"contacts": b"a" * 10, "history/x": big, "settings": b"b" * 10}
    messages = pack_sync(updates, request={"contacts": b"\x00"}, transfer_id=os.urandom(16))
    assert messages[0].has_request
    assert [u.document for u in messages[0].updates] == ["contacts", "settings"]
    chunks = [m.chunk for m in messages if m.chunk is not None]
    assert len(chunks) == 3
    for message in messages:
        check_sync_content(message)
        assert len(encode_message(MessageContent(sync=message))) <= MAX_CONTENT_SIZE
    reassembler = Reassembler()
    results = [reassembler.add(SENDER, chunk) for chunk in reversed(chunks)]
    assert results[:2] == [None, None]
    assert results[2] == SyncUpdate(document="history/x", update=big)
    assert reassembler.pending(SENDER) == 0
    assert reassembler.add(SENDER, chunks[0]) is None  # a late duplicate opens a new transfer
    reassembler.forget(SENDER)
    assert reassembler.pending(SENDER) == 0
    with pytest.raises(ConfigurationError):
        pack_sync({"history/x": big})


def test_many_small_updates_spread_over_several_messages() -> None:
    updates = {f"history/{i}": b"x" * 1000 for i in range(400)}
    messages = pack_sync(updates)
    assert len(messages) > 1
    assert sum(len(m.updates) for m in messages) == 400
    assert pack_sync({}) == []


def test_reassembler_bounds_and_refusals() -> None:
    reassembler = Reassembler()
    for n in range(MAX_PENDING_TRANSFERS + 2):
        reassembler.add(SENDER, SyncChunk(transfer_id=bytes([n]) * 16, index=0, count=2, data=b"x"))
    assert reassembler.pending(SENDER) == MAX_PENDING_TRANSFERS
    reassembler.add(SENDER, SyncChunk(transfer_id=b"a" * 16, index=0, count=2, data=b"x"))
    with pytest.raises(InvalidSyncUpdateError):
        reassembler.add(SENDER, SyncChunk(transfer_id=b"a" * 16, index=1, count=3, data=b"x"))
    reassembler.add(SENDER, SyncChunk(transfer_id=b"b" * 16, index=0, count=2, data=b"\xff"))
    with pytest.raises(InvalidSyncUpdateError):
        reassembler.add(SENDER, SyncChunk(transfer_id=b"b" * 16, index=1, count=2, data=b"\xff"))


@pytest.mark.parametrize(
    "content",
    [
        SyncContent(updates=[SyncUpdate(document="", update=b"x")]),
        SyncContent(updates=[SyncUpdate(document="x" * 301, update=b"x")]),
        SyncContent(request=[SyncStateVector(document="a", state_vector=b"")]),
        SyncContent(
            has_request=True, request=[SyncStateVector(document="a", state_vector=b"x" * 70000)]
        ),
        SyncContent(updates=[SyncUpdate(document="a", update=b"")] * 1025),
        SyncContent(chunk=SyncChunk(transfer_id=b"short", index=0, count=1, data=b"x")),
        SyncContent(chunk=SyncChunk(transfer_id=b"a" * 16, index=1, count=1, data=b"x")),
        SyncContent(chunk=SyncChunk(transfer_id=b"a" * 16, index=0, count=1, data=b"")),
        SyncContent(
            updates=[SyncUpdate(document="a", update=b"x")],
            chunk=SyncChunk(transfer_id=b"a" * 16, index=0, count=1, data=b"x"),
        ),
    ],
)
def test_malformed_sync_contents_are_refused(content: SyncContent) -> None:
    with pytest.raises(InvalidSyncUpdateError):
        check_sync_content(content)
