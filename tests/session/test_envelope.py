"""Signed message envelopes: sealing, verification, and the exact signature input."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_helpers import ALICE, BOB, CAROL, NOW, User, make_user

from omega.crypto import DeviceKeyPair
from omega.crypto._ed25519 import verify_signature
from omega.errors import (
    ConfigurationError,
    InvalidEnvelopeError,
    InvalidKeyError,
    InvalidSignatureError,
    MessageDecodeError,
)
from omega.protocol import (
    EncryptionKind,
    Frame,
    Message,
    MessageType,
    decode_message,
    encode_message,
)
from omega.session.envelope import (
    ENVELOPE_SIGNATURE_CONTEXT,
    MAX_CIPHERTEXT_SIZE,
    EnvelopeInfo,
    seal_envelope,
    signature_input,
    verify_envelope,
)
from omega.testing.random import SeededRandom

MESSAGE_ID = "0192e3a4-5b6c-7d8e-9f01-23456789abcd"
CIPHERTEXT = b"\x0a\x20" + bytes(range(32)) + b"\x12\x05hello"


def seal(**overrides: Any) -> Message:
    """An envelope from ALICE's device to BOB's device; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "sender_id": ALICE.user_id,
        "recipient_id": BOB.user_id,
        "recipient_device_key": BOB.device_key,
        "timestamp": NOW,
        "encryption": EncryptionKind.RATCHET,
        "encrypted_content": CIPHERTEXT,
    }
    fields.update(overrides)
    return seal_envelope(ALICE.device, **fields)


def refusal(message: Message, *, local_device_key: bytes = BOB.device_key) -> InvalidEnvelopeError:
    """The error ``verify_envelope`` raises for ``message`` (fails the test if it accepts)."""
    with pytest.raises(InvalidEnvelopeError) as caught:
        verify_envelope(message, local_device_key=local_device_key)
    return caught.value


def through_the_wire(message: Message) -> Message:
    """``message`` as the recipient decodes it from a frame."""
    frame = decode_message(Frame, encode_message(Frame(message=message)))
    assert frame.message is not None
    return frame.message


# -- round trip ------------------------------------------------------------------------


def test_sealed_envelope_verifies_after_a_trip_over_the_wire() -> None:
    message = seal(encryption=EncryptionKind.PREKEY)
    info = verify_envelope(through_the_wire(message), local_device_key=BOB.device_key)
    assert info == EnvelopeInfo(
        message_id=MESSAGE_ID,
        sender_id=ALICE.user_id,
        recipient_id=BOB.user_id,
        sender_device_key=ALICE.device_key,
        timestamp=NOW,
        encryption=EncryptionKind.PREKEY,
    )
    assert isinstance(info.encryption, EncryptionKind)


def test_sealed_envelope_has_no_clear_text_metadata() -> None:
    message = seal()
    assert message.type == MessageType.TEXT
    assert message.reply_to is None
    assert message.ttl_days is None
    assert message.ttl_seconds is None
    assert message.mentions == []
    assert message.sender_device_key == ALICE.device_key
    assert message.recipient_device_key == BOB.device_key
    assert len(message.signature) == 64


@pytest.mark.parametrize("encryption", list(EncryptionKind))
def test_every_encryption_kind_round_trips(encryption: EncryptionKind) -> None:
    info = verify_envelope(
        through_the_wire(seal(encryption=encryption)), local_device_key=BOB.device_key
    )
    assert info.encryption is encryption


def test_upper_case_sender_id_verifies_and_is_reported_lower_case() -> None:
    message = seal(sender_id=ALICE.user_id.upper())
    info = verify_envelope(message, local_device_key=BOB.device_key)
    assert info.sender_id == ALICE.user_id


def test_a_copy_for_our_own_other_device_verifies() -> None:
    # Conversation id = the contact, device = one of our own.
    message = seal(recipient_id=CAROL.user_id)
    assert verify_envelope(message, local_device_key=BOB.device_key).recipient_id == CAROL.user_id


def test_signing_is_deterministic() -> None:
    assert encode_message(seal()) == encode_message(seal())


# -- every field tampered ------------------------------------------------------------------

OTHER_KEY = DeviceKeyPair.from_seed(bytes([9]) * 32).public_key


def _flip_first_byte(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


# (field, tampered value, reason)
TAMPERED_FIELDS: list[tuple[str, object, str]] = [
    ("message_id", MESSAGE_ID.replace("0192", "0193"), "bad_signature"),
    ("sender_id", CAROL.user_id, "bad_signature"),
    ("recipient_id", CAROL.user_id, "bad_signature"),
    ("type", MessageType.IMAGE, "cleartext_metadata"),
    ("timestamp", NOW + 1, "bad_signature"),
    ("encryption", EncryptionKind.PREKEY, "bad_signature"),
    ("sender_device_key", OTHER_KEY, "bad_signature"),
    ("recipient_device_key", OTHER_KEY, "wrong_device"),
    ("encrypted_content", CIPHERTEXT + b"\x00", "bad_signature"),
    ("encrypted_content", _flip_first_byte(CIPHERTEXT), "bad_signature"),
    ("signature", None, "bad_signature"),
]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    TAMPERED_FIELDS,
    ids=[f"{field}-{index}" for index, (field, _, _) in enumerate(TAMPERED_FIELDS)],
)
def test_every_tampered_field_is_refused(field: str, value: object, reason: str) -> None:
    message = seal()
    if field == "signature":
        value = _flip_first_byte(message.signature)
    tampered = through_the_wire(dataclasses.replace(message, **{field: value}))
    error = refusal(tampered)
    assert error.details["reason"] == reason
    assert error.code == "invalid_envelope"
    assert repr(tampered.message_id) in error.message


def test_tampered_recipient_device_key_fails_the_signature_when_it_names_the_verifier() -> None:
    # Someone re-addresses Alice's envelope to Carol's device: Carol refuses it.
    tampered = dataclasses.replace(seal(), recipient_device_key=CAROL.device_key)
    error = refusal(tampered, local_device_key=CAROL.device_key)
    assert error.details["reason"] == "bad_signature"
    assert isinstance(error.__cause__, InvalidSignatureError)


def test_bad_signature_has_the_signature_error_as_cause() -> None:
    message = seal()
    tampered = dataclasses.replace(message, timestamp=message.timestamp - 1)
    assert isinstance(refusal(tampered).__cause__, InvalidSignatureError)


def test_envelope_for_another_device_is_refused_before_anything_else() -> None:
    # Even a garbage envelope is refused first for being addressed elsewhere.
    error = refusal(Message(recipient_device_key=OTHER_KEY), local_device_key=BOB.device_key)
    assert error.details["reason"] == "wrong_device"
    error = refusal(seal(), local_device_key=CAROL.device_key)
    assert error.details["reason"] == "wrong_device"


def test_signature_by_another_key_is_refused() -> None:
    message = seal()
    forged = dataclasses.replace(
        message, signature=CAROL.device.key_pair.sign(signature_input(message))
    )
    error = refusal(forged)
    assert error.details["reason"] == "bad_signature"


def test_signature_by_the_identity_key_instead_of_the_device_is_refused() -> None:
    message = seal()
    forged = dataclasses.replace(message, signature=ALICE.identity.sign(signature_input(message)))
    assert refusal(forged).details["reason"] == "bad_signature"


def test_another_device_claiming_the_sender_id_verifies_here() -> None:
    # Whether the device belongs to sender_id is the caller's check (docstring):
    # the envelope check only proves the named device signed it.
    message = seal_envelope(
        CAROL.device,
        message_id=MESSAGE_ID,
        sender_id=ALICE.user_id,
        recipient_id=BOB.user_id,
        recipient_device_key=BOB.device_key,
        timestamp=NOW,
        encryption=EncryptionKind.RATCHET,
        encrypted_content=CIPHERTEXT,
    )
    info = verify_envelope(message, local_device_key=BOB.device_key)
    assert info.sender_device_key == CAROL.device_key
    assert info.sender_id == ALICE.user_id


def test_signature_input_of_a_different_context_does_not_verify() -> None:
    message = seal()
    data = signature_input(message)
    assert data.startswith(ENVELOPE_SIGNATURE_CONTEXT)
    other_context = b"omega/message/v2" + data[len(ENVELOPE_SIGNATURE_CONTEXT) :]
    forged = dataclasses.replace(message, signature=ALICE.device.key_pair.sign(other_context))
    assert refusal(forged).details["reason"] == "bad_signature"


# -- clear-text metadata -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reply_to", MESSAGE_ID),
        ("reply_to", ""),
        ("ttl_days", 1),
        ("ttl_days", 0),
        ("ttl_seconds", 60),
        ("ttl_seconds", 0),
        ("mentions", [CAROL.user_id]),
        ("type", MessageType.REACTION),
        ("type", MessageType.DELETE),
        ("type", MessageType(99)),
        ("type", MessageType(-1)),
    ],
)
def test_clear_text_metadata_is_refused(field: str, value: object) -> None:
    tampered = through_the_wire(dataclasses.replace(seal(), **{field: value}))
    assert refusal(tampered).details["reason"] == "cleartext_metadata"


@pytest.mark.parametrize("message_type", [t for t in MessageType if t != MessageType.TEXT])
def test_every_non_text_type_is_refused(message_type: MessageType) -> None:
    tampered = dataclasses.replace(seal(), type=message_type)
    assert refusal(tampered).details["reason"] == "cleartext_metadata"


def test_metadata_is_checked_before_the_signature() -> None:
    # A well-signed envelope with metadata set is still refused, for the metadata.
    message = dataclasses.replace(seal(), reply_to=MESSAGE_ID, signature=b"\x00" * 64)
    assert refusal(message).details["reason"] == "cleartext_metadata"


# -- sizes ---------------------------------------------------------------------------------


def test_ciphertext_of_exactly_the_limit_is_accepted() -> None:
    message = seal(encrypted_content=b"\x5a" * MAX_CIPHERTEXT_SIZE)
    info = verify_envelope(through_the_wire(message), local_device_key=BOB.device_key)
    assert info.message_id == MESSAGE_ID


def test_received_ciphertext_over_the_limit_is_refused() -> None:
    message = seal()
    big = dataclasses.replace(message, encrypted_content=b"\x5a" * (MAX_CIPHERTEXT_SIZE + 1))
    big.signature = ALICE.device.key_pair.sign(signature_input(big))
    error = refusal(big)
    assert error.details["reason"] == "too_large"
    assert str(MAX_CIPHERTEXT_SIZE) in error.message


def test_empty_ciphertext_is_refused() -> None:
    message = seal()
    empty = dataclasses.replace(message, encrypted_content=b"")
    empty.signature = ALICE.device.key_pair.sign(signature_input(empty))
    assert refusal(empty).details["reason"] == "no_content"


# -- malformed ids and keys ----------------------------------------------------------------


def _resigned(**fields: object) -> Message:
    """An envelope with ``fields`` replaced and a valid signature over the result."""
    message = dataclasses.replace(seal(), **fields)
    message.signature = ALICE.device.key_pair.sign(signature_input(message))
    return message


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"message_id": ""}, "bad_message_id"),
        ({"message_id": "m" * 257}, "bad_message_id"),
        ({"sender_id": ""}, "bad_sender_id"),
        ({"sender_id": "not a user id"}, "bad_sender_id"),
        (
            {"sender_id": ALICE.user_id[:-1] + ("q" if ALICE.user_id[-1] != "q" else "p")},
            "bad_sender_id",
        ),
        ({"sender_id": ALICE.user_id + "q"}, "bad_sender_id"),
        ({"recipient_id": ""}, "bad_recipient_id"),
        ({"recipient_id": "r" * 257}, "bad_recipient_id"),
        ({"sender_device_key": b""}, "bad_device_key"),
        ({"sender_device_key": ALICE.device_key[:31]}, "bad_device_key"),
        ({"sender_device_key": ALICE.device_key + b"\x00"}, "bad_device_key"),
        ({"signature": b""}, "bad_signature_size"),
        ({"signature": b"\x01" * 63}, "bad_signature_size"),
        ({"signature": b"\x01" * 65}, "bad_signature_size"),
    ],
)
def test_malformed_ids_and_keys_are_refused(fields: dict[str, object], reason: str) -> None:
    if "signature" in fields:
        message = dataclasses.replace(seal(), **fields)
    else:
        message = _resigned(**fields)
    assert refusal(through_the_wire(message)).details["reason"] == reason


def test_ids_of_256_characters_are_accepted() -> None:
    message = seal(message_id="m" * 256, recipient_id="é" * 256)
    info = verify_envelope(through_the_wire(message), local_device_key=BOB.device_key)
    assert info.message_id == "m" * 256
    assert info.recipient_id == "é" * 256


def test_unusable_sender_device_key_is_refused_with_the_key_error_as_cause() -> None:
    # 32 bytes that are not a valid Ed25519 point (y = 2 has no x on the curve).
    bad_point = (2).to_bytes(32, "little")
    message = dataclasses.replace(seal(), sender_device_key=bad_point)
    error = refusal(message)
    assert error.details["reason"] == "bad_signature"
    assert isinstance(error.__cause__, InvalidKeyError)


@pytest.mark.parametrize("value", [3, 7, (1 << 31) - 1])
def test_unknown_encryption_kind_is_refused_even_when_well_signed(value: int) -> None:
    # betterproto2 decodes an unknown enum value to a pseudo-member rather than
    # failing, so this envelope decodes fine and carries a valid signature.
    received = through_the_wire(_resigned(encryption=EncryptionKind(value)))
    assert int(received.encryption) == value
    error = refusal(received)
    assert error.details["reason"] == "unknown_encryption"
    assert str(value) in error.message


def test_negative_encryption_kind_is_refused() -> None:
    # A negative int32 has no u32 signature input: it is refused before signing is checked.
    received = through_the_wire(dataclasses.replace(seal(), encryption=EncryptionKind(-1)))
    assert int(received.encryption) == -1
    assert refusal(received).details["reason"] == "unknown_encryption"


def test_sealing_with_an_unknown_encryption_kind_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown encryption kind 3") as caught:
        seal(encryption=EncryptionKind(3))
    assert caught.value.details["reason"] == "unknown_encryption"


@pytest.mark.parametrize("timestamp", [1 << 63, -(1 << 63) - 1])
def test_timestamp_outside_int64_is_refused(timestamp: int) -> None:
    # Only a locally built Message can hold one; the wire cannot.
    message = dataclasses.replace(seal(), timestamp=timestamp)
    assert refusal(message).details["reason"] == "bad_timestamp"
    with pytest.raises(ConfigurationError, match="64-bit"):
        seal(timestamp=timestamp)


def test_timestamps_at_the_int64_bounds_are_accepted() -> None:
    for timestamp in ((1 << 63) - 1, -(1 << 63)):
        message = through_the_wire(seal(timestamp=timestamp))
        assert verify_envelope(message, local_device_key=BOB.device_key).timestamp == timestamp


def test_ids_that_are_not_unicode_text_are_refused() -> None:
    # A lone surrogate cannot be encoded (only a locally built Message can hold one).
    for field, reason in (("message_id", "bad_message_id"), ("recipient_id", "bad_recipient_id")):
        message = dataclasses.replace(seal(), **{field: "a\ud800"})
        assert refusal(message).details["reason"] == reason
        with pytest.raises(ConfigurationError) as caught:
            seal(**{field: "a\ud800"})
        assert caught.value.details["reason"] == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"message_id": ""}, "bad_message_id"),
        ({"message_id": "m" * 257}, "bad_message_id"),
        ({"sender_id": "omega1"}, "bad_sender_id"),
        ({"recipient_id": ""}, "bad_recipient_id"),
        ({"encrypted_content": b""}, "no_content"),
        ({"encrypted_content": b"\x5a" * (MAX_CIPHERTEXT_SIZE + 1)}, "too_large"),
    ],
)
def test_sealing_refuses_what_verification_would_refuse(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        seal(**fields)
    assert caught.value.details["reason"] == reason


def test_sealing_for_a_malformed_device_key_is_refused() -> None:
    for key in (b"", BOB.device_key[:31], BOB.device_key + b"\x00"):
        with pytest.raises(ConfigurationError, match="32 bytes"):
            seal(recipient_device_key=key)


# -- the signature input, pinned ---------------------------------------------------------

KAT_SENDER = make_user(b"omega/tests/session/envelope-kat")
KAT_RECIPIENT_KEY = DeviceKeyPair.generate(
    SeededRandom(b"omega/tests/session/envelope-kat-recipient")
).public_key
KAT_SENDER_ID = "omega1jtqt6lrum9pwtmmdneh5tgz8zx7un8nk48q2hpae08nxwmvvu7lskkx338"
KAT_SENDER_DEVICE_KEY = "07e94000a8c62324fd059ce84dcb917c751c7b8685fe57a633bc68800b43aaba"
KAT_RECIPIENT_DEVICE_KEY = "c5a5e54f654b120e6cbda158c701ed3c9f64388f1c4683fe9ce99b637ff97dbf"
# The docstring's layout, field by field.
KAT_SIGNATURE_INPUT = "".join(
    (
        "6f6d6567612f6d6573736167652f7631",  # b"omega/message/v1"
        "00000003" + "6d2d31",  # lp("m-1")
        "00000040" + KAT_SENDER_ID.encode().hex(),  # lp(sender_id)
        "00000008" + "67726f75702dc3a9",  # lp("group-é"): 7 characters, 8 bytes
        "00000000",  # u32(type = TEXT)
        "fffffffffffffffe",  # i64(timestamp = -2), two's complement
        "00000002",  # u32(encryption = SENDER_KEY)
        "00000020" + KAT_SENDER_DEVICE_KEY,  # lp(sender_device_key)
        "00000020" + KAT_RECIPIENT_DEVICE_KEY,  # lp(recipient_device_key)
        "00000002" + "cafe",  # lp(encrypted_content)
    )
)
KAT_SIGNATURE = (
    "c76e698fac26071385165fea82bce44f9b3973d7b409687dbe3d11d2"
    "b3a3a2557aeda38bd203013788f7fcdf433e8218418911f1b5e82958cadd405f0d589a0b"
)


def _kat_message() -> Message:
    return seal_envelope(
        KAT_SENDER.device,
        message_id="m-1",
        sender_id=KAT_SENDER.user_id,
        recipient_id="group-é",
        recipient_device_key=KAT_RECIPIENT_KEY,
        timestamp=-2,
        encryption=EncryptionKind.SENDER_KEY,
        encrypted_content=b"\xca\xfe",
    )


def test_known_answer_keys() -> None:
    assert KAT_SENDER.user_id == KAT_SENDER_ID
    assert KAT_SENDER.device_key.hex() == KAT_SENDER_DEVICE_KEY
    assert KAT_RECIPIENT_KEY.hex() == KAT_RECIPIENT_DEVICE_KEY


def test_known_answer_signature_input() -> None:
    message = _kat_message()
    assert signature_input(message).hex() == KAT_SIGNATURE_INPUT


def test_known_answer_signature() -> None:
    # Ed25519 is deterministic: another implementation signing the same bytes
    # with the same key produces exactly this signature.
    message = _kat_message()
    assert message.signature.hex() == KAT_SIGNATURE
    verify_signature(KAT_SENDER.device_key, bytes.fromhex(KAT_SIGNATURE_INPUT), message.signature)
    info = verify_envelope(message, local_device_key=KAT_RECIPIENT_KEY)
    assert info.timestamp == -2


def test_signature_input_ignores_the_metadata_fields_and_the_signature() -> None:
    message = _kat_message()
    decorated = dataclasses.replace(
        message, reply_to="x", ttl_days=1, ttl_seconds=2, mentions=[KAT_SENDER_ID], signature=b""
    )
    assert signature_input(decorated) == signature_input(message)


def test_signature_input_is_length_prefixed_so_fields_cannot_shift() -> None:
    # Moving a character from one id to the next changes the signed bytes.
    a = dataclasses.replace(_kat_message(), message_id="m-1g", recipient_id="roup-é")
    assert signature_input(a) != signature_input(_kat_message())


def test_signature_input_layout_matches_the_docstring_for_every_type() -> None:
    message = dataclasses.replace(_kat_message(), type=MessageType.DELETE, timestamp=1 << 40)
    expected = b"".join(
        (
            ENVELOPE_SIGNATURE_CONTEXT,
            struct.pack(">I", 3) + b"m-1",
            struct.pack(">I", 64) + KAT_SENDER_ID.encode(),
            struct.pack(">I", 8) + "group-é".encode(),
            struct.pack(">I", 10),
            struct.pack(">q", 1 << 40),
            struct.pack(">I", 2),
            struct.pack(">I", 32) + KAT_SENDER.device_key,
            struct.pack(">I", 32) + KAT_RECIPIENT_KEY,
            struct.pack(">I", 2) + b"\xca\xfe",
        )
    )
    assert signature_input(message) == expected


# -- properties ----------------------------------------------------------------------------

IDS = st.text(min_size=1, max_size=256)
USERS = st.sampled_from([ALICE, BOB, CAROL])
TIMESTAMPS = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
CIPHERTEXTS = st.binary(min_size=1, max_size=300)


@settings(max_examples=60)
@given(
    sender=USERS,
    upper=st.booleans(),
    message_id=IDS,
    recipient_id=IDS,
    recipient_device_key=st.binary(min_size=32, max_size=32),
    timestamp=TIMESTAMPS,
    encryption=st.sampled_from(list(EncryptionKind)),
    encrypted_content=CIPHERTEXTS,
)
def test_seal_then_verify_always_passes(
    sender: User,
    upper: bool,
    message_id: str,
    recipient_id: str,
    recipient_device_key: bytes,
    timestamp: int,
    encryption: EncryptionKind,
    encrypted_content: bytes,
) -> None:
    message = seal_envelope(
        sender.device,
        message_id=message_id,
        sender_id=sender.user_id.upper() if upper else sender.user_id,
        recipient_id=recipient_id,
        recipient_device_key=recipient_device_key,
        timestamp=timestamp,
        encryption=encryption,
        encrypted_content=encrypted_content,
    )
    info = verify_envelope(through_the_wire(message), local_device_key=recipient_device_key)
    assert info == EnvelopeInfo(
        message_id=message_id,
        sender_id=sender.user_id,
        recipient_id=recipient_id,
        sender_device_key=sender.device_key,
        timestamp=timestamp,
        encryption=encryption,
    )


@settings(max_examples=100)
@given(
    message_id=st.one_of(IDS, st.text(max_size=300)),
    sender_id=st.one_of(USERS.map(lambda user: user.user_id), st.text(max_size=70)),
    recipient_id=st.one_of(IDS, st.text(max_size=300)),
    recipient_device_key=st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)),
    timestamp=st.integers(min_value=-(1 << 64), max_value=1 << 64),
    encryption=st.integers(min_value=-3, max_value=5),
    encrypted_content=st.binary(max_size=40),
)
def test_whatever_seal_accepts_verifies(
    message_id: str,
    sender_id: str,
    recipient_id: str,
    recipient_device_key: bytes,
    timestamp: int,
    encryption: int,
    encrypted_content: bytes,
) -> None:
    try:
        message = seal_envelope(
            ALICE.device,
            message_id=message_id,
            sender_id=sender_id,
            recipient_id=recipient_id,
            recipient_device_key=recipient_device_key,
            timestamp=timestamp,
            encryption=EncryptionKind(encryption),
            encrypted_content=encrypted_content,
        )
    except ConfigurationError:
        return
    verify_envelope(through_the_wire(message), local_device_key=recipient_device_key)


ENCODED_ENVELOPE = encode_message(seal(encryption=EncryptionKind.PREKEY))


@settings(max_examples=150)
@given(bit=st.integers(min_value=0, max_value=len(ENCODED_ENVELOPE) * 8 - 1))
def test_any_one_bit_flip_fails_to_decode_or_to_verify(bit: int) -> None:
    flipped = bytearray(ENCODED_ENVELOPE)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        message = decode_message(Message, bytes(flipped))
    except MessageDecodeError:
        return
    with pytest.raises(InvalidEnvelopeError):
        verify_envelope(message, local_device_key=BOB.device_key)


def test_every_one_bit_flip_fails_to_decode_or_to_verify() -> None:
    # The exhaustive version of the property above for a small envelope.
    encoded = encode_message(seal(message_id="m", recipient_id="r", encrypted_content=b"c"))
    outcomes = {"decode": 0, "verify": 0}
    for bit in range(len(encoded) * 8):
        flipped = bytearray(encoded)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            message = decode_message(Message, bytes(flipped))
        except MessageDecodeError:
            outcomes["decode"] += 1
            continue
        with pytest.raises(InvalidEnvelopeError):
            verify_envelope(message, local_device_key=BOB.device_key)
        outcomes["verify"] += 1
    assert outcomes["decode"] > 0
    assert outcomes["verify"] > 0
