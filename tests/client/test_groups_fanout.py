"""Fan-out to a full 256-member group, with one real sender client.

Starting 256 clients would take minutes. Instead, Alice (a real client)
creates a group with Bob (a real client) and 254 members that are offline:
identities whose device lists and prekeys are published on the store's key
directory, as a client publishes them. Alice's real outbox then does all the
work a group needs: X3DH with every member device, the log and her sender
key to each over the pairwise sessions, and one group message encrypted once
and deposited for every member device. The test checks the store holds that
same ciphertext for each of the 254 offline devices, that Bob reads it, and
that one offline member, started later as a real client, catches up and
reads it too.
"""

from __future__ import annotations

import anyio
import pytest
from client_helpers import World, of_type
from group_client_helpers import eventually

from omega.client import GroupJoined, GroupMessageReceived
from omega.crypto import Identity, PrekeyStore
from omega.crypto.prekeys import PrekeyConfig
from omega.errors import GroupPermissionError
from omega.mailbox.config import StoreConfig
from omega.mailbox.memory import MemoryStoreServer
from omega.protocol import EncryptionKind, Frame, decode_message
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import DeliveryState

pytestmark = pytest.mark.anyio

_SMALL = PrekeyConfig(one_time_prekey_target=2, one_time_prekey_low_water=1)


async def _offline_member(store: MemoryStoreServer, now: int) -> tuple[Identity, PrekeyStore]:
    identity = Identity.create(device_name="phone", created_at=now)
    prekeys = PrekeyStore.generate(identity.device.key_pair, now=now, config=_SMALL)
    directory = store.client(source=identity.user_id[:20])
    await directory.publish_device_list(identity.device_list.to_signed())
    await directory.publish_prekeys(
        identity.device,
        signed_prekey=prekeys.signed_prekey,
        one_time_prekeys=prekeys.one_time_prekeys,
    )
    return identity, prekeys


async def _held_for(store: MemoryStoreServer, identity: Identity) -> list[Frame]:
    envelopes = await store.client().fetch(identity.device, limit=1000)
    return [decode_message(Frame, envelope.payload) for envelope in envelopes]


async def test_a_message_fans_out_to_256_member_devices_as_one_ciphertext() -> None:
    # One sender deposits ~800 envelopes (~25 MB of logs) at once: above a store's default
    # per-source rate limits (docs/groups.md, "Larger groups"), so this store allows it.
    limits = StoreConfig(
        requests_per_second=1e6, request_burst=10**6, bytes_per_second=10**9, bytes_burst=10**9
    )
    store = MemoryStoreServer(config=limits)
    world = World(store=store)
    now = world.wall_clock()
    offline = [await _offline_member(store, now) for _ in range(254)]
    async with (
        world.client(world.identity("Alice")) as alice,
        world.client(world.identity("Bob")) as bob,
    ):
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        for identity, _ in offline:
            await alice.add_contact(identity.user_id)
        members = [bob.user_id] + [identity.user_id for identity, _ in offline]
        joined = bob._core.subscribe(100)
        group = await alice.create_group("everyone", members)
        assert len(group.members) == 256
        extra = await alice.add_contact(Identity.create(device_name="x", created_at=now).user_id)
        with pytest.raises(GroupPermissionError):
            await group.add(extra.user_id)  # the 257th
        assert len(group.members) == 256
        async with joined:
            with anyio.fail_after(20):
                async for event in joined:
                    if isinstance(event, GroupJoined):
                        break
        # Alice's sender key reached every member device before the message.
        await eventually(lambda: _all_sent(alice), timeout=30)
        received = bob._core.subscribe(100)
        sent = await group.send_text("to all 255 others")
        async with received:
            with anyio.fail_after(20):
                async for event in received:
                    if isinstance(event, GroupMessageReceived):
                        assert event.message.message_id == sent.message_id
                        break
        await eventually(lambda: _all_sent(alice), timeout=30)
        ciphertexts = set()
        for identity, _ in offline:
            frames = [f for f in await _held_for(store, identity) if f.message is not None]
            group_messages = [
                f.message
                for f in frames
                if f.message is not None and f.message.encryption == EncryptionKind.SENDER_KEY
            ]
            assert [m.message_id for m in group_messages] == [sent.message_id]
            assert group_messages[0].recipient_device_key == identity.device.device_key
            ciphertexts.add(group_messages[0].encrypted_content)
        assert len(ciphertexts) == 1  # encrypted once, the same bytes for every device
        # One offline member comes online: it joins from the store and reads the message.
        identity, prekeys = offline[0]
        keys = MemoryKeyStore()
        async with keys.transaction() as tx:
            await tx.save_prekeys(prekeys.to_bytes())
        async with world.client(identity, key_store=keys) as late:
            got = await late.wait_for(of_type(GroupMessageReceived), timeout=20)
            assert isinstance(got, GroupMessageReceived)
            assert got.message.text == "to all 255 others"


async def _all_sent(client) -> bool:  # type: ignore[no-untyped-def]
    """Every outbox entry left the device (deposited entries wait there for a receipt)."""
    async with client._core.db.transaction() as tx:
        return all(entry.state is not DeliveryState.PENDING for entry in await tx.pending_outbox())
