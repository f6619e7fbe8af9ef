"""Signed session reset requests and the guard against replays and floods."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_helpers import ALICE, BOB, CAROL, NOW, make_device

from omega.crypto._ed25519 import verify_signature
from omega.errors import (
    CertificateError,
    ConfigurationError,
    DuplicateMessageError,
    InvalidSignatureError,
    MessageDecodeError,
    OmegaError,
    RemoteProtocolError,
)
from omega.protocol import (
    SessionResetRequest,
    SignedSessionResetRequest,
    decode_message,
    encode_message,
)
from omega.session.reset import (
    MAX_RESET_MESSAGE_IDS,
    RESET_SIGNATURE_CONTEXT,
    ResetGuard,
    VerifiedResetRequest,
    sign_reset_request,
    verify_reset_request,
)
from omega.testing.random import SeededRandom

DAY_MS = 24 * 3600 * 1000
IDS = ["0192e3a4-5b6c-7d8e-9f01-23456789abcd", "m-2"]


def sign(**overrides: Any) -> SignedSessionResetRequest:
    """ALICE's device asks BOB's device to resend ``IDS``; keyword arguments replace arguments."""
    arguments: dict[str, Any] = {
        "target_device_key": BOB.device_key,
        "message_ids": IDS,
        "now": NOW,
        "rng": SeededRandom(b"reset"),
    }
    arguments.update(overrides)
    return sign_reset_request(ALICE.device, **arguments)


def verify(signed: SignedSessionResetRequest, **overrides: Any) -> VerifiedResetRequest:
    """BOB's device verifies ``signed`` as coming from ALICE."""
    arguments: dict[str, Any] = {
        "local_device_key": BOB.device_key,
        "expected_user_id": ALICE.user_id,
        "now": NOW,
    }
    arguments.update(overrides)
    return verify_reset_request(signed, **arguments)


def forge(device: Any = ALICE.device, **fields: Any) -> SignedSessionResetRequest:
    """A request signed by ``device`` whose fields are exactly ``fields`` over sane defaults."""
    values: dict[str, Any] = {
        "version": 1,
        "device_certificate": device.certificate.to_signed(),
        "target_device_key": BOB.device_key,
        "message_ids": IDS,
        "timestamp": NOW,
        "nonce": bytes(range(16)),
    }
    values.update(fields)
    request = encode_message(SessionResetRequest(**values))
    return SignedSessionResetRequest(
        request=request, signature=device.key_pair.sign(RESET_SIGNATURE_CONTEXT + request)
    )


def verified(
    nonce: bytes = b"n" * 16, device_key: bytes = ALICE.device_key
) -> VerifiedResetRequest:
    return VerifiedResetRequest(
        user_id=ALICE.user_id, device_key=device_key, message_ids=(), timestamp=NOW, nonce=nonce
    )


# -- round trip ------------------------------------------------------------------------


def test_signed_request_verifies_after_a_trip_over_the_wire() -> None:
    signed = sign()
    received = decode_message(SignedSessionResetRequest, encode_message(signed))
    result = verify(received)
    assert result == VerifiedResetRequest(
        user_id=ALICE.user_id,
        device_key=ALICE.device_key,
        message_ids=tuple(IDS),
        timestamp=NOW,
        nonce=SeededRandom(b"reset")(16),
    )


def test_request_carries_what_the_docstring_says() -> None:
    signed = sign()
    request = decode_message(SessionResetRequest, signed.request)
    assert request.version == 1
    assert request.target_device_key == BOB.device_key
    assert request.message_ids == IDS
    assert request.timestamp == NOW
    assert len(request.nonce) == 16
    assert request.device_certificate == ALICE.device.certificate.to_signed()
    verify_signature(ALICE.device_key, b"omega/session-reset/v1" + signed.request, signed.signature)


def test_each_request_gets_a_fresh_nonce() -> None:
    rng = SeededRandom(b"fresh")
    first = verify(sign(rng=rng))
    second = verify(sign(rng=rng))
    assert first.nonce != second.nonce


def test_a_request_without_message_ids_verifies() -> None:
    assert verify(sign(message_ids=[])).message_ids == ()


def test_upper_case_expected_user_id_is_reported_lower_case() -> None:
    assert verify(sign(), expected_user_id=ALICE.user_id.upper()).user_id == ALICE.user_id


def test_another_device_of_the_same_user_verifies_as_that_device() -> None:
    second = make_device(ALICE.identity, SeededRandom(b"alice-second-device"))
    signed = sign_reset_request(
        second, target_device_key=BOB.device_key, message_ids=IDS, now=NOW, rng=SeededRandom(b"")
    )
    assert verify(signed).device_key == second.device_key


# -- refusals ------------------------------------------------------------------------


def test_another_users_certificate_is_refused() -> None:
    # Carol's genuine, correctly signed request, presented as coming from Alice.
    signed = sign_reset_request(
        CAROL.device, target_device_key=BOB.device_key, message_ids=IDS, now=NOW
    )
    with pytest.raises((InvalidSignatureError, CertificateError)):
        verify(signed)
    assert verify(signed, expected_user_id=CAROL.user_id).user_id == CAROL.user_id


def test_alices_certificate_with_carols_signature_is_refused() -> None:
    # Carol copies Alice's certificate into her own request and signs it.
    request = decode_message(SessionResetRequest, sign().request)
    encoded = encode_message(request)
    forged = SignedSessionResetRequest(
        request=encoded, signature=CAROL.device.key_pair.sign(RESET_SIGNATURE_CONTEXT + encoded)
    )
    with pytest.raises(InvalidSignatureError):
        verify(forged)


@pytest.mark.parametrize(
    "signature",
    [b"", b"\x00" * 64, b"\x00" * 63],
)
def test_bad_signatures_are_refused(signature: bytes) -> None:
    with pytest.raises(InvalidSignatureError):
        verify(dataclasses.replace(sign(), signature=signature))


def test_flipped_signature_bit_is_refused() -> None:
    signed = sign()
    signature = bytearray(signed.signature)
    signature[10] ^= 0x04
    with pytest.raises(InvalidSignatureError):
        verify(dataclasses.replace(signed, signature=bytes(signature)))


def test_signature_without_the_context_is_refused() -> None:
    signed = sign()
    bare = dataclasses.replace(signed, signature=ALICE.device.key_pair.sign(signed.request))
    with pytest.raises(InvalidSignatureError):
        verify(bare)


def test_tampered_request_bytes_are_refused() -> None:
    signed = sign()
    for index in range(len(signed.request)):
        tampered = bytearray(signed.request)
        tampered[index] ^= 0x01
        with pytest.raises(OmegaError):
            verify(dataclasses.replace(signed, request=bytes(tampered)))


def test_request_for_another_device_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="another device"):
        verify(sign(target_device_key=CAROL.device_key))
    with pytest.raises(RemoteProtocolError, match="another device"):
        verify(sign(), local_device_key=CAROL.device_key)
    with pytest.raises(RemoteProtocolError, match="another device"):
        verify(forge(target_device_key=b""))


@pytest.mark.parametrize("age", [0, 1, DAY_MS])
def test_timestamps_within_max_age_either_way_are_accepted(age: int) -> None:
    assert verify(sign(now=NOW - age)).timestamp == NOW - age
    assert verify(sign(now=NOW + age)).timestamp == NOW + age


@pytest.mark.parametrize("skew", [DAY_MS + 1, 10 * DAY_MS])
def test_stale_or_future_requests_are_refused(skew: int) -> None:
    with pytest.raises(RemoteProtocolError, match="too old or from the future"):
        verify(sign(now=NOW - skew))
    with pytest.raises(RemoteProtocolError, match="too old or from the future"):
        verify(sign(now=NOW + skew))


def test_max_age_is_configurable() -> None:
    signed = sign(now=NOW - 1001)
    with pytest.raises(RemoteProtocolError, match="too old"):
        verify(signed, max_age_ms=1000)
    assert verify(signed, max_age_ms=1001).timestamp == NOW - 1001


@pytest.mark.parametrize("size", [0, 8, 15, 17, 32])
def test_nonces_of_the_wrong_size_are_refused(size: int) -> None:
    with pytest.raises(RemoteProtocolError, match="nonce must be 16 bytes"):
        verify(forge(nonce=b"\x01" * size))


def test_the_most_message_ids_are_accepted() -> None:
    ids = [f"m{index}" for index in range(MAX_RESET_MESSAGE_IDS)]
    assert verify(sign(message_ids=ids)).message_ids == tuple(ids)
    assert verify(forge(message_ids=["m" * 256])).message_ids == ("m" * 256,)


@pytest.mark.parametrize(
    "ids",
    [
        [f"m{index}" for index in range(MAX_RESET_MESSAGE_IDS + 1)],
        ["ok", ""],
        ["m" * 257],
    ],
    ids=["too-many", "empty-id", "long-id"],
)
def test_too_many_or_malformed_ids_are_refused(ids: list[str]) -> None:
    with pytest.raises(RemoteProtocolError, match="too many or malformed message ids"):
        verify(forge(message_ids=ids))


@pytest.mark.parametrize("version", [0, 2, 2**32 - 1])
def test_other_versions_are_refused(version: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"unsupported reset request version {version}"):
        verify(forge(version=version))


def test_request_without_a_certificate_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="without a device certificate"):
        verify(forge(device_certificate=None))


def test_malformed_bytes_are_refused() -> None:
    for request in (b"\xff", b"\x0a\x05ab", b"\x12\x01"):
        with pytest.raises(MessageDecodeError):
            verify(SignedSessionResetRequest(request=request, signature=b"\x00" * 64))


def test_oversized_request_is_refused_before_decoding() -> None:
    with pytest.raises(MessageDecodeError, match="too large"):
        verify(SignedSessionResetRequest(request=b"\x00" * (64 * 1024 + 1)))


def test_a_garbled_certificate_is_refused() -> None:
    certificate = ALICE.device.certificate.to_signed()
    garbled = dataclasses.replace(certificate, certificate=certificate.certificate[:-1])
    with pytest.raises(OmegaError):
        verify(forge(device_certificate=garbled))


@settings(max_examples=200)
@given(request=st.binary(max_size=300), signature=st.binary(max_size=70))
def test_arbitrary_requests_raise_nothing_but_omega_errors(
    request: bytes, signature: bytes
) -> None:
    with pytest.raises(OmegaError):
        verify(SignedSessionResetRequest(request=request, signature=signature))


# -- signing refuses what verification would ---------------------------------------------


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, b"\x01" * 33])
def test_signing_for_a_malformed_device_key_is_refused(key: bytes) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        sign(target_device_key=key)


def test_signing_too_many_ids_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=f"at most {MAX_RESET_MESSAGE_IDS}"):
        sign(message_ids=[f"m{index}" for index in range(MAX_RESET_MESSAGE_IDS + 1)])


@pytest.mark.parametrize("bad_id", ["", "m" * 257])
def test_signing_a_malformed_id_is_refused(bad_id: str) -> None:
    with pytest.raises(ConfigurationError, match=r"1\.\.256 characters"):
        sign(message_ids=["fine", bad_id])


def test_signing_a_request_over_the_size_limit_is_refused() -> None:
    # 256 ids of 256 characters: each allowed, together over 64 KiB.
    ids = [f"{index:03d}".ljust(256, "x") for index in range(MAX_RESET_MESSAGE_IDS)]
    with pytest.raises(ConfigurationError, match="limit is 64 KiB"):
        sign(message_ids=ids)
    assert len(verify(sign(message_ids=ids[:200])).message_ids) == 200


def test_signing_copies_the_id_list() -> None:
    ids = ["a"]
    signed = sign(message_ids=ids)
    ids.append("b")
    assert verify(signed).message_ids == ("a",)


# -- the guard -----------------------------------------------------------------------


def test_guard_admits_a_first_request() -> None:
    assert ResetGuard().admit(verified(), now=NOW)


def test_guard_refuses_a_replayed_nonce() -> None:
    guard = ResetGuard(min_interval_ms=0)
    request = verified()
    assert guard.admit(request, now=NOW)
    with pytest.raises(DuplicateMessageError):
        guard.admit(request, now=NOW + DAY_MS)
    # Even from another device, and even long after.
    with pytest.raises(DuplicateMessageError):
        guard.admit(verified(device_key=CAROL.device_key), now=NOW + 10 * DAY_MS)


def test_guard_rate_limits_each_device() -> None:
    guard = ResetGuard(min_interval_ms=30_000)
    assert guard.admit(verified(b"a" * 16), now=NOW)
    assert not guard.admit(verified(b"b" * 16), now=NOW + 29_999)
    # A refused request does not push the window forward.
    assert guard.admit(verified(b"c" * 16), now=NOW + 30_000)
    assert not guard.admit(verified(b"d" * 16), now=NOW + 59_999)
    # Other devices are not affected.
    assert guard.admit(verified(b"e" * 16, device_key=CAROL.device_key), now=NOW + 59_999)


def test_a_throttled_request_still_spends_its_nonce() -> None:
    guard = ResetGuard()
    assert guard.admit(verified(b"a" * 16), now=NOW)
    throttled = verified(b"b" * 16)
    assert not guard.admit(throttled, now=NOW + 1)
    with pytest.raises(DuplicateMessageError):
        guard.admit(throttled, now=NOW + DAY_MS)


def test_guard_remembers_at_most_max_nonces() -> None:
    guard = ResetGuard(min_interval_ms=0, max_nonces=3)
    nonces = [bytes([index]) * 16 for index in range(5)]
    for nonce in nonces:
        assert guard.admit(verified(nonce), now=NOW)
    assert len(guard._nonces) == 3
    # The oldest two were forgotten: they are admitted again; the newest three are not.
    for nonce in nonces[2:]:
        with pytest.raises(DuplicateMessageError):
            guard.admit(verified(nonce), now=NOW)
    assert guard.admit(verified(nonces[0]), now=NOW)


def test_guard_remembers_at_most_max_devices_least_recently_reset_first() -> None:
    guard = ResetGuard(min_interval_ms=1000, max_devices=2)
    a, b, c = (bytes([index]) * 32 for index in (1, 2, 3))
    nonce = iter(bytes([index]) * 16 for index in range(100))
    assert guard.admit(verified(next(nonce), a), now=NOW)
    assert guard.admit(verified(next(nonce), b), now=NOW + 1)
    assert guard.admit(verified(next(nonce), a), now=NOW + 1001)  # a is the most recent again
    assert guard.admit(verified(next(nonce), c), now=NOW + 1002)  # evicts b, not a
    assert len(guard._last_reset) == 2
    assert not guard.admit(verified(next(nonce), a), now=NOW + 1003)  # a still remembered
    assert not guard.admit(verified(next(nonce), c), now=NOW + 1003)
    assert guard.admit(verified(next(nonce), b), now=NOW + 1003)  # b was forgotten


@settings(max_examples=50)
@given(
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=6)),
        max_size=80,
    )
)
def test_guard_memory_is_bounded(events: list[tuple[int, int]]) -> None:
    guard = ResetGuard(min_interval_ms=5, max_nonces=8, max_devices=3)
    seen: set[bytes] = set()
    now = NOW
    for nonce_index, device_index in events:
        now += 1
        nonce = nonce_index.to_bytes(16, "big")
        try:
            guard.admit(verified(nonce, bytes([device_index]) * 32), now=now)
        except DuplicateMessageError:
            assert nonce in seen
        seen.add(nonce)
        assert len(guard._nonces) <= 8
        assert len(guard._last_reset) <= 3


@pytest.mark.parametrize(
    "arguments",
    [
        {"min_interval_ms": -1},
        {"max_nonces": 0},
        {"max_devices": 0},
        {"max_nonces": True},
        {"min_interval_ms": 1.5},
    ],
)
def test_guard_refuses_bad_limits(arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ResetGuard(**arguments)


def test_guard_accepts_the_smallest_limits() -> None:
    guard = ResetGuard(min_interval_ms=0, max_nonces=1, max_devices=1)
    assert guard.admit(verified(b"a" * 16), now=NOW)
    assert guard.admit(verified(b"b" * 16), now=NOW)
    assert guard.admit(verified(b"a" * 16), now=NOW)  # forgotten: only one nonce remembered
