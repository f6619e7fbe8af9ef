"""Group membership through real clients: removal rekeys, catch-up through the store, restarts."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import World, of_type
from group_client_helpers import Trio, eventually, ready, trio, wait_until

from omega.client import (
    ContactDevicesChanged,
    GroupJoined,
    GroupMemberAdded,
    GroupMemberLeft,
    GroupMemberRemoved,
    GroupMessageReceived,
    GroupRenamed,
    GroupRoleChanged,
    MessageRefused,
)
from omega.client._group_parts import chunked_updates
from omega.client._inbound import Receipt
from omega.errors import GroupPermissionError, UnknownSenderKeyError
from omega.groups import GroupSession
from omega.mailbox.memory import MemoryStoreServer
from omega.protocol import EncryptionKind, MemberRole, MessageContent, TextContent
from omega.session.content import encode_content
from omega.session.envelope import bind_content, seal_envelope
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio


def _forge_envelope(t: Trio, ciphertext: bytes, message_id: str, now: int, device: bytes):  # type: ignore[no-untyped-def]
    return seal_envelope(
        t.alice.identity.device,
        message_id=message_id,
        sender_id=t.alice.user_id,
        recipient_id=t.group.group_id,
        recipient_device_key=device,
        timestamp=now,
        encryption=EncryptionKind.SENDER_KEY,
        encrypted_content=ciphertext,
    )


def _bound(t: Trio, text: str, message_id: str, now: int) -> bytes:
    content = MessageContent(text=TextContent(text=text))
    return encode_content(
        bind_content(
            content, message_id=message_id, timestamp=now, conversation_id=t.group.group_id
        )
    )


async def test_a_removed_member_reads_nothing_sent_afterwards() -> None:
    async with trio() as t:
        group = t.group
        removed = await wait_until(
            t.carol, of_type(GroupMemberRemoved), lambda: group.remove(t.carol.user_id)
        )
        assert isinstance(removed, GroupMemberRemoved)
        assert (removed.user_id, removed.by) == (t.carol.user_id, t.alice.user_id)
        assert not t.of(t.carol).is_member
        with pytest.raises(GroupPermissionError):
            await t.of(t.carol).send_text("still here?")
        epoch = group.state.epoch
        assert epoch == 1
        # Bob rotated too and Alice has his new key; Alice's new key reached Bob.
        await eventually(lambda: _rekeyed(t))
        after = await wait_until(
            t.bob, of_type(GroupMessageReceived), lambda: group.send_text("after carol left")
        )
        assert isinstance(after, GroupMessageReceived)
        # Carol was not a recipient; even with the ciphertext in hand she cannot read it.
        alice_session = t.alice._groups.sessions[group.group_id]
        message_id, now = t.alice._core.new_message_id(), t.alice._core.now()
        ciphertext = alice_session.outbound.encrypt(_bound(t, "secret", message_id, now))
        envelope = _forge_envelope(
            t, ciphertext, message_id, now, t.carol.identity.device.device_key
        )
        outcome = await t.carol._inbound.receive_envelope(envelope, connection=None)
        assert outcome in (Receipt.RETRY, Receipt.REFUSED)
        carol_session = t.carol._groups.sessions[group.group_id]
        with pytest.raises(UnknownSenderKeyError):
            carol_session.decrypt(t.alice.user_id, t.alice.identity.device.device_key, ciphertext)
        assert all(m.text != "secret" for m in await t.of(t.carol).history())
        assert all(m.text != "after carol left" for m in await t.of(t.carol).history())


def _rekeyed(t: Trio) -> bool:
    group_id = t.group.group_id
    alice = t.alice._groups.sessions[group_id]
    bob = t.bob._groups.sessions[group_id]
    alice_keys = bob._inbound[t.alice.identity.device.device_key][1].key_ids
    bob_keys = alice._inbound[t.bob.identity.device.device_key][1].key_ids
    return alice.outbound.key_id in alice_keys and bob.outbound.key_id in bob_keys


async def test_a_new_member_cannot_read_earlier_messages() -> None:
    async with trio() as t:
        before = await wait_until(
            t.bob, of_type(GroupMessageReceived), lambda: t.group.send_text("before dave")
        )
        assert isinstance(before, GroupMessageReceived)
        async with t.world.client(t.world.identity("Dave")) as dave:
            await t.alice.add_contact(str(dave.contact_uri), addresses=dave.addresses)
            await dave.add_contact(str(t.alice.contact_uri), addresses=t.alice.addresses)
            joined = await wait_until(dave, of_type(GroupJoined), lambda: t.group.add(dave.user_id))
            assert isinstance(joined, GroupJoined)
            assert joined.invited_by == t.alice.user_id
            await eventually(lambda: _holds_key_of(dave, t, t.bob))
            got = await wait_until(
                dave, of_type(GroupMessageReceived), lambda: t.of(t.bob).send_text("welcome")
            )
            assert isinstance(got, GroupMessageReceived)
            assert [m.text for m in await dave.group(t.group.group_id).history()] == ["welcome"]
            # Bob's sender key as Dave holds it starts after "before dave": it opens nothing older.
            keys = dave._groups.sessions[t.group.group_id]._inbound
            assert t.bob.identity.device.device_key in keys


def _holds_key_of(client, t: Trio, other) -> bool:  # type: ignore[no-untyped-def]
    session = client._groups.sessions.get(t.group.group_id)
    return session is not None and other.identity.device.device_key in session._inbound


async def test_roles_names_and_leaving_reach_every_member() -> None:
    async with trio() as t:
        promoted = await wait_until(
            t.carol, of_type(GroupRoleChanged), lambda: t.group.promote(t.bob.user_id)
        )
        assert isinstance(promoted, GroupRoleChanged)
        assert (promoted.user_id, promoted.role) == (t.bob.user_id, MemberRole.ADMIN)
        renamed = await wait_until(
            t.alice, of_type(GroupRenamed), lambda: t.of(t.bob).rename("Best friends")
        )
        assert isinstance(renamed, GroupRenamed)
        assert (renamed.name, renamed.by) == ("Best friends", t.bob.user_id)
        await eventually(lambda: t.of(t.carol).name == "Best friends")
        demoted = await wait_until(
            t.bob, of_type(GroupRoleChanged), lambda: t.group.demote(t.bob.user_id)
        )
        assert isinstance(demoted, GroupRoleChanged)
        assert demoted.role is MemberRole.MEMBER
        left = await wait_until(t.alice, of_type(GroupMemberLeft), lambda: t.of(t.carol).leave())
        assert isinstance(left, GroupMemberLeft)
        assert left.user_id == t.carol.user_id
        await eventually(lambda: t.carol.user_id not in t.of(t.bob).state.members)
        assert t.of(t.bob).state.epoch == 1


async def test_an_offline_member_catches_up_through_the_store() -> None:
    world = World(store=MemoryStoreServer())
    bob_keys, bob_db = MemoryKeyStore(), MemoryMessageStore()
    bob_identity = world.identity("Bob")
    alice_client, carol_client = (
        world.client(world.identity("Alice")),
        world.client(world.identity("Carol")),
    )
    async with alice_client as alice, carol_client as carol:
        async with world.client(bob_identity, key_store=bob_keys, message_store=bob_db) as bob:
            for friend in (bob, carol):
                await alice.add_contact(str(friend.contact_uri), addresses=friend.addresses)
                await friend.add_contact(str(alice.contact_uri), addresses=alice.addresses)
            group = await alice.create_group("Friends", [bob.user_id, carol.user_id])
            t = Trio(world=world, alice=alice, bob=bob, carol=carol, group=group)
            await ready(t)
        # Bob is offline: Carol is removed and Alice writes.
        await group.remove(carol.user_id)
        await group.send_text("while bob was away")
        async with world.client(bob_identity, key_store=bob_keys, message_store=bob_db) as bob:
            assert bob.group(group.group_id).state.is_member(carol.user_id)  # restarted
            await eventually(lambda: not bob.group(group.group_id).state.is_member(carol.user_id))
            await eventually(lambda: _texts_are(bob, group.group_id, ["while bob was away"]))
            assert bob.group(group.group_id).state.heads == group.state.heads


async def test_a_member_missing_operations_asks_for_them() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        # Alice makes a change that never reaches anyone (it stays in her log only)...
        async with t.alice._groups.changing(group_id) as (_, session):
            session.log.rename(t.alice.identity.device, "silent", now=t.alice._core.now())
        # ...then another one: Bob holds it pending, asks Alice, and gets both.
        renamed = await wait_until(t.bob, of_type(GroupRenamed), lambda: t.group.rename("loud"))
        assert isinstance(renamed, GroupRenamed)
        await eventually(lambda: t.of(t.bob).state.heads == t.group.state.heads)
        assert t.of(t.bob).name == "loud"
        assert t.of(t.bob).state.operation_count == t.group.state.operation_count


async def test_a_restart_keeps_group_state() -> None:
    world = World(store=MemoryStoreServer())
    bob_keys, bob_db = MemoryKeyStore(), MemoryMessageStore()
    bob_identity = world.identity("Bob")
    async with (
        world.client(world.identity("Alice")) as alice,
        world.client(world.identity("Carol")) as carol,
    ):
        async with world.client(bob_identity, key_store=bob_keys, message_store=bob_db) as bob:
            for friend in (bob, carol):
                await alice.add_contact(str(friend.contact_uri), addresses=friend.addresses)
                await friend.add_contact(str(alice.contact_uri), addresses=alice.addresses)
            group = await alice.create_group("Friends", [bob.user_id, carol.user_id])
            t = Trio(world=world, alice=alice, bob=bob, carol=carol, group=group)
            await ready(t)
            bob_address = bob.addresses
        async with world.client(bob_identity, key_store=bob_keys, message_store=bob_db) as bob:
            await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
            assert bob_address != bob.addresses
            [kept] = bob.groups()
            assert kept.group_id == group.group_id
            assert kept.name == "Friends"
            got = await wait_until(
                bob, of_type(GroupMessageReceived), lambda: group.send_text("after restart")
            )
            assert isinstance(got, GroupMessageReceived)
            reply = await wait_until(
                carol, of_type(GroupMessageReceived), lambda: kept.send_text("bob is back")
            )
            assert isinstance(reply, GroupMessageReceived)
            assert reply.message.sender_id == bob.user_id


async def _texts_are(client, group_id, expected):  # type: ignore[no-untyped-def]
    return [m.text for m in await client.group(group_id).history()] == expected


_ = (GroupMemberAdded, MessageRefused, GroupSession, anyio)


async def test_a_revoked_member_device_makes_everyone_rotate() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        before = t.alice._groups.sessions[group_id].outbound.key_id
        # Bob's device list lost a device: Alice's client rotates her key in their groups.
        await t.alice._core.emit(
            ContactDevicesChanged(user_id=t.bob.user_id, added=(), removed=("gone",), held=False)
        )
        after = t.alice._groups.sessions[group_id].outbound.key_id
        assert after != before
        await eventually(
            lambda: (
                after
                in t.bob._groups.sessions[group_id]
                ._inbound[t.alice.identity.device.device_key][1]
                .key_ids
            )
        )
        got = await wait_until(
            t.carol, of_type(GroupMessageReceived), lambda: t.group.send_text("k")
        )
        assert isinstance(got, GroupMessageReceived)
        assert await t.alice._groups.rotate_sender_keys(["0" * 64]) == 0


async def test_a_long_log_reaches_a_new_member_in_several_updates() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        async with t.alice._groups.changing(group_id) as (_, session):
            for index in range(700):  # about 250 KB of operations: more than one update
                session.log.rename(t.alice.identity.device, f"n{index}", now=index)
        assert len(chunked_updates(session.log, session.log.export())) > 1
        async with t.world.client(t.world.identity("Dave")) as dave:
            await t.alice.add_contact(str(dave.contact_uri), addresses=dave.addresses)
            await dave.add_contact(str(t.alice.contact_uri), addresses=t.alice.addresses)
            joined = await wait_until(dave, of_type(GroupJoined), lambda: t.group.add(dave.user_id))
            assert isinstance(joined, GroupJoined)
            assert joined.state.name == "n699"
            assert dave.group(group_id).state.heads == t.group.state.heads


async def test_a_message_ahead_of_its_sender_key_waits_in_the_store() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        alice = t.alice._groups
        async with alice.changing(group_id) as (_, session):
            distribution = session.outbound.rotate(rng=t.alice._core.rng)
        message_id, now = t.alice._core.new_message_id(), t.alice._core.now()
        ciphertext = session.outbound.encrypt(_bound(t, "early bird", message_id, now))
        bob_device = t.bob.identity.device.device_key
        frame = alice.envelope(group_id, message_id, bob_device, now, ciphertext)
        assert t.world.store is not None
        # The message reaches Bob's mailbox before the distribution of the key it is under:
        # Bob leaves it there, and reads it once the distribution arrived.
        received = t.bob._core.subscribe(100)
        await t.world.store.client().deposit(bob_device, message_id, frame)
        await anyio.sleep(0.3)
        assert await t.of(t.bob).history() == []
        await alice.send_distribution(session, [t.bob.user_id], distribution)
        async with received:
            with anyio.fail_after(10):
                async for event in received:
                    if isinstance(event, GroupMessageReceived):
                        assert event.message.text == "early bird"
                        break
