"""Every content kind, receipts, typing and disappearing messages between two clients."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import World, of_type, pair

from omega.client import (
    DeliveryStateChanged,
    MessageDeleted,
    MessageEdited,
    MessageExpired,
    MessageReceived,
    ReactionReceived,
    TypingChanged,
)
from omega.crypto import ContactUri
from omega.errors import ConfigurationError, MessageTooLargeError, UnknownContactError
from omega.protocol import MediaContent, TextEntity, TextEntityType
from omega.session import decode_content
from omega.storage.message_base import DeliveryState

pytestmark = pytest.mark.anyio


async def _received(client, timeout: float = 10) -> MessageReceived:  # type: ignore[no-untyped-def]
    event = await client.wait_for(of_type(MessageReceived), timeout=timeout)
    assert isinstance(event, MessageReceived)
    return event


async def test_every_content_kind_arrives_intact() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        async with anyio.create_task_group() as group:
            results: list[MessageReceived] = []

            async def collect() -> None:
                for _ in range(6):
                    results.append(await _received(bob))

            group.start_soon(collect)
            await anyio.sleep(0.05)
            entity = TextEntity(type=TextEntityType.BOLD, offset=0, length=5)
            first = await alice.send_text(
                bob.user_id, "hello @bob", entities=[entity], mentions=[bob.user_id]
            )
            await alice.send_location(bob.user_id, 48.85, 2.35, name="Paris")
            card = ContactUri(user_id=alice.user_id, display_name="Alice")
            await alice.send_contact_card(bob.user_id, card)
            await alice.send_sticker(bob.user_id, pack_id="cats", sticker_id="7", emoji="🐱")
            media = MediaContent(
                mime_type="image/png", size=1234, file_name="cat.png", caption="a cat"
            )
            await alice.send_media(bob.user_id, media)
            await alice.send(bob.user_id, "a reply", reply_to=first.message_id)
        by_kind = {}
        for event in results:
            by_kind[event.content.__class__.__name__ + ":" + _kind(event)] = event
        kinds = sorted(_kind(event) for event in results)
        assert kinds == ["contact", "location", "media", "sticker", "text", "text"]
        text = next(e for e in results if e.message.message_id == first.message_id)
        assert text.content.text is not None
        assert text.content.text.entities == [entity]
        assert text.content.mentions == [bob.user_id]
        reply = next(e for e in results if e.message.text == "a reply")
        assert reply.message.reply_to == first.message_id
        location = next(e for e in results if _kind(e) == "location")
        assert location.message.text == "Paris"
        media_event = next(e for e in results if _kind(e) == "media")
        assert media_event.message.text == "a cat cat.png"
        assert [m.text for m in await bob.search("cat")] == ["a cat cat.png"]


def _kind(event: MessageReceived) -> str:
    from omega.session import content_kind

    return content_kind(event.content)


async def test_reactions_edits_and_deletes() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        sent = await alice.send_text(bob.user_id, "typo")
        await _received(bob)
        react = anyio.Event()
        reactions: list[ReactionReceived] = []

        @alice.on(ReactionReceived)
        def on_reaction(event: ReactionReceived) -> None:
            reactions.append(event)
            react.set()

        await bob.react(alice.user_id, sent.message_id, "👍")
        with anyio.fail_after(10):
            await react.wait()
        assert reactions[0].emoji == "👍"
        assert reactions[0].target_message_id == sent.message_id

        edited = await alice.edit(bob.user_id, sent.message_id, "fixed")
        assert edited.text == "fixed"
        event = await bob.wait_for(of_type(MessageEdited), timeout=10)
        assert isinstance(event, MessageEdited)
        assert event.message.text == "fixed"
        assert event.message.edited_at is not None
        content = decode_content(event.message.content)
        assert content.text is not None
        assert content.text.text == "fixed"

        with pytest.raises(ConfigurationError):
            await bob.edit(alice.user_id, sent.message_id, "not yours")

        await alice.delete(bob.user_id, sent.message_id, for_everyone=True)
        deleted = await bob.wait_for(of_type(MessageDeleted), timeout=10)
        assert isinstance(deleted, MessageDeleted)
        assert deleted.for_everyone
        [tombstone] = [
            m for m in await bob.history(alice.user_id) if m.message_id == sent.message_id
        ]
        assert tombstone.deleted
        assert tombstone.text == ""
        assert tombstone.content == b""

        other = await bob.send_text(alice.user_id, "mine to forget")
        await _received(alice)
        await alice.delete(bob.user_id, other.message_id)
        assert other.message_id not in [m.message_id for m in await alice.history(bob.user_id)]
        assert other.message_id in [m.message_id for m in await bob.history(alice.user_id)]


async def test_read_receipts_and_typing() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        sent = await alice.send_text(bob.user_id, "read me")
        await _received(bob)
        typing = await _typing(alice, bob)
        assert typing.user_id == bob.user_id
        assert typing.typing
        assert await bob.mark_read(alice.user_id) == 1
        read = await alice.wait_for(
            of_type(DeliveryStateChanged, message_id=sent.message_id, state=DeliveryState.READ),
            timeout=10,
        )
        assert isinstance(read, DeliveryStateChanged)
        assert await bob.mark_read(alice.user_id) == 0

        # With read receipts off, Alice never learns that Bob read the next one.
        await bob.update_contact(alice.user_id, read_receipts=False, typing_notifications=False)
        quiet = await alice.send_text(bob.user_id, "unseen")
        await _received(bob)
        assert await bob.mark_read(alice.user_id, [quiet.message_id]) == 1
        await bob.send_typing(alice.user_id)
        with anyio.move_on_after(1):
            await alice.wait_for(of_type(DeliveryStateChanged, state=DeliveryState.READ), timeout=1)
            pytest.fail("a read receipt was sent although read receipts are off")
        [state] = [
            m.state for m in await alice.history(bob.user_id) if m.message_id == quiet.message_id
        ]
        assert state is DeliveryState.DELIVERED


async def _typing(alice, bob) -> TypingChanged:  # type: ignore[no-untyped-def]
    async with anyio.create_task_group() as group:
        found: list[TypingChanged] = []

        async def wait() -> None:
            event = await alice.wait_for(of_type(TypingChanged), timeout=10)
            assert isinstance(event, TypingChanged)
            found.append(event)

        group.start_soon(wait)
        await anyio.sleep(0.05)
        await bob.send_typing(alice.user_id)
    return found[0]


async def test_disappearing_messages_vanish_on_both_sides() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        sent = await alice.send_text(bob.user_id, "self-destruct", ttl_seconds=1)
        received = await _received(bob)
        assert received.message.expires_at == sent.expires_at
        gone_bob = await bob.wait_for(of_type(MessageExpired), timeout=10)
        assert isinstance(gone_bob, MessageExpired)
        with anyio.fail_after(10):
            while await alice.history(bob.user_id):
                await anyio.sleep(0.05)
        assert await bob.history(alice.user_id) == []


async def test_bad_sends_are_refused_with_typed_errors() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        with pytest.raises(MessageTooLargeError):
            await alice.send_text(bob.user_id, "x" * 300_000)
        with pytest.raises(UnknownContactError):
            await alice.send_text(world.identity("Carol").user_id, "who?")
        with pytest.raises(ConfigurationError):
            await alice.send_text(bob.user_id, "bad ttl", ttl_seconds=0)
        await alice.block(bob.user_id)
        with pytest.raises(UnknownContactError):
            await alice.send_text(bob.user_id, "blocked")
        assert await alice.history(bob.user_id) == []
