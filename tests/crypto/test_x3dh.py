"""X3DH between two devices: known answers, full handshakes, and every refusal."""

from __future__ import annotations

import hashlib
import hmac
from functools import partial

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.crypto._kdf import ed25519_public_to_x25519
from omega.crypto.double_ratchet import RatchetSession
from omega.crypto.prekeys import PrekeyConfig, PrekeyStore, signed_prekey_signature_message
from omega.crypto.x3dh import (
    AcceptedSession,
    EncryptedMessage,
    MessageKind,
    VerifiedPrekeyBundle,
    accept_session,
    encrypt_message,
    initiate_session,
    verify_prekey_bundle,
)
from omega.errors import (
    ConfigurationError,
    DecryptionError,
    DuplicateMessageError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidUserIdError,
    MessageDecodeError,
    OmegaError,
    PrekeyReusedError,
    UnknownPrekeyError,
)
from omega.protocol import (
    DeviceCertificate,
    OneTimePrekey,
    PrekeyBundle,
    PrekeyMessage,
    PrekeyStoreState,
    SignedDeviceCertificate,
    SignedPrekey,
    decode_message,
    encode_message,
)
from omega.testing import wire
from omega.testing.random import SeededRandom as _SeededRandom

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000

# Canonical encodings of X25519 points of small order (RFC 7748 section 6.1 blocklists).
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (2**255 - 20).to_bytes(32, "little"),
]
NON_CANONICAL = [(2**255 - 19).to_bytes(32, "little"), b"\xff" * 32, bytes(31)]

# These tests read back what the code under test drew.
SeededRandom = partial(_SeededRandom, record=True)


def make_device(identity_seed: int, device_seed: int) -> tuple[IdentityKeyPair, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([identity_seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([device_seed]) * 32)
    signed = certify_device(identity, key_pair.public_key, name=f"d{device_seed}", created_at=NOW)
    info = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity, LocalDevice(key_pair=key_pair, certificate=info)


@pytest.fixture
def alice() -> tuple[IdentityKeyPair, LocalDevice]:
    return make_device(11, 12)


@pytest.fixture
def bob() -> tuple[IdentityKeyPair, LocalDevice]:
    return make_device(21, 22)


@pytest.fixture
def bob_store(bob: tuple[IdentityKeyPair, LocalDevice]) -> PrekeyStore:
    return PrekeyStore.generate(bob[1].key_pair, now=NOW, rng=SeededRandom(b"bob-prekeys"))


def handshake(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    store: PrekeyStore,
    *,
    one_time_prekey_id: int | None = 1,
    plaintext: bytes = b"hello Bob",
) -> tuple[bytes, AcceptedSession, RatchetSession]:
    bundle = store.build_bundle(bob[1].certificate, one_time_prekey_id=one_time_prekey_id)
    session, message = initiate_session(
        alice[1], bundle, plaintext, user_id=bob[0].user_id, rng=SeededRandom(b"alice")
    )
    accepted = accept_session(bob[1], store, message, now=NOW + 1)
    return message, accepted, session


# --- known answers -----------------------------------------------------------


def _x25519_private_of_seed(seed: bytes) -> X25519PrivateKey:
    # An Ed25519 secret scalar is the clamped first half of SHA-512(seed); X25519 clamps too.
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


def _dh(private: X25519PrivateKey | bytes, public: bytes) -> bytes:
    if isinstance(private, bytes):
        private = X25519PrivateKey.from_private_bytes(private)
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


@pytest.mark.parametrize("with_one_time_prekey", [True, False])
def test_prekey_message_known_answer(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
    with_one_time_prekey: bool,
) -> None:
    """Every byte of the initial message, recomputed from the specifications."""
    opk_id = 7 if with_one_time_prekey else None
    bundle = bob_store.build_bundle(bob[1].certificate, one_time_prekey_id=opk_id)
    rng = SeededRandom(b"kat")
    _, message = initiate_session(alice[1], bundle, b"first!", user_id=bob[0].user_id, rng=rng)
    ephemeral_private, ratchet_private = rng.drawn  # EK_A first, then the first ratchet key

    spk_public = bob_store.signed_prekey.public_key
    alice_device_x = _x25519_private_of_seed(alice[1].key_pair.seed)
    bob_device_x_public = _x25519_private_of_seed(bob[1].key_pair.seed).public_key()
    # libsodium's Ed25519 -> X25519 conversion agrees with the scalar derivation.
    assert ed25519_public_to_x25519(bob[1].device_key) == bob_device_x_public.public_bytes_raw()
    dh = [
        _dh(alice_device_x, spk_public),
        _dh(ephemeral_private, bob_device_x_public.public_bytes_raw()),
        _dh(ephemeral_private, spk_public),
    ]
    if with_one_time_prekey:
        dh.append(_dh(ephemeral_private, bob_store.one_time_prekey_secret(7)[1]))
    shared = _hkdf(b"\xff" * 32 + b"".join(dh), bytes(32), b"omega/x3dh/v1", 32)

    ratchet_public = X25519PrivateKey.from_private_bytes(ratchet_private).public_key()
    root_and_chain = _hkdf(_dh(ratchet_private, spk_public), shared, b"omega/ratchet/root/v1", 64)
    chain_key = root_and_chain[32:]
    message_key = hmac.new(chain_key, b"\x01", "sha256").digest()
    key_and_nonce = _hkdf(message_key, bytes(32), b"omega/ratchet/message-key/v1", 44)
    header = b"\x08\x01" + wire.field(2, ratchet_public.public_bytes_raw())
    associated = alice[1].device_key + bob[1].device_key + alice[0].public_key + bob[0].public_key
    ciphertext = AESGCM(key_and_nonce[:32]).encrypt(
        key_and_nonce[32:], b"first!", associated + header
    )
    ephemeral_public = X25519PrivateKey.from_private_bytes(ephemeral_private).public_key()
    expected = (
        b"\x08\x01"
        + wire.field(2, encode_message(alice[1].certificate.to_signed()))
        + wire.field(3, ephemeral_public.public_bytes_raw())
        + b"\x20\x01"  # signed prekey id 1
        + (b"\x28\x07" if with_one_time_prekey else b"")
        + wire.field(6, wire.field(1, header) + wire.field(2, ciphertext))
    )
    assert message == expected

    accepted = accept_session(bob[1], bob_store, message, now=NOW)
    assert accepted.plaintext == b"first!"
    assert accepted.session.associated_data == associated


# --- handshakes --------------------------------------------------------------


@pytest.mark.parametrize("one_time_prekey_id", [1, None])
def test_full_handshake(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
    one_time_prekey_id: int | None,
) -> None:
    _, accepted, alice_session = handshake(
        alice, bob, bob_store, one_time_prekey_id=one_time_prekey_id
    )
    assert accepted.plaintext == b"hello Bob"
    assert accepted.remote_user_id == alice[0].user_id
    assert accepted.remote_certificate.device_key == alice[1].device_key
    assert accepted.one_time_prekey_id == one_time_prekey_id
    assert accepted.signed_prekey_id == 1
    bob_session = accepted.session
    assert bob_session.remote_user_id == alice[0].user_id
    assert bob_session.remote_device_key == alice[1].device_key
    assert bob_session.remote_identity_key == alice[0].public_key
    assert not bob_session.is_initiator
    assert alice_session.is_initiator
    assert alice_session.remote_user_id == bob[0].user_id
    assert alice_session.base_key == bob_session.base_key == accepted.base_key
    assert alice_session.associated_data == bob_session.associated_data
    reply = bob_session.encrypt(b"hi Alice", rng=SeededRandom(b"bob"))
    assert alice_session.decrypt(reply) == b"hi Alice"
    expected_pool = 99 if one_time_prekey_id else 100
    assert len(bob_store.one_time_prekeys) == expected_pool


def test_handshake_with_expected_user_and_verified_bundle(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    encoded = encode_message(bob_store.build_bundle(bob[1].certificate, one_time_prekey_id=2))
    verified = verify_prekey_bundle(encoded, user_id=bob[0].user_id)
    assert isinstance(verified, VerifiedPrekeyBundle)
    assert verified.identity_key == bob[0].public_key
    assert verified.device_key == bob[1].device_key
    assert verified.one_time_prekey_id == 2
    assert verified.signed_prekey_created_at == NOW
    _, message = initiate_session(alice[1], verified, b"", user_id=bob[0].user_id)
    accepted = accept_session(
        bob[1], bob_store, message, now=NOW, expected_user_id=alice[0].user_id
    )
    assert accepted.plaintext == b""
    with pytest.raises(ConfigurationError):
        initiate_session(alice[1], verified, b"", user_id=alice[0].user_id)


def test_retired_signed_prekey_works_during_grace_only(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    bundle = bob_store.build_bundle(bob[1].certificate)
    _, message = initiate_session(alice[1], bundle, b"late", user_id=bob[0].user_id)
    bob_store.rotate_signed_prekey(bob[1].key_pair, now=NOW + 7 * DAY)
    before = bob_store.to_bytes()
    with pytest.raises(UnknownPrekeyError):
        accept_session(bob[1], bob_store, message, now=NOW + 37 * DAY)
    assert bob_store.to_bytes() == before
    accepted = accept_session(bob[1], bob_store, message, now=NOW + 37 * DAY - 1)
    assert accepted.plaintext == b"late"


# --- refusals on the initiator side ------------------------------------------


def _bundle(store: PrekeyStore, bob: tuple[IdentityKeyPair, LocalDevice]) -> PrekeyBundle:
    return store.build_bundle(bob[1].certificate, one_time_prekey_id=1)


def test_tampered_signed_prekey_signature_is_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    for field, value in [
        ("signature", bytes(64)),
        ("prekey_id", 2),
        ("created_at", NOW + 1),
        ("public_key", bob_store.one_time_prekeys[0].public_key),
    ]:
        bundle = _bundle(bob_store, bob)
        assert bundle.signed_prekey is not None
        setattr(bundle.signed_prekey, field, value)
        with pytest.raises(InvalidSignatureError):
            initiate_session(alice[1], bundle, b"x", user_id=bob[0].user_id)


def test_tampered_certificate_is_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    bundle = _bundle(bob_store, bob)
    assert bundle.device_certificate is not None
    signature = bytearray(bundle.device_certificate.signature)
    signature[0] ^= 1
    bundle.device_certificate.signature = bytes(signature)
    with pytest.raises(InvalidSignatureError):
        verify_prekey_bundle(bundle, user_id=bob[0].user_id)


def test_bundle_of_another_user_is_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    # Mallory's correctly signed bundle offered as Bob's: the certificate does not verify.
    mallory_identity, mallory = make_device(31, 32)
    mallory_store = PrekeyStore.generate(mallory.key_pair, now=NOW, rng=SeededRandom(b"m"))
    bundle = mallory_store.build_bundle(mallory.certificate)
    with pytest.raises(InvalidSignatureError):
        initiate_session(alice[1], bundle, b"x", user_id=bob[0].user_id)
    # Bob's certificate with Mallory's prekeys: the signed prekey does not verify.
    mixed = mallory_store.build_bundle(mallory.certificate)
    mixed.device_certificate = bob[1].certificate.to_signed()
    with pytest.raises(InvalidSignatureError):
        initiate_session(alice[1], mixed, b"x", user_id=bob[0].user_id)
    assert mallory_identity.user_id != bob[0].user_id


def test_malformed_bundles_are_refused(
    alice: tuple[IdentityKeyPair, LocalDevice], bob: tuple[IdentityKeyPair, LocalDevice]
) -> None:
    with pytest.raises(MessageDecodeError):
        verify_prekey_bundle(b"\xff", user_id=bob[0].user_id)
    with pytest.raises(MessageDecodeError):
        verify_prekey_bundle(bytes(5000), user_id=bob[0].user_id)
    with pytest.raises(MessageDecodeError):
        verify_prekey_bundle(PrekeyBundle(), user_id=bob[0].user_id)
    with pytest.raises(InvalidUserIdError):
        verify_prekey_bundle(PrekeyBundle(), user_id="omega1nope")


def _signed_bundle_with(
    bob: tuple[IdentityKeyPair, LocalDevice],
    spk_public: bytes,
    *,
    created_at: int = NOW,
    one_time: bytes | None = None,
) -> PrekeyBundle:
    signature = bob[1].key_pair.sign(signed_prekey_signature_message(spk_public, 9, created_at))
    return PrekeyBundle(
        device_certificate=bob[1].certificate.to_signed(),
        signed_prekey=SignedPrekey(
            prekey_id=9, public_key=spk_public, signature=signature, created_at=created_at
        ),
        one_time_prekey=None
        if one_time is None
        else OneTimePrekey(prekey_id=1, public_key=one_time),
    )


@pytest.mark.parametrize("point", LOW_ORDER_POINTS + NON_CANONICAL)
def test_low_order_or_invalid_prekeys_are_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
    point: bytes,
) -> None:
    """Even a properly signed low-order signed prekey is refused before any session exists."""
    if len(point) == 32:
        with pytest.raises(InvalidKeyError):
            initiate_session(
                alice[1], _signed_bundle_with(bob, point), b"x", user_id=bob[0].user_id
            )
    good_spk = bob_store.signed_prekey.public_key
    with pytest.raises(InvalidKeyError):
        initiate_session(
            alice[1],
            _signed_bundle_with(bob, good_spk, one_time=point),
            b"x",
            user_id=bob[0].user_id,
        )


def test_negative_signed_prekey_time_is_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    bundle = _signed_bundle_with(bob, bob_store.signed_prekey.public_key)
    assert bundle.signed_prekey is not None
    bundle.signed_prekey.created_at = -1
    with pytest.raises(MessageDecodeError):
        verify_prekey_bundle(bundle, user_id=bob[0].user_id)


# --- refusals on the responder side ------------------------------------------


def _tampered(message: bytes, change: object) -> bytes:
    decoded = decode_message(PrekeyMessage, message)
    change(decoded)  # type: ignore[operator]
    return encode_message(decoded)


def test_reused_one_time_prekey_is_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    message, _, _ = handshake(alice, bob, bob_store, one_time_prekey_id=1)
    with pytest.raises(PrekeyReusedError):
        accept_session(bob[1], bob_store, message, now=NOW + 2)
    # A second initiator handed the same one-time prekey is refused as well.
    carol = make_device(41, 42)
    bundle = bob_store.build_bundle(bob[1].certificate)
    bundle.one_time_prekey = OneTimePrekey(prekey_id=1, public_key=bytes([9]) + bytes(31))
    _, second = initiate_session(carol[1], bundle, b"x", user_id=bob[0].user_id)
    with pytest.raises(PrekeyReusedError):
        accept_session(bob[1], bob_store, second, now=NOW + 2)


def test_unknown_prekey_ids_are_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    bundle = _bundle(bob_store, bob)
    _, message = initiate_session(alice[1], bundle, b"x", user_id=bob[0].user_id)
    unknown_spk = _tampered(message, lambda m: setattr(m, "signed_prekey_id", 5))
    with pytest.raises(UnknownPrekeyError):
        accept_session(bob[1], bob_store, unknown_spk, now=NOW)
    unknown_opk = _tampered(message, lambda m: setattr(m, "one_time_prekey_id", 500))
    with pytest.raises(UnknownPrekeyError):
        accept_session(bob[1], bob_store, unknown_opk, now=NOW)


def test_replayed_prekey_message_without_one_time_prekey(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    """The store records the base key: a replay is refused without the caller's help."""
    message, accepted, _ = handshake(alice, bob, bob_store, one_time_prekey_id=None)
    assert bob_store.is_known_base_key(accepted.base_key)
    assert bob_store.accepted_base_key_count == 1
    before = bob_store.to_bytes()
    with pytest.raises(DuplicateMessageError):
        accept_session(bob[1], bob_store, message, now=NOW)
    assert bob_store.to_bytes() == before
    # The caller's own list still works, e.g. for sessions accepted before the upgrade.
    fresh = PrekeyStore.from_bytes(_as_version_1(before))
    with pytest.raises(DuplicateMessageError):
        accept_session(bob[1], fresh, message, now=NOW, known_base_keys={accepted.base_key})
    assert accept_session(bob[1], fresh, message, now=NOW).plaintext == b"hello Bob"


def _as_version_1(store_state: bytes) -> bytes:
    state = decode_message(PrekeyStoreState, store_state)
    state.version, state.accepted_base_keys = 1, b""
    return encode_message(state)


def test_base_keys_of_sessions_with_a_one_time_prekey_are_not_recorded(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    """Consuming the one-time prekey already refuses the replay."""
    message, accepted, _ = handshake(alice, bob, bob_store, one_time_prekey_id=3)
    assert not bob_store.is_known_base_key(accepted.base_key)
    with pytest.raises(PrekeyReusedError):
        accept_session(bob[1], bob_store, message, now=NOW)


def test_replay_protection_ends_with_the_signed_prekey(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    message, accepted, _ = handshake(alice, bob, bob_store, one_time_prekey_id=None)
    bob_store.rotate_signed_prekey(bob[1].key_pair, now=NOW + 7 * DAY, rng=SeededRandom(b"r"))
    assert bob_store.is_known_base_key(accepted.base_key)
    bob_store.prune(NOW + 37 * DAY)
    assert not bob_store.is_known_base_key(accepted.base_key)
    with pytest.raises(UnknownPrekeyError):  # the signed prekey is gone: nothing to replay
        accept_session(bob[1], bob_store, message, now=NOW + 37 * DAY)


# --- pending initiator: prekey messages until the responder answers ----------


def test_initiator_repeats_prekey_messages_until_answered(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    rng = SeededRandom(b"alice")
    bundle = bob_store.build_bundle(bob[1].certificate, one_time_prekey_id=4)
    session, first = initiate_session(alice[1], bundle, b"m0", user_id=bob[0].user_id, rng=rng)
    pending = session.pending_prekey
    assert pending is not None
    assert (pending.signed_prekey_id, pending.one_time_prekey_id) == (1, 4)
    later = [encrypt_message(session, b"m%d" % i, rng=rng) for i in (1, 2, 3, 4)]
    assert {message.kind for message in later} == {MessageKind.PREKEY}
    wrapped = [decode_message(PrekeyMessage, data) for data in [first] + [m.data for m in later]]
    for message in wrapped:
        assert message.base_key == session.base_key
        assert (message.signed_prekey_id, message.one_time_prekey_id) == (1, 4)
        assert message.device_certificate == alice[1].certificate.to_signed()
    assert len({message.message for message in wrapped}) == 5

    # Bob gets message 2 first: X3DH runs and consumes the one-time prekey ...
    accepted = accept_session(bob[1], bob_store, later[1].data, now=NOW)
    assert (accepted.plaintext, accepted.new_session) == (b"m2", True)
    bob_session = accepted.session
    store_state = bob_store.to_bytes()
    # ... then the others are routed to his session, the store untouched.
    for data, text in [(first, b"m0"), (later[2].data, b"m3"), (later[0].data, b"m1")]:
        routed = accept_session(bob[1], bob_store, data, now=NOW, existing_session=bob_session)
        assert routed.session is bob_session
        assert (routed.plaintext, routed.new_session) == (text, False)
        assert routed.remote_user_id == alice[0].user_id
    assert bob_store.to_bytes() == store_state
    # A repeated one is a replay of its inner ratchet message.
    before = bob_session.to_bytes()
    with pytest.raises(DuplicateMessageError):
        accept_session(bob[1], bob_store, first, now=NOW, existing_session=bob_session)
    assert bob_session.to_bytes() == before

    # Once Alice has decrypted Bob's answer, she sends bare ratchet messages.
    assert session.decrypt(bob_session.encrypt(b"answer", rng=SeededRandom(b"bob"))) == b"answer"
    assert session.pending_prekey is None
    bare = encrypt_message(session, b"m5", rng=rng)
    assert bare.kind is MessageKind.RATCHET
    assert bob_session.decrypt(bare.data) == b"m5"
    # A prekey message still in flight from before the answer is routed as well.
    late = accept_session(bob[1], bob_store, later[3].data, now=NOW, existing_session=bob_session)
    assert (late.plaintext, late.new_session) == (b"m4", False)


def test_second_prekey_message_known_answer(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    """The repeated prekey message wraps the next ratchet message in the same fields."""
    bundle = bob_store.build_bundle(bob[1].certificate)
    rng = SeededRandom(b"kat2")
    session, first = initiate_session(alice[1], bundle, b"first", user_id=bob[0].user_id, rng=rng)
    ephemeral_private, ratchet_private = rng.drawn
    spk_public = bob_store.signed_prekey.public_key
    alice_device_x = _x25519_private_of_seed(alice[1].key_pair.seed)
    bob_device_x = _x25519_private_of_seed(bob[1].key_pair.seed).public_key().public_bytes_raw()
    dh = [
        _dh(alice_device_x, spk_public),
        _dh(ephemeral_private, bob_device_x),
        _dh(ephemeral_private, spk_public),
    ]
    shared = _hkdf(b"\xff" * 32 + b"".join(dh), bytes(32), b"omega/x3dh/v1", 32)
    chain_key = _hkdf(_dh(ratchet_private, spk_public), shared, b"omega/ratchet/root/v1", 64)[32:]
    chain_key = hmac.new(chain_key, b"\x02", "sha256").digest()  # past message 0
    message_key = hmac.new(chain_key, b"\x01", "sha256").digest()
    key_and_nonce = _hkdf(message_key, bytes(32), b"omega/ratchet/message-key/v1", 44)
    ratchet_public = X25519PrivateKey.from_private_bytes(ratchet_private).public_key()
    header = b"\x08\x01" + wire.field(2, ratchet_public.public_bytes_raw()) + b"\x20\x01"
    associated = alice[1].device_key + bob[1].device_key + alice[0].public_key + bob[0].public_key
    ciphertext = AESGCM(key_and_nonce[:32]).encrypt(
        key_and_nonce[32:], b"second", associated + header
    )
    ephemeral_public = X25519PrivateKey.from_private_bytes(ephemeral_private).public_key()
    expected = (
        b"\x08\x01"
        + wire.field(2, encode_message(alice[1].certificate.to_signed()))
        + wire.field(3, ephemeral_public.public_bytes_raw())
        + b"\x20\x01"
        + wire.field(6, wire.field(1, header) + wire.field(2, ciphertext))
    )
    second = encrypt_message(session, b"second", rng=rng)
    assert second == EncryptedMessage(kind=MessageKind.PREKEY, data=expected)
    first_fields, second_fields = (decode_message(PrekeyMessage, m) for m in (first, expected))
    second_fields.message = first_fields.message
    assert first_fields == second_fields  # only the inner ratchet message differs


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 8),
    order=st.randoms(use_true_random=False),
    one_time=st.booleans(),
    repeats=st.lists(st.integers(0, 7), max_size=4),
)
def test_pending_prekey_messages_open_in_any_order_exactly_once(
    count: int, order: object, one_time: bool, repeats: list[int]
) -> None:
    alice = make_device(11, 12)
    bob = make_device(21, 22)
    store = PrekeyStore.generate(
        bob[1].key_pair,
        now=NOW,
        config=PrekeyConfig(one_time_prekey_target=2, one_time_prekey_low_water=0),
        rng=SeededRandom(b"p"),
    )
    rng = SeededRandom(b"a")
    bundle = store.build_bundle(bob[1].certificate, one_time_prekey_id=1 if one_time else None)
    session, first = initiate_session(alice[1], bundle, b"0", user_id=bob[0].user_id, rng=rng)
    messages = [(first, b"0")] + [
        (encrypt_message(session, b"%d" % i, rng=rng).data, b"%d" % i) for i in range(1, count)
    ]
    deliveries = messages + [messages[i % count] for i in repeats]
    order.shuffle(deliveries)  # type: ignore[attr-defined]
    bob_session: RatchetSession | None = None
    opened: list[bytes] = []
    for data, text in deliveries:
        if text in opened:
            with pytest.raises(DuplicateMessageError):
                accept_session(bob[1], store, data, now=NOW, existing_session=bob_session)
            continue
        accepted = accept_session(bob[1], store, data, now=NOW, existing_session=bob_session)
        assert accepted.plaintext == text
        assert accepted.new_session is (bob_session is None)
        bob_session = accepted.session
        opened.append(text)
    assert sorted(opened) == sorted(text for _, text in messages)


def test_routing_needs_the_same_base_key_device_and_role(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    _, accepted, alice_session = handshake(alice, bob, bob_store, one_time_prekey_id=None)
    repeat = encrypt_message(alice_session, b"again", rng=SeededRandom(b"r")).data
    # An initiator session (a reflected message) is never a routing target.
    with pytest.raises(DuplicateMessageError):
        accept_session(bob[1], bob_store, repeat, now=NOW, existing_session=alice_session)
    # Another device's certificate with the same base key is not routed either.
    _, carol = make_device(41, 42)
    with_carol = _tampered(
        repeat, lambda m: setattr(m, "device_certificate", carol.certificate.to_signed())
    )
    before = accepted.session.to_bytes()
    with pytest.raises(DuplicateMessageError):
        accept_session(bob[1], bob_store, with_carol, now=NOW, existing_session=accepted.session)
    assert accepted.session.to_bytes() == before
    # A new base key from the same device is a new session (Alice restarted).
    restart_session, restart = initiate_session(
        alice[1],
        bob_store.build_bundle(bob[1].certificate, one_time_prekey_id=9),
        b"restarted",
        user_id=bob[0].user_id,
        rng=SeededRandom(b"restart"),
    )
    renewed = accept_session(bob[1], bob_store, restart, now=NOW, existing_session=accepted.session)
    assert renewed.new_session
    assert renewed.session is not accepted.session
    assert renewed.base_key == restart_session.base_key
    routed = accept_session(bob[1], bob_store, repeat, now=NOW, existing_session=accepted.session)
    assert (routed.plaintext, routed.new_session) == (b"again", False)


def test_failed_accept_records_no_base_key(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    _, message = initiate_session(
        alice[1], bob_store.build_bundle(bob[1].certificate), b"x", user_id=bob[0].user_id
    )
    decoded = decode_message(PrekeyMessage, message)
    inner = bytearray(decoded.message)
    inner[-1] ^= 1
    decoded.message = bytes(inner)
    before = bob_store.to_bytes()
    with pytest.raises(DecryptionError):
        accept_session(bob[1], bob_store, encode_message(decoded), now=NOW)
    assert bob_store.to_bytes() == before
    assert bob_store.accepted_base_key_count == 0


def test_failed_accept_changes_nothing(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    bundle = _bundle(bob_store, bob)
    _, message = initiate_session(alice[1], bundle, b"x", user_id=bob[0].user_id)
    before = bob_store.to_bytes()
    decoded = decode_message(PrekeyMessage, message)
    inner = bytearray(decoded.message)
    inner[-1] ^= 0x80
    decoded.message = bytes(inner)
    with pytest.raises(DecryptionError):
        accept_session(bob[1], bob_store, encode_message(decoded), now=NOW)
    assert bob_store.to_bytes() == before
    for point in LOW_ORDER_POINTS:
        low = _tampered(message, lambda m, p=point: setattr(m, "base_key", p))
        with pytest.raises(InvalidKeyError):
            accept_session(bob[1], bob_store, low, now=NOW)
    assert bob_store.to_bytes() == before
    accept_session(bob[1], bob_store, message, now=NOW)
    assert bob_store.to_bytes() != before


def test_initiator_certificate_is_checked(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    _, message = initiate_session(alice[1], _bundle(bob_store, bob), b"x", user_id=bob[0].user_id)
    carol_identity, _ = make_device(41, 42)
    with pytest.raises(InvalidSignatureError):
        accept_session(bob[1], bob_store, message, now=NOW, expected_user_id=carol_identity.user_id)
    no_cert = _tampered(message, lambda m: setattr(m, "device_certificate", None))
    with pytest.raises(MessageDecodeError):
        accept_session(bob[1], bob_store, no_cert, now=NOW)

    def forge(m: PrekeyMessage) -> None:
        assert m.device_certificate is not None
        body = decode_message(DeviceCertificate, m.device_certificate.certificate)
        body.device_name = "forged"
        m.device_certificate.certificate = encode_message(body)

    with pytest.raises(InvalidSignatureError):
        accept_session(bob[1], bob_store, _tampered(message, forge), now=NOW)
    # A certificate naming an unusable identity key.
    bogus = SignedDeviceCertificate(
        certificate=encode_message(DeviceCertificate(identity_key=bytes(32))), signature=bytes(64)
    )
    with pytest.raises(InvalidKeyError):
        accept_session(
            bob[1],
            bob_store,
            _tampered(message, lambda m: setattr(m, "device_certificate", bogus)),
            now=NOW,
        )
    # Alice's certificate swapped for Carol's: certificate fine, AEAD (AD) fails.
    _, carol = make_device(41, 42)
    swapped = _tampered(
        message, lambda m: setattr(m, "device_certificate", carol.certificate.to_signed())
    )
    with pytest.raises(DecryptionError):
        accept_session(bob[1], bob_store, swapped, now=NOW)


def test_malformed_prekey_messages_are_refused(
    alice: tuple[IdentityKeyPair, LocalDevice],
    bob: tuple[IdentityKeyPair, LocalDevice],
    bob_store: PrekeyStore,
) -> None:
    _, message = initiate_session(alice[1], _bundle(bob_store, bob), b"x", user_id=bob[0].user_id)
    with pytest.raises(MessageDecodeError):
        accept_session(
            bob[1], bob_store, _tampered(message, lambda m: setattr(m, "version", 2)), now=NOW
        )
    with pytest.raises(InvalidKeyError):
        accept_session(
            bob[1], bob_store, _tampered(message, lambda m: setattr(m, "base_key", b"s")), now=NOW
        )
    with pytest.raises(MessageDecodeError):
        accept_session(bob[1], bob_store, message[:-3], now=NOW)
    with pytest.raises(MessageDecodeError):
        accept_session(bob[1], bob_store, bytes(300_000), now=NOW)
    _, carol = make_device(41, 42)
    with pytest.raises(ConfigurationError):
        accept_session(carol, bob_store, message, now=NOW)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_arbitrary_or_bit_flipped_prekey_messages_raise_typed_errors(
    data: bytes, position: int, bit: int
) -> None:
    alice = make_device(11, 12)
    bob = make_device(21, 22)
    store = PrekeyStore.generate(
        bob[1].key_pair,
        now=NOW,
        config=PrekeyConfig(one_time_prekey_target=3, one_time_prekey_low_water=0),
        rng=SeededRandom(b"small"),
    )
    _, message = initiate_session(
        alice[1],
        store.build_bundle(bob[1].certificate, one_time_prekey_id=1),
        b"x",
        user_id=bob[0].user_id,
        rng=SeededRandom(b"a"),
    )
    flipped = bytearray(message)
    flipped[position % len(flipped)] ^= 1 << bit
    before = store.to_bytes()
    for candidate in (data, bytes(flipped)):
        with pytest.raises(OmegaError):
            accept_session(bob[1], store, candidate, now=NOW)
        assert store.to_bytes() == before


def test_invalid_ed25519_key_conversion_is_refused() -> None:
    with pytest.raises(InvalidKeyError):
        ed25519_public_to_x25519(bytes(32))
    with pytest.raises(InvalidKeyError):
        ed25519_public_to_x25519(bytes([1]) + bytes(31))  # small-order Ed25519 point
