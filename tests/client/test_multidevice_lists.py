"""Own device lists merging, and refusals at the client: stale or foreign lists, bad sync."""

from __future__ import annotations

import dataclasses

import pytest
from client_helpers import World

from omega.client import OwnDevicesChanged
from omega.crypto import DeviceKeyPair, Identity, LocalDevice, verify_device_certificate
from omega.errors import InvalidSyncUpdateError
from omega.protocol import SyncChunk, SyncContent, SyncStateVector, SyncUpdate
from omega.sync import CONTACTS, SETTINGS, SyncReplica

pytestmark = pytest.mark.anyio


def _second(identity: Identity, name: str) -> Identity:
    key_pair = DeviceKeyPair.generate()
    updated = identity.add_device(
        key_pair.public_key, name=name, created_at=identity.created_at + 1
    )
    certificate = updated.device_list.device(key_pair.public_key)
    return dataclasses.replace(
        updated,
        device=LocalDevice(
            key_pair=key_pair,
            certificate=verify_device_certificate(
                certificate.to_signed(), identity_key=identity.identity_key
            ),
        ),
    )


async def test_own_lists_merge_and_stale_or_foreign_ones_change_nothing() -> None:
    world = World()
    phone_id = world.identity("Alice")
    laptop_id = _second(phone_id, "laptop")  # sequence 2, phone + laptop
    async with world.client(phone_id) as phone:
        devices = phone._devices
        events: list[OwnDevicesChanged] = []
        phone.on(OwnDevicesChanged)(events.append)
        # A newer list from another of our devices is adopted as is.
        await devices.receive_own_list(laptop_id.device_list.to_signed(), None)
        assert phone.identity.device_list.sequence == 2
        assert events[-1].added == (laptop_id.device.device_id,)
        # A stale one (sequence 1) changes nothing; so does one of another user.
        await devices.receive_own_list(phone_id.device_list.to_signed(), None)
        stranger = world.identity("Mallory")
        await devices.receive_own_list(stranger.device_list.to_signed(), None)
        await devices.receive_own_list(b"\x00garbage", None)
        assert phone.identity.device_list.sequence == 2
        assert len(phone.devices()) == 2
        # Two devices changed the list at once (both signed sequence 3): merged as 4.
        tablet_key = DeviceKeyPair.generate().public_key
        with_tablet = laptop_id.add_device(tablet_key, name="tablet", created_at=5)
        await phone.rename_device(phone.device_id, "my phone")
        assert phone.identity.device_list.sequence == 3
        await devices.receive_own_list(with_tablet.device_list.to_signed(), None)
        merged = phone.identity.device_list
        assert merged.sequence == 4
        assert sorted(d.name for d in phone.devices()) == ["laptop", "my phone", "tablet"]
        # We revoke the tablet (our list: 5) while the laptop, which never saw our
        # rename, adds three devices (its list: 6). The merge keeps every device and every
        # revocation and is signed above both, so contacts that saw either list accept it.
        tablet = next(d for d in phone.devices() if d.name == "tablet")
        await phone.revoke_device(tablet.device_id)
        assert phone.identity.device_list.sequence == 5
        ahead = with_tablet
        for index, name in enumerate(["watch", "tv", "car"]):
            ahead = ahead.add_device(
                DeviceKeyPair.generate().public_key, name=name, created_at=6 + index
            )
        assert ahead.device_list.sequence == 6
        await devices.receive_own_list(ahead.device_list.to_signed(), None)
        merged = phone.identity.device_list
        assert merged.sequence == 7
        assert tablet_key in merged.revoked
        # For a device both lists hold, the newer list's certificate wins (the laptop's
        # list does not carry our rename).
        assert sorted(d.name for d in phone.devices()) == ["car", "laptop", "phone", "tv", "watch"]
        # A list that revokes this very device is reported, not adopted.
        revoked = with_tablet.revoke_device(phone_id.device.device_key, revoked_at=9)
        await devices.receive_own_list(revoked.device_list.to_signed(), None)
        assert events[-1].this_device_revoked
        assert phone.identity.device_list.sequence == 7
        with pytest.raises(Exception, match="no single listed device"):
            devices.find("zz")


async def test_bad_sync_messages_are_refused_and_change_nothing() -> None:
    world = World()
    phone_id = world.identity("Alice")
    laptop_id = _second(phone_id, "laptop")
    laptop_key = laptop_id.device.device_key
    async with world.client(laptop_id) as phone:
        sync = phone._sync
        peer = SyncReplica(laptop_key)
        good = peer.set(SETTINGS, {"theme": "dark"})
        assert good is not None
        hooked: list[object] = []

        async def hook(changes: list[object]) -> None:
            hooked.extend(changes)

        sync.change_hooks.append(hook)  # type: ignore[arg-type]
        [applied] = await sync.receive(
            laptop_key,
            phone.user_id,
            SyncContent(updates=[SyncUpdate(document=SETTINGS, update=good)]),
        )
        assert await phone.settings() == {"theme": "dark"}
        assert [getattr(change, "key", None) for change in hooked] == ["theme"]
        before = sync.replica.state_vectors()
        bad = [
            SyncContent(updates=[SyncUpdate(document=SETTINGS, update=b"\x01\x02garbage")]),
            SyncContent(updates=[SyncUpdate(document="nope", update=good)]),
            SyncContent(request=[SyncStateVector(document=CONTACTS, state_vector=b"")]),
            SyncContent(chunk=SyncChunk(transfer_id=b"x", index=0, count=1, data=b"x")),
        ]
        for content in bad:
            with pytest.raises(InvalidSyncUpdateError):
                await sync.receive(laptop_key, phone.user_id, content)
        with pytest.raises(InvalidSyncUpdateError):
            await sync.receive(laptop_key, world.identity("Eve").user_id, SyncContent())
        # An update from a device that is not ours (or was revoked) is refused too.
        from omega.errors import CertificateError

        with pytest.raises(CertificateError):
            await sync.receive(
                DeviceKeyPair.generate().public_key,
                phone.user_id,
                SyncContent(updates=[SyncUpdate(document=SETTINGS, update=good)]),
            )
        assert sync.replica.state_vectors() == before
        assert applied.documents == (SETTINGS,)
        # An update that builds on one we lack asks the sender for a catch-up.
        first = peer.set(SETTINGS, {"theme": "light"})
        second = peer.set(SETTINGS, {"theme": "blue"})
        assert first is not None
        assert second is not None
        events = await sync.receive(
            laptop_key,
            phone.user_id,
            SyncContent(updates=[SyncUpdate(document=SETTINGS, update=second)]),
        )
        assert events == []
        assert (await phone.settings())["theme"] == "dark"
