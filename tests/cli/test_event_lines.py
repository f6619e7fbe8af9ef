"""How the CLI prints each client event: readable lines and one-line JSON objects."""

from __future__ import annotations

import json

import pytest

from omega.cli._common import ContactNames, describe_event, event_json, format_message
from omega.client import (
    Client,
    ContactDevicesChanged,
    DecryptionFailed,
    DeliveryStateChanged,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageExpired,
    MessageReceived,
    MessageRefused,
    ReactionReceived,
    SessionReset,
    TypingChanged,
)
from omega.crypto import Identity
from omega.protocol import MessageContent, StickerContent, TextContent
from omega.session.content import encode_content
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import DeliveryState, Direction, StoredMessage
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio

MESSAGE_ID = "0f1e2d3c-4b5a-4987-8695-a4b3c2d1e0f9"


@pytest.fixture
async def names() -> ContactNames:
    client = Client(
        identity=Identity.create(device_name="laptop", created_at=1, display_name="Me"),
        key_store=MemoryKeyStore(),
        message_store=MemoryMessageStore(),
    )
    bob = Identity.create(device_name="phone", created_at=1, display_name="Bob")
    await client.add_contact(str(bob.user_id), display_name="Bob")
    names = ContactNames(client)
    names.bob_id = bob.user_id  # type: ignore[attr-defined]
    return names


def message(sender: str, body: MessageContent, **fields: object) -> StoredMessage:
    values: dict[str, object] = {
        "message_id": MESSAGE_ID,
        "conversation_id": sender,
        "sender_id": sender,
        "sender_device_key": bytes(32),
        "direction": Direction.INCOMING,
        "timestamp": 1_700_000_000_000,
        "received_at": 1_700_000_000_500,
        "content": encode_content(body),
        "text": body.text.text if body.text else "",
        "state": DeliveryState.DELIVERED,
    }
    values.update(fields)
    return StoredMessage(**values)  # type: ignore[arg-type]


async def test_every_event_has_a_line(names: ContactNames) -> None:
    bob: str = names.bob_id  # type: ignore[attr-defined]
    stranger = Identity.create(device_name="x", created_at=1).user_id
    text = MessageContent(text=TextContent(text="hi"))
    received = message(bob, text)
    events: list[tuple[Event, str]] = [
        (MessageReceived(message=received, content=text), f"{MESSAGE_ID[:8]} Bob: hi"),
        (MessageEdited(message=message(bob, text, edited_at=5)), "Bob edited 0f1e2d3c: hi"),
        (
            MessageDeleted(
                conversation_id=bob, message_id=MESSAGE_ID, for_everyone=True, deleted_by=bob
            ),
            "Bob deleted 0f1e2d3c for everyone",
        ),
        (MessageExpired(conversation_id=bob, message_id=MESSAGE_ID), "0f1e2d3c expired"),
        (
            ReactionReceived(
                conversation_id=bob, target_message_id=MESSAGE_ID, sender_id=bob, emoji="🎉"
            ),
            "Bob reacted 🎉 to 0f1e2d3c",
        ),
        (
            ReactionReceived(
                conversation_id=bob, target_message_id=MESSAGE_ID, sender_id=bob, emoji=""
            ),
            "Bob removed their reaction to 0f1e2d3c",
        ),
        (
            DeliveryStateChanged(
                conversation_id=bob, message_id=MESSAGE_ID, state=DeliveryState.FAILED
            ),
            "✗ 0f1e2d3c failed",
        ),
        (TypingChanged(user_id=bob, typing=True), "Bob is typing…"),
        (TypingChanged(user_id=bob, typing=False), "Bob stopped typing"),
        (
            ContactDevicesChanged(user_id=bob, added=("a",), removed=(), held=True),
            "Bob's devices changed: 1 added, 0 removed; messages to the new devices wait",
        ),
        (
            MessageRefused(code="invalid_envelope", reason="bad", sender_id=stranger),
            f"refused something from {stranger[:14]}…: bad (invalid_envelope)",
        ),
        (MessageRefused(code="x", reason="y"), "refused something from someone"),
        (
            DecryptionFailed(sender_id=bob, device_id="d", message_id=MESSAGE_ID, reason="r"),
            "could not decrypt a message from Bob",
        ),
        (
            SessionReset(user_id=bob, device_id="d", resent=2),
            "Bob started a new session: re-sending 2",
        ),
    ]
    for event, expected in events:
        line = await describe_event(event, names)
        assert line is not None
        assert expected in line, (event, line)
        record = json.loads(event_json(event))
        assert record["event"] == "".join(
            "_" + c.lower() if c.isupper() else c for c in type(event).__name__
        ).lstrip("_")
    record = json.loads(event_json(MessageReceived(message=received, content=text)))
    assert record["content"] == {"text": {"text": "hi"}}
    assert record["message"]["sender_device_key"] == "00" * 32
    assert record["message"]["direction"] == "incoming"
    assert "content" not in record["message"]
    assert json.loads(event_json(events[9][0]))["added"] == ["a"]


async def test_message_lines(names: ContactNames) -> None:
    bob: str = names.bob_id  # type: ignore[attr-defined]
    sticker = MessageContent(sticker=StickerContent(pack_id="p", sticker_id="s"))
    assert format_message(message(bob, sticker), "Bob").endswith("Bob: (sticker)")
    deleted = message(bob, sticker, content=b"", deleted=True)
    assert format_message(deleted, "Bob").endswith("Bob: (deleted)")
    empty = message(bob, sticker, content=b"")
    assert format_message(empty, "Bob").endswith("Bob: (empty)")
    assert await names.name(names._client.user_id) == "me"
