"""What a client does with forged, replayed and unwanted input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from client_helpers import FAST, World, of_type, pair

from omega.client import ClientConfig, MessageReceived, MessageRefused
from omega.mailbox.memory import MemoryStoreServer
from omega.protocol import (
    EncryptionKind,
    Frame,
    MessageContent,
    TextContent,
    decode_message,
    encode_message,
)
from omega.session import seal_envelope
from omega.storage.message_base import DeliveryState

pytestmark = pytest.mark.anyio


async def test_forged_sender_is_refused() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        async with world.client(world.identity("Mallory"), listen=False) as mallory:
            forged = seal_envelope(
                mallory.identity.device,
                message_id="forged-1",
                sender_id=alice.user_id,  # Mallory claims to be Alice
                recipient_id=bob.user_id,
                recipient_device_key=bob.identity.device.device_key,
                timestamp=1,
                encryption=EncryptionKind.RATCHET,
                encrypted_content=b"\x0a\x00",
            )
            connection = await mallory._core.manager.connect(bob.user_id, bob.addresses)
            async with anyio.create_task_group() as group:
                refused: list[MessageRefused] = []

                async def wait() -> None:
                    event = await bob.wait_for(of_type(MessageRefused), timeout=10)
                    assert isinstance(event, MessageRefused)
                    refused.append(event)

                group.start_soon(wait)
                await anyio.sleep(0.05)
                await connection.send(Frame(message=forged))
            assert refused[0].code == "invalid_envelope"
            assert refused[0].message_id == "forged-1"
        assert await bob.history(alice.user_id) == []


async def test_tampered_envelope_is_refused() -> None:
    # A real envelope of Alice's, with its clear timestamp changed, over a direct
    # connection: the timestamp bound inside the ciphertext gives it away, and
    # the rolled-back decryption leaves Bob's prekeys for Alice's next message.
    world = World(store=MemoryStoreServer())
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    from omega.mailbox._auth import recipient_hash
    from omega.storage.memory import MemoryKeyStore
    from omega.storage.message_memory import MemoryMessageStore

    alice_keys, bob_keys, bob_db = MemoryKeyStore(), MemoryKeyStore(), MemoryMessageStore()
    async with world.client(bob_id, key_store=bob_keys, message_store=bob_db, listen=False):
        pass  # publishes Bob's keys
    async with world.client(alice_id, key_store=alice_keys, listen=False) as alice:
        await alice.add_contact(f"omega://{bob_id.user_id}")
        sent = await alice.send_text(bob_id.user_id, "tampered")
        with anyio.fail_after(10):
            while not await _stored(world, bob_id):
                await anyio.sleep(0.02)
    [(stored_id, payload)] = await _stored(world, bob_id)
    assert world.store is not None
    await world.store.service.backend.delete_messages(
        recipient_hash(bob_id.device.device_key), [stored_id]
    )
    honest = decode_message(Frame, payload).message
    assert honest is not None
    assert honest.message_id == sent.message_id
    tampered = dataclasses.replace(honest, timestamp=honest.timestamp + 1)
    async with (
        world.client(bob_id, key_store=bob_keys, message_store=bob_db) as bob,
        # A fresh message store: no outbox that would resend the honest envelope.
        world.client(alice_id, key_store=alice_keys, listen=False) as alice,
    ):
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        connection = await alice._core.manager.connect(bob.user_id, bob.addresses)
        async with anyio.create_task_group() as group:
            group.start_soon(_expect_refusal, bob, sent.message_id)
            await anyio.sleep(0.05)
            await connection.send(Frame(message=tampered))
        # Bob keeps working for Alice afterwards.
        await alice.send_text(bob.user_id, "still fine")
        event = await bob.wait_for(of_type(MessageReceived), timeout=10)
        assert isinstance(event, MessageReceived)
        assert event.content.text is not None
        assert event.content.text.text == "still fine"
        assert [m.text for m in await bob.history(alice.user_id)] == ["still fine"]


async def _expect_refusal(client, message_id: str) -> None:  # type: ignore[no-untyped-def]
    event = await client.wait_for(of_type(MessageRefused, message_id=message_id), timeout=10)
    assert isinstance(event, MessageRefused)
    assert event.code == "invalid_envelope"
    assert "bound inside its encrypted content" in event.reason


async def test_replayed_envelope_is_not_delivered_twice() -> None:
    world = World(store=MemoryStoreServer())
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    from omega.storage.memory import MemoryKeyStore
    from omega.storage.message_memory import MemoryMessageStore

    bob_keys, bob_db = MemoryKeyStore(), MemoryMessageStore()
    async with world.client(bob_id, key_store=bob_keys, message_store=bob_db):
        pass
    async with world.client(alice_id, listen=False) as alice:
        await alice.add_contact(f"omega://{bob_id.user_id}")
        sent = await alice.send_text(bob_id.user_id, "only once")
        with anyio.fail_after(10):
            while not await _stored(world, bob_id):
                await anyio.sleep(0.02)
        [(_, payload)] = await _stored(world, bob_id)
    received: list[MessageReceived] = []
    async with world.client(bob_id, key_store=bob_keys, message_store=bob_db) as bob:
        bob.on(MessageReceived)(received.append)
        with anyio.fail_after(10):
            while not received:
                await anyio.sleep(0.02)
        # An attacker with access to the store deposits the same envelope again.
        depositor = world.store.client(source="attacker")  # type: ignore[union-attr]
        await depositor.deposit(bob_id.device.device_key, "replay", payload)
        with anyio.fail_after(10):
            while await _stored(world, bob_id):
                await anyio.sleep(0.02)
        await anyio.sleep(0.2)
        assert [m.message_id for m in await bob.history(alice_id.user_id)] == [sent.message_id]
    assert len(received) == 1


async def _stored(world: World, identity) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    assert world.store is not None
    backend = world.store.service.backend
    from omega.mailbox._auth import recipient_hash

    rows = await backend.list_messages(
        recipient_hash(identity.device.device_key), now=world.wall_clock(), limit=100
    )
    return [(row.message_id, row.payload) for row in rows]


async def test_blocked_and_unknown_senders() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        await bob.block(alice.user_id)
        sent = await alice.send_text(bob.user_id, "you blocked me")
        refused = await bob.wait_for(of_type(MessageRefused), timeout=10)
        assert isinstance(refused, MessageRefused)
        with anyio.fail_after(10):
            while (await alice.history(bob.user_id))[0].state is not DeliveryState.DELIVERED:
                await anyio.sleep(0.02)
        assert await bob.history(alice.user_id) == []
        assert sent.message_id == refused.message_id

    strict = ClientConfig(
        delivery=FAST.delivery, accept_unknown_senders=False, key_request_timeout=2.0
    )
    async with (
        world.client(world.identity("Carol"), config=strict) as carol,
        world.client(world.identity("Dave")) as dave,
    ):
        await dave.add_contact(str(carol.contact_uri), addresses=carol.addresses)
        await dave.send_text(carol.user_id, "hi stranger")
        event = await carol.wait_for(of_type(MessageRefused), timeout=10)
        assert isinstance(event, MessageRefused)
        assert await carol.contacts() == []


async def test_content_is_checked_by_the_receiver() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        bad = MessageContent(text=TextContent(text="x"), ttl_seconds=-5)
        with pytest.raises(Exception, match="ttl_seconds"):
            await alice.send(bob.user_id, bad)
        assert encode_message(bad)  # the schema allows it; only the rules refuse it


async def _tamper_stored(  # type: ignore[no-untyped-def]
    world: World, identity, field: str, change: Callable[[Any], object]
) -> str:
    """Rewrite the clear ``field`` of the one envelope stored for ``identity``; its message id."""
    assert world.store is not None
    backend = world.store.service.backend
    from omega.mailbox._auth import recipient_hash

    mailbox = recipient_hash(identity.device.device_key)
    [row] = await backend.list_messages(mailbox, now=world.wall_clock(), limit=100)
    frame = decode_message(Frame, row.payload)
    assert frame.message is not None
    tampered = dataclasses.replace(frame.message, **{field: change(getattr(frame.message, field))})
    assert await backend.delete_messages(mailbox, [row.message_id]) == 1
    stored = dataclasses.replace(row, payload=encode_message(Frame(message=tampered)))
    await backend.insert_message(stored, max_messages=1000, max_bytes=1 << 30)
    return tampered.message_id


@pytest.mark.parametrize(
    ("field", "change"),
    [("timestamp", lambda value: value + 1), ("message_id", lambda value: value[:-1] + "x")],
)
async def test_envelope_tampered_by_the_store_is_refused(
    field: str, change: Callable[[Any], object]
) -> None:
    # Envelopes are not signed: the store could rewrite their clear routing
    # fields. The copies bound inside the ciphertext give it away after
    # decryption, and the decryption is rolled back.
    world = World(store=MemoryStoreServer())
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    from omega.storage.memory import MemoryKeyStore
    from omega.storage.message_memory import MemoryMessageStore

    bob_keys, bob_db = MemoryKeyStore(), MemoryMessageStore()

    async def bob_fetches(expect: Callable[[list[Any]], bool]) -> list[Any]:
        events: list[Any] = []
        bob = world.client(bob_id, key_store=bob_keys, message_store=bob_db)
        bob.on(MessageReceived)(events.append)
        bob.on(MessageRefused)(events.append)
        async with bob:
            with anyio.fail_after(10):
                while not expect(events) or await _stored(world, bob_id):
                    await anyio.sleep(0.02)
        return events

    await bob_fetches(lambda events: True)  # publishes Bob's keys
    async with world.client(alice_id, listen=False) as alice:
        await alice.add_contact(f"omega://{bob_id.user_id}")

        def ids(events: list[Any]) -> list[tuple[type, str]]:
            return [
                (type(e), e.message.message_id if isinstance(e, MessageReceived) else e.message_id)
                for e in events
            ]

        async def deposit(text: str) -> str:
            sent = await alice.send_text(bob_id.user_id, text)
            with anyio.fail_after(10):
                while not await _stored(world, bob_id):
                    await anyio.sleep(0.02)
            return sent.message_id

        first = await deposit("one")
        events = await bob_fetches(lambda events: len(events) >= 1)
        assert ids(events) == [(MessageReceived, first)]

        second = await deposit("two")
        [(_, payload)] = await _stored(world, bob_id)
        frame = decode_message(Frame, payload)
        assert frame.message is not None
        assert frame.message.message_id == second
        tampered_id = await _tamper_stored(world, bob_id, field, change)
        events = await bob_fetches(lambda events: len(events) >= 1)
        [refused] = events
        assert isinstance(refused, MessageRefused)
        assert refused.code == "invalid_envelope"
        assert refused.message_id == tampered_id
        assert refused.sender_id == alice_id.user_id

        third = await deposit("three")
        events = await bob_fetches(lambda events: len(events) >= 1)
        assert ids(events) == [(MessageReceived, third)]
        assert isinstance(events[0], MessageReceived)

    async with world.client(bob_id, key_store=bob_keys, message_store=bob_db) as bob:
        history = await bob.history(alice_id.user_id)
        assert sorted(m.message_id for m in history) == sorted([first, third])
        assert {m.text for m in history} == {"one", "three"}


async def test_a_receipt_through_the_store_is_not_answered_with_a_receipt() -> None:
    # A delivery receipt for a receipt would be answered in turn, forever.
    from omega.mailbox.backend import DepositOutcome, StoredMessage
    from omega.mailbox.memory import MemoryBackend
    from omega.storage.message_base import DeliveryState as State

    class CountingBackend(MemoryBackend):
        deposits = 0

        async def insert_message(
            self, message: StoredMessage, *, max_messages: int, max_bytes: int
        ) -> DepositOutcome:
            CountingBackend.deposits += 1
            return await super().insert_message(
                message, max_messages=max_messages, max_bytes=max_bytes
            )

    world = World(store=MemoryStoreServer(backend=CountingBackend()))
    alice_id, bob_id = world.identity("Alice"), world.identity("Bob")
    async with (
        world.client(bob_id, listen=False) as bob,
        world.client(alice_id, listen=False) as alice,
    ):
        await alice.add_contact(f"omega://{bob_id.user_id}")
        await bob.add_contact(f"omega://{alice_id.user_id}")
        await alice.send_text(bob_id.user_id, "hi")
        with anyio.fail_after(10):
            while (await alice.history(bob_id.user_id))[0].state is not State.DELIVERED:
                await anyio.sleep(0.02)
        await anyio.sleep(0.5)  # a few mailbox polls of both clients
        assert CountingBackend.deposits == 2  # the message and Bob's receipt
        assert not await _stored(world, alice_id)
        assert not await _stored(world, bob_id)
