"""Groups in the Client: three real clients on the memory transport (docs/groups.md)."""

from __future__ import annotations

import dataclasses

import pytest
from client_helpers import of_type
from group_client_helpers import eventually, trio, wait_until

from omega.client import (
    GroupMentioned,
    GroupMessageReceived,
    MessageDeleted,
    MessageEdited,
    MessageExpired,
    ReactionReceived,
)
from omega.client._core import identity_key_of
from omega.client._group_parts import is_group_entry, readdress
from omega.errors import ConfigurationError, GroupPermissionError
from omega.protocol import (
    Frame,
    LocationContent,
    MessageContent,
    TextContent,
    TypingContent,
    decode_message,
)
from omega.session.content import encode_content
from omega.session.envelope import bind_content
from omega.storage.message_base import OutboxEntry

pytestmark = pytest.mark.anyio


async def test_a_group_message_reaches_every_member() -> None:
    async with trio() as t:
        group = t.group
        assert {m.user_id for m in group.members} == {
            t.alice.user_id,
            t.bob.user_id,
            t.carol.user_id,
        }
        event = await wait_until(
            t.carol, of_type(GroupMessageReceived), lambda: group.send_text("hello all")
        )
        assert isinstance(event, GroupMessageReceived)
        assert event.message.text == "hello all"
        assert event.message.conversation_id == group.group_id
        # Bob answers; Alice and Carol get it (Carol through the store: she and Bob never met).
        reply = await wait_until(
            t.carol,
            of_type(GroupMessageReceived),
            lambda: t.of(t.bob).send_text("hi!", reply_to=event.message.message_id),
        )
        assert isinstance(reply, GroupMessageReceived)
        assert reply.message.sender_id == t.bob.user_id
        assert reply.message.reply_to == event.message.message_id
        await eventually(lambda: _texts(t.alice, group.group_id, {"hello all", "hi!"}))


async def _texts(client, group_id, expected):  # type: ignore[no-untyped-def]
    return {m.text for m in await client.group(group_id).history()} == expected


async def test_every_content_kind_works_in_a_group() -> None:
    async with trio() as t:
        group, bob_group = t.group, t.of(t.bob)
        first = await wait_until(
            t.bob,
            of_type(GroupMessageReceived),
            lambda: group.send_text("first", mentions=[t.bob.user_id], ttl_seconds=3600),
        )
        assert isinstance(first, GroupMessageReceived)
        message_id = first.message.message_id
        assert first.message.expires_at == first.message.timestamp + 3_600_000
        # Reaction.
        reaction = await wait_until(
            t.alice, of_type(ReactionReceived), lambda: bob_group.react(message_id, "👍")
        )
        assert isinstance(reaction, ReactionReceived)
        assert (reaction.conversation_id, reaction.sender_id) == (group.group_id, t.bob.user_id)
        assert reaction.emoji == "👍"
        # Edit by the author reaches everyone.
        edited = await wait_until(
            t.carol, of_type(MessageEdited), lambda: group.edit(message_id, "first (edited)")
        )
        assert isinstance(edited, MessageEdited)
        assert edited.message.text == "first (edited)"
        # Bob may not edit or delete Alice's message for everyone.
        with pytest.raises(ConfigurationError):
            await bob_group.edit(message_id, "hijacked")
        with pytest.raises(GroupPermissionError):
            await bob_group.delete(message_id, for_everyone=True)
        # Media, location, sticker are stored kinds too.
        media = MessageContent(location=LocationContent(latitude=1.0, longitude=2.0, name="here"))
        located = await wait_until(
            t.carol, of_type(GroupMessageReceived), lambda: group.send(media)
        )
        assert isinstance(located, GroupMessageReceived)
        assert located.content.location is not None
        # Bob's own message, deleted for everyone by the admin Alice (owner).
        bobs = await wait_until(
            t.alice, of_type(GroupMessageReceived), lambda: bob_group.send_text("oops")
        )
        assert isinstance(bobs, GroupMessageReceived)
        await eventually(lambda: _has(t.carol, group.group_id, bobs.message.message_id))
        deleted = await wait_until(
            t.carol,
            of_type(MessageDeleted),
            lambda: group.delete(bobs.message.message_id, for_everyone=True),
        )
        assert isinstance(deleted, MessageDeleted)
        assert deleted.deleted_by == t.alice.user_id
        await eventually(lambda: _deleted(t.bob, group.group_id, bobs.message.message_id))
        # Typing and receipts are pairwise only.
        with pytest.raises(ConfigurationError):
            await group.send(MessageContent(typing=TypingContent(typing=True)))


async def test_mentions_notify_the_mentioned_member() -> None:
    async with trio() as t:
        event = await wait_until(
            t.carol,
            of_type(GroupMentioned),
            lambda: t.group.send_text("@carol look", mentions=[t.carol.user_id]),
        )
        assert isinstance(event, GroupMentioned)
        assert event.sender_id == t.alice.user_id
        assert event.message.text == "@carol look"


async def test_disappearing_group_messages_expire() -> None:
    async with trio() as t:
        received = await wait_until(
            t.bob,
            of_type(GroupMessageReceived),
            lambda: t.group.send_text("soon gone", ttl_seconds=1),
        )
        assert isinstance(received, GroupMessageReceived)
        expired = await wait_until(t.bob, of_type(MessageExpired))
        assert isinstance(expired, MessageExpired)
        assert expired.conversation_id == t.group.group_id
        assert await t.of(t.bob).history() == []


async def _has(client, group_id, message_id):  # type: ignore[no-untyped-def]
    return any(m.message_id == message_id for m in await client.group(group_id).history())


async def _deleted(client, group_id, message_id):  # type: ignore[no-untyped-def]
    history = await client.group(group_id).history()
    return any(m.message_id == message_id and m.deleted for m in history)


async def test_a_group_frame_is_readdressed_for_each_device_of_a_member() -> None:
    async with trio() as t:
        groups = t.alice._groups
        group_id = t.group.group_id
        placeholder = identity_key_of(t.bob.user_id)
        frame = groups.envelope(group_id, "m-1", placeholder, 5, b"same ciphertext")
        moved = decode_message(Frame, readdress(frame, t.bob.identity.device.device_key))
        assert moved.message is not None
        assert moved.message.recipient_device_key == t.bob.identity.device.device_key
        assert moved.message.encrypted_content == b"same ciphertext"
        content = encode_content(
            bind_content(
                MessageContent(text=TextContent(text="x")),
                message_id="m-1",
                timestamp=5,
                conversation_id=group_id,
            )
        )
        entry = OutboxEntry(
            message_id="m-1",
            recipient_id=t.bob.user_id,
            recipient_device_key=placeholder,
            content=content,
            ciphertext=frame,
            created_at=5,
            expires_at=10,
        )
        assert is_group_entry(entry)
        assert not is_group_entry(dataclasses.replace(entry, ciphertext=None))
