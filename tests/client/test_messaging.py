"""Two clients exchanging end-to-end encrypted messages over the in-memory transport."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import World, pair

from omega.client import DeliveryStateChanged, MessageReceived
from omega.errors import ConfigurationError
from omega.storage.message_base import DeliveryState, Direction

pytestmark = pytest.mark.anyio


async def test_text_message_is_delivered_and_acknowledged() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        delivered = anyio.Event()
        received: list[MessageReceived] = []

        @bob.on(MessageReceived)
        def got(event: MessageReceived) -> None:
            received.append(event)

        @alice.on(DeliveryStateChanged)
        def state(event: DeliveryStateChanged) -> None:
            if event.state is DeliveryState.DELIVERED:
                delivered.set()

        sent = await alice.send_text(bob.user_id, "hello Bob")
        assert sent.state is DeliveryState.PENDING
        with anyio.fail_after(10):
            await delivered.wait()
        assert [event.message.text for event in received] == ["hello Bob"]
        incoming = received[0].message
        assert incoming.message_id == sent.message_id
        assert incoming.direction is Direction.INCOMING
        assert incoming.sender_id == alice.user_id
        [mine] = await alice.history(bob.user_id)
        assert mine.state is DeliveryState.DELIVERED
        [theirs] = await bob.history(alice.user_id)
        assert theirs.text == "hello Bob"


async def test_conversation_both_ways() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        for i in range(5):
            await alice.send_text(bob.user_id, f"a{i}")
            await bob.send_text(alice.user_id, f"b{i}")
        with anyio.fail_after(15):
            while (
                len(await bob.history(alice.user_id)) < 10
                or len(await alice.history(bob.user_id)) < 10
            ):
                await anyio.sleep(0.05)
        texts = sorted(m.text for m in await bob.history(alice.user_id))
        assert texts == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])


async def test_a_removed_handler_is_not_called_and_messages_are_found_by_id() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        first: list[str] = []
        second: list[str] = []

        @bob.on(MessageReceived)
        def one(event: MessageReceived) -> None:
            first.append(event.message.text)

        @bob.on(MessageReceived)
        def two(event: MessageReceived) -> None:
            second.append(event.message.text)

        sent = await alice.send_text(bob.user_id, "before")
        await bob.wait_for(lambda e: isinstance(e, MessageReceived), timeout=10)
        assert bob.off(MessageReceived, one)
        assert not bob.off(MessageReceived, one)  # removed already
        assert not bob.off(DeliveryStateChanged, two)  # never added for that type
        await alice.send_text(bob.user_id, "after")
        await bob.wait_for(
            lambda e: isinstance(e, MessageReceived) and e.message.text == "after", timeout=10
        )
        assert first == ["before"]
        assert second == ["before", "after"]

        found = await bob.message(alice.user_id, sent.message_id)
        assert found.text == "before"
        assert found.direction is Direction.INCOMING
        with pytest.raises(ConfigurationError, match="no message"):
            await bob.message(alice.user_id, "00000000-0000-4000-8000-000000000000")
