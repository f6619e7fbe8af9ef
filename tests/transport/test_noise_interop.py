"""Our Noise XX against an independent implementation (the ``noiseprotocol`` package).

The other side is ``noise.connection.NoiseConnection`` configured with the
same protocol name and prologue, carrying Omega's HandshakePayload bytes as
its handshake payloads and Omega's one-byte record type inside its transport
messages. With the same static and ephemeral keys on both sides, our
messages are byte for byte the ones ``noiseprotocol`` produces.
"""

from __future__ import annotations

import pytest
from noise.connection import Keypair, NoiseConnection
from noise.state import CipherState as TheirCipherState

from omega.errors import HandshakeError
from omega.transport._noise_cipher import CipherState
from omega.transport._records import (
    RECORD_FRAME_END,
    RECORD_KEY_UPDATE,
    RecordReceiver,
    RecordSender,
)
from omega.transport.noise import (
    PROLOGUE,
    PROTOCOL_NAME,
    HandshakeCompleted,
    NoiseCredentials,
    NoiseHandshake,
    Role,
    decode_handshake_message,
    encode_handshake_message,
)

INITIATOR_EPHEMERAL = bytes(range(32, 64))
RESPONDER_EPHEMERAL = bytes(range(64, 96))


class FixedRandom:
    """A RandomSource returning the given byte strings, in order."""

    def __init__(self, *values: bytes) -> None:
        self._values = list(values)

    def __call__(self, size: int) -> bytes:
        value = self._values.pop(0)
        assert len(value) == size
        return value


def theirs(initiator: bool, credentials: NoiseCredentials, ephemeral: bytes) -> NoiseConnection:
    connection = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_keypair_from_private_bytes(Keypair.STATIC, credentials.static_private_key)
    connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    connection.set_prologue(PROLOGUE)
    start(connection)
    return connection


def start(connection: NoiseConnection) -> None:
    # Fixed ephemeral keys are for tests only, and noiseprotocol says so.
    with pytest.warns(UserWarning, match="ephemeral keypairs is already set"):
        connection.start_handshake()


def ours(role: Role, credentials: NoiseCredentials, ephemeral: bytes) -> NoiseHandshake:
    return NoiseHandshake(role, credentials, rng=FixedRandom(ephemeral))


def send(engine: NoiseHandshake) -> bytes:
    (message,) = engine.messages_to_send()
    return decode_handshake_message(message)


def completed(engine: NoiseHandshake) -> HandshakeCompleted:
    event = engine.next_event()
    assert isinstance(event, HandshakeCompleted)
    return event


def check_transport_messages(
    sender: RecordSender, receiver: RecordReceiver, peer: NoiseConnection
) -> None:
    """Records both ways between our record layer and their transport ciphers, across rekeys."""
    for index in range(8):
        frame = f"ours {index}".encode()
        for message in sender.seal_frame(frame):
            plaintext = bytes(peer.decrypt(message))
            if plaintext[0] == RECORD_KEY_UPDATE:
                peer.rekey_inbound_cipher()
                continue
            assert plaintext == bytes([RECORD_FRAME_END]) + frame
    assert sender.rekeys == 3  # one key per three messages: KEY_UPDATE before frames 2, 4, 6
    for index in range(8):
        frame = f"theirs {index}".encode()
        assert receiver.open(peer.encrypt(bytes([RECORD_FRAME_END]) + frame)) == frame
        if index % 3 == 2:
            assert receiver.open(peer.encrypt(bytes([RECORD_KEY_UPDATE]))) is None
            peer.rekey_outbound_cipher()
    assert receiver.rekeys == 2


def test_our_initiator_completes_with_their_responder(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator = ours(Role.INITIATOR, alice_credentials, INITIATOR_EPHEMERAL)
    responder = theirs(False, bob_credentials, RESPONDER_EPHEMERAL)
    initiator.start()
    assert bytes(responder.read_message(send(initiator))) == b""
    initiator.receive_message(
        encode_handshake_message(bytes(responder.write_message(bob_credentials.payload)))
    )
    assert bytes(responder.read_message(send(initiator))) == alice_credentials.payload
    assert responder.handshake_finished
    event = completed(initiator)
    assert event.peer.static_key == bob_credentials.static_public_key
    assert event.peer.user_id == bob_credentials.user_id
    assert event.handshake_hash == responder.get_handshake_hash()
    keys = initiator.transport_keys()
    check_transport_messages(
        RecordSender(keys.send, rekey_interval=3),
        RecordReceiver(keys.receive, max_frame_size=1 << 20),
        responder,
    )


def test_their_initiator_completes_with_our_responder(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator = theirs(True, alice_credentials, INITIATOR_EPHEMERAL)
    responder = ours(Role.RESPONDER, bob_credentials, RESPONDER_EPHEMERAL)
    responder.receive_message(encode_handshake_message(bytes(initiator.write_message(b""))))
    assert bytes(initiator.read_message(send(responder))) == bob_credentials.payload
    responder.receive_message(
        encode_handshake_message(bytes(initiator.write_message(alice_credentials.payload)))
    )
    event = completed(responder)
    assert event.peer.user_id == alice_credentials.user_id
    assert event.peer.static_key == alice_credentials.static_public_key
    assert event.handshake_hash == initiator.get_handshake_hash()
    keys = responder.transport_keys()
    check_transport_messages(
        RecordSender(keys.send, rekey_interval=3),
        RecordReceiver(keys.receive, max_frame_size=1 << 20),
        initiator,
    )


def their_transcript(alice: NoiseCredentials, bob: NoiseCredentials) -> list[bytes]:
    initiator = theirs(True, alice, INITIATOR_EPHEMERAL)
    responder = theirs(False, bob, RESPONDER_EPHEMERAL)
    first = bytes(initiator.write_message(b""))
    responder.read_message(first)
    second = bytes(responder.write_message(bob.payload))
    initiator.read_message(second)
    third = bytes(initiator.write_message(alice.payload))
    responder.read_message(third)
    return [first, second, third]


@pytest.mark.parametrize("our_role", [Role.INITIATOR, Role.RESPONDER])
def test_our_messages_are_byte_for_byte_theirs(
    our_role: Role, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    expected = their_transcript(alice_credentials, bob_credentials)
    if our_role is Role.INITIATOR:
        engine = ours(Role.INITIATOR, alice_credentials, INITIATOR_EPHEMERAL)
        engine.start()
        assert send(engine) == expected[0]
        engine.receive_message(encode_handshake_message(expected[1]))
        assert send(engine) == expected[2]
    else:
        engine = ours(Role.RESPONDER, bob_credentials, RESPONDER_EPHEMERAL)
        engine.receive_message(encode_handshake_message(expected[0]))
        assert send(engine) == expected[1]
        engine.receive_message(encode_handshake_message(expected[2]))
    assert engine.complete


def test_a_different_prologue_does_not_interoperate(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    initiator = ours(Role.INITIATOR, alice_credentials, INITIATOR_EPHEMERAL)
    responder = theirs(False, bob_credentials, RESPONDER_EPHEMERAL)
    responder.noise_protocol.prologue = b"someone else's protocol"
    start(responder)
    initiator.start()
    responder.read_message(send(initiator))
    with pytest.raises(HandshakeError, match="authentication"):
        initiator.receive_message(
            encode_handshake_message(bytes(responder.write_message(bob_credentials.payload)))
        )


def test_cipher_state_transport_messages_match_theirs_across_nonces() -> None:
    key = bytes(range(32))
    for nonce in (0, 1, 255, 256, 2**32 + 5):
        ours_cipher = CipherState(key)
        ours_cipher.nonce = nonce
        peer = NoiseConnection.from_name(PROTOCOL_NAME)
        their_cipher = TheirCipherState(peer.noise_protocol)
        their_cipher.initialize_key(key)
        their_cipher.n = nonce
        assert ours_cipher.encrypt_with_ad(b"ad", b"payload") == their_cipher.encrypt_with_ad(
            b"ad", b"payload"
        )
        ours_cipher.rekey()
        their_cipher.rekey()
        ours_cipher.nonce = 9
        their_cipher.n = 9
        assert ours_cipher.encrypt_with_ad(b"", b"x") == their_cipher.encrypt_with_ad(b"", b"x")
