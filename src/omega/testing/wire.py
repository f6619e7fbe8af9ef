"""Protocol Buffers encodings written by hand, for tests of decoders of untrusted bytes.

A decoder test needs bytes that no encoder would write (fields out of order or
repeated, padded varints, unknown fields, truncations). These two functions
build them field by field, independently of Omega's codec and of
betterproto2, so a test does not check the codec against itself.
"""

from __future__ import annotations

__all__ = ["field", "varint"]


def varint(value: int) -> bytes:
    """The minimal base-128 varint of a non-negative ``value`` (low groups first)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, body: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, ``body``."""
    return varint(number << 3 | 2) + varint(len(body)) + body
