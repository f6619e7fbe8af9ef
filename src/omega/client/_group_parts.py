"""Pure helpers of the client's group code: ids, update chunks, re-addressing, events."""

from __future__ import annotations

from collections.abc import Sequence

from omega.client._group_events import (
    GroupEvent,
    GroupMemberAdded,
    GroupMemberLeft,
    GroupMemberRemoved,
    GroupRenamed,
    GroupRoleChanged,
    GroupUpdated,
)
from omega.client.events import Event
from omega.errors import OmegaError
from omega.groups import GroupLog, GroupState, OperationAccepted, OperationKind
from omega.groups.events import GroupEvent as LogEvent
from omega.groups.events import GroupStateChanged
from omega.protocol import (
    Frame,
    GroupOperationBatch,
    GroupUpdate,
    MessageContent,
    SignedGroupOperation,
    decode_message,
    encode_message,
)
from omega.storage.message_base import OutboxEntry

__all__ = ["chunked_updates", "client_events", "is_group_entry", "is_group_id", "readdress"]

_UPDATE_CHUNK_BYTES = 192 * 1024  # a GroupUpdate stays well under MAX_CONTENT_SIZE
_HEX = frozenset("0123456789abcdef")


def is_group_id(value: str) -> bool:
    """True for a group id: 64 lowercase hex characters (user ids are ``omega1...``)."""
    return len(value) == 64 and set(value) <= _HEX


def readdress(frame: bytes, device_key: bytes) -> bytes:
    """A group message frame re-addressed to another device of the same member.

    Group envelopes are not signed and the ciphertext is the same for every
    device: only ``recipient_device_key`` changes (the outbox fans a
    placeholder entry out this way once it learns the member's devices).
    """
    decoded = decode_message(Frame, frame, max_size=len(frame))
    assert decoded.message is not None
    decoded.message.recipient_device_key = device_key
    return encode_message(decoded)


def is_group_entry(entry: OutboxEntry) -> bool:
    """True for an outbox entry carrying a group message (its ciphertext is shared)."""
    if entry.ciphertext is None:
        return False
    try:
        return is_group_id(decode_message(MessageContent, entry.content).conversation_id)
    except OmegaError:  # pragma: no cover - we encoded it ourselves
        return False


def chunked_updates(log: GroupLog, batch: bytes) -> list[GroupUpdate]:
    """``batch`` (an encoded ``GroupOperationBatch``) as GroupUpdates that each fit a content."""
    heads = list(log.state.heads)
    if len(batch) <= _UPDATE_CHUNK_BYTES:
        return [GroupUpdate(group_id=log.group_id, operations=batch, heads=heads)]
    operations = decode_message(GroupOperationBatch, batch, max_size=len(batch)).operations
    chunks: list[list[SignedGroupOperation]] = [[]]
    size = 0
    for operation in operations:
        length = len(encode_message(operation)) + 4
        if chunks[-1] and size + length > _UPDATE_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(operation)
        size += length
    return [
        GroupUpdate(
            group_id=log.group_id,
            operations=encode_message(GroupOperationBatch(operations=chunk)),
            heads=heads,
        )
        for chunk in chunks
    ]


def client_events(
    group_id: str, before: GroupState, after: GroupState, log_events: Sequence[LogEvent]
) -> list[Event]:
    """Translate accepted operations that took effect into client events."""
    events: list[GroupEvent] = []
    added = set(after.members) - set(before.members)
    removed = set(before.members) - set(after.members)
    for log_event in log_events:
        if not isinstance(log_event, OperationAccepted):
            continue
        op = log_event.operation
        if op.kind is OperationKind.ADD_MEMBER and op.target_id in added:
            events.append(
                GroupMemberAdded(group_id=group_id, user_id=op.target_id, by=op.author_id)
            )
        elif op.kind is OperationKind.REMOVE_MEMBER and op.target_id in removed:
            events.append(
                GroupMemberRemoved(group_id=group_id, user_id=op.target_id, by=op.author_id)
            )
        elif op.kind is OperationKind.LEAVE and op.author_id in removed:
            events.append(GroupMemberLeft(group_id=group_id, user_id=op.author_id))
        elif op.kind is OperationKind.SET_ROLE:
            previous = before.role_of(op.target_id)
            if (
                previous is not None
                and previous != op.role
                and after.role_of(op.target_id) == op.role
            ):
                events.append(
                    GroupRoleChanged(
                        group_id=group_id,
                        user_id=op.target_id,
                        previous=previous,
                        role=op.role,
                        by=op.author_id,
                    )
                )
        elif op.kind is OperationKind.RENAME and after.name == op.name != before.name:
            events.append(
                GroupRenamed(group_id=group_id, name=op.name, previous=before.name, by=op.author_id)
            )
    changed = any(isinstance(e, GroupStateChanged) for e in log_events) or _visible(
        before
    ) != _visible(after)
    result: list[Event] = list(events)
    if changed:
        result.append(GroupUpdated(group_id=group_id, state=after))
    return result


def _visible(state: GroupState) -> tuple[object, ...]:
    return (state.name, state.avatar_hash, state.permissions, dict(state.members))
