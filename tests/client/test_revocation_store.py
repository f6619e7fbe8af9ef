"""A revoked device's mailbox is closed at the store, and contacts learn it from the refusal.

Real clients on the memory transport, a real store server (HTTP over a socket).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from client_helpers import FAST, World

from omega.client import Client
from omega.crypto import Identity
from omega.errors import RequestRejectedError
from omega.mailbox import MemoryBackend, StoreConfig, StoreService, recipient_hash
from omega.mailbox.http import StoreClient
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore

pytestmark = pytest.mark.anyio

_ports = itertools.count()


@pytest.fixture
async def store(
    serve_store: Callable[[StoreService], Any],
) -> AsyncIterator[tuple[str, StoreService]]:
    service = StoreService(MemoryBackend(), config=StoreConfig(request_burst=100_000))
    async with serve_store(service) as url:
        yield url, service


class _Device:
    """One device's identity and stores, so it can go offline and come back."""

    def __init__(self, world: World, url: str, identity: Identity) -> None:
        self.world, self.url, self.identity = world, url, identity
        self.keys, self.db = MemoryKeyStore(), MemoryMessageStore()

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        """This device's client, running, with its own store client (closed after)."""
        async with (
            StoreClient(self.url) as store,
            Client(
                identity=self.identity,
                key_store=self.keys,
                message_store=self.db,
                transports=self.world.registry(),
                listen=[f"/memory/revocation-{next(_ports)}"],
                mailbox=store,
                key_directory=store,
                config=FAST,
                wall_clock=self.world.wall_clock,
            ) as client,
        ):
            yield client


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation, limit=50))


async def _lists(client: Client, user_id: str, *, devices: int, revoked: bytes = b"") -> bool:
    listed = await client._core.cached_device_list(user_id)
    return (
        listed is not None
        and len(listed.devices) == devices
        and (not revoked or listed.is_revoked(revoked))
    )


async def test_a_contact_holding_the_old_list_learns_the_revocation_from_the_store(
    store: tuple[str, StoreService], caplog: pytest.LogCaptureFixture
) -> None:
    url, service = store
    world = World()
    phone = _Device(world, url, world.identity("Alice"))
    bob = _Device(world, url, world.identity("Bob"))
    async with phone.client() as alice_phone:
        link = await alice_phone.create_link_code(lifetime=60)
        linked = await Client.link(
            link.code,
            device_name="laptop",
            transports=world.registry(),
            wall_clock=world.wall_clock,
        )
        await link.wait(timeout=5)
        laptop = _Device(world, url, linked.identity)
        lost_key = linked.identity.device.device_key
        async with laptop.client() as alice_laptop, bob.client() as bob_client:
            alice_laptop.add_device_addresses(linked.addresses)
            laptop_id = alice_laptop.device_id
            await alice_phone.add_contact(
                str(bob_client.contact_uri), addresses=bob_client.addresses
            )
            await bob_client.add_contact(
                str(alice_phone.contact_uri), addresses=alice_phone.addresses
            )
            # Bob writes to Alice's two devices, then goes offline holding that list.
            hello = await bob_client.send_text(alice_phone.user_id, "hello")
            await _until(lambda: _has(alice_laptop, bob_client.user_id, hello.message_id))
            await _until(lambda: _has(alice_phone, bob_client.user_id, hello.message_id))
            assert await _lists(bob_client, alice_phone.user_id, devices=2)
    alice = phone.identity.user_id

    # Bob, cut off from the store, writes again: queued for both devices of the old list.
    bob.url = "http://127.0.0.1:9"
    async with bob.client() as bob_client:
        sent = await bob_client.send_text(alice, "after the revocation")
        await _until(lambda: _queued_for(bob, lost_key))
    bob.url = url

    # The laptop is lost; the phone revokes it while Bob is not connected.
    async with phone.client() as alice_phone:
        await alice_phone.revoke_device(laptop_id, reason="lost")
        phone.identity = alice_phone.identity
    assert await service.backend.is_revoked(recipient_hash(lost_key))
    async with StoreClient(url) as probe:
        # What Alice's phone left for Bob (receipts) is lost here: the store's refusal is
        # all Bob has to learn the revocation from.
        waiting = await probe.fetch(bob.identity.device)
        await probe.acknowledge(bob.identity.device, [e.message_id for e in waiting])

    caplog.set_level(logging.INFO, logger="omega.client")
    caplog.clear()
    async with bob.client() as bob_client:  # back online; Alice's devices are all offline
        assert await _lists(bob_client, alice, devices=2), "Bob still holds the old list"
        await _until(lambda: _lists(bob_client, alice, devices=1, revoked=lost_key))
        await _until(lambda: _not_queued_for(bob, lost_key))
    assert any(
        "event=deposit_refused_revoked" in r.message and lost_key.hex()[:16] in r.message
        for r in caplog.records
    ), "Bob learnt the revocation from the store's refusal"
    async with StoreClient(url) as probe:
        with pytest.raises(RequestRejectedError) as refused:
            await probe.fetch(laptop.identity.device)
        assert refused.value.reason == "revoked_device"

    async with phone.client() as alice_phone:
        await _until(lambda: _has(alice_phone, bob.identity.user_id, sent.message_id))
    async with laptop.client() as alice_laptop:
        await anyio.sleep(0.3)  # a few mailbox polls, each refused
        assert not await _has(alice_laptop, bob.identity.user_id, sent.message_id)


async def _queued_for(device: _Device, device_key: bytes) -> bool:
    async with device.db.transaction() as tx:
        return any(e.recipient_device_key == device_key for e in await tx.pending_outbox())


async def _not_queued_for(device: _Device, device_key: bytes) -> bool:
    return not await _queued_for(device, device_key)
