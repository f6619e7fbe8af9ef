"""The secure channel's record layer: splitting, rekeying, and refusing tampered records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import ConnectionClosedError, FrameTooLargeError, SecureChannelError
from omega.transport._noise_cipher import CipherState
from omega.transport._records import (
    MAX_NOISE_MESSAGE_SIZE,
    MAX_RECORD_BODY,
    RECORD_END_OF_STREAM,
    RECORD_FRAME_CONTINUES,
    RECORD_FRAME_END,
    RECORD_KEY_UPDATE,
    RecordReceiver,
    RecordSender,
)

KEY = bytes(range(32))


def channel(
    *, rekey_interval: int = 1 << 20, max_frame_size: int = 1 << 22
) -> tuple[RecordSender, RecordReceiver]:
    return (
        RecordSender(CipherState(KEY), rekey_interval=rekey_interval),
        RecordReceiver(CipherState(KEY), max_frame_size=max_frame_size),
    )


def deliver(receiver: RecordReceiver, messages: list[bytes]) -> list[bytes]:
    return [frame for message in messages if (frame := receiver.open(message)) is not None]


@pytest.mark.parametrize(
    ("size", "records"),
    [
        (0, 1),
        (1, 1),
        (MAX_RECORD_BODY - 1, 1),
        (MAX_RECORD_BODY, 1),
        (MAX_RECORD_BODY + 1, 2),
        (65536, 2),
        (3 * MAX_RECORD_BODY + 7, 4),
        (1 << 20, 17),
    ],
)
def test_frames_split_into_records_of_at_most_65535_bytes(size: int, records: int) -> None:
    sender, receiver = channel()
    frame = bytes([size % 251]) * size
    messages = sender.seal_frame(frame)
    assert len(messages) == records
    assert all(len(message) <= MAX_NOISE_MESSAGE_SIZE for message in messages)
    assert deliver(receiver, messages) == [frame]
    assert receiver.buffered == 0
    opener = CipherState(KEY)
    kinds = [opener.decrypt_with_ad(b"", message)[0] for message in messages]
    assert kinds == [RECORD_FRAME_CONTINUES] * (records - 1) + [RECORD_FRAME_END]


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * MAX_RECORD_BODY), min_size=1, max_size=6),
    interval=st.integers(2, 5),
)
def test_any_frames_round_trip_across_rekeys(sizes: list[int], interval: int) -> None:
    sender, receiver = channel(rekey_interval=interval)
    frames = [bytes([index]) * size for index, size in enumerate(sizes)]
    messages = [message for frame in frames for message in sender.seal_frame(frame)]
    assert deliver(receiver, messages) == frames
    assert sender.rekeys == receiver.rekeys
    # No key ever seals more than rekey_interval messages, and nonces only grow.
    assert sender.nonce == len(messages)
    assert sender.rekeys == (len(messages) - 1) // interval


def test_the_default_interval_rekeys_every_2_to_the_20_messages() -> None:
    sender, _ = channel(rekey_interval=1 << 20)
    sender._messages_under_key = (1 << 20) - 2  # as if 2**20 - 2 messages had been sent
    assert len(sender.seal_frame(b"a")) == 1
    messages = sender.seal_frame(b"b")
    assert len(messages) == 2  # KEY_UPDATE first, then the frame under the new key
    assert sender.rekeys == 1


def test_tampering_replay_reordering_and_dropping_are_refused() -> None:
    sender, _ = channel()
    messages = [sender.seal_frame(f"frame {index}".encode())[0] for index in range(3)]
    tampered = bytearray(messages[0])
    tampered[3] ^= 0x40
    cases = {
        "tampered": [bytes(tampered)],
        "replayed": [messages[0], messages[0]],
        "reordered": [messages[1], messages[0]],
        "dropped": [messages[0], messages[2]],
        "truncated": [messages[0][:-1]],
    }
    for name, delivered in cases.items():
        receiver = RecordReceiver(CipherState(KEY), max_frame_size=1 << 20)
        with pytest.raises(SecureChannelError, match="failed authentication"):
            deliver(receiver, delivered)
        # Sticky: the channel is dead, even for the genuine next record.
        with pytest.raises(SecureChannelError):
            receiver.open(messages[0])
        assert name


def seal(plaintext: bytes, *, nonce: int = 0) -> bytes:
    cipher = CipherState(KEY)
    cipher.nonce = nonce
    return cipher.encrypt_with_ad(b"", plaintext)


@pytest.mark.parametrize(
    ("plaintexts", "reason"),
    [
        ([b""], "no record type"),
        ([bytes([9])], "unknown record type 9"),
        ([bytes([RECORD_KEY_UPDATE]) + b"x"], "carries no body"),
        ([bytes([RECORD_END_OF_STREAM]) + b"x"], "carries no body"),
        ([bytes([RECORD_FRAME_CONTINUES]) + b"short"], "FRAME_CONTINUES record carries 5"),
    ],
)
def test_authentic_records_that_break_the_rules_are_refused(
    plaintexts: list[bytes], reason: str
) -> None:
    receiver = RecordReceiver(CipherState(KEY), max_frame_size=1 << 20)
    messages = [seal(plaintext, nonce=nonce) for nonce, plaintext in enumerate(plaintexts)]
    with pytest.raises(SecureChannelError, match=reason):
        deliver(receiver, messages)


def test_end_of_stream_ends_everything() -> None:
    sender, receiver = channel()
    messages = sender.seal_frame(b"last") + sender.seal_end_of_stream()
    assert sender.seal_end_of_stream() == []
    with pytest.raises(ConnectionClosedError):
        sender.seal_frame(b"after")
    assert deliver(receiver, messages) == [b"last"]
    assert receiver.ended
    with pytest.raises(SecureChannelError, match="after the peer's end of stream"):
        receiver.open(seal(bytes([RECORD_FRAME_END]), nonce=2))


def test_end_of_stream_inside_a_frame_is_refused() -> None:
    receiver = RecordReceiver(CipherState(KEY), max_frame_size=1 << 20)
    receiver.open(seal(bytes([RECORD_FRAME_CONTINUES]) + bytes(MAX_RECORD_BODY)))
    with pytest.raises(SecureChannelError, match="middle of a frame"):
        receiver.open(seal(bytes([RECORD_END_OF_STREAM]), nonce=1))


def test_reassembly_stops_at_max_frame_size() -> None:
    sender, _ = channel()
    receiver = RecordReceiver(CipherState(KEY), max_frame_size=MAX_RECORD_BODY + 10)
    messages = sender.seal_frame(bytes(MAX_RECORD_BODY + 11))
    with pytest.raises(FrameTooLargeError) as info:
        deliver(receiver, messages)
    assert info.value.size == MAX_RECORD_BODY + 11
    with pytest.raises(FrameTooLargeError):
        receiver.open(messages[0])
    assert receiver.buffered == 0


def test_oversized_noise_messages_are_refused_before_decryption() -> None:
    receiver = RecordReceiver(CipherState(KEY), max_frame_size=1 << 20)
    with pytest.raises(SecureChannelError, match="exceeds 65535"):
        receiver.open(bytes(MAX_NOISE_MESSAGE_SIZE + 1))
