"""Clients that find each other through a resolver, knowing only a contact URI."""

from __future__ import annotations

import pytest
from client_helpers import FAST, World, of_type

from omega.client import Client, MessageReceived
from omega.discovery.static import StaticResolver
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio


async def test_contact_found_through_the_resolver_alone() -> None:
    world = World()
    directory = StaticResolver()

    def client(name: str) -> Client:
        return Client(
            identity=world.identity(name),
            key_store=MemoryKeyStore(),
            message_store=MemoryMessageStore(),
            transports=world.registry(),
            listen=[f"/memory/{name.lower()}"],
            resolver=directory,
            publisher=directory,
            config=FAST,
        )

    async with client("Alice") as alice, client("Bob") as bob:
        record = await directory.resolve_peer(bob.identity.device.device_key, user_id=bob.user_id)
        assert record is not None
        assert [str(a) for a in record.addresses] == [str(a) for a in bob.addresses]
        await alice.add_contact(str(bob.contact_uri))
        await alice.send_text(bob.user_id, "found you")
        event = await bob.wait_for(of_type(MessageReceived), timeout=10)
        assert isinstance(event, MessageReceived)
        assert event.message.text == "found you"
        # Bob never added Alice: he answers through the resolver too.
        await bob.send_text(alice.user_id, "and I found you")
        answer = await alice.wait_for(of_type(MessageReceived), timeout=10)
        assert isinstance(answer, MessageReceived)
