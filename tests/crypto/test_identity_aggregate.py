"""The Identity aggregate: creating an identity, adding and revoking devices."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from omega.crypto import (
    DeviceKeyPair,
    Identity,
    IdentityKeyPair,
    LocalDevice,
    RandomSource,
    certify_device,
    verify_device_certificate,
    verify_device_list,
)
from omega.errors import ConfigurationError

T0 = 1_700_000_000_000


@pytest.fixture
def alice(rng: RandomSource) -> Identity:
    return Identity.create(device_name="laptop", created_at=T0, display_name="Alice", rng=rng)


def test_create(alice: Identity) -> None:
    assert alice.user_id == alice.key_pair.user_id
    assert alice.identity_key == alice.key_pair.public_key
    assert alice.display_name == "Alice"
    assert alice.created_at == T0
    assert alice.device_list.sequence == 1
    assert alice.device_list.issued_at == T0
    assert alice.device_list.is_active(alice.device.device_key)
    assert alice.device.certificate.device_name == "laptop"
    assert alice.device.device_id == alice.device.key_pair.device_id
    # What others receive verifies on its own.
    assert verify_device_list(alice.device_list.to_signed(), user_id=alice.user_id).devices == (
        alice.device.certificate,
    )


def test_create_is_deterministic_under_a_seeded_source(
    make_rng: Callable[[bytes], RandomSource],
) -> None:
    one = Identity.create(device_name="x", created_at=T0, rng=make_rng(b"seed"))
    two = Identity.create(device_name="x", created_at=T0, rng=make_rng(b"seed"))
    three = Identity.create(device_name="x", created_at=T0, rng=make_rng(b"other"))
    assert one == two
    assert one != three


def test_add_device(alice: Identity, device: DeviceKeyPair) -> None:
    updated = alice.add_device(device.public_key, name="phone", created_at=T0 + 10)
    assert updated.device_list.sequence == 2
    assert updated.device_list.issued_at == T0 + 10
    assert updated.device_list.is_active(device.public_key)
    assert updated.device_list.device(device.public_key).device_name == "phone"
    assert updated.device == alice.device
    # The aggregate is a value: the original is unchanged.
    assert alice.device_list.sequence == 1
    assert not alice.device_list.is_active(device.public_key)
    # A peer holding the old list accepts the new one.
    verify_device_list(
        updated.device_list.to_signed(), user_id=alice.user_id, previous=alice.device_list
    )


def test_add_device_refusals(alice: Identity, device: DeviceKeyPair) -> None:
    with pytest.raises(ConfigurationError, match="already in the device list"):
        alice.add_device(alice.device.device_key, name="again", created_at=T0)
    revoked = alice.add_device(device.public_key, name="phone", created_at=T0).revoke_device(
        device.public_key, revoked_at=T0 + 1
    )
    with pytest.raises(ConfigurationError, match="revoked and cannot be added"):
        revoked.add_device(device.public_key, name="phone", created_at=T0 + 2)
    with pytest.raises(ConfigurationError, match="device name"):
        alice.add_device(device.public_key, name="", created_at=T0)


def test_revoke_device(
    alice: Identity, device: DeviceKeyPair, second_device: DeviceKeyPair
) -> None:
    two = alice.add_device(device.public_key, name="phone", created_at=T0 + 1)
    three = two.add_device(second_device.public_key, name="tablet", created_at=T0 + 2)
    after = three.revoke_device(device.public_key, revoked_at=T0 + 3, reason="stolen")
    assert after.device_list.sequence == 4
    assert not after.device_list.is_active(device.public_key)
    assert after.device_list.is_revoked(device.public_key)
    assert after.device_list.is_active(second_device.public_key)
    assert after.device_list.revocations[0].reason == "stolen"
    # Revocations are carried forward by later lists.
    later = after.revoke_device(second_device.public_key, revoked_at=T0 + 4)
    assert later.device_list.revoked == {device.public_key, second_device.public_key}
    assert [r.reason for r in later.device_list.revocations] == ["stolen", ""]
    verify_device_list(
        later.device_list.to_signed(), user_id=alice.user_id, previous=after.device_list
    )


def test_revoke_device_refusals(alice: Identity, device: DeviceKeyPair) -> None:
    with pytest.raises(ConfigurationError, match="cannot revoke itself"):
        alice.revoke_device(alice.device.device_key, revoked_at=T0)
    with pytest.raises(ConfigurationError, match="not in the device list"):
        alice.revoke_device(device.public_key, revoked_at=T0)
    two = alice.add_device(device.public_key, name="phone", created_at=T0)
    with pytest.raises(ConfigurationError, match="control character"):
        two.revoke_device(device.public_key, revoked_at=T0, reason="\x00")
    with pytest.raises(ConfigurationError, match="issued_at"):
        two.revoke_device(device.public_key, revoked_at=-5)


def test_construction_checks_consistency(
    alice: Identity, rng: RandomSource, device: DeviceKeyPair
) -> None:
    bob = Identity.create(device_name="b", created_at=T0, rng=rng)
    with pytest.raises(ConfigurationError, match="device list belongs to another identity"):
        dataclasses.replace(alice, device_list=bob.device_list)
    with pytest.raises(ConfigurationError, match="certificate belongs to another identity"):
        dataclasses.replace(alice, device=bob.device)
    stranger = LocalDevice(
        key_pair=device,
        certificate=verify_device_certificate(
            certify_device(alice.key_pair, device.public_key, name="x", created_at=T0),
            identity_key=alice.identity_key,
        ),
    )
    with pytest.raises(ConfigurationError, match="not in the device list"):
        dataclasses.replace(alice, device=stranger)
    with pytest.raises(ConfigurationError, match="display name"):
        dataclasses.replace(alice, display_name="x" * 65)
    with pytest.raises(ConfigurationError, match="created_at"):
        dataclasses.replace(alice, created_at=-1)


def test_local_device_checks_its_certificate(alice: Identity, device: DeviceKeyPair) -> None:
    with pytest.raises(ConfigurationError, match="another device key"):
        LocalDevice(key_pair=device, certificate=alice.device.certificate)


def test_repr_hides_secrets(alice: Identity) -> None:
    text = repr(alice)
    assert alice.key_pair.seed.hex() not in text
    assert repr(alice.key_pair.seed) not in text
    assert repr(alice.device.key_pair.seed) not in text


def test_identity_key_pair_field_type(alice: Identity) -> None:
    assert isinstance(alice.key_pair, IdentityKeyPair)
    assert isinstance(alice.device.key_pair, DeviceKeyPair)
