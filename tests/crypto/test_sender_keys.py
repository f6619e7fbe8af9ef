"""Sender Keys: known answers, delivery and security properties, rotation, state."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from functools import partial

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

import omega.crypto._sender_key_chain as chain_module
from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    PrekeyStore,
    accept_session,
    certify_device,
    encrypt_message,
    initiate_session,
    verify_device_certificate,
)
from omega.crypto.sender_keys import (
    MAX_SENDER_KEY_SKIP,
    MAX_SENDER_KEY_SKIPPED_KEYS,
    MAX_SENDER_KEY_STATE_SIZE,
    MAX_SENDER_KEYS_PER_SENDER,
    InboundSenderKeys,
    OutboundSenderKey,
    SenderKeyConfig,
    SenderKeyDistributionInfo,
    read_sender_key_distribution,
)
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecodeError,
    DecryptionError,
    DuplicateMessageError,
    InvalidKeyError,
    InvalidSignatureError,
    LocalProtocolError,
    MessageDecodeError,
    OmegaError,
    ProtocolError,
    TooManySkippedMessagesError,
    UnknownSenderKeyError,
)
from omega.protocol import (
    InboundSenderKeysState,
    OutboundSenderKeyState,
    SenderKeyDistribution,
    SenderKeyHeader,
    SenderKeyMessage,
    decode_message,
    encode_message,
)
from omega.testing import wire
from omega.testing.random import SeededRandom as _SeededRandom

GROUP = "group-Ω"  # non-ASCII on purpose: lengths are UTF-8 bytes
ALICE_DEVICE = DeviceKeyPair.from_seed(bytes([12]) * 32).public_key
BOB_DEVICE = DeviceKeyPair.from_seed(bytes([22]) * 32).public_key
MESSAGE_KEY_INFO = b"omega/sender-key/message-key/v1"
AD_CONTEXT = b"omega/sender-key/ad/v1"
SIGNATURE_CONTEXT = b"omega/sender-key/signature/v1"

# These tests read back what the code under test drew.
SeededRandom = partial(_SeededRandom, record=True)


def make_device(identity_seed: int, device_seed: int) -> tuple[IdentityKeyPair, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([identity_seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([device_seed]) * 32)
    signed = certify_device(identity, key_pair.public_key, name="device", created_at=0)
    info = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity, LocalDevice(key_pair=key_pair, certificate=info)


def sender(config: SenderKeyConfig | None = None, seed: bytes = b"alice") -> OutboundSenderKey:
    return OutboundSenderKey.generate(
        GROUP, device_key=ALICE_DEVICE, config=config, rng=SeededRandom(seed)
    )


def receiver(
    outbound: OutboundSenderKey, config: SenderKeyConfig | None = None
) -> InboundSenderKeys:
    return InboundSenderKeys.from_distribution(
        outbound.distribution(), sender_device_key=ALICE_DEVICE, config=config
    )


# --- independent implementations of the construction ---------------------------


def _chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key) = (HMAC(CK, 0x02), HMAC(CK, 0x01))."""
    return (
        hmac.new(chain_key, b"\x02", "sha256").digest(),
        hmac.new(chain_key, b"\x01", "sha256").digest(),
    )


def _expand(message_key: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=bytes(32), info=MESSAGE_KEY_INFO).derive(
        message_key
    )
    return okm[:32], okm[32:]


def _binding(group: str, device_key: bytes) -> bytes:
    encoded = group.encode()
    return len(encoded).to_bytes(2, "big") + encoded + device_key


def _header(key_id: int, iteration: int) -> bytes:
    out = b"\x08\x01" + b"\x10" + wire.varint(key_id) if key_id else b"\x08\x01"
    return out + (b"\x18" + wire.varint(iteration) if iteration else b"")


def _message_keys(chain_key: bytes, count: int) -> list[bytes]:
    keys = []
    for _ in range(count):
        chain_key, message_key = _chain_step(chain_key)
        keys.append(message_key)
    return keys


# --- known answers ---------------------------------------------------------------


def test_constants_are_the_documented_ones() -> None:
    config = SenderKeyConfig()
    assert (config.max_skip, config.max_skipped_keys) == (2000, 2000)
    assert (MAX_SENDER_KEY_SKIP, MAX_SENDER_KEY_SKIPPED_KEYS, MAX_SENDER_KEYS_PER_SENDER) == (
        2000,
        2000,
        5,
    )
    assert config.max_keys_per_sender == 5
    assert config.max_plaintext_size == 256 * 1024
    assert chain_module.MESSAGE_KEY_INFO == MESSAGE_KEY_INFO
    assert chain_module.ASSOCIATED_DATA_CONTEXT == AD_CONTEXT
    assert chain_module.SIGNATURE_CONTEXT == SIGNATURE_CONTEXT


def test_kdf_steps_known_answers() -> None:
    chain_key = bytes(range(32))
    assert chain_module.kdf_ck(chain_key) == _chain_step(chain_key)
    assert chain_module.message_key_material(chain_key) == _expand(chain_key)


def test_distribution_and_messages_known_answer() -> None:
    """Every byte of a distribution and of three messages, recomputed from the formulas."""
    rng = SeededRandom(b"kat")
    outbound = OutboundSenderKey.generate(GROUP, device_key=ALICE_DEVICE, rng=rng)
    key_id_bytes, chain_key, signature_seed = rng.drawn
    key_id = int.from_bytes(key_id_bytes, "big")
    signing = Ed25519PrivateKey.from_private_bytes(signature_seed)
    signature_public = signing.public_key().public_bytes_raw()
    assert (outbound.key_id, outbound.iteration) == (key_id, 0)
    assert outbound.signature_key == signature_public

    group = GROUP.encode()
    expected_distribution = (
        b"\x08\x01"
        + wire.field(2, group)
        + b"\x18"
        + wire.varint(key_id)
        + wire.field(5, chain_key)  # iteration 0 is omitted (proto3)
        + wire.field(6, signature_public)
    )
    assert outbound.distribution() == expected_distribution

    binding = _binding(GROUP, ALICE_DEVICE)
    for iteration, (text, message_key) in enumerate(
        zip([b"one", b"two", b"three"], _message_keys(chain_key, 3), strict=True)
    ):
        header = _header(key_id, iteration)
        key, nonce = _expand(message_key)
        ciphertext = AESGCM(key).encrypt(nonce, text, AD_CONTEXT + binding + header)
        signed = SIGNATURE_CONTEXT + binding + len(header).to_bytes(2, "big") + header + ciphertext
        expected = (
            wire.field(1, header) + wire.field(2, ciphertext) + wire.field(3, signing.sign(signed))
        )
        assert outbound.encrypt(text) == expected
    assert outbound.iteration == 3
    assert encode_message(SenderKeyHeader(version=1, key_id=key_id, iteration=2)) == _header(
        key_id, 2
    )


# --- delivery properties ------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 40),
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(0, 39), max_size=10),
)
def test_any_delivery_order_decrypts_every_message_exactly_once(
    count: int, order: object, duplicates: list[int]
) -> None:
    outbound = sender()
    inbound = receiver(outbound)
    messages = [(outbound.encrypt(b"m%d" % i), b"m%d" % i) for i in range(count)]
    deliveries = list(messages) + [messages[i % count] for i in duplicates]
    order.shuffle(deliveries)  # type: ignore[attr-defined]
    seen: set[bytes] = set()
    for data, plaintext in deliveries:
        before = inbound.to_bytes()
        if plaintext in seen:
            with pytest.raises(DuplicateMessageError):
                inbound.decrypt(data)
            assert inbound.to_bytes() == before
        else:
            assert inbound.decrypt(data) == plaintext
            seen.add(plaintext)
    assert len(seen) == count
    assert inbound.skipped_message_key_count == 0


def test_several_receivers_and_a_late_joiner() -> None:
    outbound = sender()
    bob = receiver(outbound)
    early = [outbound.encrypt(b"early %d" % i) for i in range(3)]
    carol = receiver(outbound)  # joins now: opens what follows, nothing before
    late = outbound.encrypt(b"late")
    assert [bob.decrypt(m) for m in early] == [b"early 0", b"early 1", b"early 2"]
    assert bob.decrypt(late) == carol.decrypt(late) == b"late"
    for data in early:
        with pytest.raises(DuplicateMessageError):
            carol.decrypt(data)


# --- failures leave the state unchanged ----------------------------------------------


@settings(max_examples=200, deadline=None)
@given(target=st.integers(0, 3), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_bit_flip_fails_typed_and_changes_nothing(target: int, position: int, bit: int) -> None:
    outbound = sender()
    inbound = receiver(outbound)
    messages = [outbound.encrypt(b"message %d" % i) for i in range(4)]
    inbound.decrypt(messages[2])  # 0 and 1 now decrypt through skipped keys, 3 is next
    if target == 2:
        messages[2] = outbound.encrypt(b"message 4")
    data = bytearray(messages[target])
    data[position % len(data)] ^= 1 << bit
    before = inbound.to_bytes()
    with pytest.raises((DecodeError, CryptoError, ProtocolError)):
        inbound.decrypt(bytes(data))
    assert inbound.to_bytes() == before
    assert inbound.decrypt(messages[target]).startswith(b"message")


def test_signature_is_checked_before_any_key_is_derived(monkeypatch: pytest.MonkeyPatch) -> None:
    outbound = sender()
    inbound = receiver(outbound)
    message = decode_message(SenderKeyMessage, outbound.encrypt(b"x"))
    far = encode_message(SenderKeyHeader(version=1, key_id=outbound.key_id, iteration=10**6))
    calls: list[bytes] = []
    real_step = chain_module.kdf_ck

    def counting_step(chain_key: bytes) -> tuple[bytes, bytes]:
        calls.append(chain_key)
        return real_step(chain_key)

    monkeypatch.setattr(chain_module, "kdf_ck", counting_step)
    forged = SenderKeyMessage(header=far, ciphertext=message.ciphertext, signature=bytes(64))
    with pytest.raises(InvalidSignatureError):
        inbound.decrypt(encode_message(forged))
    assert calls == []  # a forged message costs one signature check, no chain work


def test_a_malicious_sender_is_caught_by_the_aead() -> None:
    """The signature key holder signs a ciphertext that is not under the message key."""
    outbound = sender()
    inbound = receiver(outbound)
    seed = decode_message(OutboundSenderKeyState, outbound.to_bytes()).signature_private_key
    signing = Ed25519PrivateKey.from_private_bytes(seed)
    binding = _binding(GROUP, ALICE_DEVICE)
    header = _header(outbound.key_id, 0)
    before = inbound.to_bytes()
    for ciphertext, error in [(bytes(40), DecryptionError), (bytes(5), DecryptionError)]:
        signed = SIGNATURE_CONTEXT + binding + len(header).to_bytes(2, "big") + header + ciphertext
        forged = SenderKeyMessage(
            header=header, ciphertext=ciphertext, signature=signing.sign(signed)
        )
        with pytest.raises(error):
            inbound.decrypt(encode_message(forged))
        assert inbound.to_bytes() == before


def test_group_and_sender_device_are_bound() -> None:
    outbound = sender()
    info = read_sender_key_distribution(outbound.distribution())
    member = receiver(outbound)
    data = outbound.encrypt(b"for the group")
    other_group = InboundSenderKeys.from_distribution(
        SenderKeyDistributionInfo(
            group_id="another group",
            key_id=info.key_id,
            iteration=info.iteration,
            chain_key=info.chain_key,
            signature_key=info.signature_key,
        ),
        sender_device_key=ALICE_DEVICE,
    )
    with pytest.raises(InvalidSignatureError):
        other_group.decrypt(data)
    # Bob re-distributes Alice's key as his own: Alice's messages are not accepted as Bob's.
    as_bob = InboundSenderKeys.from_distribution(info, sender_device_key=BOB_DEVICE)
    with pytest.raises(InvalidSignatureError):
        as_bob.decrypt(data)
    assert member.decrypt(data) == b"for the group"


# --- replay, skip bounds, eviction ------------------------------------------------


def test_skip_bound() -> None:
    config = SenderKeyConfig(max_skip=5, max_skipped_keys=20)
    outbound = sender(config)
    inbound = receiver(outbound, config)
    messages = [outbound.encrypt(b"%d" % i) for i in range(8)]
    before = inbound.to_bytes()
    with pytest.raises(TooManySkippedMessagesError) as info:
        inbound.decrypt(messages[6])
    assert info.value.details == {"skip": 6, "limit": 5}
    assert inbound.to_bytes() == before
    assert inbound.decrypt(messages[5]) == b"5"  # skipping exactly max_skip is fine
    assert inbound.skipped_message_key_count == 5


def test_oldest_skipped_keys_are_evicted() -> None:
    config = SenderKeyConfig(max_skip=6, max_skipped_keys=6)
    outbound = sender(config)
    inbound = receiver(outbound, config)
    messages = [outbound.encrypt(b"%d" % i) for i in range(12)]
    inbound.decrypt(messages[5])  # skips 0..4
    inbound.decrypt(messages[11])  # skips 6..10: 10 keys held, 6 kept
    assert inbound.skipped_message_key_count == 6
    for evicted in messages[:4]:
        with pytest.raises(DuplicateMessageError):
            inbound.decrypt(evicted)
    for index in (4, 6, 7, 8, 9, 10):
        assert inbound.decrypt(messages[index]) == b"%d" % index
    assert inbound.skipped_message_key_count == 0


# --- forward secrecy ---------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(sent_before=st.integers(1, 10), delivered=st.lists(st.booleans(), min_size=10))
def test_forward_secrecy_of_the_sender_chain(sent_before: int, delivered: list[bool]) -> None:
    """Neither side's state captured now opens messages it no longer needs to."""
    outbound = sender()
    inbound = receiver(outbound)
    earlier = [outbound.encrypt(b"m%d" % i) for i in range(sent_before)]
    for data, was_delivered in zip(earlier, delivered, strict=False):
        if was_delivered:
            inbound.decrypt(data)
    # The sender's captured state: its chain key only derives keys from now on.
    captured = read_sender_key_distribution(outbound.distribution())
    assert captured.iteration == sent_before
    future_keys = _message_keys(captured.chain_key, 50)
    binding = _binding(GROUP, ALICE_DEVICE)
    for iteration, data in enumerate(earlier):
        message = decode_message(SenderKeyMessage, data)
        for message_key in future_keys:
            key, nonce = _expand(message_key)
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(
                    nonce, message.ciphertext, AD_CONTEXT + binding + message.header
                )
        thief = InboundSenderKeys.from_distribution(captured, sender_device_key=ALICE_DEVICE)
        with pytest.raises(DuplicateMessageError):
            thief.decrypt(data)
        # The receiver's captured state opens exactly what it has not received.
        stolen = InboundSenderKeys.from_bytes(inbound.to_bytes())
        if iteration < len(delivered) and delivered[iteration]:
            with pytest.raises(DuplicateMessageError):
                stolen.decrypt(data)
        else:
            assert stolen.decrypt(data) == b"m%d" % iteration


# --- rotation and membership changes --------------------------------------------------


def test_removed_member_cannot_decrypt_after_rotation() -> None:
    outbound = sender()
    bob = receiver(outbound)
    carol = receiver(outbound)  # Carol is removed from the group below
    before_rotation = [outbound.encrypt(b"before %d" % i) for i in range(3)]
    old_key_id = outbound.key_id
    carol_state = carol.to_bytes()
    old_chain = read_sender_key_distribution(outbound.distribution())

    new_distribution = outbound.rotate(rng=SeededRandom(b"rotation"))
    assert outbound.key_id != old_key_id
    assert outbound.iteration == 0
    assert read_sender_key_distribution(new_distribution).signature_key != old_chain.signature_key
    assert bob.add_distribution(new_distribution) is True
    after_rotation = [outbound.encrypt(b"after %d" % i) for i in range(3)]

    # Bob, still a member, opens both the messages in flight across the rotation and the new ones.
    for data in after_rotation + before_rotation:
        assert bob.decrypt(data).startswith((b"before", b"after"))
    assert bob.key_ids == (outbound.key_id, old_key_id)

    # Carol holds only the old key: the new key id is unknown to her ...
    for data in after_rotation:
        with pytest.raises(UnknownSenderKeyError) as info:
            carol.decrypt(data)
        assert info.value.details == {"key_id": outbound.key_id}
        assert carol.to_bytes() == carol_state
        # ... relabelling a message with the old key id fails the old signature key ...
        message = decode_message(SenderKeyMessage, data)
        header = decode_message(SenderKeyHeader, message.header)
        relabelled = SenderKeyMessage(
            header=encode_message(
                SenderKeyHeader(version=1, key_id=old_key_id, iteration=header.iteration)
            ),
            ciphertext=message.ciphertext,
            signature=message.signature,
        )
        with pytest.raises(InvalidSignatureError):
            carol.decrypt(encode_message(relabelled))
        # ... and no key her old chain can ever derive opens the ciphertext (primitives only).
        binding = _binding(GROUP, ALICE_DEVICE)
        for message_key in _message_keys(old_chain.chain_key, 100):
            key, nonce = _expand(message_key)
            for header_bytes in (message.header, relabelled.header):
                with pytest.raises(InvalidTag):
                    AESGCM(key).decrypt(
                        nonce, message.ciphertext, AD_CONTEXT + binding + header_bytes
                    )


def test_rotation_draws_a_different_key_id() -> None:
    outbound = sender()
    repeating = SeededRandom(b"r")
    first_draw = repeating(4)
    repeating.counter = 0  # the next draw repeats the current id, the one after differs

    def rng(size: int) -> bytes:
        if size == 4 and not rng.repeated:  # type: ignore[attr-defined]
            rng.repeated = True  # type: ignore[attr-defined]
            return outbound.key_id.to_bytes(4, "big")
        return repeating(size)

    rng.repeated = False  # type: ignore[attr-defined]
    old = outbound.key_id
    outbound.rotate(rng=rng)
    assert outbound.key_id == int.from_bytes(first_draw, "big") != old


def test_receiver_keeps_a_bounded_number_of_keys() -> None:
    config = SenderKeyConfig(max_keys_per_sender=2)
    outbound = sender(config)
    inbound = receiver(outbound, config)
    ids = [outbound.key_id]
    for round_ in range(3):
        inbound.add_distribution(outbound.rotate(rng=SeededRandom(b"%d" % round_)))
        ids.append(outbound.key_id)
    assert inbound.key_ids == (ids[3], ids[2])
    assert inbound.forget_key(ids[2]) is True
    assert inbound.forget_key(ids[2]) is False
    assert inbound.key_ids == (ids[3],)
    assert inbound.forget_key(ids[3]) is True
    with pytest.raises(UnknownSenderKeyError):
        inbound.decrypt(outbound.encrypt(b"nobody can read this"))


def test_resent_distribution_neither_rewinds_nor_reopens() -> None:
    outbound = sender()
    first = outbound.distribution()
    inbound = InboundSenderKeys.from_distribution(first, sender_device_key=ALICE_DEVICE)
    data = outbound.encrypt(b"once")
    assert inbound.decrypt(data) == b"once"
    before = inbound.to_bytes()
    assert inbound.add_distribution(first) is False
    assert inbound.add_distribution(outbound.distribution()) is False
    assert inbound.to_bytes() == before
    with pytest.raises(DuplicateMessageError):
        inbound.decrypt(data)


def test_same_key_id_with_another_signature_key_replaces_the_key() -> None:
    outbound = sender()
    inbound = receiver(outbound)
    reset = sender(seed=b"reinstalled")
    info = read_sender_key_distribution(reset.distribution())
    clash = SenderKeyDistributionInfo(
        group_id=GROUP,
        key_id=outbound.key_id,
        iteration=0,
        chain_key=info.chain_key,
        signature_key=info.signature_key,
    )
    assert inbound.add_distribution(clash) is True
    assert inbound.key_ids == (outbound.key_id,)
    with pytest.raises(InvalidSignatureError):
        inbound.decrypt(outbound.encrypt(b"old key"))


def test_distribution_of_another_group_is_refused() -> None:
    inbound = receiver(sender())
    other = OutboundSenderKey.generate("other", device_key=ALICE_DEVICE, rng=SeededRandom(b"o"))
    with pytest.raises(ConfigurationError):
        inbound.add_distribution(other.distribution())


def test_distribution_through_pairwise_sessions() -> None:
    """The intended flow: distributions travel inside X3DH / Double Ratchet sessions."""
    alice_identity, alice = make_device(11, 12)
    bob_identity, bob = make_device(21, 22)
    store = PrekeyStore.generate(bob.key_pair, now=0, rng=SeededRandom(b"prekeys"))
    outbound = OutboundSenderKey.generate(
        "team", device_key=alice.device_key, rng=SeededRandom(b"group")
    )
    session, prekey_message = initiate_session(
        alice,
        store.build_bundle(bob.certificate),
        outbound.distribution(),
        user_id=bob_identity.user_id,
        rng=SeededRandom(b"x3dh"),
    )
    accepted = accept_session(bob, store, prekey_message, now=1)
    inbound = InboundSenderKeys.from_distribution(
        accepted.plaintext, sender_device_key=accepted.session.remote_device_key
    )
    assert inbound.decrypt(outbound.encrypt(b"hello team")) == b"hello team"
    rotated = encrypt_message(session, outbound.rotate(rng=SeededRandom(b"r")))
    routed = accept_session(bob, store, rotated.data, now=2, existing_session=accepted.session)
    assert inbound.add_distribution(routed.plaintext)
    assert inbound.decrypt(outbound.encrypt(b"after rekey")) == b"after rekey"
    assert alice_identity.user_id == accepted.remote_user_id


# --- serialization ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    deliveries=st.lists(st.integers(0, 15), max_size=12),
    rotations=st.integers(0, 3),
)
def test_states_round_trip_bit_exact(deliveries: list[int], rotations: int) -> None:
    outbound = sender()
    inbound = receiver(outbound)
    for round_ in range(rotations):
        inbound.add_distribution(outbound.rotate(rng=SeededRandom(b"%d" % round_)))
    messages = [outbound.encrypt(b"%d" % i) for i in range(16)]
    for index in deliveries:
        with contextlib.suppress(DuplicateMessageError):
            inbound.decrypt(messages[index])
    for state, cls in ((inbound.to_bytes(), InboundSenderKeys), (outbound.to_bytes(), None)):
        if cls is None:
            loaded_out = OutboundSenderKey.from_bytes(state)
            assert loaded_out.to_bytes() == state
            assert loaded_out.encrypt(b"next") == outbound.encrypt(b"next")
        else:
            loaded_in = InboundSenderKeys.from_bytes(state)
            assert loaded_in.to_bytes() == state
            assert loaded_in.key_ids == inbound.key_ids
    for index in range(16):
        if index not in deliveries:
            assert InboundSenderKeys.from_bytes(inbound.to_bytes()).decrypt(messages[index])


def test_skipped_keys_are_serialized_as_documented_records() -> None:
    rng = SeededRandom(b"records")
    outbound = OutboundSenderKey.generate(GROUP, device_key=ALICE_DEVICE, rng=rng)
    chain_key = rng.drawn[1]
    inbound = receiver(outbound)
    messages = [outbound.encrypt(b"%d" % i) for i in range(3)]
    inbound.decrypt(messages[2])
    keys = _message_keys(chain_key, 3)
    state = decode_message(InboundSenderKeysState, inbound.to_bytes())
    (chain,) = state.keys
    assert chain.skipped_message_keys == (
        (0).to_bytes(4, "big") + keys[0] + (1).to_bytes(4, "big") + keys[1]
    )
    assert chain.iteration == 3
    assert chain.chain_key == _chain_step(_chain_step(_chain_step(chain_key)[0])[0])[0]


def _inbound_cases(inbound: InboundSenderKeys) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []

    def mutate(name: str, change: Callable[[InboundSenderKeysState], object]) -> None:
        state = decode_message(InboundSenderKeysState, inbound.to_bytes())
        change(state)
        cases.append((name, encode_message(state)))

    mutate("version", lambda s: setattr(s, "version", 2))
    mutate("empty group", lambda s: setattr(s, "group_id", ""))
    mutate("long group", lambda s: setattr(s, "group_id", "g" * 257))
    mutate("device key", lambda s: setattr(s, "sender_device_key", bytes(32)))
    mutate("chain key", lambda s: setattr(s.keys[0], "chain_key", b"short"))
    mutate("signature key", lambda s: setattr(s.keys[0], "signature_key", bytes(32)))
    mutate("repeated key id", lambda s: s.keys.append(s.keys[0]))
    mutate("too many keys", lambda s: s.keys.extend([s.keys[0]] * 11))
    mutate(
        "truncated record",
        lambda s: setattr(s.keys[0], "skipped_message_keys", s.keys[0].skipped_message_keys[:-1]),
    )
    mutate(
        "disordered records",
        lambda s: setattr(
            s.keys[0],
            "skipped_message_keys",
            s.keys[0].skipped_message_keys[36:] + s.keys[0].skipped_message_keys[:36],
        ),
    )
    mutate("record at the chain", lambda s: setattr(s.keys[0], "iteration", 1))
    mutate(
        "too many records",
        lambda s: setattr(
            s.keys[0],
            "skipped_message_keys",
            b"".join(i.to_bytes(4, "big") + bytes(32) for i in range(10_001)),
        ),
    )
    data = inbound.to_bytes()
    cases.append(("unknown field", data + b"\xa0\x06\x01"))
    cases.append(("repeated scalar", data + b"\x08\x01"))
    cases.append(("truncated", data[:-1]))
    cases.append(("garbage", b"\xff\xff"))
    return cases


def test_invalid_inbound_states_are_refused() -> None:
    outbound = sender()
    inbound = receiver(outbound)
    messages = [outbound.encrypt(b"%d" % i) for i in range(3)]
    inbound.decrypt(messages[2])
    for name, data in _inbound_cases(inbound):
        try:
            InboundSenderKeys.from_bytes(data)
        except MessageDecodeError:
            continue
        pytest.fail(f"state with {name} was accepted")


def test_invalid_outbound_states_are_refused() -> None:
    outbound = sender()
    cases: list[tuple[str, bytes]] = []

    def mutate(name: str, change: Callable[[OutboundSenderKeyState], object]) -> None:
        state = decode_message(OutboundSenderKeyState, outbound.to_bytes())
        change(state)
        cases.append((name, encode_message(state)))

    mutate("version", lambda s: setattr(s, "version", 0))
    mutate("group", lambda s: setattr(s, "group_id", ""))
    mutate("device key", lambda s: setattr(s, "device_key", b"\x01" + bytes(31)))
    mutate("chain key", lambda s: setattr(s, "chain_key", bytes(31)))
    mutate("seed", lambda s: setattr(s, "signature_private_key", bytes(33)))
    cases.append(("unknown field", outbound.to_bytes() + b"\x40\x01"))
    for name, data in cases:
        with pytest.raises(MessageDecodeError):
            OutboundSenderKey.from_bytes(data)
        assert name


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_state_bytes_raise_only_typed_errors(data: bytes) -> None:
    for cls in (InboundSenderKeys, OutboundSenderKey):
        try:
            loaded = cls.from_bytes(data)
        except OmegaError:
            continue
        assert loaded.to_bytes() == data


def test_loading_with_smaller_bounds_cuts_the_oldest() -> None:
    outbound = sender()
    inbound = receiver(outbound)
    old_id = outbound.key_id
    messages = [outbound.encrypt(b"%d" % i) for i in range(6)]
    inbound.decrypt(messages[5])
    inbound.add_distribution(outbound.rotate(rng=SeededRandom(b"new")))
    smaller = SenderKeyConfig(max_skip=2, max_skipped_keys=2, max_keys_per_sender=1)
    loaded = InboundSenderKeys.from_bytes(inbound.to_bytes(), config=smaller)
    assert loaded.key_ids == (outbound.key_id,)
    assert loaded.config == smaller
    kept_both = InboundSenderKeys.from_bytes(
        inbound.to_bytes(), config=SenderKeyConfig(max_skip=2, max_skipped_keys=2)
    )
    assert kept_both.key_ids == (outbound.key_id, old_id)
    assert kept_both.skipped_message_key_count == 2
    with pytest.raises(DuplicateMessageError):
        kept_both.decrypt(messages[0])
    assert kept_both.decrypt(messages[4]) == b"4"


def test_largest_state_fits_the_state_bound() -> None:
    outbound = sender()
    state = decode_message(InboundSenderKeysState, receiver(outbound).to_bytes())
    template = state.keys[0]
    state.group_id = "Ω" * 256
    records = b"".join(i.to_bytes(4, "big") + bytes(32) for i in range(10_000))
    state.keys = [
        type(template)(
            key_id=2**32 - 1 - index,
            iteration=2**32 - 1,
            chain_key=template.chain_key,
            signature_key=template.signature_key,
            skipped_message_keys=records,
        )
        for index in range(10)
    ]
    data = encode_message(state)
    assert len(data) <= MAX_SENDER_KEY_STATE_SIZE
    biggest = SenderKeyConfig(max_skip=10_000, max_skipped_keys=10_000, max_keys_per_sender=10)
    assert InboundSenderKeys.from_bytes(data, config=biggest).to_bytes() == data


# --- distributions, configuration and local errors ----------------------------------


def test_malformed_distributions_are_refused() -> None:
    outbound = sender()

    def variant(**changes: object) -> bytes:
        message = decode_message(SenderKeyDistribution, outbound.distribution())
        for name, value in changes.items():
            setattr(message, name, value)
        return encode_message(message)

    cases: list[tuple[bytes, type[OmegaError]]] = [
        (variant(version=2), MessageDecodeError),
        (variant(group_id=""), MessageDecodeError),
        (variant(group_id="g" * 257), MessageDecodeError),
        (variant(chain_key=bytes(31)), MessageDecodeError),
        (variant(iteration=2**32 - 1), MessageDecodeError),
        (variant(signature_key=bytes(32)), InvalidKeyError),
        (b"\xff", MessageDecodeError),
        (bytes(3000), MessageDecodeError),
    ]
    for data, error in cases:
        with pytest.raises(error):
            read_sender_key_distribution(data)
        with pytest.raises(error):
            InboundSenderKeys.from_distribution(data, sender_device_key=ALICE_DEVICE)


def test_distribution_info_is_validated_and_hides_its_secret() -> None:
    info = read_sender_key_distribution(sender().distribution())
    assert info.chain_key.hex() not in repr(info)
    good = {
        "group_id": GROUP,
        "key_id": 1,
        "iteration": 0,
        "chain_key": bytes(32),
        "signature_key": info.signature_key,
    }
    for change, error in [
        ({"group_id": "\ud800"}, ConfigurationError),
        ({"group_id": 5}, ConfigurationError),
        ({"key_id": -1}, ConfigurationError),
        ({"iteration": 2**32 - 1}, ConfigurationError),
        ({"chain_key": "x" * 32}, ConfigurationError),
        ({"signature_key": bytes(32)}, InvalidKeyError),
    ]:
        with pytest.raises(error):
            SenderKeyDistributionInfo(**{**good, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_skip": -1},
        {"max_skip": 10_001, "max_skipped_keys": 10_001},
        {"max_skip": 10, "max_skipped_keys": 9},
        {"max_keys_per_sender": 0},
        {"max_keys_per_sender": 11},
        {"max_plaintext_size": 0},
        {"max_plaintext_size": 2**20 + 1},
        {"max_skip": True},
    ],
)
def test_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SenderKeyConfig(**kwargs)  # type: ignore[arg-type]


def test_generate_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigurationError):
        OutboundSenderKey.generate("", device_key=ALICE_DEVICE)
    with pytest.raises(InvalidKeyError):
        OutboundSenderKey.generate(GROUP, device_key=bytes(32))


def test_encrypt_refuses_bad_plaintexts_and_exhaustion() -> None:
    outbound = sender(SenderKeyConfig(max_plaintext_size=10))
    before = outbound.to_bytes()
    with pytest.raises(ConfigurationError):
        outbound.encrypt(b"x" * 11)
    with pytest.raises(ConfigurationError):
        outbound.encrypt("text")  # type: ignore[arg-type]
    assert outbound.to_bytes() == before
    state = decode_message(OutboundSenderKeyState, outbound.to_bytes())
    state.iteration = 2**32 - 1
    exhausted = OutboundSenderKey.from_bytes(encode_message(state))
    with pytest.raises(LocalProtocolError):
        exhausted.encrypt(b"x")
    exhausted.rotate(rng=SeededRandom(b"fresh"))
    assert exhausted.encrypt(b"x")


def test_invalid_messages_are_refused_and_change_nothing() -> None:
    outbound = sender(SenderKeyConfig(max_plaintext_size=64))
    inbound = receiver(outbound, SenderKeyConfig(max_plaintext_size=16))
    message = decode_message(SenderKeyMessage, outbound.encrypt(b"payload"))
    before = inbound.to_bytes()

    def with_header(**fields: int) -> bytes:
        header = SenderKeyHeader(version=1, key_id=outbound.key_id, iteration=0)
        for name, value in fields.items():
            setattr(header, name, value)
        return encode_message(
            SenderKeyMessage(
                header=encode_message(header),
                ciphertext=message.ciphertext,
                signature=message.signature,
            )
        )

    cases: list[tuple[bytes, type[OmegaError]]] = [
        (with_header(version=2), MessageDecodeError),
        (with_header(iteration=2**32 - 1), MessageDecodeError),
        (with_header(key_id=outbound.key_id ^ 1), UnknownSenderKeyError),
        (with_header(iteration=1), InvalidSignatureError),
        (outbound.encrypt(b"x" * 17), MessageDecodeError),
        (
            encode_message(SenderKeyMessage(header=bytes(40), ciphertext=b"", signature=b"")),
            MessageDecodeError,
        ),
        (bytes(inbound.config.max_message_size + 1), MessageDecodeError),
        (
            encode_message(
                SenderKeyMessage(
                    header=message.header, ciphertext=message.ciphertext, signature=b"short"
                )
            ),
            InvalidSignatureError,
        ),
    ]
    for data, error in cases:
        with pytest.raises(error):
            inbound.decrypt(data)
        assert inbound.to_bytes() == before
    assert inbound.decrypt(encode_message(message)) == b"payload"


def test_properties_and_reprs() -> None:
    outbound = sender()
    inbound = receiver(outbound)
    assert outbound.group_id == inbound.group_id == GROUP
    assert outbound.device_key == inbound.sender_device_key == ALICE_DEVICE
    assert outbound.config == inbound.config == SenderKeyConfig()
    state = decode_message(OutboundSenderKeyState, outbound.to_bytes())
    for text in (repr(outbound), repr(inbound)):
        assert state.chain_key.hex() not in text
        assert state.signature_private_key.hex() not in text
        assert str(outbound.key_id) in text
