"""The relay frame codec: the fast path agrees with the protobuf runtime; the strict rules hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import DecodeError, RemoteProtocolError
from omega.protocol import (
    RelayChallenge,
    RelayConnect,
    RelayData,
    RelayError,
    RelayFrame,
    RelayReason,
    RelayRegister,
    RelayWindow,
    decode_message,
    encode_message,
)
from omega.transport._relay_protocol import (
    _fast_decode,
    decode_relay_frame,
    encode_relay_frame,
    reason_name,
    registration_payload,
    verify_registration,
)

STREAM_IDS = st.integers(1, (1 << 32) - 1)


def generic(body: RelayData | RelayWindow) -> bytes:
    frame = RelayFrame()
    setattr(frame, "data" if isinstance(body, RelayData) else "window", body)
    return encode_message(frame)


@settings(max_examples=200)
@given(
    body=st.one_of(
        st.builds(RelayData, stream_id=STREAM_IDS, data=st.binary(max_size=300)),
        st.builds(RelayWindow, stream_id=STREAM_IDS, frames=st.integers(0, (1 << 32) - 1)),
    )
)
def test_the_fast_encoder_matches_the_protobuf_runtime(body: RelayData | RelayWindow) -> None:
    encoded = encode_relay_frame(body)
    assert encoded == generic(body)
    assert decode_relay_frame(encoded, max_size=1024)[1] == body


@settings(max_examples=500)
@given(
    data=st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda tag, rest: bytes([tag]) + rest,
            st.sampled_from([0x42, 0x4A]),
            st.binary(max_size=40),
        ),
    )
)
def test_the_fast_decoder_accepts_only_what_the_strict_decoder_accepts_alike(data: bytes) -> None:
    fast = _fast_decode(data)
    if fast is None:
        return
    strict = decode_message(RelayFrame, data)
    assert (strict.data or strict.window) == fast
    assert encode_relay_frame(fast) == data  # canonical


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (RelayFrame(), "no body"),
        (RelayFrame(data=RelayData(stream_id=0, data=b"x")), "stream id"),
        (RelayFrame(connect=RelayConnect(stream_id=1)), "no target"),
        (RelayFrame(connect=RelayConnect(stream_id=1, target_device_id="XYZ")), "16 lowercase"),
        (RelayFrame(error=RelayError(message="x" * 300)), "longer than"),
        (RelayFrame(challenge=RelayChallenge(relay_id="r" * 300)), "relay id"),
    ],
)
def test_frames_breaking_the_rules_are_refused(body: RelayFrame, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_relay_frame(encode_message(body), max_size=4096)


def test_oversized_and_non_canonical_frames_take_the_strict_path() -> None:
    frame = encode_relay_frame(RelayData(stream_id=1, data=bytes(100)))
    with pytest.raises(DecodeError):
        decode_relay_frame(frame, max_size=50)
    padded = b"\x4a\x05\x08\x81\x00\x10\x01"  # a non-minimal varint: not canonical
    assert _fast_decode(padded) is None


def test_reason_names() -> None:
    assert reason_name(RelayReason.NOT_REGISTERED) == "not_registered"
    assert reason_name(99) == "99"


def test_registration_checks() -> None:
    with pytest.raises(DecodeError, match="relay id"):
        registration_payload("r" * 300, bytes(32), 0, listen=False)
    with pytest.raises(RemoteProtocolError, match="no device certificate"):
        verify_registration(
            RelayRegister(), relay_id="r", nonce=bytes(32), now_ms=0, max_clock_skew_ms=1
        )
