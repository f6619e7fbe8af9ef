"""Device keys and device certificates: issuing, verifying, tampering."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import (
    MAX_CERTIFICATE_SIZE,
    DeviceKeyPair,
    IdentityKeyPair,
    certify_device,
    device_id,
    devices,
    verify_device_certificate,
)
from omega.crypto.devices import DEVICE_CERTIFICATE_CONTEXT
from omega.errors import (
    CertificateError,
    ConfigurationError,
    InvalidKeyError,
    InvalidSignatureError,
    MessageDecodeError,
)
from omega.protocol import (
    DeviceCertificate,
    SignedDeviceCertificate,
    decode_message,
    encode_message,
)

CREATED_AT = 1_700_000_000_000
IDENTITY_POINT = bytes([1]) + bytes(31)


def _signed(identity: IdentityKeyPair, body: bytes) -> SignedDeviceCertificate:
    """Correctly sign arbitrary bytes, to reach the checks after the signature."""
    return SignedDeviceCertificate(
        certificate=body, signature=identity.sign(DEVICE_CERTIFICATE_CONTEXT + body)
    )


def _body(identity: IdentityKeyPair, device: DeviceKeyPair, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "identity_key": identity.public_key,
        "device_key": device.public_key,
        "device_name": "laptop",
        "created_at": CREATED_AT,
    }
    fields.update(changes)
    return encode_message(DeviceCertificate(**fields))  # type: ignore[arg-type]


def test_device_id_is_a_short_hash(device: DeviceKeyPair) -> None:
    expected = hashlib.sha256(device.public_key).hexdigest()[:16]
    assert device_id(device.public_key) == expected
    assert device.device_id == expected
    with pytest.raises(InvalidKeyError):
        device_id(bytes(31))


def test_certify_and_verify(identity: IdentityKeyPair, device: DeviceKeyPair) -> None:
    signed = certify_device(identity, device.public_key, name="laptop", created_at=CREATED_AT)
    info = verify_device_certificate(signed, identity_key=identity.public_key)
    assert info.identity_key == identity.public_key
    assert info.device_key == device.public_key
    assert info.device_name == "laptop"
    assert info.created_at == CREATED_AT
    assert info.device_id == device.device_id
    assert encode_message(info.to_signed()) == encode_message(signed)
    # The signature covers exactly the transmitted certificate bytes.
    assert info.certificate_bytes == signed.certificate
    decoded = decode_message(DeviceCertificate, signed.certificate)
    assert decoded.device_name == "laptop"
    # The encoded form verifies too.
    assert (
        verify_device_certificate(encode_message(signed), identity_key=identity.public_key) == info
    )


@pytest.mark.parametrize(
    "name", ["a", "Ann's phone", "é" * 32, "👩‍💻 work", "x" * 64, "tab\u00a0nbsp"]
)
def test_valid_names(identity: IdentityKeyPair, device: DeviceKeyPair, name: str) -> None:
    signed = certify_device(identity, device.public_key, name=name, created_at=0)
    assert verify_device_certificate(signed, identity_key=identity.public_key).device_name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "é" * 33,
        "line\nbreak",
        "nul\x00",
        "del\x7f",
        "c1\x85",
        "rlo\u202e",
        "ls\u2028",
        "\ud800",
    ],
)
def test_invalid_names_are_refused_locally(
    identity: IdentityKeyPair, device: DeviceKeyPair, name: str
) -> None:
    with pytest.raises(ConfigurationError, match="device name"):
        certify_device(identity, device.public_key, name=name, created_at=0)


@pytest.mark.parametrize("created_at", [-1, 1 << 63, 1.5, "0"])
def test_invalid_creation_times_are_refused_locally(
    identity: IdentityKeyPair, device: DeviceKeyPair, created_at: object
) -> None:
    with pytest.raises(ConfigurationError, match="created_at"):
        certify_device(identity, device.public_key, name="x", created_at=created_at)  # type: ignore[arg-type]


def test_certify_refuses_bad_device_keys(identity: IdentityKeyPair) -> None:
    with pytest.raises(InvalidKeyError):
        certify_device(identity, bytes(31), name="x", created_at=0)
    with pytest.raises(InvalidKeyError):
        certify_device(identity, IDENTITY_POINT, name="x", created_at=0)
    with pytest.raises(ConfigurationError, match="differ from the identity key"):
        certify_device(identity, identity.public_key, name="x", created_at=0)


def test_wrong_identity_key_fails_the_signature(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair, device: DeviceKeyPair
) -> None:
    signed = certify_device(identity, device.public_key, name="x", created_at=0)
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(signed, identity_key=other_identity.public_key)


def test_unusable_identity_key_is_refused(identity: IdentityKeyPair, device: DeviceKeyPair) -> None:
    signed = certify_device(identity, device.public_key, name="x", created_at=0)
    with pytest.raises(InvalidKeyError):
        verify_device_certificate(signed, identity_key=IDENTITY_POINT)


@settings(max_examples=100)
@given(data=st.data())
def test_any_flipped_bit_is_detected(data: st.DataObject) -> None:
    identity = IdentityKeyPair.from_seed(bytes([1]) * 32)
    device = DeviceKeyPair.from_seed(bytes([3]) * 32)
    signed = certify_device(identity, device.public_key, name="laptop", created_at=CREATED_AT)
    verify_device_certificate(signed, identity_key=identity.public_key)  # now remembered
    in_certificate = data.draw(st.booleans())
    field = signed.certificate if in_certificate else signed.signature
    bit = data.draw(st.integers(0, len(field) * 8 - 1))
    flipped = bytearray(field)
    flipped[bit // 8] ^= 1 << (bit % 8)
    if in_certificate:
        tampered = SignedDeviceCertificate(certificate=bytes(flipped), signature=signed.signature)
    else:
        tampered = SignedDeviceCertificate(certificate=signed.certificate, signature=bytes(flipped))
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(tampered, identity_key=identity.public_key)


def test_signature_without_domain_separation_is_refused(
    identity: IdentityKeyPair, device: DeviceKeyPair
) -> None:
    body = _body(identity, device)
    forged = SignedDeviceCertificate(certificate=body, signature=identity.sign(body))
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(forged, identity_key=identity.public_key)


@pytest.mark.parametrize("signature", [b"", bytes(63), bytes(64)])
def test_malformed_signatures(
    identity: IdentityKeyPair, device: DeviceKeyPair, signature: bytes
) -> None:
    tampered = SignedDeviceCertificate(certificate=_body(identity, device), signature=signature)
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(tampered, identity_key=identity.public_key)


def test_malformed_and_oversized_bytes(identity: IdentityKeyPair, device: DeviceKeyPair) -> None:
    with pytest.raises(MessageDecodeError):
        verify_device_certificate(b"\xff\xff\xff", identity_key=identity.public_key)
    with pytest.raises(MessageDecodeError, match="exceeds"):
        verify_device_certificate(bytes(MAX_CERTIFICATE_SIZE + 1), identity_key=identity.public_key)
    big = _signed(identity, _body(identity, device) + b"\x2a\xe8\x07" + bytes(1000))
    assert len(big.certificate) > MAX_CERTIFICATE_SIZE
    with pytest.raises(MessageDecodeError, match="exceeds"):
        verify_device_certificate(big, identity_key=identity.public_key)


def test_signed_garbage_is_a_decode_error(identity: IdentityKeyPair) -> None:
    with pytest.raises(MessageDecodeError):
        verify_device_certificate(
            _signed(identity, b"\x0a\x05ab"), identity_key=identity.public_key
        )


def test_unknown_fields_are_tolerated(identity: IdentityKeyPair, device: DeviceKeyPair) -> None:
    body = _body(identity, device) + b"\x30\x01"  # field 6, varint: from a newer version
    info = verify_device_certificate(_signed(identity, body), identity_key=identity.public_key)
    assert info.certificate_bytes == body


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"device_key": IDENTITY_POINT}, "unusable device key"),
        ({"device_key": bytes(31)}, "unusable device key"),
        ({"device_key": b""}, "unusable device key"),
        ({"device_name": ""}, "device name must not be empty"),
        ({"device_name": "a\nb"}, "control character"),
        ({"device_name": "x" * 65}, "maximum is 64"),
        ({"created_at": -1}, "negative creation time"),
    ],
)
def test_signed_but_invalid_fields(
    identity: IdentityKeyPair, device: DeviceKeyPair, changes: dict[str, object], reason: str
) -> None:
    signed = _signed(identity, _body(identity, device, **changes))
    with pytest.raises(CertificateError, match=reason):
        verify_device_certificate(signed, identity_key=identity.public_key)


def test_certificate_naming_another_identity(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair, device: DeviceKeyPair
) -> None:
    body = _body(identity, device, identity_key=other_identity.public_key)
    with pytest.raises(CertificateError, match="different identity key"):
        verify_device_certificate(_signed(identity, body), identity_key=identity.public_key)


def test_certificate_certifying_the_identity_key_itself(
    identity: IdentityKeyPair, device: DeviceKeyPair
) -> None:
    body = _body(identity, device, device_key=identity.public_key)
    with pytest.raises(CertificateError, match="identity key as a device"):
        verify_device_certificate(_signed(identity, body), identity_key=identity.public_key)


def test_remembered_verifications_are_exact_and_bounded(
    identity: IdentityKeyPair, other_identity: IdentityKeyPair, device: DeviceKeyPair
) -> None:
    cache = devices._verified_certificate
    assert cache.cache_info().maxsize == devices._VERIFIED_CACHE_SIZE
    signed = certify_device(identity, device.public_key, name="laptop", created_at=CREATED_AT)
    first = verify_device_certificate(signed, identity_key=identity.public_key)
    hits = cache.cache_info().hits
    again = verify_device_certificate(encode_message(signed), identity_key=identity.public_key)
    assert again == first
    assert cache.cache_info().hits == hits + 1
    # The remembered success is keyed by the identity key, the bytes and the signature.
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(signed, identity_key=other_identity.public_key)
    other = SignedDeviceCertificate(certificate=signed.certificate, signature=bytes(64))
    with pytest.raises(InvalidSignatureError):
        verify_device_certificate(other, identity_key=identity.public_key)
    # Failures are never remembered.
    size = cache.cache_info().currsize
    for _ in range(2):
        with pytest.raises(InvalidSignatureError):
            verify_device_certificate(other, identity_key=identity.public_key)
    assert cache.cache_info().currsize == size


def test_non_bytes_fields_skip_the_memory(identity: IdentityKeyPair, device: DeviceKeyPair) -> None:
    signed = certify_device(identity, device.public_key, name="laptop", created_at=CREATED_AT)
    odd = SignedDeviceCertificate(
        certificate=bytearray(signed.certificate),  # type: ignore[arg-type]
        signature=signed.signature,
    )
    cache = devices._verified_certificate
    size = cache.cache_info().currsize
    info = verify_device_certificate(odd, identity_key=identity.public_key)  # unhashable key
    assert info.device_key == device.public_key
    assert cache.cache_info().currsize == size
