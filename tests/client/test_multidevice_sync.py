"""What sync carries between two running devices: reads, edits, deletes, big histories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from client_helpers import World
from test_multidevice_lists import _second

from omega.client import Client
from omega.storage.message_base import DeliveryState, Direction

pytestmark = pytest.mark.anyio


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def _message(client: Client, conversation: str, message_id: str):  # type: ignore[no-untyped-def]
    for message in await client.history(conversation, limit=1000):
        if message.message_id == message_id:
            return message
    return None


async def test_reads_edits_deletes_and_a_chunked_history_reach_the_other_device() -> None:
    world = World()
    phone_id = world.identity("Alice")
    laptop_id = _second(phone_id, "laptop")
    async with world.client(world.identity("Bob")) as bob, world.client(phone_id) as phone:
        await phone.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(phone.contact_uri), addresses=phone.addresses)
        # A history bigger than one sync message, written while the phone was alone.
        for n in range(12):
            await phone.send_text(bob.user_id, f"{n:04d} " + "x" * 20_000)
        incoming = await bob.send_text(phone.user_id, "please read me")
        await _until(lambda: _present(phone, bob.user_id, incoming.message_id))
        # The phone learns of the laptop (as after a link) and writes its history.
        await phone._devices.receive_own_list(laptop_id.device_list.to_signed(), None)
        assert len(phone.devices()) == 2
        async with world.client(laptop_id) as laptop:
            laptop.add_device_addresses(phone.addresses)
            phone.add_device_addresses(laptop.addresses)
            await laptop.sync_now()
            await _until(lambda: _count(laptop, bob.user_id, 13), timeout=20)
            # Reading on the phone marks it read on the laptop.
            assert await phone.mark_read(bob.user_id) == 1
            await _until(
                lambda: _state(laptop, bob.user_id, incoming.message_id, DeliveryState.READ)
            )
            # Edits and deletions (for everyone, and for us only) follow.
            mine = [
                m
                for m in await phone.history(bob.user_id, limit=20)
                if m.direction is Direction.OUTGOING
            ]
            first, other = mine[0], mine[1]
            await phone.edit(bob.user_id, first.message_id, "edited")
            await _until(lambda: _text(laptop, bob.user_id, first.message_id, "edited"))
            await phone.delete(bob.user_id, first.message_id, for_everyone=True)
            await _until(lambda: _deleted(laptop, bob.user_id, first.message_id))
            await phone.delete(bob.user_id, other.message_id)
            await _until(lambda: _deleted_or_gone(laptop, bob.user_id, other.message_id))
            # Many changes of one document: its stored updates are compacted.
            for n in range(66):
                await laptop.set_setting("counter", n)
            await _until(lambda: _setting(phone, "counter", 65))
    assert (await phone.settings())["counter"] == 65


async def _present(client: Client, conversation: str, message_id: str) -> bool:
    return await _message(client, conversation, message_id) is not None


async def _count(client: Client, conversation: str, count: int) -> bool:
    return len(await client.history(conversation, limit=1000)) >= count


async def _state(client: Client, conversation: str, message_id: str, state: DeliveryState) -> bool:
    message = await _message(client, conversation, message_id)
    return message is not None and message.state is state


async def _text(client: Client, conversation: str, message_id: str, text: str) -> bool:
    message = await _message(client, conversation, message_id)
    return message is not None and message.text == text


async def _deleted(client: Client, conversation: str, message_id: str) -> bool:
    message = await _message(client, conversation, message_id)
    return message is not None and message.deleted


async def _deleted_or_gone(client: Client, conversation: str, message_id: str) -> bool:
    message = await _message(client, conversation, message_id)
    return message is None or message.deleted


async def _setting(client: Client, name: str, value: object) -> bool:
    return (await client.settings()).get(name) == value
