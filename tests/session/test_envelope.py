"""Message envelopes: sealing, the clear-field checks, and the binding to the content.

Envelopes are not signed (docs/crypto.md, "Per-message authentication"): the
ratchet's AEAD authenticates the sender, and the routing fields the recipient
acts on are bound inside the ciphertext (``bind_content`` / ``check_binding``).
Here the "ciphertext" is the encoded content itself: what decryption would
return is what :func:`check_binding` sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from session_helpers import ALICE, BOB, CAROL, NOW, User

from omega.crypto import DeviceKeyPair
from omega.errors import ConfigurationError, InvalidEnvelopeError, MessageDecodeError
from omega.protocol import (
    EncryptionKind,
    Frame,
    Message,
    MessageContent,
    MessageType,
    TextContent,
    decode_message,
    encode_message,
)
from omega.session.content import decode_content, encode_content
from omega.session.envelope import (
    MAX_CIPHERTEXT_SIZE,
    EnvelopeInfo,
    bind_content,
    check_binding,
    seal_envelope,
    verify_envelope,
)

MESSAGE_ID = "0192e3a4-5b6c-7d8e-9f01-23456789abcd"
CIPHERTEXT = b"\x0a\x20" + bytes(range(32)) + b"\x12\x05hello"
CONTENT = MessageContent(text=TextContent(text="hello"), reply_to="m-0", mentions=[CAROL.user_id])


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


def bound(content: MessageContent = CONTENT, **overrides: Any) -> MessageContent:
    """``content`` bound to the fields of :func:`seal`'s envelope; keywords replace them."""
    fields: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "timestamp": NOW,
        "conversation_id": BOB.user_id,
    }
    fields.update(overrides)
    return bind_content(content, **fields)


def refusal(message: Message, *, local_device_key: bytes = BOB.device_key) -> InvalidEnvelopeError:
    """The error ``verify_envelope`` raises for ``message`` (fails the test if it accepts)."""
    with pytest.raises(InvalidEnvelopeError) as caught:
        verify_envelope(message, local_device_key=local_device_key)
    return caught.value


def binding_refusal(info: EnvelopeInfo, content: MessageContent) -> InvalidEnvelopeError:
    """The error ``check_binding`` raises (fails the test if it accepts)."""
    with pytest.raises(InvalidEnvelopeError) as caught:
        check_binding(info, content)
    return caught.value


def through_the_wire(message: Message) -> Message:
    """``message`` as the recipient decodes it from a frame."""
    frame = decode_message(Frame, encode_message(Frame(message=message)))
    assert frame.message is not None
    return frame.message


def decrypted(content: MessageContent) -> MessageContent:
    """``content`` as the recipient gets it back after decryption."""
    return decode_content(encode_content(content))


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


def test_sealed_envelope_has_no_clear_text_metadata_and_no_signature() -> None:
    message = seal()
    assert message.type == MessageType.TEXT
    assert message.reply_to is None
    assert message.ttl_days is None
    assert message.ttl_seconds is None
    assert message.mentions == []
    assert message.sender_device_key == ALICE.device_key
    assert message.recipient_device_key == BOB.device_key
    assert message.signature == b""
    assert through_the_wire(message).signature == b""


@pytest.mark.parametrize(
    "signature",
    [
        b"\x00" * 64,
        b"\x01" * 63,
        b"\x01" * 65,
        b"x",
        bytes(range(256)),
        ALICE.device.key_pair.sign(b""),
    ],
)
def test_a_signature_is_ignored(signature: bytes) -> None:
    # Whatever a sender or a relay puts in the signature field changes nothing.
    expected = verify_envelope(seal(), local_device_key=BOB.device_key)
    signed = through_the_wire(dataclasses.replace(seal(), signature=signature))
    assert signed.signature == signature
    assert verify_envelope(signed, local_device_key=BOB.device_key) == expected
    check_binding(expected, decrypted(bound()))


def test_a_signature_does_not_hide_a_refusal() -> None:
    # A signed envelope with clear metadata is refused like an unsigned one.
    message = dataclasses.replace(
        seal(), reply_to=MESSAGE_ID, signature=ALICE.device.key_pair.sign(b"anything")
    )
    assert refusal(message).details["reason"] == "cleartext_metadata"


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
    info = verify_envelope(message, local_device_key=BOB.device_key)
    assert info.recipient_id == CAROL.user_id
    check_binding(info, decrypted(bound(conversation_id=CAROL.user_id)))


def test_sealing_is_deterministic() -> None:
    assert encode_message(seal()) == encode_message(seal())


def test_another_device_claiming_the_sender_id_verifies_here() -> None:
    # Whether the device belongs to sender_id is the caller's check (docstring),
    # and decryption is what proves the device: the clear checks cannot.
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


# -- changed fields ------------------------------------------------------------------------

OTHER_KEY = DeviceKeyPair.from_seed(bytes([9]) * 32).public_key


def _flip_first_byte(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


# Fields the clear checks pass when changed to another well-formed value:
# (field, changed value, the EnvelopeInfo attribute reporting it).
ROUTING_CHANGES: list[tuple[str, object]] = [
    ("message_id", MESSAGE_ID.replace("0192", "0193")),
    ("recipient_id", CAROL.user_id),
    ("timestamp", NOW + 1),
]
# Fields decryption authenticates: a change makes decryption fail (another
# session, another key, another ciphertext), so the binding does not repeat them.
DECRYPTION_CHANGES: list[tuple[str, object]] = [
    ("sender_id", CAROL.user_id),
    ("encryption", EncryptionKind.PREKEY),
    ("sender_device_key", OTHER_KEY),
    ("encrypted_content", CIPHERTEXT + b"\x00"),
    ("encrypted_content", _flip_first_byte(CIPHERTEXT)),
]


@pytest.mark.parametrize(("field", "value"), ROUTING_CHANGES + DECRYPTION_CHANGES)
def test_a_changed_well_formed_field_passes_the_clear_checks(field: str, value: object) -> None:
    # Without a signature the clear checks cannot notice: they report what arrived.
    changed = through_the_wire(dataclasses.replace(seal(), **{field: value}))
    info = verify_envelope(changed, local_device_key=BOB.device_key)
    reported = {
        "message_id": info.message_id,
        "sender_id": info.sender_id,
        "recipient_id": info.recipient_id,
        "timestamp": info.timestamp,
        "encryption": info.encryption,
        "sender_device_key": info.sender_device_key,
        "encrypted_content": changed.encrypted_content,
    }
    assert reported[field] == value


@pytest.mark.parametrize(("field", "value"), ROUTING_CHANGES)
def test_a_changed_routing_field_is_refused_by_the_binding(field: str, value: object) -> None:
    changed = through_the_wire(dataclasses.replace(seal(), **{field: value}))
    info = verify_envelope(changed, local_device_key=BOB.device_key)
    error = binding_refusal(info, decrypted(bound()))
    assert error.details == {"reason": "binding_mismatch"}
    assert error.code == "invalid_envelope"
    assert repr(info.message_id) in error.message


@pytest.mark.parametrize(("field", "value"), DECRYPTION_CHANGES)
def test_the_binding_leaves_the_fields_decryption_proves_alone(field: str, value: object) -> None:
    changed = dataclasses.replace(seal(), **{field: value})
    check_binding(verify_envelope(changed, local_device_key=BOB.device_key), decrypted(bound()))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("type", MessageType.IMAGE, "cleartext_metadata"),
        ("recipient_device_key", OTHER_KEY, "wrong_device"),
        ("recipient_device_key", b"", "wrong_device"),
        ("encrypted_content", b"", "no_content"),
        ("sender_id", "omega1", "bad_sender_id"),
    ],
)
def test_a_malformed_change_is_refused_by_the_clear_checks(
    field: str, value: object, reason: str
) -> None:
    tampered = through_the_wire(dataclasses.replace(seal(), **{field: value}))
    error = refusal(tampered)
    assert error.details == {"reason": reason}
    assert error.code == "invalid_envelope"
    assert repr(tampered.message_id) in error.message


def test_envelope_for_another_device_is_refused_before_anything_else() -> None:
    # Even a garbage envelope is refused first for being addressed elsewhere.
    error = refusal(Message(recipient_device_key=OTHER_KEY), local_device_key=BOB.device_key)
    assert error.details["reason"] == "wrong_device"
    error = refusal(seal(), local_device_key=CAROL.device_key)
    assert error.details["reason"] == "wrong_device"


def test_a_re_addressed_envelope_passes_the_clear_checks_of_its_new_device() -> None:
    # Someone re-addresses Alice's envelope to Carol's device: only decryption
    # (Carol has no session it opens) can refuse it.
    moved = dataclasses.replace(seal(), recipient_device_key=CAROL.device_key)
    info = verify_envelope(moved, local_device_key=CAROL.device_key)
    assert info.message_id == MESSAGE_ID


def test_the_checks_run_in_the_documented_order() -> None:
    # Start with an envelope wrong in every way and repair one field at a time:
    # each refusal names the first check still failing.
    message = dataclasses.replace(
        seal(),
        recipient_device_key=OTHER_KEY,
        message_id="",
        sender_id="",
        recipient_id="",
        timestamp=1 << 63,
        sender_device_key=b"",
        reply_to="x",
        encrypted_content=b"",
        encryption=EncryptionKind(7),
    )
    repairs: list[tuple[str, dict[str, object]]] = [
        ("wrong_device", {"recipient_device_key": BOB.device_key}),
        ("bad_message_id", {"message_id": MESSAGE_ID}),
        ("bad_sender_id", {"sender_id": ALICE.user_id}),
        ("bad_recipient_id", {"recipient_id": BOB.user_id}),
        ("bad_timestamp", {"timestamp": NOW}),
        ("bad_device_key", {"sender_device_key": ALICE.device_key}),
        ("cleartext_metadata", {"reply_to": None}),
        ("no_content", {"encrypted_content": b"\x5a" * (MAX_CIPHERTEXT_SIZE + 1)}),
        ("too_large", {"encrypted_content": CIPHERTEXT}),
        ("unknown_encryption", {"encryption": EncryptionKind.RATCHET}),
    ]
    for reason, repair in repairs:
        assert refusal(message).details == {"reason": reason}
        message = dataclasses.replace(message, **repair)
    assert verify_envelope(message, local_device_key=BOB.device_key) == verify_envelope(
        seal(), local_device_key=BOB.device_key
    )


# -- the binding ---------------------------------------------------------------------------


def test_bind_content_returns_a_bound_copy_and_leaves_its_input_alone() -> None:
    original = MessageContent(text=TextContent(text="hello"), reply_to="m-0", ttl_seconds=60)
    before = encode_message(original)
    result = bind_content(original, message_id="m-1", timestamp=-5, conversation_id="group-1")
    assert result is not original
    assert (result.message_id, result.timestamp, result.conversation_id) == ("m-1", -5, "group-1")
    assert (original.message_id, original.timestamp, original.conversation_id) == ("", 0, "")
    assert encode_message(original) == before
    # Everything else is kept.
    assert result.text == original.text
    assert (result.reply_to, result.ttl_seconds) == ("m-0", 60)


def test_binding_again_replaces_the_earlier_binding() -> None:
    first = bound()
    second = bind_content(first, message_id="m-2", timestamp=7, conversation_id=CAROL.user_id)
    assert (second.message_id, second.timestamp, second.conversation_id) == (
        "m-2",
        7,
        CAROL.user_id,
    )
    assert (first.message_id, first.timestamp, first.conversation_id) == (
        MESSAGE_ID,
        NOW,
        BOB.user_id,
    )


def test_check_binding_accepts_the_bound_content() -> None:
    info = verify_envelope(through_the_wire(seal()), local_device_key=BOB.device_key)
    content = decrypted(bound())
    check_binding(info, content)
    assert content.text == TextContent(text="hello")


@pytest.mark.parametrize(
    "override",
    [
        {"message_id": MESSAGE_ID.upper()},
        {"message_id": MESSAGE_ID + " "},
        {"timestamp": NOW - 1},
        {"timestamp": -NOW},
        {"conversation_id": CAROL.user_id},
        {"conversation_id": BOB.user_id.upper()},
    ],
)
def test_content_bound_to_other_values_is_refused(override: dict[str, object]) -> None:
    # The same as moving the ciphertext into another envelope.
    info = verify_envelope(seal(), local_device_key=BOB.device_key)
    error = binding_refusal(info, decrypted(bound(**override)))
    assert error.details == {"reason": "binding_mismatch"}


@pytest.mark.parametrize("timestamp", [NOW, 0])
def test_content_never_bound_is_refused(timestamp: int) -> None:
    # Even for an envelope whose timestamp equals the unbound default.
    info = verify_envelope(seal(timestamp=timestamp), local_device_key=BOB.device_key)
    error = binding_refusal(info, decrypted(CONTENT))
    assert error.details == {"reason": "binding_mismatch"}


def test_a_ciphertext_moved_into_another_envelope_is_refused() -> None:
    # A store swaps the contents of two of Alice's envelopes to Bob.
    first = seal(message_id="m-1", timestamp=NOW, encrypted_content=b"one")
    second = seal(message_id="m-2", timestamp=NOW + 1, encrypted_content=b"two")
    first_content = decrypted(bound(message_id="m-1", timestamp=NOW))
    second_content = decrypted(bound(message_id="m-2", timestamp=NOW + 1))
    first_info = verify_envelope(first, local_device_key=BOB.device_key)
    second_info = verify_envelope(second, local_device_key=BOB.device_key)
    check_binding(first_info, first_content)
    check_binding(second_info, second_content)
    assert binding_refusal(first_info, second_content).details["reason"] == "binding_mismatch"
    assert binding_refusal(second_info, first_content).details["reason"] == "binding_mismatch"


def test_bound_content_known_answer() -> None:
    # Fields 19, 20 and 21 after the content, as protobuf encodes them.
    content = bind_content(
        MessageContent(text=TextContent(text="hi")),
        message_id="m-1",
        timestamp=-2,
        conversation_id="group-é",
    )
    expected = "".join(
        (
            "0a04" + "0a026869",  # text = TextContent(text="hi")
            "9a01" + "03" + "6d2d31",  # 19: message_id = "m-1"
            "a001" + "feffffffffffffffff01",  # 20: timestamp = -2 (int64 varint)
            "aa01" + "08" + "67726f75702dc3a9",  # 21: conversation_id = "group-é"
        )
    )
    assert encode_content(content).hex() == expected
    assert decode_content(bytes.fromhex(expected)) == content


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


# -- sizes ---------------------------------------------------------------------------------


def test_ciphertext_of_exactly_the_limit_is_accepted() -> None:
    message = seal(encrypted_content=b"\x5a" * MAX_CIPHERTEXT_SIZE)
    info = verify_envelope(through_the_wire(message), local_device_key=BOB.device_key)
    assert info.message_id == MESSAGE_ID


def test_received_ciphertext_over_the_limit_is_refused() -> None:
    big = dataclasses.replace(seal(), encrypted_content=b"\x5a" * (MAX_CIPHERTEXT_SIZE + 1))
    error = refusal(through_the_wire(big))
    assert error.details["reason"] == "too_large"
    assert str(MAX_CIPHERTEXT_SIZE) in error.message


def test_empty_ciphertext_is_refused() -> None:
    empty = dataclasses.replace(seal(), encrypted_content=b"")
    assert refusal(through_the_wire(empty)).details["reason"] == "no_content"


# -- malformed ids and keys ----------------------------------------------------------------


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
    ],
)
def test_malformed_ids_and_keys_are_refused(fields: dict[str, object], reason: str) -> None:
    message = dataclasses.replace(seal(), **fields)
    assert refusal(through_the_wire(message)).details["reason"] == reason


def test_ids_of_256_characters_are_accepted() -> None:
    message = seal(message_id="m" * 256, recipient_id="é" * 256)
    info = verify_envelope(through_the_wire(message), local_device_key=BOB.device_key)
    assert info.message_id == "m" * 256
    assert info.recipient_id == "é" * 256


def test_a_sender_device_key_is_only_checked_for_size() -> None:
    # 32 bytes that are not a valid Ed25519 point (y = 2 has no x on the curve):
    # no session or certificate has that key, so decryption refuses it.
    bad_point = (2).to_bytes(32, "little")
    message = dataclasses.replace(seal(), sender_device_key=bad_point)
    assert verify_envelope(message, local_device_key=BOB.device_key).sender_device_key == bad_point


@pytest.mark.parametrize("value", [3, 7, (1 << 31) - 1])
def test_unknown_encryption_kind_is_refused(value: int) -> None:
    # betterproto2 decodes an unknown enum value to a pseudo-member rather than
    # failing, so this envelope decodes fine.
    received = through_the_wire(dataclasses.replace(seal(), encryption=EncryptionKind(value)))
    assert int(received.encryption) == value
    error = refusal(received)
    assert error.details["reason"] == "unknown_encryption"
    assert str(value) in error.message


def test_negative_encryption_kind_is_refused() -> None:
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
    with pytest.raises(ConfigurationError, match="64-bit") as caught:
        seal(timestamp=timestamp)
    assert caught.value.details["reason"] == "bad_timestamp"


def test_timestamps_at_the_int64_bounds_are_accepted_and_bind() -> None:
    for timestamp in ((1 << 63) - 1, -(1 << 63)):
        message = through_the_wire(seal(timestamp=timestamp))
        info = verify_envelope(message, local_device_key=BOB.device_key)
        assert info.timestamp == timestamp
        check_binding(info, decrypted(bound(timestamp=timestamp)))


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
        ({"recipient_id": "r" * 257}, "bad_recipient_id"),
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
    # And verification refuses the same envelope for the same reason.
    assert refusal(dataclasses.replace(seal(), **fields)).details["reason"] == reason


def test_sealing_for_a_malformed_device_key_is_refused() -> None:
    for key in (b"", BOB.device_key[:31], BOB.device_key + b"\x00"):
        with pytest.raises(ConfigurationError, match="32 bytes"):
            seal(recipient_device_key=key)


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


ROUTING = st.fixed_dictionaries(
    {"message_id": IDS, "timestamp": TIMESTAMPS, "conversation_id": IDS}
)


@settings(max_examples=60)
@given(routing=ROUTING)
def test_bind_then_check_passes(routing: dict[str, Any]) -> None:
    message = seal(
        message_id=routing["message_id"],
        timestamp=routing["timestamp"],
        recipient_id=routing["conversation_id"],
        encrypted_content=encode_content(bind_content(CONTENT, **routing)),
    )
    received = through_the_wire(message)
    info = verify_envelope(received, local_device_key=BOB.device_key)
    check_binding(info, decode_content(received.encrypted_content))


@settings(max_examples=80)
@given(
    routing=ROUTING,
    field=st.sampled_from(["message_id", "timestamp", "conversation_id"]),
    in_envelope=st.booleans(),
    data=st.data(),
)
def test_any_single_differing_field_fails(
    routing: dict[str, Any], field: str, in_envelope: bool, data: st.DataObject
) -> None:
    other = data.draw(TIMESTAMPS if field == "timestamp" else IDS, label="other")
    assume(other != routing[field])
    changed = {**routing, field: other}
    envelope_fields, content_fields = (changed, routing) if in_envelope else (routing, changed)
    message = seal(
        message_id=envelope_fields["message_id"],
        timestamp=envelope_fields["timestamp"],
        recipient_id=envelope_fields["conversation_id"],
        encrypted_content=encode_content(bind_content(CONTENT, **content_fields)),
    )
    received = through_the_wire(message)
    info = verify_envelope(received, local_device_key=BOB.device_key)
    error = binding_refusal(info, decode_content(received.encrypted_content))
    assert error.details == {"reason": "binding_mismatch"}


# -- bit flips -------------------------------------------------------------------------

BOUND_CONTENT = decrypted(bound())
ENCODED_ENVELOPE = encode_message(seal(encryption=EncryptionKind.PREKEY))
# What decryption authenticates and the binding therefore need not repeat.
_DECRYPTION_FIELDS = {"sender_id", "sender_device_key", "encryption", "encrypted_content"}
_ROUTING_FIELDS = {"message_id", "timestamp", "recipient_id"}


def _flip_outcome(encoded: bytes, original: Message, bit: int) -> str:
    """What becomes of ``encoded`` with ``bit`` flipped: which check catches it."""
    flipped = bytearray(encoded)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        message = decode_message(Message, bytes(flipped))
    except MessageDecodeError:
        return "decode"
    try:
        info = verify_envelope(message, local_device_key=BOB.device_key)
    except InvalidEnvelopeError:
        return "verify"
    changed = {
        field.name
        for field in dataclasses.fields(Message)
        if getattr(message, field.name) != getattr(original, field.name)
    }
    assert changed, "a flipped bit changed nothing"
    if changed & _ROUTING_FIELDS:
        assert binding_refusal(info, BOUND_CONTENT).details["reason"] == "binding_mismatch"
        return "binding"
    assert changed <= _DECRYPTION_FIELDS, changed
    check_binding(info, BOUND_CONTENT)
    return "decryption"


@settings(max_examples=150)
@given(bit=st.integers(min_value=0, max_value=len(ENCODED_ENVELOPE) * 8 - 1))
def test_any_one_bit_flip_is_caught_by_a_check(bit: int) -> None:
    # Decoding, the clear checks or the binding catch it, or it changed a field
    # only decryption can judge.
    original = seal(encryption=EncryptionKind.PREKEY)
    _flip_outcome(ENCODED_ENVELOPE, original, bit)


def test_every_one_bit_flip_is_caught_by_a_check() -> None:
    # The exhaustive version of the property above for a small envelope.
    original = seal(message_id=MESSAGE_ID, recipient_id=BOB.user_id, encrypted_content=b"c")
    encoded = encode_message(original)
    outcomes = {"decode": 0, "verify": 0, "binding": 0, "decryption": 0}
    for bit in range(len(encoded) * 8):
        outcomes[_flip_outcome(encoded, original, bit)] += 1
    assert all(outcomes.values()), outcomes
