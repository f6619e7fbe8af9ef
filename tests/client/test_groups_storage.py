"""How a client stores its groups: in parts, each message writing only what it changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from client_helpers import World
from group_client_helpers import Trio, eventually, ready, wait_until

from omega.client import Client, GroupMessageReceived
from omega.client._group_parts import is_group_id
from omega.client._group_store import load_session
from omega.errors import ConfigurationError, OmegaError, StorageError
from omega.mailbox.memory import MemoryStoreServer
from omega.protocol import GroupSessionState, Message, decode_message
from omega.storage.base import InboxEntry, KeyStoreTransaction
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio


class _FlakyKeyStore(MemoryKeyStore):
    """A memory key store whose next inbox writes of group messages raise (a full disk...)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[OmegaError] = []

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[KeyStoreTransaction]:
        async with super()._begin() as tx:
            add = tx.add_to_inbox

            async def add_to_inbox(entry: InboxEntry) -> bool:
                recipient = decode_message(Message, entry.plaintext).recipient_id
                if self.failures and is_group_id(recipient):
                    raise self.failures.pop()
                return await add(entry)

            tx.add_to_inbox = add_to_inbox  # type: ignore[method-assign]
            yield tx


@asynccontextmanager
async def _trio(
    world: World, bob_keys: MemoryKeyStore, bob_db: MemoryMessageStore
) -> AsyncIterator[Trio]:
    bob_identity = world.identity("Bob")
    async with (
        world.client(world.identity("Alice")) as alice,
        world.client(world.identity("Carol")) as carol,
        world.client(bob_identity, key_store=bob_keys, message_store=bob_db) as bob,
    ):
        for friend in (bob, carol):
            await alice.add_contact(str(friend.contact_uri), addresses=friend.addresses)
            await friend.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        group = await alice.create_group("Friends", [bob.user_id, carol.user_id])
        trio = Trio(world=world, alice=alice, bob=bob, carol=carol, group=group)
        await ready(trio)
        yield trio


async def _stored(client: Client, group_id: str) -> bytes:
    """The client's group session as its key store holds it (as one version 1 blob)."""
    async with client._core.keys.transaction() as tx:
        session = await load_session(tx, group_id, client.identity.device, client._groups.config)
    assert session is not None
    return session.to_bytes()


def _cached(client: Client, group_id: str) -> bytes:
    return client._groups.sessions[group_id].to_bytes()


async def test_a_message_writes_only_its_sender_record_or_our_key() -> None:
    keys = MemoryKeyStore()
    async with _trio(World(store=MemoryStoreServer()), keys, MemoryMessageStore()) as t:
        group_id = t.group.group_id
        before = keys._state.copy()
        got = await wait_until(
            t.bob, lambda e: isinstance(e, GroupMessageReceived), lambda: t.group.send_text("hi")
        )
        assert isinstance(got, GroupMessageReceived)
        after = keys._state.copy()
        assert after.groups == before.groups, "the group record is not rewritten"
        assert after.group_outbound == before.group_outbound, "nor our outbound key"
        alice = (group_id, t.alice.identity.device.device_key)
        changed = {
            key
            for key in after.group_senders
            if after.group_senders[key] != before.group_senders.get(key)
        }
        assert changed == {alice}, "a received message rewrites its sender's record alone"
        await t.of(t.bob).send_text("back")
        sent = keys._state.copy()
        assert sent.groups == after.groups
        assert sent.group_senders == after.group_senders
        assert sent.group_outbound[group_id] != after.group_outbound[group_id], "a send: our key"
        assert await _stored(t.bob, group_id) == _cached(t.bob, group_id)


@pytest.mark.parametrize("failure", [StorageError("disk full"), ConfigurationError("refused")])
async def test_a_failed_inbox_write_leaves_store_and_session_as_they_were(
    failure: OmegaError,
) -> None:
    keys = _FlakyKeyStore()
    async with _trio(World(store=MemoryStoreServer()), keys, MemoryMessageStore()) as t:
        group_id = t.group.group_id
        stored, cached = await _stored(t.bob, group_id), _cached(t.bob, group_id)
        assert stored == cached
        keys.failures.append(failure)
        await t.group.send_text("one")
        await eventually(lambda: not keys.failures)  # the first attempt failed in Bob's store
        if isinstance(failure, StorageError):
            # Retried by Alice's outbox: decrypted again, so Bob's chain had not advanced.
            await eventually(lambda: _texts(t.bob, group_id, ["one"]))
        else:
            # Refused for good; the next use of the group finds the store without the write.
            async with t.bob._groups.changing(group_id):
                pass
            assert await _stored(t.bob, group_id) == stored, "nothing was persisted"
            assert _cached(t.bob, group_id) == stored, "and the session went back"
        got = await wait_until(
            t.bob, lambda e: isinstance(e, GroupMessageReceived), lambda: t.group.send_text("two")
        )
        assert isinstance(got, GroupMessageReceived)
        assert await _stored(t.bob, group_id) == _cached(t.bob, group_id)


async def test_a_store_from_before_the_split_loads_and_converts_at_restart() -> None:
    world = World(store=MemoryStoreServer())
    keys, db = MemoryKeyStore(), MemoryMessageStore()
    async with _trio(world, keys, db) as t:
        group_id = t.group.group_id
        await wait_until(
            t.bob, lambda e: isinstance(e, GroupMessageReceived), lambda: t.group.send_text("a")
        )
        snapshot = _cached(t.bob, group_id)
        bob_identity = t.bob.identity
        await t.bob.aclose()
        async with keys.transaction() as tx:  # what the code before the split stored
            assert await tx.delete_group_state(group_id)
            await tx.save_group_state(group_id, snapshot)
        async with world.client(bob_identity, key_store=keys, message_store=db) as bob:
            await t.alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
            assert _cached(bob, group_id) == snapshot, "the same session as before the restart"
            got = await wait_until(
                bob, lambda e: isinstance(e, GroupMessageReceived), lambda: t.group.send_text("b")
            )
            assert isinstance(got, GroupMessageReceived)
            async with keys.transaction() as tx:
                record = await tx.load_group_state(group_id)
                assert record is not None
                assert decode_message(GroupSessionState, record).version == 2, "converted"
            reply = await wait_until(
                t.carol,
                lambda e: isinstance(e, GroupMessageReceived),
                lambda: bob.group(group_id).send_text("c"),
            )
            assert isinstance(reply, GroupMessageReceived)
            snapshot = _cached(bob, group_id)
            assert await _stored(bob, group_id) == snapshot
        async with world.client(bob_identity, key_store=keys, message_store=db) as bob:
            assert _cached(bob, group_id) == snapshot, "parts load the same session back"


async def _texts(client: Client, group_id: str, expected: list[str]) -> bool:
    return [m.text for m in await client.group(group_id).history()] == expected
