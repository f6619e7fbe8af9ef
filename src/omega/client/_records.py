"""History records of messages, built alike for 1:1 conversations and groups."""

from __future__ import annotations

from omega.protocol import Message, MessageContent
from omega.session import content_kind, searchable_text
from omega.storage.base import InboxEntry
from omega.storage.message_base import DeliveryState, Direction, StoredMessage

__all__ = ["outgoing_record", "received_record"]


def received_record(
    entry: InboxEntry,
    wrapper: Message,
    content: MessageContent,
    *,
    user_id: str,
    conversation_id: str,
) -> StoredMessage:
    """The history record of a received message (ours when another of our devices sent it)."""
    sender_id = wrapper.sender_id.lower()
    own = sender_id == user_id
    return StoredMessage(
        message_id=wrapper.message_id,
        conversation_id=conversation_id,
        sender_id=sender_id,
        sender_device_key=entry.sender_device_key,
        direction=Direction.OUTGOING if own else Direction.INCOMING,
        timestamp=wrapper.timestamp,
        received_at=None if own else entry.received_at,
        content=wrapper.encrypted_content,
        text=searchable_text(content),
        state=(
            DeliveryState.SENT
            if own
            else DeliveryState.READ
            if content_kind(content) == "reaction"
            else DeliveryState.DELIVERED
        ),
        reply_to=content.reply_to,
        expires_at=(
            wrapper.timestamp + content.ttl_seconds * 1000
            if content.ttl_seconds is not None
            else None
        ),
    )


def outgoing_record(
    content: MessageContent,
    data: bytes,
    *,
    message_id: str,
    conversation_id: str,
    user_id: str,
    device_key: bytes,
    now: int,
    state: DeliveryState,
    ttl_seconds: int | None,
) -> StoredMessage:
    """The history record of a message we send; ``data`` is the encoded content.

    A reaction is recorded as read (nobody reads a reaction); others take ``state``.
    """
    return StoredMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_id=user_id,
        sender_device_key=device_key,
        direction=Direction.OUTGOING,
        timestamp=now,
        received_at=None,
        content=data,
        text=searchable_text(content),
        state=DeliveryState.READ if content_kind(content) == "reaction" else state,
        reply_to=content.reply_to,
        expires_at=now + ttl_seconds * 1000 if ttl_seconds is not None else None,
    )
