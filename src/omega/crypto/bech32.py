"""Bech32m encoding (BIP-350), used for Omega user ids.

Bech32m is a checksummed base-32 text encoding: a human-readable part (HRP),
the separator ``1``, the data in the 32-character alphabet
``qpzry9x8gf2tvdw0s3jn54khce6mua7l`` and a 6-character BCH checksum that
detects any error affecting up to 4 characters. This module follows BIP-173
("Bech32", section "Specification") with the checksum constant of BIP-350
(``0x2bc830a3``):

* every character is printable US-ASCII (33..126);
* a string is either all lowercase or all uppercase, never mixed; uppercase
  is accepted and normalised to lowercase;
* the separator is the *last* ``1``; the HRP before it is 1..83 characters;
  the data part after it holds at least the 6 checksum characters;
* the whole string is at most 90 characters (the decoder lets a caller lift
  that limit; user ids are 64 characters anyway).

It is an encoding, not a cryptographic primitive. References:
https://github.com/bitcoin/bips/blob/master/bip-0173.mediawiki and
https://github.com/bitcoin/bips/blob/master/bip-0350.mediawiki
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from omega.errors import ConfigurationError, DecodeError

__all__ = [
    "BECH32M_CONSTANT",
    "CHARSET",
    "MAX_LENGTH",
    "bech32m_decode",
    "bech32m_encode",
    "convert_bits",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
"""The Bech32 data alphabet; a character's index is its 5-bit value."""

BECH32M_CONSTANT = 0x2BC830A3
"""The value the checksum polynomial must leave for a valid Bech32m string (BIP-350)."""

MAX_LENGTH = 90
"""Longest string BIP-173 allows."""

_CHECKSUM_LENGTH = 6
_MAX_HRP_LENGTH = 83
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_VALUE_OF = {char: value for value, char in enumerate(CHARSET)}


def _generator_mix(top: int) -> int:
    mixed = 0
    for bit, generator in enumerate(_GENERATOR):
        if (top >> bit) & 1:
            mixed ^= generator
    return mixed


# One step of the BCH reduction XORs the generators selected by the checksum's top 5 bits;
# the table holds that XOR for each of the 32 possible values.
_GENERATOR_TABLE = tuple(_generator_mix(top) for top in range(32))


def _polymod(values: Iterable[int]) -> int:
    checksum = 1
    for value in values:
        checksum = ((checksum & 0x1FFFFFF) << 5 ^ value) ^ _GENERATOR_TABLE[checksum >> 25]
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def bech32m_encode(hrp: str, data: Sequence[int]) -> str:
    """Encode 5-bit ``data`` values under the lowercase ``hrp`` as a Bech32m string.

    Raises :class:`~omega.errors.ConfigurationError` for an invalid HRP or a
    value outside ``0..31``. The result may exceed :data:`MAX_LENGTH`; callers
    that need the limit check the length themselves.
    """
    if not 1 <= len(hrp) <= _MAX_HRP_LENGTH:
        raise ConfigurationError(f"HRP must be 1..{_MAX_HRP_LENGTH} characters, got {len(hrp)}")
    if any(not 33 <= ord(char) <= 126 for char in hrp) or hrp != hrp.lower():
        raise ConfigurationError(f"HRP must be lowercase printable ASCII, got {hrp!r}")
    if any(not 0 <= value <= 31 for value in data):
        raise ConfigurationError("Bech32 data values must be in 0..31")
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ BECH32M_CONSTANT
    checksum = [(polymod >> 5 * (5 - index)) & 31 for index in range(_CHECKSUM_LENGTH)]
    return hrp + "1" + "".join(CHARSET[value] for value in [*data, *checksum])


def bech32m_decode(text: str, *, max_length: int | None = MAX_LENGTH) -> tuple[str, list[int]]:
    """Decode a Bech32m string into its lowercase HRP and its 5-bit data values.

    The checksum is removed from the data. Raises
    :class:`~omega.errors.DecodeError` with a message naming the first rule
    broken (see the module docstring); ``max_length=None`` lifts the
    90-character limit.
    """
    for index, char in enumerate(text):
        if not 33 <= ord(char) <= 126:
            raise DecodeError(f"invalid character {char!r} at position {index}")
    lower = text.lower()
    if text != lower and text != text.upper():
        raise DecodeError("it mixes uppercase and lowercase letters")
    if max_length is not None and len(text) > max_length:
        raise DecodeError(f"it is {len(text)} characters long, the maximum is {max_length}")
    separator = lower.rfind("1")
    if separator < 0:
        raise DecodeError("it has no separator '1'")
    if separator == 0:
        raise DecodeError("it has an empty human-readable part")
    if separator > _MAX_HRP_LENGTH:
        raise DecodeError(f"its human-readable part is longer than {_MAX_HRP_LENGTH} characters")
    if len(lower) - separator - 1 < _CHECKSUM_LENGTH:
        raise DecodeError("it is too short to hold a checksum")
    hrp = lower[:separator]
    data: list[int] = []
    for index in range(separator + 1, len(lower)):
        value = _VALUE_OF.get(lower[index])
        if value is None:
            raise DecodeError(f"invalid data character {text[index]!r} at position {index}")
        data.append(value)
    if _polymod([*_hrp_expand(hrp), *data]) != BECH32M_CONSTANT:
        raise DecodeError("checksum mismatch, possibly mistyped")
    return hrp, data[:-_CHECKSUM_LENGTH]


def convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    """Regroup ``data`` from ``from_bits``-bit values into ``to_bits``-bit values (BIP-173).

    With ``pad=True`` the last group is padded with zero bits (encoding);
    with ``pad=False`` (decoding) leftover bits must be fewer than
    ``from_bits`` and all zero, otherwise :class:`~omega.errors.DecodeError`.
    """
    accumulator = 0
    bits = 0
    result: list[int] = []
    max_value = (1 << to_bits) - 1
    max_accumulator = (1 << (from_bits + to_bits - 1)) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise DecodeError(f"value {value} does not fit in {from_bits} bits")
        accumulator = ((accumulator << from_bits) | value) & max_accumulator
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            result.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        raise DecodeError("it has invalid padding bits")
    return result
