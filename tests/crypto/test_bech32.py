"""Bech32m against the official BIP-350 test vectors, plus round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omega.crypto.bech32 import CHARSET, bech32m_decode, bech32m_encode, convert_bits
from omega.errors import ConfigurationError, DecodeError

# https://github.com/bitcoin/bips/blob/master/bip-0350.mediawiki#test-vectors-for-bech32m
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

INVALID_BECH32M = [
    ("\x201xj0phk", "invalid character"),  # HRP character out of range
    ("\x7f1g6xzxy", "invalid character"),  # HRP character out of range
    ("\x801vctc34", "invalid character"),  # HRP character out of range
    (  # overall max length exceeded
        "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
        "maximum is 90",
    ),
    ("qyrz8wqd2c9m", "no separator"),
    ("1qyrz8wqd2c9m", "empty human-readable part"),
    ("y1b0jsk6g", "invalid data character"),
    ("lt1igcx5c0", "invalid data character"),
    ("in1muywd", "too short"),
    ("mm1crxm3i", "invalid data character"),  # invalid character in checksum
    ("au1s5cgom", "invalid data character"),  # invalid character in checksum
    ("M1VUXWEZ", "checksum mismatch"),  # checksum calculated with uppercase form of HRP
    ("16plkw9", "empty human-readable part"),
    ("1p2gdwpf", "empty human-readable part"),
]

# Valid Bech32 (BIP-173, constant 1) strings: the Bech32m checksum must refuse them.
VALID_BECH32_ONLY = [
    "A12UEL5L",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
]


@pytest.mark.parametrize("text", VALID_BECH32M)
def test_valid_vectors_decode_and_reencode(text: str) -> None:
    hrp, data = bech32m_decode(text)
    assert hrp == text[: text.rfind("1")].lower()
    assert bech32m_encode(hrp, data) == text.lower()


@pytest.mark.parametrize(("text", "reason"), INVALID_BECH32M)
def test_invalid_vectors_are_refused(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        bech32m_decode(text)


@pytest.mark.parametrize("text", VALID_BECH32_ONLY)
def test_bech32_checksums_are_not_bech32m(text: str) -> None:
    with pytest.raises(DecodeError, match="checksum mismatch"):
        bech32m_decode(text)


def test_mixed_case_is_refused() -> None:
    with pytest.raises(DecodeError, match="mixes uppercase and lowercase"):
        bech32m_decode("A1lqfn3a")


def test_length_limit_can_be_lifted() -> None:
    long = bech32m_encode("a", [0] * 100)
    with pytest.raises(DecodeError, match="maximum is 90"):
        bech32m_decode(long)
    assert bech32m_decode(long, max_length=None) == ("a", [0] * 100)


def test_hrp_over_83_characters_is_refused_even_without_a_length_limit() -> None:
    with pytest.raises(DecodeError, match="longer than 83"):
        bech32m_decode("a" * 84 + "1" + "q" * 6, max_length=None)


@pytest.mark.parametrize(
    ("hrp", "data"),
    [("", []), ("a" * 84, []), ("A", []), ("a b", []), ("a\x80", []), ("a", [32]), ("a", [-1])],
)
def test_encode_refuses_bad_input(hrp: str, data: list[int]) -> None:
    with pytest.raises(ConfigurationError):
        bech32m_encode(hrp, data)


def test_convert_bits_round_trip_and_padding_rules() -> None:
    assert convert_bits(b"\xff", 8, 5, pad=True) == [31, 28]
    assert bytes(convert_bits([31, 28], 5, 8, pad=False)) == b"\xff"
    with pytest.raises(DecodeError, match="padding"):
        convert_bits([31, 29], 5, 8, pad=False)  # non-zero padding bit
    with pytest.raises(DecodeError, match="padding"):
        convert_bits([0, 0, 0], 5, 8, pad=False)  # 7 leftover bits: a whole extra group
    with pytest.raises(DecodeError, match="does not fit"):
        convert_bits([32], 5, 8, pad=False)
    with pytest.raises(DecodeError, match="does not fit"):
        convert_bits([-1], 5, 8, pad=False)
    assert convert_bits(b"", 8, 5, pad=True) == []


@given(
    hrp=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10
    ).map(str.lower),
    payload=st.binary(max_size=40),
)
def test_encode_decode_round_trip(hrp: str, payload: bytes) -> None:
    data = convert_bits(payload, 8, 5, pad=True)
    text = bech32m_encode(hrp, data)
    assert bech32m_decode(text, max_length=None) == (hrp, data)
    assert bech32m_decode(text.upper(), max_length=None) == (hrp, data)
    assert bytes(convert_bits(data, 5, 8, pad=False)) == payload
    assert set(text[len(hrp) + 1 :]) <= set(CHARSET)
