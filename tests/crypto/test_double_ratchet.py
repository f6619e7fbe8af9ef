"""The Double Ratchet: known answers, delivery properties, security properties, state."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import DeviceKeyPair, IdentityKeyPair, certify_device
from omega.crypto._kdf import kdf_ck, kdf_rk, message_key_material, x3dh_secret
from omega.crypto.double_ratchet import (
    MAX_PREVIOUS_RATCHET_KEYS,
    MAX_SESSION_STATE_SIZE,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    SESSION_STATE_VERSION,
    PendingPrekey,
    RatchetSession,
    SessionConfig,
    associated_data,
)
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecodeError,
    DecryptionError,
    DuplicateMessageError,
    InvalidKeyError,
    LocalProtocolError,
    MessageDecodeError,
    OmegaError,
    ProtocolError,
    RemoteProtocolError,
    TooManySkippedMessagesError,
)
from omega.protocol import (
    RatchetHeader,
    RatchetMessage,
    RatchetSessionState,
    decode_message,
    encode_message,
)
from omega.storage import MAX_VALUE_SIZE
from omega.testing import wire
from omega.testing.random import SeededRandom as _SeededRandom

SHARED_SECRET = bytes(range(32))
SPK_PRIVATE = bytes([0x42]) * 32
ALICE_IDENTITY = IdentityKeyPair.from_seed(bytes([11]) * 32).public_key
ALICE_DEVICE = DeviceKeyPair.from_seed(bytes([12]) * 32).public_key
BOB_IDENTITY = IdentityKeyPair.from_seed(bytes([21]) * 32).public_key
BOB_DEVICE = DeviceKeyPair.from_seed(bytes([22]) * 32).public_key
BASE_KEY = X25519PrivateKey.from_private_bytes(bytes([7]) * 32).public_key().public_bytes_raw()
ROOT_INFO = b"omega/ratchet/root/v1"
LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")

# These tests read back what the code under test drew.
SeededRandom = partial(_SeededRandom, record=True)


def _public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def pair(
    config: SessionConfig | None = None, rng: SeededRandom | None = None
) -> tuple[RatchetSession, RatchetSession]:
    """Alice (initiator) and Bob (responder) sharing SHARED_SECRET, as X3DH would leave them."""
    alice = RatchetSession.for_initiator(
        shared_secret=SHARED_SECRET,
        remote_ratchet_key=_public(SPK_PRIVATE),
        local_identity_key=ALICE_IDENTITY,
        local_device_key=ALICE_DEVICE,
        remote_identity_key=BOB_IDENTITY,
        remote_device_key=BOB_DEVICE,
        base_key=BASE_KEY,
        config=config,
        rng=rng or SeededRandom(b"alice"),
    )
    bob = RatchetSession.for_responder(
        shared_secret=SHARED_SECRET,
        ratchet_private_key=SPK_PRIVATE,
        local_identity_key=BOB_IDENTITY,
        local_device_key=BOB_DEVICE,
        remote_identity_key=ALICE_IDENTITY,
        remote_device_key=ALICE_DEVICE,
        base_key=BASE_KEY,
        config=config,
    )
    return alice, bob


def established(config: SessionConfig | None = None) -> tuple[RatchetSession, RatchetSession]:
    alice, bob = pair(config)
    assert bob.decrypt(alice.encrypt(b"hello")) == b"hello"
    return alice, bob


def clone(session: RatchetSession) -> RatchetSession:
    return RatchetSession.from_bytes(session.to_bytes(), config=session.config)


# --- independent implementations of the spec's functions ---------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _dh(private: bytes, public: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.exchange(X25519PublicKey.from_public_bytes(public))


def _header(ratchet_key: bytes, previous: int, number: int) -> bytes:
    """RatchetHeader encoded by hand: proto3 omits zero values."""
    out = b"\x08\x01" + b"\x12\x20" + ratchet_key
    if previous:
        out += b"\x18" + wire.varint(previous)
    if number:
        out += b"\x20" + wire.varint(number)
    return out


def _message(header: bytes, ciphertext: bytes) -> bytes:
    return (
        b"\x0a"
        + wire.varint(len(header))
        + header
        + b"\x12"
        + wire.varint(len(ciphertext))
        + ciphertext
    )


def _seal(message_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    okm = _hkdf(message_key, bytes(32), b"omega/ratchet/message-key/v1", 44)
    return AESGCM(okm[:32]).encrypt(okm[32:], plaintext, ad)


def _chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    return (
        hmac.new(chain_key, b"\x02", "sha256").digest(),
        hmac.new(chain_key, b"\x01", "sha256").digest(),
    )


# --- known answers -----------------------------------------------------------


def test_kdf_known_answers() -> None:
    root, dh_out, chain = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
    okm = _hkdf(dh_out, root, ROOT_INFO, 64)
    assert kdf_rk(root, dh_out) == (okm[:32], okm[32:])
    assert kdf_ck(chain) == _chain_step(chain)
    expanded = _hkdf(chain, bytes(32), b"omega/ratchet/message-key/v1", 44)
    assert message_key_material(chain) == (expanded[:32], expanded[32:])
    dh = [bytes([i]) * 32 for i in range(4)]
    for outputs in (dh[:3], dh):
        expected = _hkdf(b"\xff" * 32 + b"".join(outputs), bytes(32), b"omega/x3dh/v1", 32)
        assert x3dh_secret(outputs) == expected


def test_associated_data_layout() -> None:
    alice, bob = pair()
    expected = ALICE_DEVICE + BOB_DEVICE + ALICE_IDENTITY + BOB_IDENTITY
    assert associated_data(ALICE_DEVICE, BOB_DEVICE, ALICE_IDENTITY, BOB_IDENTITY) == expected
    assert alice.associated_data == bob.associated_data == expected
    assert len(expected) == 128


def test_conversation_known_answer() -> None:
    """Every ciphertext of a short exchange, recomputed from the specification's formulas."""
    alice_rng, bob_rng = SeededRandom(b"alice"), SeededRandom(b"bob")
    alice, bob = pair(rng=alice_rng)
    ad = ALICE_DEVICE + BOB_DEVICE + ALICE_IDENTITY + BOB_IDENTITY
    spk_public = _public(SPK_PRIVATE)

    # RatchetInitAlice: DHs from the rng, RK, CKs = KDF_RK(SK, DH(DHs, SPK)).
    (alice_ratchet,) = alice_rng.drawn
    okm = _hkdf(_dh(alice_ratchet, spk_public), SHARED_SECRET, ROOT_INFO, 64)
    root, alice_chain = okm[:32], okm[32:]
    expected_alice = []
    for number, text in enumerate([b"one", b"two", b"three"]):
        alice_chain, message_key = _chain_step(alice_chain)
        header = _header(_public(alice_ratchet), 0, number)
        expected_alice.append(_message(header, _seal(message_key, text, ad + header)))
        assert alice.encrypt(text) == expected_alice[-1]
    assert _header(_public(alice_ratchet), 0, 2) == encode_message(
        RatchetHeader(version=1, ratchet_key=_public(alice_ratchet), message_number=2)
    )
    for message, text in zip(expected_alice, [b"one", b"two", b"three"], strict=True):
        assert bob.decrypt(message) == text

    # Bob: his receiving step (RK = SK, DHs = SPK) lands on the same RK as Alice's;
    # he draws a new ratchet key when he sends.
    okm = _hkdf(_dh(SPK_PRIVATE, _public(alice_ratchet)), SHARED_SECRET, ROOT_INFO, 64)
    assert okm[:32] == root
    reply = bob.encrypt(b"reply", rng=bob_rng)
    (bob_ratchet,) = bob_rng.drawn
    rk_before_bob_sent = root
    okm = _hkdf(_dh(bob_ratchet, _public(alice_ratchet)), root, ROOT_INFO, 64)
    root, bob_chain = okm[:32], okm[32:]
    bob_chain, message_key = _chain_step(bob_chain)
    header = _header(_public(bob_ratchet), 0, 0)
    assert reply == _message(header, _seal(message_key, b"reply", ad + header))
    assert alice.decrypt(reply) == b"reply"

    # Alice's next message: her receiving step reaches the RK Bob sent with, then she
    # draws a new ratchet key; PN = 3.
    okm = _hkdf(_dh(alice_ratchet, _public(bob_ratchet)), rk_before_bob_sent, ROOT_INFO, 64)
    assert okm[:32] == root
    again = alice.encrypt(b"four", rng=alice_rng)
    alice_second = alice_rng.drawn[-1]
    okm = _hkdf(_dh(alice_second, _public(bob_ratchet)), root, ROOT_INFO, 64)
    _, alice_chain = okm[:32], okm[32:]
    _, message_key = _chain_step(alice_chain)
    header = _header(_public(alice_second), 3, 0)
    assert again == _message(header, _seal(message_key, b"four", ad + header))
    assert bob.decrypt(again) == b"four"


# --- delivery properties ----------------------------------------------------


@dataclass
class Conversation:
    alice: RatchetSession
    bob: RatchetSession
    rng: SeededRandom = field(default_factory=lambda: SeededRandom(b"conversation"))
    in_flight: dict[str, list[tuple[bytes, bytes]]] = field(
        default_factory=lambda: {"alice": [], "bob": []}
    )
    received: dict[str, list[bytes]] = field(default_factory=lambda: {"alice": [], "bob": []})
    delivered: list[tuple[str, bytes]] = field(default_factory=list)
    counter: int = 0

    def session(self, name: str) -> RatchetSession:
        return self.alice if name == "alice" else self.bob

    def send(self, sender: str) -> None:
        recipient = "bob" if sender == "alice" else "alice"
        if sender == "bob" and not self.received["bob"]:
            return  # the responder has no sending chain before it hears from the initiator
        self.counter += 1
        plaintext = f"{sender}-{self.counter}".encode()
        data = self.session(sender).encrypt(plaintext, rng=self.rng)
        self.in_flight[recipient].append((data, plaintext))

    def deliver(self, recipient: str, index: int) -> None:
        queue = self.in_flight[recipient]
        if not queue:
            return
        data, plaintext = queue.pop(index % len(queue))
        assert self.session(recipient).decrypt(data) == plaintext
        self.received[recipient].append(plaintext)
        self.delivered.append((recipient, data))


actions = st.lists(
    st.tuples(
        st.sampled_from(["send", "deliver"]),
        st.sampled_from(["alice", "bob"]),
        st.integers(0, 1000),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(script=actions, final_order=st.randoms(use_true_random=False))
def test_any_delivery_order_decrypts_every_message_exactly_once(script, final_order) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair()
    talk = Conversation(alice, bob)
    talk.send("alice")
    for action, who, index in script:
        if action == "send":
            talk.send(who)
        else:
            talk.deliver(who, index)
    for recipient in ("alice", "bob"):
        final_order.shuffle(talk.in_flight[recipient])
        while talk.in_flight[recipient]:
            talk.deliver(recipient, 0)
    sent = talk.counter
    assert len(talk.received["alice"]) + len(talk.received["bob"]) == sent
    assert bob.skipped_message_key_count == alice.skipped_message_key_count == 0
    for recipient, data in talk.delivered:
        session = talk.session(recipient)
        before = session.to_bytes()
        with pytest.raises(DuplicateMessageError):
            session.decrypt(data)
        assert session.to_bytes() == before


def test_out_of_order_within_a_chain_and_across_chains() -> None:
    alice, bob = established()
    first = [alice.encrypt(b"a%d" % i) for i in range(5)]  # message numbers 1..5
    assert bob.decrypt(first[4]) == b"a4"
    assert bob.skipped_message_key_count == 4
    assert alice.decrypt(bob.encrypt(b"b0")) == b"b0"
    assert bob.decrypt(first[2]) == b"a2"
    second = alice.encrypt(b"new chain")
    assert bob.decrypt(second) == b"new chain"
    for index in (1, 0, 3):
        assert bob.decrypt(first[index]) == b"a%d" % index
    assert bob.skipped_message_key_count == 0


# --- failure leaves state unchanged --------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    target=st.integers(0, 3),
    position=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_any_bit_flip_fails_typed_and_changes_nothing(target: int, position: int, bit: int) -> None:
    alice, bob = established()
    messages = [alice.encrypt(b"message %d" % i) for i in range(4)]
    bob.decrypt(messages[3])  # messages 0..2 now decrypt through skipped keys
    if target == 3:
        alice.decrypt(bob.encrypt(b"x"))
        bob.decrypt(alice.encrypt(b"y"))
        messages[3] = alice.encrypt(b"next")  # a current-chain message, Bob has a sending key
    data = bytearray(messages[target])
    data[position % len(data)] ^= 1 << bit
    before = bob.to_bytes()
    with pytest.raises((DecodeError, CryptoError, ProtocolError)):
        bob.decrypt(bytes(data))
    assert bob.to_bytes() == before
    assert bob.decrypt(messages[target]).startswith((b"message", b"next"))


def test_header_fields_are_authenticated() -> None:
    alice, bob = established()
    data = alice.encrypt(b"payload")
    message = decode_message(RatchetMessage, data)
    header = decode_message(RatchetHeader, message.header)
    variants = [
        RatchetHeader(
            version=1,
            ratchet_key=header.ratchet_key,
            previous_chain_length=header.previous_chain_length,
            message_number=header.message_number + 1,
        ),
        RatchetHeader(
            version=1,
            ratchet_key=header.ratchet_key,
            previous_chain_length=header.previous_chain_length + 1,
            message_number=header.message_number,
        ),
    ]
    before = bob.to_bytes()
    for variant in variants:
        forged = RatchetMessage(header=encode_message(variant), ciphertext=message.ciphertext)
        with pytest.raises(DecryptionError):
            bob.decrypt(encode_message(forged))
        assert bob.to_bytes() == before
    # The same header with an unknown field appended: same values, other bytes.
    padded = RatchetMessage(header=message.header + b"\x28\x01", ciphertext=message.ciphertext)
    with pytest.raises(DecryptionError):
        bob.decrypt(encode_message(padded))
    assert bob.decrypt(data) == b"payload"


def test_invalid_headers_are_refused() -> None:
    alice, bob = established()
    alice.decrypt(bob.encrypt(b"r"))  # Bob holds a sending key: a new remote key is legal
    message = decode_message(RatchetMessage, alice.encrypt(b"x"))
    header = decode_message(RatchetHeader, message.header)
    before = bob.to_bytes()

    def with_header(**changes: object) -> bytes:
        fields = {
            "version": 1,
            "ratchet_key": header.ratchet_key,
            "previous_chain_length": 0,
            "message_number": header.message_number,
        }
        fields.update(changes)
        forged = RatchetHeader(**fields)  # type: ignore[arg-type]
        return encode_message(RatchetMessage(header=bytes(forged), ciphertext=message.ciphertext))

    cases: list[tuple[bytes, type[OmegaError]]] = [
        (with_header(version=2), MessageDecodeError),
        (with_header(ratchet_key=b"short"), InvalidKeyError),
        (with_header(ratchet_key=b"\xff" * 32), InvalidKeyError),
        (with_header(ratchet_key=LOW_ORDER), InvalidKeyError),
        (
            encode_message(RatchetMessage(header=message.header, ciphertext=b"short")),
            DecryptionError,
        ),
        (
            encode_message(RatchetMessage(header=b"\xff", ciphertext=message.ciphertext)),
            MessageDecodeError,
        ),
        (encode_message(RatchetMessage(header=bytes(100), ciphertext=b"")), MessageDecodeError),
        (b"\x0a\x05", MessageDecodeError),
        (bytes(bob.config.max_message_size + 1), MessageDecodeError),
    ]
    for data, error in cases:
        with pytest.raises(error):
            bob.decrypt(data)
        assert bob.to_bytes() == before


def test_initiator_refuses_its_peers_signed_prekey_as_a_ratchet_key() -> None:
    alice, bob = pair()
    forged = RatchetMessage(
        header=encode_message(RatchetHeader(version=1, ratchet_key=_public(SPK_PRIVATE))),
        ciphertext=bytes(32),
    )
    before = alice.to_bytes()
    with pytest.raises(RemoteProtocolError):
        alice.decrypt(encode_message(forged))
    assert alice.to_bytes() == before
    assert bob.decrypt(alice.encrypt(b"still fine")) == b"still fine"


def test_new_ratchet_key_before_we_replied_is_refused() -> None:
    alice, bob = established()  # Bob's next ratchet key pair is not drawn yet
    other_key = _public(bytes([5]) * 32)
    forged = RatchetMessage(
        header=encode_message(RatchetHeader(version=1, ratchet_key=other_key)),
        ciphertext=bytes(32),
    )
    before = bob.to_bytes()
    with pytest.raises(RemoteProtocolError) as info:
        bob.decrypt(encode_message(forged))
    assert type(info.value) is RemoteProtocolError
    assert bob.to_bytes() == before
    assert alice


# --- replay, skip bounds, eviction --------------------------------------------


def test_replay_is_refused_and_changes_nothing() -> None:
    alice, bob = established()
    data = alice.encrypt(b"once")
    assert bob.decrypt(data) == b"once"
    before = bob.to_bytes()
    with pytest.raises(DuplicateMessageError):
        bob.decrypt(data)
    assert bob.to_bytes() == before
    # A replay from an older chain, after a full round trip, is still recognised.
    alice.decrypt(bob.encrypt(b"r"))
    bob.decrypt(alice.encrypt(b"s"))
    with pytest.raises(DuplicateMessageError):
        bob.decrypt(data)


def test_skip_bound_per_chain() -> None:
    config = SessionConfig(max_skip=5, max_skipped_keys=20)
    alice, bob = established(config)
    messages = [alice.encrypt(b"%d" % i) for i in range(8)]
    before = bob.to_bytes()
    with pytest.raises(TooManySkippedMessagesError) as info:
        bob.decrypt(messages[6])  # Nr = 0: skipping 6 keys > 5
    assert info.value.details == {"skip": 6, "limit": 5}
    assert bob.to_bytes() == before
    assert bob.decrypt(messages[5]) == b"5"  # skipping exactly 5 is fine
    assert bob.skipped_message_key_count == 5


def test_skip_bound_on_the_previous_chain() -> None:
    config = SessionConfig(max_skip=3, max_skipped_keys=10)
    alice, bob = established(config)
    assert alice.decrypt(bob.encrypt(b"r")) == b"r"
    old_chain = [alice.encrypt(b"%d" % i) for i in range(3)]  # Alice's new chain, PN = 1
    del old_chain
    assert bob.decrypt(bob_msg := alice.encrypt(b"third")) == b"third"
    assert bob_msg
    # Alice steps again after 5 messages on the current chain; Bob saw none of them.
    alice.decrypt(bob.encrypt(b"again"))
    lost = [alice.encrypt(b"lost %d" % i) for i in range(5)]
    alice.decrypt(bob.encrypt(b"and again"))
    assert lost
    with_pn = alice.encrypt(b"pn too large")
    before = bob.to_bytes()
    with pytest.raises(TooManySkippedMessagesError):
        bob.decrypt(with_pn)
    assert bob.to_bytes() == before


def test_oldest_skipped_keys_are_evicted() -> None:
    config = SessionConfig(max_skip=10, max_skipped_keys=10)
    alice, bob = established(config)
    first = [alice.encrypt(b"a%d" % i) for i in range(8)]
    bob.decrypt(first[7])  # skips 0..6: 7 keys
    alice.decrypt(bob.encrypt(b"r"))
    second = [alice.encrypt(b"b%d" % i) for i in range(7)]
    bob.decrypt(second[6])  # 1 more (first[7]'s chain done) + 6 new = 13 > 10
    assert bob.skipped_message_key_count == 10
    for evicted in first[:3]:
        with pytest.raises(DuplicateMessageError):
            bob.decrypt(evicted)
    for kept in first[3:7] + second[:6]:
        bob.decrypt(kept)
    assert bob.skipped_message_key_count == 0


def test_previous_ratchet_keys_are_bounded() -> None:
    alice, bob = established()
    for _ in range(MAX_PREVIOUS_RATCHET_KEYS + 3):
        alice.decrypt(bob.encrypt(b"ping"))
        bob.decrypt(alice.encrypt(b"pong"))
    state = decode_message(RatchetSessionState, bob.to_bytes())
    assert len(state.previous_receiving_ratchet_keys) == MAX_PREVIOUS_RATCHET_KEYS


# --- forward secrecy and post-compromise security -----------------------------


@settings(max_examples=40, deadline=None)
@given(delivered=st.lists(st.booleans(), min_size=1, max_size=12))
def test_forward_secrecy(delivered: list[bool]) -> None:
    """A state captured now opens exactly the messages not yet received, never earlier ones."""
    alice, bob = established()
    messages = [alice.encrypt(b"m%d" % i) for i in range(len(delivered))]
    for data, was_delivered in zip(messages, delivered, strict=True):
        if was_delivered:
            bob.decrypt(data)
    captured = bob.to_bytes()
    for data, was_delivered in zip(messages, delivered, strict=True):
        thief = RatchetSession.from_bytes(captured)
        if was_delivered:
            with pytest.raises(DuplicateMessageError):
                thief.decrypt(data)
        else:
            thief.decrypt(data)


@settings(max_examples=30, deadline=None)
@given(
    before=st.lists(st.sampled_from(["a", "b"]), max_size=6),
    burst=st.integers(1, 4),
)
def test_post_compromise_recovery(before: list[str], burst: int) -> None:
    """An attacker holding Bob's old state and all later traffic loses track after a round trip."""
    alice, bob = established()
    for sender in before:
        if sender == "a":
            bob.decrypt(alice.encrypt(b"x"))
        else:
            alice.decrypt(bob.encrypt(b"y"))
    attacker = RatchetSession.from_bytes(bob.to_bytes())

    def alice_to_bob(text: bytes) -> bytes:
        data = alice.encrypt(text)
        assert bob.decrypt(data) == text
        with contextlib.suppress(OmegaError):
            attacker.decrypt(data)  # the passive attacker follows along while it can
        return data

    # One round trip of DH ratchet steps in each direction.
    alice_to_bob(b"1")
    alice.decrypt(bob.encrypt(b"2"))
    alice_to_bob(b"3")
    alice.decrypt(bob.encrypt(b"4"))
    final = [alice.encrypt(b"secret %d" % i) for i in range(burst)]
    witness = RatchetSession.from_bytes(bob.to_bytes())
    for data in final:
        with pytest.raises((CryptoError, ProtocolError)):
            attacker.decrypt(data)
        assert witness.decrypt(data).startswith(b"secret")  # a current state still can


# --- serialization -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(script=actions)
def test_state_round_trips_bit_exact(script) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair()
    talk = Conversation(alice, bob)
    talk.send("alice")
    for action, who, index in script:
        if action == "send":
            talk.send(who)
        else:
            talk.deliver(who, index)
    for session in (alice, bob):
        data = session.to_bytes()
        loaded = RatchetSession.from_bytes(data)
        assert loaded.to_bytes() == data
        assert loaded.remote_device_key == session.remote_device_key
        assert loaded.associated_data == session.associated_data
    # Loaded sessions carry on the conversation.
    talk.alice, talk.bob = clone(alice), clone(bob)
    for recipient in ("alice", "bob"):
        while talk.in_flight[recipient]:
            talk.deliver(recipient, 0)


def test_fresh_responder_state_round_trips() -> None:
    _, bob = pair()
    data = bob.to_bytes()
    assert RatchetSession.from_bytes(data).to_bytes() == data


def _state_cases(session: RatchetSession) -> list[tuple[str, bytes]]:
    cases = []

    def mutate(name: str, change: object) -> None:
        state = decode_message(RatchetSessionState, session.to_bytes())
        change(state)  # type: ignore[operator]
        cases.append((name, encode_message(state)))

    mutate("version", lambda s: setattr(s, "version", 9))
    mutate("identity key", lambda s: setattr(s, "remote_identity_key", bytes(32)))
    mutate("device key", lambda s: setattr(s, "local_device_key", b"x"))
    mutate("root key", lambda s: setattr(s, "root_key", b"x"))
    mutate("base key", lambda s: setattr(s, "base_key", b"\xff" * 32))
    mutate("chain key", lambda s: setattr(s, "sending_chain_key", b"x"))
    mutate("chain without key", lambda s: setattr(s, "sending_ratchet_private_key", b""))
    mutate(
        "no ratchet keys",
        lambda s: (
            setattr(s, "sending_ratchet_private_key", b""),
            setattr(s, "sending_chain_key", b""),
            setattr(s, "receiving_ratchet_key", b""),
            setattr(s, "receiving_chain_key", b""),
        ),
    )
    mutate("receiving chain without key", lambda s: setattr(s, "receiving_ratchet_key", b""))
    mutate("remote ratchet key", lambda s: setattr(s, "receiving_ratchet_key", b"\xff" * 32))
    mutate("counter", lambda s: setattr(s, "sending_message_number", 2**33))
    mutate(
        "duplicate skipped",
        lambda s: setattr(
            s, "skipped_message_keys", s.skipped_message_keys + s.skipped_message_keys[:68]
        ),
    )
    mutate(
        "truncated record",
        lambda s: setattr(s, "skipped_message_keys", s.skipped_message_keys[:-1]),
    )
    mutate(
        "short record", lambda s: setattr(s, "skipped_message_keys", s.skipped_message_keys[:20])
    )
    mutate(
        "skipped ratchet key",
        lambda s: setattr(s, "skipped_message_keys", b"\xff" * 32 + s.skipped_message_keys[32:]),
    )
    mutate("previous key", lambda s: s.previous_receiving_ratchet_keys.append(b"\xff" * 32))
    mutate(
        "too many previous keys",
        lambda s: s.previous_receiving_ratchet_keys.extend([BASE_KEY] * 20),
    )
    data = session.to_bytes()
    cases.append(("unknown field", data + b"\xa0\x06\x01"))
    cases.append(("repeated scalar", data + b"\x08\x01"))
    cases.append(("truncated", data[:-1]))
    cases.append(("garbage", b"\xff\xff"))
    return cases


def test_invalid_states_are_refused() -> None:
    alice, bob = established()
    alice.decrypt(bob.encrypt(b"r"))
    messages = [alice.encrypt(b"%d" % i) for i in range(3)]
    bob.decrypt(messages[2])
    bob.encrypt(b"a sending chain too")
    assert bob.skipped_message_key_count == 2
    for name, data in _state_cases(bob):
        try:
            RatchetSession.from_bytes(data)
        except MessageDecodeError:
            continue
        pytest.fail(f"state with {name} was accepted")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_state_bytes_raise_only_typed_errors(data: bytes) -> None:
    try:
        loaded = RatchetSession.from_bytes(data)
    except OmegaError:
        return
    assert loaded.to_bytes() == data


def test_loading_with_a_smaller_bound_evicts_the_oldest_keys() -> None:
    alice, bob = established()
    messages = [alice.encrypt(b"%d" % i) for i in range(6)]
    bob.decrypt(messages[5])
    smaller = SessionConfig(max_skip=2, max_skipped_keys=2)
    loaded = RatchetSession.from_bytes(bob.to_bytes(), config=smaller)
    assert loaded.skipped_message_key_count == 2
    with pytest.raises(DuplicateMessageError):
        loaded.decrypt(messages[0])
    assert loaded.decrypt(messages[4]) == b"4"


# --- configuration and local errors -------------------------------------------


def test_defaults() -> None:
    config = SessionConfig()
    assert (
        (config.max_skip, config.max_skipped_keys) == (MAX_SKIP, MAX_SKIPPED_KEYS) == (1000, 2000)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_skip": -1},
        {"max_skip": 50_001, "max_skipped_keys": 50_001},
        {"max_skip": 10, "max_skipped_keys": 9},
        {"max_plaintext_size": 0},
        {"max_plaintext_size": 2**20 + 1},
        {"max_skip": True},
    ],
)
def test_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SessionConfig(**kwargs)  # type: ignore[arg-type]


def test_encrypt_refuses_bad_plaintexts() -> None:
    alice, _ = pair(SessionConfig(max_plaintext_size=10))
    before = alice.to_bytes()
    with pytest.raises(ConfigurationError):
        alice.encrypt(b"x" * 11)
    with pytest.raises(ConfigurationError):
        alice.encrypt("text")  # type: ignore[arg-type]
    assert alice.to_bytes() == before
    assert alice.encrypt(b"x" * 10)


def test_oversized_ciphertext_is_refused_before_decryption() -> None:
    small = SessionConfig(max_plaintext_size=10)
    alice, _ = pair()
    _, bob = pair(small)
    with pytest.raises(MessageDecodeError):
        bob.decrypt(alice.encrypt(b"y" * 11))


def test_responder_cannot_send_first() -> None:
    _, bob = pair()
    with pytest.raises(LocalProtocolError):
        bob.encrypt(b"too early")


def test_exhausted_sending_chain_is_refused() -> None:
    alice, _ = pair()
    state = decode_message(RatchetSessionState, alice.to_bytes())
    state.sending_message_number = 2**32 - 1
    exhausted = RatchetSession.from_bytes(encode_message(state))
    with pytest.raises(LocalProtocolError):
        exhausted.encrypt(b"x")


def test_shared_secret_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        RatchetSession.for_responder(
            shared_secret=b"short",
            ratchet_private_key=SPK_PRIVATE,
            local_identity_key=BOB_IDENTITY,
            local_device_key=BOB_DEVICE,
            remote_identity_key=ALICE_IDENTITY,
            remote_device_key=ALICE_DEVICE,
            base_key=BASE_KEY,
        )


def test_repr_hides_secrets() -> None:
    alice, bob = pair()
    assert "initiator" in repr(alice)
    assert "responder" in repr(bob)
    assert SHARED_SECRET.hex() not in repr(alice)


def test_largest_state_fits_a_key_store_value() -> None:
    """A session at the configuration limits still loads, and fits in omega.storage."""
    largest = SessionConfig(max_skip=50_000, max_skipped_keys=50_000)
    alice, _ = pair(largest)
    state = decode_message(RatchetSessionState, alice.to_bytes())
    state.sending_message_number = state.receiving_message_number = 2**32
    state.previous_sending_chain_length = 2**32
    state.previous_receiving_ratchet_keys = [BASE_KEY] * MAX_PREVIOUS_RATCHET_KEYS
    state.skipped_message_keys = b"".join(
        BASE_KEY + (2**32 - 1 - i).to_bytes(4, "big") + bytes(32) for i in range(50_000)
    )
    data = encode_message(state)
    assert len(data) <= MAX_SESSION_STATE_SIZE <= MAX_VALUE_SIZE
    assert RatchetSession.from_bytes(data, config=largest).to_bytes() == data


def test_skipped_keys_are_serialized_as_documented_records() -> None:
    alice_rng = SeededRandom(b"alice")
    alice, bob = pair(rng=alice_rng)
    messages = [alice.encrypt(b"%d" % i) for i in range(3)]
    bob.decrypt(messages[2])
    (alice_ratchet,) = alice_rng.drawn
    okm = _hkdf(_dh(alice_ratchet, _public(SPK_PRIVATE)), SHARED_SECRET, ROOT_INFO, 64)
    chain_key, first_key = _chain_step(okm[32:])
    _, second_key = _chain_step(chain_key)
    ratchet_public = _public(alice_ratchet)
    state = decode_message(RatchetSessionState, bob.to_bytes())
    assert state.skipped_message_keys == (
        ratchet_public
        + (0).to_bytes(4, "big")
        + first_key
        + ratchet_public
        + (1).to_bytes(4, "big")
        + second_key
    )


# --- pending prekey record and state versions -----------------------------------


def _pending() -> PendingPrekey:
    identity = IdentityKeyPair.from_seed(bytes([11]) * 32)
    certificate = certify_device(identity, ALICE_DEVICE, name="alice", created_at=0)
    return PendingPrekey(
        signed_prekey_id=7, one_time_prekey_id=None, device_certificate=certificate
    )


def pending_pair() -> tuple[RatchetSession, RatchetSession]:
    alice, bob = pair()
    state = decode_message(RatchetSessionState, alice.to_bytes())
    assert state.pending_prekey is None
    alice = RatchetSession.for_initiator(
        shared_secret=SHARED_SECRET,
        remote_ratchet_key=_public(SPK_PRIVATE),
        local_identity_key=ALICE_IDENTITY,
        local_device_key=ALICE_DEVICE,
        remote_identity_key=BOB_IDENTITY,
        remote_device_key=BOB_DEVICE,
        base_key=BASE_KEY,
        rng=SeededRandom(b"alice"),
        pending_prekey=_pending(),
    )
    return alice, bob


def test_pending_prekey_is_kept_until_the_first_decrypt() -> None:
    alice, bob = pending_pair()
    assert alice.pending_prekey == _pending()
    assert bob.pending_prekey is None
    bob.decrypt(alice.encrypt(b"one"))
    assert alice.pending_prekey is not None  # sending does not clear it
    data = alice.to_bytes()
    loaded = RatchetSession.from_bytes(data)
    assert loaded.to_bytes() == data
    assert loaded.pending_prekey == _pending()
    reply = bob.encrypt(b"answer")
    forged = bytearray(reply)
    forged[-1] ^= 1
    with pytest.raises(DecryptionError):
        alice.decrypt(bytes(forged))
    assert alice.pending_prekey is not None  # a failed decrypt changes nothing
    assert alice.decrypt(reply) == b"answer"
    assert alice.pending_prekey is None
    assert decode_message(RatchetSessionState, alice.to_bytes()).pending_prekey is None


def test_version_1_states_are_read_and_upgraded() -> None:
    alice, bob = established()
    for session in (alice, bob):
        state = decode_message(RatchetSessionState, session.to_bytes())
        assert state.version == SESSION_STATE_VERSION == 2
        state.version = 1
        loaded = RatchetSession.from_bytes(encode_message(state))
        assert loaded.to_bytes() == session.to_bytes()
        assert loaded.pending_prekey is None


def test_invalid_pending_records_are_refused() -> None:
    alice, _ = pending_pair()
    other_identity = IdentityKeyPair.from_seed(bytes([31]) * 32)
    cases: list[tuple[str, Callable[[RatchetSessionState], object]]] = [
        ("in version 1", lambda s: setattr(s, "version", 1)),
        ("on a responder", lambda s: setattr(s, "initiator", False)),
        ("without certificate", lambda s: setattr(s.pending_prekey, "device_certificate", None)),
        (
            "another device's certificate",
            lambda s: setattr(
                s.pending_prekey,
                "device_certificate",
                certify_device(other_identity, BOB_DEVICE, name="x", created_at=0),
            ),
        ),
        (
            "a malformed certificate",
            lambda s: setattr(s.pending_prekey.device_certificate, "certificate", b"\xff"),
        ),
    ]
    for name, change in cases:
        state = decode_message(RatchetSessionState, alice.to_bytes())
        change(state)
        with pytest.raises(MessageDecodeError):
            RatchetSession.from_bytes(encode_message(state))
        assert name
