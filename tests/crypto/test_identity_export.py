"""Passphrase-protected identity export: format, round trips, tampering, hostile files."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import unicodedata

import nacl.bindings
import nacl.pwhash.argon2id
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_EXPORT_SIZE,
    DeviceKeyPair,
    Identity,
    IdentityBackup,
    IdentityKeyPair,
    LocalDevice,
    RandomSource,
    certify_device,
    export_identity,
    import_identity,
    sign_device_list,
    verify_device_certificate,
)
from omega.crypto import backup as backup_module
from omega.errors import (
    CertificateError,
    ConfigurationError,
    InvalidKeyError,
    InvalidSignatureError,
    MessageDecodeError,
    OmegaError,
    RevokedDeviceError,
    WrongPassphraseError,
)
from omega.protocol import (
    DeviceSecret,
    EncryptedIdentity,
    IdentitySecret,
    SignedDeviceList,
    decode_message,
    encode_message,
)

T0 = 1_700_000_000_000
FAST = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def alice(rng: RandomSource) -> Identity:
    return Identity.create(device_name="laptop", created_at=T0, display_name="Alice", rng=rng)


def _export(identity: Identity | IdentityBackup, rng: RandomSource, **kwargs: object) -> bytes:
    return export_identity(identity, PASSPHRASE, rng=rng, **{**FAST, **kwargs})  # type: ignore[arg-type]


def _seeded(seed: bytes) -> RandomSource:
    """A small deterministic source for tests that cannot take fixtures."""
    counter = iter(range(1 << 30))
    return lambda size: hashlib.shake_256(seed + bytes([next(counter)])).digest(size)


def _seal(secret: IdentitySecret, passphrase: str = PASSPHRASE, *, opslimit: int = 1) -> bytes:
    """Encrypt ``secret`` following the documented format, independently of backup.py."""
    salt, nonce, memlimit = bytes(range(16)), bytes(range(24)), 8192
    key = nacl.pwhash.argon2id.kdf(
        32,
        unicodedata.normalize("NFC", passphrase).encode(),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )
    associated_data = (
        b"omega/identity-export/v1"
        + (1).to_bytes(4, "big")
        + salt
        + opslimit.to_bytes(8, "big")
        + memlimit.to_bytes(8, "big")
    )
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        encode_message(secret), associated_data, nonce, key
    )
    return encode_message(
        EncryptedIdentity(
            version=1,
            salt=salt,
            opslimit=opslimit,
            memlimit=memlimit,
            nonce=nonce,
            ciphertext=ciphertext,
        )
    )


def _secret(alice: Identity, **changes: object) -> IdentitySecret:
    fields: dict[str, object] = {
        "identity_seed": alice.key_pair.seed,
        "display_name": alice.display_name,
        "created_at": alice.created_at,
        "devices": [
            DeviceSecret(
                device_seed=alice.device.key_pair.seed,
                certificate=alice.device.certificate.to_signed(),
            )
        ],
        "device_list": alice.device_list.to_signed(),
    }
    fields.update(changes)
    return IdentitySecret(**fields)  # type: ignore[arg-type]


def test_round_trip(alice: Identity, rng: RandomSource) -> None:
    data = _export(alice, rng)
    backup = import_identity(data, PASSPHRASE)
    assert backup == IdentityBackup.from_identity(alice)
    assert backup.to_identity() == alice
    assert backup.identity.seed == alice.key_pair.seed
    assert backup.display_name == "Alice"
    assert backup.created_at == T0


def test_documented_format(alice: Identity, rng: RandomSource) -> None:
    envelope = decode_message(EncryptedIdentity, _export(alice, rng))
    assert envelope.version == 1
    assert len(envelope.salt) == 16
    assert len(envelope.nonce) == 24
    assert (envelope.opslimit, envelope.memlimit) == (1, 8192)
    # Independent decryption following the module docstring.
    key = nacl.pwhash.argon2id.kdf(
        32, PASSPHRASE.encode(), envelope.salt, opslimit=1, memlimit=8192
    )
    associated_data = (
        b"omega/identity-export/v1"
        + (1).to_bytes(4, "big")
        + envelope.salt
        + (1).to_bytes(8, "big")
        + (8192).to_bytes(8, "big")
    )
    plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        envelope.ciphertext, associated_data, envelope.nonce, key
    )
    secret = decode_message(IdentitySecret, plaintext)
    assert secret.identity_seed == alice.key_pair.seed
    assert secret.devices[0].device_seed == alice.device.key_pair.seed
    # And an export sealed independently imports.
    assert import_identity(_seal(_secret(alice)), PASSPHRASE).to_identity() == alice


def test_deterministic_under_a_seeded_source(alice: Identity, make_rng: type[RandomSource]) -> None:
    one = _export(alice, make_rng(b"x"))  # type: ignore[call-arg]
    two = _export(alice, make_rng(b"x"))  # type: ignore[call-arg]
    three = _export(alice, make_rng(b"y"))  # type: ignore[call-arg]
    assert one == two
    assert one != three


def test_default_parameters(alice: Identity) -> None:
    started = time.perf_counter()
    data = export_identity(alice, PASSPHRASE)
    assert import_identity(data, PASSPHRASE).to_identity() == alice
    envelope = decode_message(EncryptedIdentity, data)
    assert (envelope.opslimit, envelope.memlimit) == (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT)
    assert time.perf_counter() - started < 5


def test_wrong_passphrase(alice: Identity, rng: RandomSource) -> None:
    data = _export(alice, rng)
    with pytest.raises(WrongPassphraseError, match="wrong passphrase or corrupted file"):
        import_identity(data, PASSPHRASE + "!")
    with pytest.raises(WrongPassphraseError):
        import_identity(data, "")


def test_passphrase_is_normalised_to_nfc(alice: Identity, rng: RandomSource) -> None:
    composed = unicodedata.normalize("NFC", "Pässwörd")
    decomposed = unicodedata.normalize("NFD", "Pässwörd")
    assert composed != decomposed
    data = export_identity(alice, decomposed, rng=rng, **FAST)  # type: ignore[arg-type]
    assert import_identity(data, composed).to_identity() == alice


@pytest.mark.parametrize("passphrase", ["", "\ud800"])
def test_unusable_passphrases(alice: Identity, rng: RandomSource, passphrase: str) -> None:
    with pytest.raises(ConfigurationError, match="passphrase"):
        export_identity(alice, passphrase, rng=rng, **FAST)  # type: ignore[arg-type]


def test_import_with_an_unencodable_passphrase(alice: Identity, rng: RandomSource) -> None:
    with pytest.raises(ConfigurationError, match="passphrase"):
        import_identity(_export(alice, rng), "\udfff")


@pytest.mark.parametrize(
    "kwargs",
    [{"opslimit": 0}, {"opslimit": 11}, {"memlimit": 8191}, {"memlimit": (1 << 30) + 1}],
)
def test_export_parameter_bounds(
    alice: Identity, rng: RandomSource, kwargs: dict[str, int]
) -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        _export(alice, rng, **kwargs)


def _reencode(data: bytes, **changes: object) -> bytes:
    envelope = decode_message(EncryptedIdentity, data)
    for name, value in changes.items():
        setattr(envelope, name, value)
    return encode_message(envelope)


def test_changed_header_fails_authentication(alice: Identity, rng: RandomSource) -> None:
    data = _export(alice, rng)
    envelope = decode_message(EncryptedIdentity, data)
    for changes in (
        {"opslimit": 2},
        {"memlimit": 16384},
        {"salt": bytes(16)},
        {"nonce": bytes(24)},
        {"ciphertext": envelope.ciphertext[:-1] + bytes([envelope.ciphertext[-1] ^ 1])},
    ):
        with pytest.raises(WrongPassphraseError):
            import_identity(_reencode(data, **changes), PASSPHRASE)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_is_refused(data: st.DataObject) -> None:
    alice = Identity.create(device_name="laptop", created_at=T0, rng=_seeded(b"a"))
    exported = _export(alice, _seeded(b"b"))
    bit = data.draw(st.integers(0, len(exported) * 8 - 1))
    flipped = bytearray(exported)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((MessageDecodeError, WrongPassphraseError)):
        import_identity(bytes(flipped), PASSPHRASE)


def _kdf_must_not_run(*args: object, **kwargs: object) -> bytes:
    raise AssertionError("the KDF ran on a file that should have been refused")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"version": 2}, "unsupported identity export version 2"),
        ({"version": 0}, "unsupported identity export version 0"),
        ({"salt": bytes(15)}, "salt or nonce"),
        ({"nonce": bytes(12)}, "salt or nonce"),
        ({"ciphertext": bytes(15)}, "truncated"),
        ({"opslimit": 0}, "outside the accepted bounds"),
        ({"opslimit": 11}, "outside the accepted bounds"),
        ({"memlimit": 8191}, "outside the accepted bounds"),
        ({"memlimit": 100 << 30}, "outside the accepted bounds"),
        ({"memlimit": (1 << 64) - 1}, "outside the accepted bounds"),
    ],
)
def test_hostile_headers_are_refused_before_the_kdf(
    alice: Identity,
    rng: RandomSource,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, object],
    reason: str,
) -> None:
    data = _reencode(_export(alice, rng), **changes)
    monkeypatch.setattr(backup_module, "_derive_key", _kdf_must_not_run)
    with pytest.raises(MessageDecodeError, match=reason):
        import_identity(data, PASSPHRASE)


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xff", b"hello world", bytes(MAX_EXPORT_SIZE + 1)], ids=len
)
def test_not_an_export(data: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        import_identity(data, PASSPHRASE)
    if data:
        with pytest.raises(MessageDecodeError, match=r"not an Omega identity export|version 0"):
            import_identity(data, PASSPHRASE)


def test_garbage_plaintext(alice: Identity) -> None:
    sealed = _seal(IdentitySecret())
    with pytest.raises(InvalidKeyError):
        import_identity(sealed, PASSPHRASE)
    with pytest.raises(MessageDecodeError, match="malformed identity"):
        backup_module._backup_from_secret(b"\x0a\x05ab")


def _other_device_secret(alice: Identity, seed: int = 40) -> tuple[DeviceKeyPair, DeviceSecret]:
    device = DeviceKeyPair.from_seed(bytes([seed]) * 32)
    certificate = certify_device(alice.key_pair, device.public_key, name="other", created_at=T0)
    return device, DeviceSecret(device_seed=device.seed, certificate=certificate)


def test_invalid_secret_contents(alice: Identity, other_identity: IdentityKeyPair) -> None:
    own = _secret(alice).devices[0]
    _, unlisted = _other_device_secret(alice)
    bob = Identity.create(device_name="b", created_at=T0, rng=_seeded(b"bob"))
    cases: list[tuple[dict[str, object], type[OmegaError], str | None]] = [
        ({"identity_seed": bytes(31)}, InvalidKeyError, "seed"),
        ({"display_name": "x" * 65}, MessageDecodeError, "display name"),
        ({"display_name": "a\x00"}, MessageDecodeError, "display name"),
        ({"created_at": -1}, MessageDecodeError, "created_at"),
        ({"device_list": None}, CertificateError, "no device list"),
        ({"device_list": bob.device_list.to_signed()}, InvalidSignatureError, "verify"),
        (
            {"device_list": SignedDeviceList(device_list=b"\xff")},
            InvalidSignatureError,
            "signature",
        ),
        ({"devices": [DeviceSecret(device_seed=b"x")]}, InvalidKeyError, "seed"),
        (
            {"devices": [DeviceSecret(device_seed=alice.device.key_pair.seed)]},
            CertificateError,
            "no certificate",
        ),
        (
            {"devices": [DeviceSecret(device_seed=bytes(32), certificate=own.certificate)]},
            CertificateError,
            "another device's certificate",
        ),
        (
            {
                "devices": [
                    DeviceSecret(
                        device_seed=bob.device.key_pair.seed,
                        certificate=bob.device.certificate.to_signed(),
                    )
                ]
            },
            InvalidSignatureError,
            "does not verify",
        ),
        ({"devices": [own, unlisted]}, CertificateError, "not in the device list"),
        ({"devices": [own, own]}, CertificateError, "appears twice"),
    ]
    for changes, error, reason in cases:
        with pytest.raises(error, match=reason):
            import_identity(_seal(_secret(alice, **changes)), PASSPHRASE)


def test_revoked_device_in_export(alice: Identity) -> None:
    device, secret = _other_device_secret(alice)
    with_device = alice.add_device(device.public_key, name="other", created_at=T0)
    revoked = with_device.revoke_device(device.public_key, revoked_at=T0 + 1)
    sealed = _seal(_secret(revoked, devices=[secret]))
    with pytest.raises(RevokedDeviceError):
        import_identity(sealed, PASSPHRASE)


def test_backup_with_several_devices(alice: Identity) -> None:
    device, secret = _other_device_secret(alice)
    both = alice.add_device(device.public_key, name="other", created_at=T0 + 1)
    own = _secret(both).devices[0]
    backup = import_identity(_seal(_secret(both, devices=[own, secret])), PASSPHRASE)
    assert len(backup.devices) == 2
    with pytest.raises(ConfigurationError, match="holds 2 devices"):
        backup.to_identity()
    assert backup.to_identity(device.public_key).device.key_pair == device
    assert backup.to_identity(alice.device.device_key) == both
    with pytest.raises(ConfigurationError, match="no such device"):
        backup.to_identity(bytes(32))
    # An export with no device secrets is allowed; restoring needs a device.
    empty = import_identity(_seal(_secret(both, devices=[])), PASSPHRASE)
    assert empty.devices == ()
    with pytest.raises(ConfigurationError, match="holds 0 devices"):
        empty.to_identity()
    # Exporting a multi-device backup round-trips.
    again = import_identity(export_identity(backup, PASSPHRASE, **FAST), PASSPHRASE)  # type: ignore[arg-type]
    assert again == backup


def test_backup_construction_checks_consistency(alice: Identity, rng: RandomSource) -> None:
    backup = IdentityBackup.from_identity(alice)
    bob = Identity.create(device_name="b", created_at=T0, rng=rng)
    with pytest.raises(ConfigurationError, match="device list belongs to another identity"):
        dataclasses.replace(backup, device_list=bob.device_list)
    with pytest.raises(ConfigurationError, match="twice"):
        dataclasses.replace(backup, devices=(alice.device, alice.device))
    with pytest.raises(ConfigurationError, match="another identity"):
        dataclasses.replace(backup, devices=(bob.device,))
    device = DeviceKeyPair.from_seed(bytes([41]) * 32)
    stranger = LocalDevice(
        key_pair=device,
        certificate=verify_device_certificate(
            certify_device(alice.key_pair, device.public_key, name="x", created_at=T0),
            identity_key=alice.identity_key,
        ),
    )
    with pytest.raises(ConfigurationError, match="not in the device list"):
        dataclasses.replace(backup, devices=(stranger,))
    with pytest.raises(ConfigurationError, match="display name"):
        dataclasses.replace(backup, display_name="\u202e")


def test_oversized_export_is_refused_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = IdentityKeyPair.from_seed(bytes([1]) * 32)
    device = DeviceKeyPair.from_seed(bytes([2]) * 32)
    certificate = certify_device(identity, device.public_key, name="d", created_at=T0)
    signed = sign_device_list(
        identity, sequence=1, devices=[certificate], revocations=[], issued_at=T0
    )
    alice = import_identity(
        _seal(
            IdentitySecret(
                identity_seed=identity.seed,
                devices=[DeviceSecret(device_seed=device.seed, certificate=certificate)],
                device_list=signed,
            )
        ),
        PASSPHRASE,
    )
    monkeypatch.setattr(backup_module, "MAX_EXPORT_SIZE", 100)
    with pytest.raises(ConfigurationError, match="too large"):
        export_identity(alice, PASSPHRASE, **FAST)  # type: ignore[arg-type]
