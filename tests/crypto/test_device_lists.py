"""Signed device lists: verification rules, tampering, replays and revocations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import (
    MAX_DEVICE_LIST_SIZE,
    MAX_DEVICES,
    DeviceKeyPair,
    IdentityKeyPair,
    VerifiedDeviceList,
    certify_device,
    sign_device_list,
    verify_device_list,
)
from omega.crypto.devices import DEVICE_LIST_CONTEXT
from omega.errors import (
    CertificateError,
    ConfigurationError,
    InvalidSignatureError,
    InvalidUserIdError,
    MessageDecodeError,
    RevokedDeviceError,
    StaleDeviceListError,
)
from omega.protocol import (
    DeviceList,
    DeviceRevocation,
    SignedDeviceCertificate,
    SignedDeviceList,
    encode_message,
)

T0 = 1_700_000_000_000


def _devices(count: int, start: int = 10) -> list[DeviceKeyPair]:
    return [DeviceKeyPair.from_seed(bytes([start + i]) * 32) for i in range(count)]


def _certificates(
    identity: IdentityKeyPair, devices: list[DeviceKeyPair]
) -> list[SignedDeviceCertificate]:
    return [
        certify_device(identity, d.public_key, name=f"device {i}", created_at=T0)
        for i, d in enumerate(devices)
    ]


def _revocation(device: DeviceKeyPair, reason: str = "lost") -> DeviceRevocation:
    return DeviceRevocation(device_key=device.public_key, revoked_at=T0 + 5, reason=reason)


def _raw_signed(identity: IdentityKeyPair, body: bytes) -> SignedDeviceList:
    """A list over arbitrary bytes, correctly signed: tests the checks after the signature."""
    return SignedDeviceList(device_list=body, signature=identity.sign(DEVICE_LIST_CONTEXT + body))


def _raw_list(identity: IdentityKeyPair, **fields: object) -> SignedDeviceList:
    values: dict[str, object] = {
        "user_id": identity.user_id,
        "sequence": 1,
        "devices": _certificates(identity, _devices(1)),
        "revocations": [],
        "issued_at": T0,
    }
    values.update(fields)
    return _raw_signed(identity, encode_message(DeviceList(**values)))  # type: ignore[arg-type]


def _list(
    identity: IdentityKeyPair,
    devices: list[DeviceKeyPair],
    *,
    sequence: int = 1,
    revoked: list[DeviceKeyPair] = (),  # type: ignore[assignment]
) -> SignedDeviceList:
    return sign_device_list(
        identity,
        sequence=sequence,
        devices=_certificates(identity, devices),
        revocations=[_revocation(d) for d in revoked],
        issued_at=T0 + sequence,
    )


def test_sign_and_verify(identity: IdentityKeyPair) -> None:
    a, b, c = _devices(3)
    signed = _list(identity, [a, b], revoked=[c])
    verified = verify_device_list(signed, user_id=identity.user_id)
    assert verified.user_id == identity.user_id
    assert verified.identity_key == identity.public_key
    assert verified.sequence == 1
    assert verified.issued_at == T0 + 1
    assert [d.device_key for d in verified.devices] == [a.public_key, b.public_key]
    assert verified.revoked == frozenset({c.public_key})
    assert verified.revocations[0].reason == "lost"
    assert verified.revocations[0].revoked_at == T0 + 5
    assert verified.revocations[0].device_id == c.device_id
    assert verified.is_active(a.public_key)
    assert not verified.is_active(c.public_key)
    assert verified.is_revoked(c.public_key)
    assert not verified.is_revoked(a.public_key)
    assert verified.device(b.public_key).device_name == "device 1"
    assert encode_message(verified.to_signed()) == encode_message(signed)
    assert verify_device_list(encode_message(signed), user_id=identity.user_id) == verified
    assert verify_device_list(signed, user_id=identity.user_id.upper()) == verified


def test_device_lookup_errors(identity: IdentityKeyPair) -> None:
    a, b, c = _devices(3)
    verified = verify_device_list(_list(identity, [a], revoked=[b]), user_id=identity.user_id)
    with pytest.raises(RevokedDeviceError, match="revoked"):
        verified.device(b.public_key)
    with pytest.raises(CertificateError, match="not in the device list"):
        verified.device(c.public_key)


def test_list_for_another_user_fails_the_signature(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair
) -> None:
    signed = _list(identity, _devices(1))
    with pytest.raises(InvalidSignatureError):
        verify_device_list(signed, user_id=other_identity.user_id)


def test_bad_user_id_argument(identity: IdentityKeyPair) -> None:
    with pytest.raises(InvalidUserIdError):
        verify_device_list(_list(identity, _devices(1)), user_id="omega1nope")


@settings(max_examples=100)
@given(data=st.data())
def test_any_flipped_bit_is_detected(data: st.DataObject) -> None:
    identity = IdentityKeyPair.from_seed(bytes([1]) * 32)
    signed = _list(identity, _devices(2))
    in_list = data.draw(st.booleans())
    field = signed.device_list if in_list else signed.signature
    bit = data.draw(st.integers(0, len(field) * 8 - 1))
    flipped = bytearray(field)
    flipped[bit // 8] ^= 1 << (bit % 8)
    if in_list:
        tampered = SignedDeviceList(device_list=bytes(flipped), signature=signed.signature)
    else:
        tampered = SignedDeviceList(device_list=signed.device_list, signature=bytes(flipped))
    with pytest.raises(InvalidSignatureError):
        verify_device_list(tampered, user_id=identity.user_id)


def test_a_certificate_signature_cannot_sign_a_list(identity: IdentityKeyPair) -> None:
    body = encode_message(DeviceList(user_id=identity.user_id, sequence=1))
    forged = SignedDeviceList(device_list=body, signature=identity.sign(body))
    with pytest.raises(InvalidSignatureError):
        verify_device_list(forged, user_id=identity.user_id)


def test_malformed_and_oversized_bytes(identity: IdentityKeyPair) -> None:
    with pytest.raises(MessageDecodeError):
        verify_device_list(b"\x0a\x05", user_id=identity.user_id)
    with pytest.raises(MessageDecodeError, match="exceeds"):
        verify_device_list(bytes(MAX_DEVICE_LIST_SIZE + 1), user_id=identity.user_id)
    big = SignedDeviceList(device_list=bytes(MAX_DEVICE_LIST_SIZE + 1), signature=bytes(64))
    with pytest.raises(MessageDecodeError, match="exceeds"):
        verify_device_list(big, user_id=identity.user_id)
    with pytest.raises(MessageDecodeError):
        verify_device_list(_raw_signed(identity, b"\x12\x01"), user_id=identity.user_id)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": ""}, "names another user"),
        ({"devices": []}, "holds no device"),
        ({"issued_at": -1}, "negative issue time"),
    ],
)
def test_signed_but_invalid_lists(
    identity: IdentityKeyPair, fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(CertificateError, match=reason):
        verify_device_list(_raw_list(identity, **fields), user_id=identity.user_id)


def test_user_id_field_must_be_canonical(identity: IdentityKeyPair) -> None:
    signed = _raw_list(identity, user_id=identity.user_id.upper())
    with pytest.raises(CertificateError, match="names another user"):
        verify_device_list(signed, user_id=identity.user_id)


def test_too_many_devices(identity: IdentityKeyPair) -> None:
    certificates = _certificates(identity, _devices(MAX_DEVICES + 1))
    with pytest.raises(CertificateError, match="maximum is 32"):
        verify_device_list(_raw_list(identity, devices=certificates), user_id=identity.user_id)
    exactly = _raw_list(identity, devices=certificates[:MAX_DEVICES])
    assert len(verify_device_list(exactly, user_id=identity.user_id).devices) == MAX_DEVICES
    with pytest.raises(CertificateError, match="maximum is 2"):
        verify_device_list(exactly, user_id=identity.user_id, max_devices=2)


@pytest.mark.parametrize("max_devices", [0, MAX_DEVICES + 1])
def test_max_devices_can_only_be_lowered(identity: IdentityKeyPair, max_devices: int) -> None:
    with pytest.raises(ConfigurationError):
        verify_device_list(
            _list(identity, _devices(1)), user_id=identity.user_id, max_devices=max_devices
        )


def test_duplicate_devices(identity: IdentityKeyPair) -> None:
    certificate = _certificates(identity, _devices(1))[0]
    signed = _raw_list(identity, devices=[certificate, certificate])
    with pytest.raises(CertificateError, match="same device twice"):
        verify_device_list(signed, user_id=identity.user_id)


def test_certificate_of_another_identity(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair
) -> None:
    foreign = _certificates(other_identity, _devices(1))
    with pytest.raises(InvalidSignatureError):
        verify_device_list(_raw_list(identity, devices=foreign), user_id=identity.user_id)


@pytest.mark.parametrize(
    ("revocation", "reason"),
    [
        (DeviceRevocation(device_key=bytes(32), revoked_at=0), "unusable device key"),
        (DeviceRevocation(device_key=b"", revoked_at=0), "unusable device key"),
        (
            DeviceRevocation(device_key=_devices(1, 50)[0].public_key, revoked_at=-1),
            "negative time",
        ),
        (
            DeviceRevocation(device_key=_devices(1, 50)[0].public_key, reason="x" * 257),
            "maximum is 256",
        ),
        (
            DeviceRevocation(device_key=_devices(1, 50)[0].public_key, reason="\x1b[31m"),
            "control character",
        ),
    ],
)
def test_invalid_revocations(
    identity: IdentityKeyPair, revocation: DeviceRevocation, reason: str
) -> None:
    with pytest.raises(CertificateError, match=reason):
        verify_device_list(_raw_list(identity, revocations=[revocation]), user_id=identity.user_id)


def test_duplicate_revocations(identity: IdentityKeyPair) -> None:
    gone = _devices(1, 50)[0]
    signed = _raw_list(identity, revocations=[_revocation(gone), _revocation(gone, "again")])
    with pytest.raises(CertificateError, match="same device twice"):
        verify_device_list(signed, user_id=identity.user_id)


def test_listed_and_revoked(identity: IdentityKeyPair) -> None:
    (a,) = _devices(1)
    signed = _raw_list(identity, revocations=[_revocation(a)])
    with pytest.raises(RevokedDeviceError, match="both lists and revokes"):
        verify_device_list(signed, user_id=identity.user_id)


def _accepted(identity: IdentityKeyPair, signed: SignedDeviceList) -> VerifiedDeviceList:
    return verify_device_list(signed, user_id=identity.user_id)


def test_newer_list_is_accepted(identity: IdentityKeyPair) -> None:
    a, b = _devices(2)
    first = _accepted(identity, _list(identity, [a], sequence=1))
    second = verify_device_list(
        _list(identity, [a, b], sequence=5), user_id=identity.user_id, previous=first
    )
    assert second.sequence == 5


@pytest.mark.parametrize("sequence", [1, 2, 3])
def test_stale_or_replayed_list_is_refused(identity: IdentityKeyPair, sequence: int) -> None:
    a, b = _devices(2)
    old = _list(identity, [a], sequence=sequence)
    accepted = _accepted(identity, _list(identity, [a, b], sequence=3))
    with pytest.raises(StaleDeviceListError, match="not newer"):
        verify_device_list(old, user_id=identity.user_id, previous=accepted)
    with pytest.raises(StaleDeviceListError) as info:
        verify_device_list(accepted.to_signed(), user_id=identity.user_id, previous=accepted)
    assert info.value.details == {"sequence": 3, "accepted": 3}


def test_revoked_device_cannot_come_back(identity: IdentityKeyPair) -> None:
    a, b = _devices(2)
    revoked = _accepted(identity, _list(identity, [a], sequence=2, revoked=[b]))
    resurrected = _list(identity, [a, b], sequence=3)
    with pytest.raises(RevokedDeviceError, match="cannot come back"):
        verify_device_list(resurrected, user_id=identity.user_id, previous=revoked)


def test_revocation_cannot_be_dropped(identity: IdentityKeyPair) -> None:
    a, b = _devices(2)
    revoked = _accepted(identity, _list(identity, [a], sequence=2, revoked=[b]))
    forgetful = _list(identity, [a], sequence=3)
    with pytest.raises(RevokedDeviceError, match="drops the revocation"):
        verify_device_list(forgetful, user_id=identity.user_id, previous=revoked)
    kept = _list(identity, [a], sequence=3, revoked=[b])
    assert verify_device_list(kept, user_id=identity.user_id, previous=revoked).revoked == {
        b.public_key
    }


def test_removed_but_unrevoked_device_may_return(identity: IdentityKeyPair) -> None:
    a, b = _devices(2)
    without_b = _accepted(identity, _list(identity, [a], sequence=2))
    back = _list(identity, [a, b], sequence=3)
    assert verify_device_list(back, user_id=identity.user_id, previous=without_b).is_active(
        b.public_key
    )


def test_previous_of_another_user_is_a_caller_error(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair
) -> None:
    theirs = _accepted(other_identity, _list(other_identity, _devices(1)))
    with pytest.raises(ConfigurationError, match="another user"):
        verify_device_list(
            _list(identity, _devices(1), sequence=2), user_id=identity.user_id, previous=theirs
        )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"sequence": -1}, "sequence"),
        ({"sequence": 1 << 64}, "sequence"),
        ({"issued_at": -1}, "issued_at"),
        ({"devices": []}, "holds no device"),
    ],
)
def test_sign_refuses_invalid_lists(
    identity: IdentityKeyPair, kwargs: dict[str, object], reason: str
) -> None:
    arguments: dict[str, object] = {
        "sequence": 1,
        "devices": _certificates(identity, _devices(1)),
        "revocations": [],
        "issued_at": T0,
    }
    arguments.update(kwargs)
    with pytest.raises(ConfigurationError, match=reason):
        sign_device_list(identity, **arguments)  # type: ignore[arg-type]


def test_sign_refuses_what_peers_would_refuse(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair
) -> None:
    (a,) = _devices(1)
    certificate = _certificates(identity, [a])
    with pytest.raises(ConfigurationError, match="both lists and revokes"):
        sign_device_list(
            identity, sequence=1, devices=certificate, revocations=[_revocation(a)], issued_at=T0
        )
    with pytest.raises(ConfigurationError, match="does not verify"):
        sign_device_list(
            identity,
            sequence=1,
            devices=_certificates(other_identity, [a]),
            revocations=[],
            issued_at=T0,
        )
    with pytest.raises(ConfigurationError, match="same device twice"):
        sign_device_list(
            identity, sequence=1, devices=certificate * 2, revocations=[], issued_at=T0
        )


def test_largest_sequence_is_accepted(identity: IdentityKeyPair) -> None:
    signed = sign_device_list(
        identity,
        sequence=(1 << 64) - 1,
        devices=_certificates(identity, _devices(1)),
        revocations=[],
        issued_at=T0,
    )
    assert _accepted(identity, signed).sequence == (1 << 64) - 1
