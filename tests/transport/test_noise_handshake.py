"""The sans-I/O Noise XX handshake: engines wired back to back, tampering, identities, misuse."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import SeededRandom, make_identity

from omega.crypto import Identity, certify_device
from omega.errors import (
    ConfigurationError,
    HandshakeError,
    LocalProtocolError,
    PeerIdentityMismatchError,
    TransportError,
)
from omega.protocol import HandshakeMessage, HandshakePayload, encode_message
from omega.transport.noise import (
    _TRANSITIONS,
    PROTOCOL_NAME,
    STATIC_KEY_CONTEXT,
    HandshakeCompleted,
    HandshakeInput,
    HandshakeState,
    NoiseCredentials,
    NoiseHandshake,
    Role,
    decode_handshake_message,
    encode_handshake_message,
)

Tamper = dict[int, bytes]  # message index -> the bytes delivered instead


def run_handshake(
    initiator: NoiseHandshake, responder: NoiseHandshake, tamper: Tamper | None = None
) -> list[bytes]:
    """Drive two engines to completion; return the three messages as sent."""
    tamper = tamper or {}
    sent: list[bytes] = []
    initiator.start()
    sides = [(initiator, responder), (responder, initiator)]
    for index in range(3):
        writer, reader = sides[index % 2]
        (message,) = writer.messages_to_send()
        sent.append(message)
        reader.receive_message(tamper.get(index, message))
    assert initiator.messages_to_send() == []
    assert responder.messages_to_send() == []
    return sent


def pair(
    alice: NoiseCredentials, bob: NoiseCredentials, **expected: object
) -> tuple[NoiseHandshake, NoiseHandshake]:
    initiator = NoiseHandshake(Role.INITIATOR, alice, rng=SeededRandom(b"i"), **expected)  # type: ignore[arg-type]
    responder = NoiseHandshake(Role.RESPONDER, bob, rng=SeededRandom(b"r"))
    return initiator, responder


def completed(engine: NoiseHandshake) -> HandshakeCompleted:
    event = engine.next_event()
    assert isinstance(event, HandshakeCompleted)
    assert engine.next_event() is None
    return event


def test_a_handshake_authenticates_both_devices_and_agrees_on_keys(
    alice: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    initiator, responder = pair(alice_credentials, bob_credentials, expected_user_id=bob.user_id)
    messages = run_handshake(initiator, responder)
    assert initiator.complete
    assert responder.complete
    assert initiator.state is HandshakeState.ESTABLISHED
    on_alice, on_bob = completed(initiator), completed(responder)
    assert on_alice.peer.user_id == bob.user_id
    assert on_alice.peer.device_key == bob.device.device_key
    assert on_alice.peer.identity_key == bob.identity_key
    assert on_alice.peer.static_key == bob_credentials.static_public_key
    assert on_alice.peer.device_id == bob.device.device_id
    assert on_bob.peer.user_id == alice.user_id
    assert on_bob.peer.device_key == alice.device.device_key
    assert on_alice.handshake_hash == on_bob.handshake_hash
    assert len(on_alice.handshake_hash) == 32
    alice_keys, bob_keys = initiator.transport_keys(), responder.transport_keys()
    assert bob_keys.receive.decrypt_with_ad(b"", alice_keys.send.encrypt_with_ad(b"", b"hi")) == (
        b"hi"
    )
    assert alice_keys.receive.decrypt_with_ad(b"", bob_keys.send.encrypt_with_ad(b"", b"yo")) == (
        b"yo"
    )
    # -> e carries only the 32-byte ephemeral key; the others carry encrypted keys and payloads.
    assert decode_handshake_message(messages[0]) == messages[0][4:]
    assert len(decode_handshake_message(messages[0])) == 32
    assert len(decode_handshake_message(messages[1])) == 32 + 48 + len(bob_credentials.payload) + 16
    assert len(decode_handshake_message(messages[2])) == 48 + len(alice_credentials.payload) + 16


def test_the_wrong_user_is_refused_before_the_dialer_reveals_itself(
    mallory: Identity, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator, responder = pair(
        alice_credentials, bob_credentials, expected_user_id=mallory.user_id
    )
    initiator.start()
    responder.receive_message(initiator.messages_to_send()[0])
    with pytest.raises(PeerIdentityMismatchError, match="expected user") as info:
        initiator.receive_message(responder.messages_to_send()[0])
    assert info.value.details["actual"] != mallory.user_id
    assert isinstance(info.value, HandshakeError)
    assert isinstance(info.value, TransportError)
    assert initiator.messages_to_send() == []  # message 3, and our identity, never leave
    assert initiator.state is HandshakeState.FAILED
    with pytest.raises(LocalProtocolError):
        initiator.transport_keys()


def test_the_wrong_device_of_the_right_user_is_refused(
    bob: Identity, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator, responder = pair(
        alice_credentials,
        bob_credentials,
        expected_user_id=bob.user_id.upper(),
        expected_device_key=bytes(32),
    )
    with pytest.raises(PeerIdentityMismatchError, match="not the device expected"):
        run_handshake(initiator, responder)


def test_a_responder_may_expect_a_user_too(
    mallory: Identity, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator = NoiseHandshake(Role.INITIATOR, alice_credentials)
    responder = NoiseHandshake(Role.RESPONDER, bob_credentials, expected_user_id=mallory.user_id)
    with pytest.raises(PeerIdentityMismatchError):
        run_handshake(initiator, responder)


def test_an_invalid_expected_user_id_is_a_configuration_error(
    alice_credentials: NoiseCredentials,
) -> None:
    with pytest.raises(ConfigurationError, match="expected_user_id"):
        NoiseHandshake(Role.INITIATOR, alice_credentials, expected_user_id="omega1nope")


@settings(max_examples=300, deadline=None)
@given(
    message=st.integers(0, 2),
    position=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_any_bit_flipped_in_any_handshake_message_fails_with_a_typed_error(
    message: int, position: int, bit: int
) -> None:
    alice = _credentials("alice")
    bob = _credentials("bob")
    original = _reference()[message]
    flipped = bytearray(original)
    flipped[position % len(original)] ^= 1 << bit
    initiator, responder = pair(alice, bob)
    with pytest.raises(HandshakeError):
        run_handshake(initiator, responder, {message: bytes(flipped)})
    assert not (initiator.complete and responder.complete)


@settings(max_examples=100, deadline=None)
@given(message=st.integers(0, 2), data=st.data())
def test_any_truncation_or_extension_fails_with_a_typed_error(
    message: int, data: st.DataObject
) -> None:
    alice = _credentials("alice")
    bob = _credentials("bob")
    original = _reference()[message]
    cut = data.draw(st.integers(0, len(original) - 1))
    for changed in (original[:cut], original + data.draw(st.binary(min_size=1, max_size=8))):
        initiator, responder = pair(alice, bob)
        with pytest.raises(HandshakeError):
            run_handshake(initiator, responder, {message: changed})


_CREDENTIALS: dict[str, NoiseCredentials] = {}
_REFERENCE: list[bytes] = []


def _reference() -> list[bytes]:
    """The three messages of the deterministic alice-bob handshake (computed once)."""
    if not _REFERENCE:
        _REFERENCE.extend(run_handshake(*pair(_credentials("alice"), _credentials("bob"))))
    return _REFERENCE


def _credentials(name: str) -> NoiseCredentials:
    if name not in _CREDENTIALS:
        _CREDENTIALS[name] = NoiseCredentials.from_identity(
            make_identity(name), rng=SeededRandom(name.encode() + b"-static")
        )
    return _CREDENTIALS[name]


def test_a_message_replayed_from_another_handshake_fails(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    old = run_handshake(*pair(alice_credentials, bob_credentials))
    initiator = NoiseHandshake(Role.INITIATOR, alice_credentials, rng=SeededRandom(b"other"))
    responder = NoiseHandshake(Role.RESPONDER, bob_credentials, rng=SeededRandom(b"r2"))
    with pytest.raises(HandshakeError, match="authentication"):
        run_handshake(initiator, responder, {1: old[1]})


@pytest.mark.parametrize(
    ("wrapper", "reason"),
    [
        (HandshakeMessage(version=2, noise_message=bytes(32)), "unsupported handshake version"),
        (HandshakeMessage(version=0, noise_message=bytes(32)), "unsupported handshake version"),
        (HandshakeMessage(version=1, noise_message=bytes(33)), "exactly 32 bytes"),
        (HandshakeMessage(version=1, noise_message=b""), "exactly 32 bytes"),
    ],
)
def test_malformed_first_messages_are_refused(
    bob_credentials: NoiseCredentials, wrapper: HandshakeMessage, reason: str
) -> None:
    responder = NoiseHandshake(Role.RESPONDER, bob_credentials)
    with pytest.raises(HandshakeError, match=reason):
        responder.receive_message(encode_message(wrapper))
    assert responder.state is HandshakeState.FAILED


def test_a_non_canonical_wrapper_or_garbage_is_refused(bob_credentials: NoiseCredentials) -> None:
    canonical = encode_handshake_message(bytes(range(32)))
    for data, reason in [
        (canonical + b"\x18\x01", "canonically"),  # an unknown field 3 appended
        (b"\x12\x20" + bytes(range(32)) + b"\x08\x01", "canonically"),  # fields reordered
        (b"\xff" * 10, "handshake failed"),
        (bytes(5000), "handshake failed"),
    ]:
        responder = NoiseHandshake(Role.RESPONDER, bob_credentials)
        with pytest.raises(HandshakeError, match=reason):
            responder.receive_message(data)


def test_a_small_order_ephemeral_key_is_refused(bob_credentials: NoiseCredentials) -> None:
    responder = NoiseHandshake(Role.RESPONDER, bob_credentials)
    with pytest.raises(HandshakeError, match="X25519"):
        responder.receive_message(encode_handshake_message(bytes(32)))


def _with_payload(credentials: NoiseCredentials, payload: bytes) -> NoiseCredentials:
    forged = dataclasses.replace(credentials)
    object.__setattr__(forged, "payload", payload)
    return forged


def _payload(credentials: NoiseCredentials, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "device_certificate": credentials.device_certificate,
        "static_key_signature": credentials.device_key_pair.sign(
            STATIC_KEY_CONTEXT + credentials.static_public_key
        ),
    }
    fields.update(changes)
    return encode_message(HandshakePayload(**fields))  # type: ignore[arg-type]


def test_forged_or_mismatched_payloads_are_refused(
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    mallory_credentials: NoiseCredentials,
) -> None:
    certificate = bob_credentials.device_certificate
    bad_signature = type(certificate)(certificate=certificate.certificate, signature=bytes(64))
    payloads = {
        # Mallory replays Bob's payload: it signs Bob's static key, not hers.
        "does not verify": _payload(
            bob_credentials,
            static_key_signature=bob_credentials.device_key_pair.sign(
                STATIC_KEY_CONTEXT + mallory_credentials.static_public_key
            ),
        ),
        "signature": _payload(bob_credentials, static_key_signature=b"short"),
        "no device certificate": _payload(bob_credentials, device_certificate=None),
        "handshake failed": _payload(bob_credentials, device_certificate=bad_signature),
        "HandshakePayload": b"\xff\xff",
    }
    for reason, payload in payloads.items():
        initiator = NoiseHandshake(Role.INITIATOR, alice_credentials)
        responder = NoiseHandshake(Role.RESPONDER, _with_payload(bob_credentials, payload))
        with pytest.raises(HandshakeError, match=reason):
            run_handshake(initiator, responder)
        assert not initiator.complete


def test_a_certificate_from_another_identity_makes_the_peer_that_identity(
    bob: Identity, mallory: Identity, alice_credentials: NoiseCredentials
) -> None:
    # Mallory certifies Bob's device key: it verifies, but as one of *Mallory's* devices.
    stolen = certify_device(mallory.key_pair, bob.device.device_key, name="stolen", created_at=0)
    forged = NoiseCredentials(bob.device.key_pair, stolen, bytes([7]) * 32)
    initiator = NoiseHandshake(Role.INITIATOR, alice_credentials, expected_user_id=bob.user_id)
    with pytest.raises(PeerIdentityMismatchError):
        run_handshake(initiator, NoiseHandshake(Role.RESPONDER, forged))


def test_inputs_outside_the_table_are_local_errors_and_kill_the_handshake(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    responder = NoiseHandshake(Role.RESPONDER, bob_credentials)
    with pytest.raises(LocalProtocolError, match="cannot start in state responder_start"):
        responder.start()
    assert responder.state is HandshakeState.FAILED
    with pytest.raises(LocalProtocolError, match="state failed"):
        responder.receive_message(b"")
    initiator = NoiseHandshake(Role.INITIATOR, alice_credentials)
    with pytest.raises(LocalProtocolError, match="message_received"):
        initiator.receive_message(b"")
    initiator, responder = pair(alice_credentials, bob_credentials)
    run_handshake(initiator, responder)
    initiator.transport_keys()
    with pytest.raises(LocalProtocolError, match="taken"):
        initiator.transport_keys()
    with pytest.raises(LocalProtocolError):
        initiator.start()


def _engine_in(
    state: HandshakeState, alice: NoiseCredentials, bob: NoiseCredentials
) -> tuple[NoiseHandshake, bytes]:
    """An engine in ``state``, with the message it would validly receive next (if any)."""
    initiator, responder = pair(alice, bob)
    if state is HandshakeState.INITIATOR_START:
        return initiator, b""
    initiator.start()
    first = initiator.messages_to_send()[0]
    if state is HandshakeState.AWAITING_MESSAGE_2:
        responder.receive_message(first)
        return initiator, responder.messages_to_send()[0]
    if state is HandshakeState.RESPONDER_START:
        return responder, first
    responder.receive_message(first)
    if state is HandshakeState.AWAITING_MESSAGE_3:
        initiator.receive_message(responder.messages_to_send()[0])
        return responder, initiator.messages_to_send()[0]
    if state is HandshakeState.ESTABLISHED:
        initiator.receive_message(responder.messages_to_send()[0])
        return initiator, b""
    with pytest.raises(HandshakeError):
        initiator.receive_message(b"garbage")
    return initiator, b""


@pytest.mark.parametrize("state", list(HandshakeState))
@pytest.mark.parametrize("event", list(HandshakeInput))
def test_the_transition_table_is_the_whole_state_machine(
    state: HandshakeState,
    event: HandshakeInput,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    engine, message = _engine_in(state, alice_credentials, bob_credentials)
    assert engine.state is state
    target = _TRANSITIONS.get((state, event))
    act = (
        engine.start if event is HandshakeInput.START else (lambda: engine.receive_message(message))
    )
    if target is None:
        with pytest.raises(LocalProtocolError):
            act()
        assert engine.state is HandshakeState.FAILED
    else:
        act()
        assert engine.state is target


def test_credentials_check_what_they_are_built_from(
    alice: Identity, bob: Identity, alice_credentials: NoiseCredentials
) -> None:
    assert alice_credentials.user_id == alice.user_id
    assert len(alice_credentials.static_public_key) == 32
    assert "static_private_key" not in repr(alice_credentials)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        NoiseCredentials(alice.device.key_pair, alice_credentials.device_certificate, b"short")
    with pytest.raises(ConfigurationError, match="another device key"):
        NoiseCredentials(bob.device.key_pair, alice_credentials.device_certificate, bytes(32))
    broken = type(alice_credentials.device_certificate)(certificate=b"\x01", signature=b"")
    with pytest.raises(ConfigurationError, match="unusable device certificate"):
        NoiseCredentials(alice.device.key_pair, broken, bytes(32))


def test_the_protocol_name_is_the_one_of_the_spec() -> None:
    assert PROTOCOL_NAME == b"Noise_XX_25519_ChaChaPoly_SHA256"
    assert len(PROTOCOL_NAME) == 32
