"""Groups across the devices of one user: a linked device joins our groups, a revoked one
is rotated out."""

from __future__ import annotations

import pytest
from client_helpers import World, link_device
from group_client_helpers import eventually, wait_until

from omega.client import Client, Event, GroupMessageReceived
from omega.mailbox.memory import MemoryStoreServer

pytestmark = pytest.mark.anyio


def _text(text: str) -> object:
    def matches(event: Event) -> bool:
        return isinstance(event, GroupMessageReceived) and event.message.text == text

    return matches


async def test_a_linked_device_joins_our_groups_and_a_revoked_one_is_rotated_out() -> None:
    world = World(store=MemoryStoreServer())
    async with (
        world.client(world.identity("Alice")) as phone,
        world.client(world.identity("Bob")) as bob,
    ):
        await phone.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(phone.contact_uri), addresses=phone.addresses)
        group = await phone.create_group("Team", members=[bob.user_id])
        gid = group.group_id
        await eventually(lambda: gid in {g.group_id for g in bob.groups()})
        await wait_until(phone, _text("hello"), lambda: bob.group(gid).send_text("hello"))

        laptop = await link_device(world, phone, "laptop")
        async with laptop:
            # The phone sends the new device each group's log: it joins like a member.
            await eventually(lambda: gid in {g.group_id for g in laptop.groups()})
            assert laptop.group(gid).members == group.members
            # Bob learns the new device, sends it his current key, and it reads him.
            direct = await bob.send_text(phone.user_id, "hi")
            await eventually(lambda: _has(laptop, bob.user_id, direct.message_id))
            event = await wait_until(
                laptop,
                _text("to both devices"),
                lambda: bob.group(gid).send_text("to both devices"),
            )
            assert isinstance(event, GroupMessageReceived)
            assert event.message.sender_id == bob.user_id
            # What the laptop sends, Bob and the phone both read.
            await wait_until(
                bob,
                _text("from the laptop"),
                lambda: laptop.group(gid).send_text("from the laptop"),
            )
            await eventually(
                lambda: _history_has(phone, gid, "from the laptop"),
            )

            # Revoking the laptop rotates the phone's sender key in every group.
            before = phone._groups.sessions[gid].outbound.distribution()
            await phone.revoke_device(laptop.device_id)
            after = phone._groups.sessions[gid].outbound.distribution()
            assert after != before
            await wait_until(
                bob, _text("after revocation"), lambda: group.send_text("after revocation")
            )


async def _history_has(client: Client, group_id: str, text: str) -> bool:
    return any(message.text == text for message in await client.group(group_id).history())


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation))
