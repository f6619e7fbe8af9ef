"""Multi-device with real clients on the memory transport: linking, sync, revocation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from client_helpers import World, link_device

from omega.client import Client, MessageReceived, OwnDevicesChanged, SyncApplied
from omega.errors import (
    ConfigurationError,
    DeviceLinkError,
    InvalidLinkCodeError,
    LinkCodeExpiredError,
)
from omega.mailbox.memory import MemoryStoreServer
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def test_a_linked_device_receives_contacts_settings_and_the_whole_history() -> None:
    world = World(store=MemoryStoreServer())
    async with (
        world.client(world.identity("Alice")) as phone,
        world.client(world.identity("Bob")) as bob,
    ):
        await phone.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(phone.contact_uri), addresses=phone.addresses)
        await phone.verify_contact(bob.user_id)
        await phone.set_setting("theme", "dark")
        for n in range(5):
            await phone.send_text(bob.user_id, f"hello {n}")
        reply = await bob.send_text(phone.user_id, "hi Alice")
        await _until(lambda: _has(phone, bob.user_id, reply.message_id))
        await phone.archive(bob.user_id)

        async with await link_device(world, phone) as laptop:
            assert [d.this_device for d in laptop.devices()] == [True, False]
            assert len(phone.devices()) == 2
            await _until(lambda: _count(laptop, bob.user_id, 6))
            [contact] = await laptop.contacts()
            assert contact.user_id == bob.user_id
            assert contact.display_name == "Bob"
            assert contact.verified
            assert await laptop.settings() == {"theme": "dark"}
            texts = sorted(m.text for m in await laptop.history(bob.user_id))
            assert texts == sorted([*(f"hello {n}" for n in range(5)), "hi Alice"])
            await _until(lambda: _archived(laptop, bob.user_id))

            # Bob learns the new device list and delivers to the new device too.
            later = await bob.send_text(phone.user_id, "to all your devices")
            await _until(lambda: _has(laptop, bob.user_id, later.message_id))
            await _until(lambda: _has(phone, bob.user_id, later.message_id))

            # A message sent from the laptop shows on the phone.
            sent = await laptop.send_text(bob.user_id, "from the laptop")
            await _until(lambda: _has(phone, bob.user_id, sent.message_id))
            await _until(lambda: _has(bob, laptop.user_id, sent.message_id))


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation, limit=500))


async def _count(client: Client, conversation: str, count: int) -> bool:
    return len(await client.history(conversation, limit=500)) >= count


async def _archived(client: Client, conversation: str) -> bool:
    return any(c.conversation_id == conversation for c in await client.conversations(archived=True))


async def test_an_offline_device_catches_up_through_the_store_and_edits_converge() -> None:
    world = World(store=MemoryStoreServer())
    carol = world.identity("Carol")
    async with world.client(world.identity("Alice")) as phone:
        laptop_client = await link_device(world, phone)
        keys, db = laptop_client._core.keys, laptop_client._core.db
        identity = laptop_client.identity
        async with laptop_client as laptop:
            await laptop.add_contact(carol.user_id, display_name="Carol")
            await _until(lambda: _named(phone, carol.user_id, "Carol"))
        # The laptop is offline: changes wait in the store for it.
        await phone.update_contact(carol.user_id, display_name="Caroline", blocked=True)
        await phone.set_setting("font.size", 14)
        assert isinstance(keys, MemoryKeyStore)
        assert isinstance(db, MemoryMessageStore)
        again = world.client(identity, key_store=keys, message_store=db)
        async with again as laptop:
            await _until(lambda: _named(laptop, carol.user_id, "Caroline"))
            assert (await laptop.contact(carol.user_id)).blocked
            assert (await laptop.settings())["font.size"] == 14
            # Concurrent edits of two fields on two devices both survive.
            await laptop.update_contact(carol.user_id, verified=True)
            await phone.update_contact(carol.user_id, display_name="Caz")
            await _until(lambda: _named(laptop, carol.user_id, "Caz"))
            await _until(lambda: _verified(phone, carol.user_id))
            assert (await laptop.contact(carol.user_id)).verified


async def _named(client: Client, user_id: str, name: str) -> bool:
    return any(c.user_id == user_id and c.display_name == name for c in await client.contacts())


async def _verified(client: Client, user_id: str) -> bool:
    return any(c.user_id == user_id and c.verified for c in await client.contacts())


async def test_three_devices_and_revocation() -> None:
    world = World(store=MemoryStoreServer())
    async with (
        world.client(world.identity("Alice")) as phone,
        world.client(world.identity("Bob")) as bob,
    ):
        await phone.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(phone.contact_uri), addresses=phone.addresses)
        async with (
            await link_device(world, phone, "laptop") as laptop,
            await link_device(world, phone, "tablet") as tablet,
        ):
            await _until(lambda: _devices(laptop, 3))
            await _until(lambda: _named(tablet, bob.user_id, "Bob"))
            sent = await tablet.send_text(bob.user_id, "from the tablet")
            await _until(lambda: _has(phone, bob.user_id, sent.message_id))
            await _until(lambda: _has(laptop, bob.user_id, sent.message_id))

            renamed = await phone.rename_device(laptop.device_id, "work laptop")
            assert renamed.name == "work laptop"
            await _until(lambda: _device_named(tablet, "work laptop"))

            revoked_events: list[OwnDevicesChanged] = []
            laptop.on(OwnDevicesChanged)(revoked_events.append)
            hooks: list[bytes] = []

            @phone.on_device_revoked
            async def _rotate(device_key: bytes) -> None:
                hooks.append(device_key)

            with pytest.raises(ConfigurationError):
                await phone.revoke_device(phone.device_id)
            await phone.revoke_device(laptop.device_id, reason="stolen")
            assert hooks == [laptop.identity.device.device_key]
            assert [d.name for d in phone.devices()] == ["phone", "tablet"]
            await _until(lambda: _devices(tablet, 2))
            # Contacts learn the new list when they next talk with one of our devices.
            received: list[MessageReceived] = []
            laptop.on(MessageReceived)(received.append)
            mine = await phone.send_text(bob.user_id, "mine, after the revocation")
            await _until(lambda: _revoked(bob, laptop.identity.device.device_key))

            # Nothing sent after the revocation reaches the revoked device.
            after = await bob.send_text(phone.user_id, "after the revocation")
            await phone.set_setting("secret", "new")
            await _until(lambda: _has(tablet, bob.user_id, after.message_id))
            await _until(lambda: _has(tablet, bob.user_id, mine.message_id))
            await anyio.sleep(0.5)
            assert not await _has(laptop, bob.user_id, after.message_id)
            assert not await _has(laptop, bob.user_id, mine.message_id)
            assert "secret" not in await laptop.settings()
            assert not [e for e in received if e.message.message_id == after.message_id]

            # What the revoked device syncs is refused by the others.
            synced: list[SyncApplied] = []
            phone.on(SyncApplied)(synced.append)
            await laptop.set_setting("from.revoked", True)
            await anyio.sleep(0.5)
            assert "from.revoked" not in await phone.settings()
            assert not synced


async def _devices(client: Client, count: int) -> bool:
    return len(client.devices()) == count


async def _device_named(client: Client, name: str) -> bool:
    return any(d.name == name for d in client.devices())


async def _revoked(client: Client, device_key: bytes) -> bool:
    for contact in await client.contacts():
        listed = client._core.verified_list(contact)
        if listed is not None and listed.is_revoked(device_key):
            return True
    return False


async def test_link_codes_are_refused_when_forged_expired_or_used() -> None:
    world = World()
    async with world.client(world.identity("Alice")) as phone:
        link = await phone.create_link_code(lifetime=60)
        with pytest.raises(InvalidLinkCodeError):
            await Client.link("OMEGA-LINK:AAAA", device_name="x", transports=world.registry())
        laptop = await _link_with(world, link.code)
        assert laptop.identity.user_id == phone.user_id
        with pytest.raises(DeviceLinkError):  # single use: nobody waits on it any more
            await _link_with(world, link.code)
        short = await phone.create_link_code(lifetime=0.05)
        await anyio.sleep(0.1)
        with pytest.raises(LinkCodeExpiredError):
            await _link_with(world, short.code)
        with pytest.raises(LinkCodeExpiredError):
            await short.wait(timeout=1)
    quiet = world.client(world.identity("Dan"), listen=False)
    async with quiet:
        with pytest.raises(ConfigurationError):
            await quiet.create_link_code()


async def _link_with(world: World, code: str):  # type: ignore[no-untyped-def]
    return await Client.link(
        code, device_name="laptop", transports=world.registry(), wall_clock=world.wall_clock
    )
