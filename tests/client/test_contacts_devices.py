"""Contacts, safety numbers, device changes, our own other devices, the data directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import anyio
import pytest
from client_helpers import FAST, World, of_type, pair

from omega.client import Client, ContactDevicesChanged, DataDir, MessageReceived
from omega.crypto import DeviceKeyPair, Identity, LocalDevice, verify_device_certificate
from omega.errors import (
    ConfigurationError,
    CorruptDataError,
    CryptoError,
    InvalidUriError,
    LocalProtocolError,
    UnknownContactError,
    WrongPassphraseError,
)
from omega.storage.message_base import DeliveryState, Direction
from omega.transport import MemoryNetwork, MemoryTransport, TransportRegistry

pytestmark = pytest.mark.anyio


async def test_contacts_are_added_updated_verified_and_blocked() -> None:
    world = World()
    async with pair(world) as (alice, bob):
        [contact] = await alice.contacts()
        assert contact.user_id == bob.user_id
        assert contact.display_name == "Bob"
        renamed = await alice.add_contact(bob.user_id, display_name="Bobby")
        assert renamed.display_name == "Bobby"
        with pytest.raises(InvalidUriError):
            await alice.add_contact("omega://not-a-user")
        with pytest.raises(InvalidUriError):
            await alice.add_contact("hello")
        with pytest.raises(ConfigurationError):
            await alice.add_contact(str(alice.contact_uri))
        with pytest.raises(UnknownContactError):
            await alice.contact(world.identity("Carol").user_id)
        with pytest.raises(UnknownContactError):
            await alice.update_contact(world.identity("Carol").user_id, blocked=True)

        number = alice.safety_number(bob.user_id)
        assert number.display() == bob.safety_number(alice.user_id).display()
        with pytest.raises(CryptoError):
            await alice.verify_contact(
                bob.user_id, scanned_qr=alice.safety_number(bob.user_id).qr_payload()
            )
        assert not (await alice.contact(bob.user_id)).verified
        verified = await alice.verify_contact(
            bob.user_id, scanned_qr=bob.safety_number(alice.user_id).qr_payload()
        )
        assert verified.verified
        assert (await alice.block(bob.user_id)).blocked
        assert not (await alice.unblock(bob.user_id)).blocked


def _second_device(identity: Identity, name: str) -> tuple[Identity, Identity]:
    """``identity`` with a second device: (first device's view, second device's view)."""
    key_pair = DeviceKeyPair.generate()
    updated = identity.add_device(
        key_pair.public_key, name=name, created_at=identity.created_at + 1
    )
    certificate = next(
        d for d in updated.device_list.devices if d.device_key == key_pair.public_key
    )
    second = dataclasses.replace(
        updated,
        device=LocalDevice(
            key_pair=key_pair,
            certificate=verify_device_certificate(
                certificate.to_signed(), identity_key=identity.identity_key
            ),
        ),
    )
    return updated, second


async def test_messages_reach_every_device_and_our_other_devices_get_a_copy() -> None:
    world = World()
    alice_phone, alice_laptop = _second_device(world.identity("Alice"), "laptop")
    bob_id = world.identity("Bob")
    async with (
        world.client(alice_phone) as phone,
        world.client(alice_laptop) as laptop,
        world.client(bob_id) as bob,
    ):
        for client in (phone, laptop):
            await client.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(phone.contact_uri), addresses=phone.addresses + laptop.addresses)
        phone._core.hints[phone.user_id] = laptop.addresses
        laptop._core.hints[laptop.user_id] = phone.addresses

        sent = await phone.send_text(bob.user_id, "from my phone")
        copy = await laptop.wait_for(of_type(MessageReceived), timeout=10)
        assert isinstance(copy, MessageReceived)
        assert copy.message.direction is Direction.OUTGOING
        assert copy.message.conversation_id == bob.user_id
        assert copy.message.message_id == sent.message_id

        reply = await bob.send_text(phone.user_id, "to both of you")
        with anyio.fail_after(10):
            while not (
                await _has(phone, bob.user_id, reply.message_id)
                and await _has(laptop, bob.user_id, reply.message_id)
            ):
                await anyio.sleep(0.02)


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation))


async def test_new_device_of_a_verified_contact_is_held_until_accepted() -> None:
    world = World()
    bob_phone = world.identity("Bob")
    async with world.client(world.identity("Alice")) as alice, world.client(bob_phone) as bob:
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        first = await alice.send_text(bob.user_id, "hi")
        with anyio.fail_after(10):
            while (await alice.history(bob.user_id))[0].state is not DeliveryState.DELIVERED:
                await anyio.sleep(0.02)
        await alice.verify_contact(bob.user_id)
        bob_phone2, bob_tablet = _second_device(bob_phone, "tablet")
        async with world.client(bob_tablet) as tablet:
            changes: list[ContactDevicesChanged] = []
            alice.on(ContactDevicesChanged)(changes.append)
            alice._core.hints[bob.user_id] = bob.addresses + tablet.addresses
            assert await alice._core.accept_device_list(
                bob.user_id, bob_phone2.device_list.to_signed()
            )
            assert changes
            assert changes[0].held
            assert changes[0].added == (bob_tablet.device.device_id,)
            held = await alice.send_text(bob.user_id, "for every device")
            await anyio.sleep(0.5)
            assert await tablet.history(alice.user_id) == []
            await alice.accept_devices(bob.user_id)
            with anyio.fail_after(10):
                while not await tablet.history(alice.user_id):
                    await anyio.sleep(0.02)
            [got] = await tablet.history(alice.user_id)
            assert got.message_id == held.message_id
        assert first.message_id


async def test_data_dir_round_trip(tmp_path: pytest.TempPathFactory) -> None:
    network = MemoryNetwork()
    registry = TransportRegistry()
    registry.register("memory", lambda: MemoryTransport(network))
    identity = Identity.create(device_name="laptop", created_at=1, display_name="Dana")
    directory = DataDir(tmp_path / "dana")  # type: ignore[operator]
    import omega.crypto.backup as backup

    cheap = {"opslimit": backup.MIN_OPSLIMIT, "memlimit": backup.MIN_MEMLIMIT}
    original = backup.export_identity
    backup_export = lambda identity, passphrase: original(identity, passphrase, **cheap)  # noqa: E731
    import omega.client.datadir as datadir

    datadir.export_identity = backup_export  # type: ignore[assignment]
    try:
        directory.save_identity(identity, "secret words")
        with pytest.raises(ConfigurationError):
            directory.save_identity(identity, "secret words")
    finally:
        datadir.export_identity = original  # type: ignore[assignment]
    device_list, uri = directory.load_public()
    assert uri.user_id == identity.user_id
    assert device_list.sequence == 1
    with pytest.raises(WrongPassphraseError):
        await Client.from_data_dir(directory.path, passphrase="wrong")
    friend = Identity.create(device_name="x", created_at=1)
    client = await Client.from_data_dir(
        directory.path, passphrase="secret words", transports=registry, config=FAST
    )
    with pytest.raises(LocalProtocolError):
        await client.send_text(friend.user_id, "not started")
    async with client:
        await client.add_contact(friend.user_id, display_name="Friend")
        await client.update_contact(friend.user_id, verified=True)
        await client.send_text(friend.user_id, "kept on disk")
    with pytest.raises(LocalProtocolError):
        async with client:
            pass
    async with await Client.from_data_dir(
        directory.path, passphrase="secret words", transports=registry, config=FAST
    ) as again:
        [contact] = await again.contacts()
        assert contact.display_name == "Friend"
        assert contact.verified
        [message] = await again.history(friend.user_id)
        assert message.text == "kept on disk"
        assert message.state is DeliveryState.PENDING
        assert [m.text for m in await again.search("disk")] == ["kept on disk"]
        exported = await again.export_conversation(friend.user_id)
        assert json.loads(json.dumps(exported))["messages"][0]["text"] == "kept on disk"
        [conversation] = await again.conversations()
        await again.archive(friend.user_id)
        assert await again.conversations(archived=False) == []
        assert conversation.conversation_id == friend.user_id
    assert (directory.path / "keys.db").exists()
    assert (directory.path / "messages.db").exists()
    assert b"kept on disk" not in (directory.path / "messages.db").read_bytes()


@pytest.mark.parametrize("damaged", ["keys.db", "messages.db"])
async def test_corrupted_database_is_a_typed_error(tmp_path: Path, damaged: str) -> None:
    identity = Identity.create(device_name="laptop", created_at=1, display_name="Eve")
    directory = DataDir(tmp_path / "eve")
    import omega.client.datadir as datadir
    import omega.crypto.backup as backup

    original = backup.export_identity
    datadir.export_identity = lambda identity, passphrase: original(  # type: ignore[assignment]
        identity, passphrase, opslimit=backup.MIN_OPSLIMIT, memlimit=backup.MIN_MEMLIMIT
    )
    try:
        directory.save_identity(identity, "pass phrase")
    finally:
        datadir.export_identity = original  # type: ignore[assignment]
    client = await Client.from_data_dir(directory.path, passphrase="pass phrase", config=FAST)
    async with client:
        pass
    (directory.path / damaged).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (directory.path / (damaged + suffix)).unlink(missing_ok=True)
    with pytest.raises(CorruptDataError):
        await Client.from_data_dir(directory.path, passphrase="pass phrase", config=FAST)
