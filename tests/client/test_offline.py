"""Offline delivery through the store, restarts, and session recovery."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import World, of_type

from omega.client import DecryptionFailed, MessageReceived, SessionReset
from omega.mailbox.memory import MemoryStoreServer
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import DeliveryState
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio


async def _wait_state(client, conversation: str, message_id: str, state: DeliveryState) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(10):
        while True:
            history = await client.history(conversation)
            if any(m.message_id == message_id and m.state is state for m in history):
                return
            await anyio.sleep(0.02)


async def test_offline_recipient_gets_the_message_from_the_store() -> None:
    world = World(store=MemoryStoreServer())
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    bob_keys, bob_db = MemoryKeyStore(), MemoryMessageStore()
    # Bob runs once so that his device list and prekeys are on the key directory.
    async with world.client(bob_id, key_store=bob_keys, message_store=bob_db):
        pass
    async with world.client(alice_id) as alice:
        await alice.add_contact(f"omega://{bob_id.user_id}?name=Bob")
        sent = await alice.send_text(bob_id.user_id, "while you were away")
        await _wait_state(alice, bob_id.user_id, sent.message_id, DeliveryState.SENT)
        # Bob comes back online: the message arrives from the store, and his
        # delivery receipt comes back to Alice end to end encrypted.
        async with world.client(bob_id, key_store=bob_keys, message_store=bob_db) as bob:
            event = await bob.wait_for(of_type(MessageReceived), timeout=10)
            assert isinstance(event, MessageReceived)
            assert event.message.text == "while you were away"
            assert event.message.sender_id == alice_id.user_id
            await _wait_state(alice, bob_id.user_id, sent.message_id, DeliveryState.DELIVERED)
    assert [m.text for m in await _history(world, bob_id, bob_keys, bob_db, alice_id.user_id)] == [
        "while you were away"
    ]


async def _history(world, identity, keys, db, conversation):  # type: ignore[no-untyped-def]
    async with world.client(identity, key_store=keys, message_store=db, mailbox=False) as client:
        return await client.history(conversation)


async def test_outbox_survives_a_restart_and_delivers_later() -> None:
    world = World()
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    alice_keys, alice_db = MemoryKeyStore(), MemoryMessageStore()
    async with world.client(bob_id) as bob:
        bob_addresses = bob.addresses
        async with world.client(alice_id, key_store=alice_keys, message_store=alice_db) as alice:
            await alice.add_contact(str(bob.contact_uri), addresses=bob_addresses)
            await bob.add_contact(str(alice.contact_uri))
    # Bob is gone: Alice queues a message, then stops before it can go anywhere.
    async with world.client(alice_id, key_store=alice_keys, message_store=alice_db) as alice:
        await alice.add_contact(f"omega://{bob_id.user_id}", addresses=bob_addresses)
        sent = await alice.send_text(bob_id.user_id, "queued")
        assert sent.state is DeliveryState.PENDING
    # Both come back (Bob on a new address): the outbox delivers it.
    async with world.client(bob_id) as bob:
        async with world.client(alice_id, key_store=alice_keys, message_store=alice_db) as alice:
            await alice.add_contact(f"omega://{bob_id.user_id}", addresses=bob.addresses)
            await _wait_state(alice, bob_id.user_id, sent.message_id, DeliveryState.DELIVERED)
        [received] = await bob.history(alice_id.user_id)
        assert received.text == "queued"
        assert received.message_id == sent.message_id


async def test_lost_session_is_recovered_and_nothing_is_lost() -> None:
    world = World()
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    alice_keys, alice_db = MemoryKeyStore(), MemoryMessageStore()
    bob_db = MemoryMessageStore()
    async with (
        world.client(alice_id, key_store=alice_keys, message_store=alice_db) as alice,
        world.client(bob_id, message_store=bob_db) as bob,
    ):
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        first = await alice.send_text(bob_id.user_id, "one")
        await _wait_state(alice, bob_id.user_id, first.message_id, DeliveryState.DELIVERED)
    # Bob reinstalls: same identity and history, but his ratchet sessions and
    # prekeys are gone. Alice still has her session with his device.
    async with (
        world.client(bob_id, key_store=MemoryKeyStore(), message_store=bob_db) as bob,
        world.client(alice_id, key_store=alice_keys, message_store=alice_db) as alice,
    ):
        resets: list[SessionReset] = []
        failures: list[DecryptionFailed] = []
        bob.on(DecryptionFailed)(failures.append)
        alice.on(SessionReset)(resets.append)
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        second = await alice.send_text(bob_id.user_id, "two")
        await _wait_state(alice, bob_id.user_id, second.message_id, DeliveryState.DELIVERED)
        texts = sorted(m.text for m in await bob.history(alice_id.user_id))
        assert texts == ["one", "two"]
        assert [f.message_id for f in failures] == [second.message_id]
        assert len(resets) == 1
        assert resets[0].user_id == bob_id.user_id
        assert resets[0].resent >= 1
