"""Sync messages on the wire: packing updates into ``SyncContent``, chunking, reassembly.

A ``SyncContent`` rides inside ``MessageContent.sync`` (at most
:data:`~omega.session.content.MAX_CONTENT_SIZE` encoded), so updates are
packed :data:`SYNC_PAYLOAD_SIZE` bytes at a time and an update larger than
that is cut into ``SyncChunk`` parts that :class:`Reassembler` puts back
together, with bounded memory per sending device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from omega.errors import ConfigurationError, InvalidSyncUpdateError, OmegaError
from omega.protocol import (
    SignedDeviceList,
    SyncChunk,
    SyncContent,
    SyncStateVector,
    SyncUpdate,
    decode_message,
    encode_message,
)
from omega.sync._replica import MAX_DOCUMENTS, MAX_UPDATE_SIZE

__all__ = [
    "MAX_PENDING_TRANSFERS",
    "SYNC_PAYLOAD_SIZE",
    "Reassembler",
    "check_sync_content",
    "pack_sync",
]

SYNC_PAYLOAD_SIZE = 192 * 1024
"""Most update bytes one sync message carries (the rest of the content limit is framing)."""

MAX_PENDING_TRANSFERS = 4
"""Most chunked transfers held open per sending device."""

_MAX_UPDATES_PER_MESSAGE = 1024
_MAX_DOCUMENT_NAME = 300
_MAX_STATE_VECTOR = 64 * 1024
_MAX_CHUNKS = MAX_UPDATE_SIZE // (SYNC_PAYLOAD_SIZE // 2) + 1


def _bad(reason: str, message: str) -> InvalidSyncUpdateError:
    return InvalidSyncUpdateError(message, details={"reason": reason})


def check_sync_content(content: SyncContent) -> None:
    """Check the shape of a received ``SyncContent``; InvalidSyncUpdateError if broken."""
    if len(content.updates) > _MAX_UPDATES_PER_MESSAGE:
        raise _bad("too_many_updates", "too many updates in one sync message")
    if len(content.request) > MAX_DOCUMENTS:
        raise _bad("too_many_documents", "a sync request names too many documents")
    names = [item.document for item in content.updates]
    names += [item.document for item in content.request]
    for name in names:
        if not 0 < len(name) <= _MAX_DOCUMENT_NAME:
            raise _bad("document_name", "a sync document name is empty or too long")
    if any(len(item.state_vector) > _MAX_STATE_VECTOR for item in content.request):
        raise _bad("too_large", "a state vector is too large")
    if content.request and not content.has_request:
        raise _bad("request", "state vectors without has_request")
    chunk = content.chunk
    if chunk is not None:
        if content.updates:
            raise _bad("chunk", "a chunk travels alone")
        if len(chunk.transfer_id) != 16:
            raise _bad("chunk", "a transfer id is 16 bytes")
        if not 0 <= chunk.index < chunk.count <= _MAX_CHUNKS:
            raise _bad("chunk", "chunk index out of range")
        if not 0 < len(chunk.data) <= SYNC_PAYLOAD_SIZE:
            raise _bad("chunk", "chunk data empty or too large")


def pack_sync(
    updates: Mapping[str, bytes],
    *,
    request: Mapping[str, bytes] | None = None,
    device_list: SignedDeviceList | None = None,
    transfer_id: bytes = b"",
) -> list[SyncContent]:
    """The sync messages carrying ``updates`` (document -> Yjs update), a request with
    ``request`` (document -> state vector) and ``device_list``, in sending order.

    An update larger than :data:`SYNC_PAYLOAD_SIZE` is chunked under
    ``transfer_id`` (16 random bytes; a counter is appended per large update
    by taking the caller's id and the update's position).
    """
    current = SyncContent(
        has_request=request is not None,
        request=[
            SyncStateVector(document=name, state_vector=vector)
            for name, vector in (request or {}).items()
        ],
        device_list=device_list,
    )
    messages: list[SyncContent] = []
    chunked: list[SyncContent] = []
    size = 0
    for position, (name, update) in enumerate(updates.items()):
        if len(update) > SYNC_PAYLOAD_SIZE:
            if len(transfer_id) != 16:
                raise ConfigurationError("a transfer id of 16 bytes is needed to chunk an update")
            chunked.extend(_chunks(name, update, _derive(transfer_id, position)))
            continue
        if current.updates and (
            size + len(update) > SYNC_PAYLOAD_SIZE or len(current.updates) >= 256
        ):
            messages.append(current)
            current = SyncContent()
            size = 0
        current.updates.append(SyncUpdate(document=name, update=update))
        size += len(update)
    messages.append(current)
    messages.extend(chunked)
    return [message for message in messages if _carries(message)]


def _carries(message: SyncContent) -> bool:
    return bool(
        message.updates
        or message.has_request
        or message.device_list is not None
        or message.chunk is not None
    )


def _derive(transfer_id: bytes, position: int) -> bytes:
    tail = (int.from_bytes(transfer_id[12:], "big") + position) % (1 << 32)
    return transfer_id[:12] + tail.to_bytes(4, "big")


def _chunks(name: str, update: bytes, transfer_id: bytes) -> list[SyncContent]:
    whole = encode_message(SyncUpdate(document=name, update=update))
    parts = [whole[i : i + SYNC_PAYLOAD_SIZE] for i in range(0, len(whole), SYNC_PAYLOAD_SIZE)]
    return [
        SyncContent(
            chunk=SyncChunk(transfer_id=transfer_id, index=index, count=len(parts), data=part)
        )
        for index, part in enumerate(parts)
    ]


@dataclass
class _Transfer:
    count: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class Reassembler:
    """Puts chunked updates back together, per sending device, in bounded memory.

    At most :data:`MAX_PENDING_TRANSFERS` transfers per device are open; a
    new one beyond that evicts the oldest. A transfer larger than
    :data:`~omega.sync.MAX_UPDATE_SIZE` is refused.
    """

    def __init__(self) -> None:
        self._transfers: dict[bytes, dict[bytes, _Transfer]] = {}

    def pending(self, sender: bytes) -> int:
        """How many transfers from ``sender`` are open."""
        return len(self._transfers.get(sender, {}))

    def forget(self, sender: bytes) -> None:
        """Drop every open transfer of ``sender`` (a revoked device)."""
        self._transfers.pop(sender, None)

    def add(self, sender: bytes, chunk: SyncChunk) -> SyncUpdate | None:
        """Add one chunk; return the whole update once every part arrived.

        Raises :class:`~omega.errors.InvalidSyncUpdateError` (the transfer is
        dropped) for inconsistent chunks or an oversized transfer.
        """
        transfers = self._transfers.setdefault(sender, {})
        transfer = transfers.get(chunk.transfer_id)
        if transfer is None:
            if len(transfers) >= MAX_PENDING_TRANSFERS:
                transfers.pop(next(iter(transfers)))
            transfer = transfers[chunk.transfer_id] = _Transfer(count=chunk.count)
        if chunk.count != transfer.count or not 0 <= chunk.index < transfer.count:
            transfers.pop(chunk.transfer_id, None)
            raise _bad("chunk", "chunks of one transfer disagree on their count")
        if chunk.index in transfer.parts:
            return None  # a duplicate
        transfer.parts[chunk.index] = chunk.data
        transfer.size += len(chunk.data)
        if transfer.size > MAX_UPDATE_SIZE + 4096:
            transfers.pop(chunk.transfer_id, None)
            raise _bad("too_large", "chunked sync update too large")
        if len(transfer.parts) < transfer.count:
            return None
        transfers.pop(chunk.transfer_id)
        whole = b"".join(transfer.parts[i] for i in range(transfer.count))
        try:
            return decode_message(SyncUpdate, whole, max_size=MAX_UPDATE_SIZE + 4096)
        except OmegaError as exc:
            raise _bad("malformed", f"chunked sync update: {exc.message}") from exc
