"""Strict encoding and decoding of Omega's protobuf messages.

The generated betterproto2 classes parse leniently: truncated fields, bad
wire types and invalid UTF-8 either pass silently or surface as assorted
built-in exceptions. Bytes from the network or a file go through
:func:`decode_message` instead, which first walks the protobuf wire format
against the message's schema and refuses anything malformed with
:class:`~omega.errors.MessageDecodeError`:

* every tag is a valid varint with a field number in ``1..2**29-1`` and a
  wire type of 0 (varint), 1 (64-bit), 2 (length-delimited) or 5 (32-bit);
  groups (3, 4) and the reserved types (6, 7) are refused;
* every varint is at most 10 bytes and fits in 64 bits;
* every length-delimited field and fixed-width field lies inside its parent;
* a known field has the wire type its declared type allows (a repeated
  numeric field may also be packed, and its packed body must be whole);
* ``string`` fields are valid UTF-8; nested messages are checked
  recursively, up to :data:`MAX_NESTING_DEPTH` levels;
* at most one member of each ``oneof`` appears (protobuf would keep the
  last; input setting two is refused rather than guessed at);
* unknown fields are skipped (after the same structural checks), so newer
  peers can add fields without breaking older ones.

Both functions first try the fast envelope codec
(:mod:`omega.protocol._codec_py`, or its compiled twin when it was built; see
``omega.accelerator_status()["codec"]``), which handles the hot messages
(``Frame``, ``Message``, ``Ack``, the ratchet and sender-key messages,
``MessageContent``, and every other class made only of strings, bytes,
integers, floating-point and fixed-width numbers, enums and such messages)
and hands anything unusual back to the reference path described above:
betterproto2 behind the strict checker. The result, and the error, are the
same either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import betterproto2

from omega import _accel
from omega.errors import ConfigurationError, MessageDecodeError
from omega.protocol import _codec_py

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "MAX_NESTING_DEPTH", "decode_message", "encode_message"]

M = TypeVar("M", bound=betterproto2.Message)

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Largest encoded message :func:`decode_message` accepts unless told otherwise."""

MAX_NESTING_DEPTH = 32
"""Deepest nesting of messages inside messages that :func:`decode_message` accepts."""

if TYPE_CHECKING:
    _codec = _codec_py
else:
    _codec = _accel.select("codec", _codec_py)
_fast_decode = _codec.decode
_fast_encode = _codec.encode

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5
_MAX_FIELD_NUMBER = (1 << 29) - 1

_VARINT_TYPES = frozenset(
    {
        betterproto2.TYPE_INT32,
        betterproto2.TYPE_INT64,
        betterproto2.TYPE_UINT32,
        betterproto2.TYPE_UINT64,
        betterproto2.TYPE_SINT32,
        betterproto2.TYPE_SINT64,
        betterproto2.TYPE_BOOL,
        betterproto2.TYPE_ENUM,
    }
)
_FIXED64_TYPES = frozenset(
    {betterproto2.TYPE_DOUBLE, betterproto2.TYPE_FIXED64, betterproto2.TYPE_SFIXED64}
)
_FIXED32_TYPES = frozenset(
    {betterproto2.TYPE_FLOAT, betterproto2.TYPE_FIXED32, betterproto2.TYPE_SFIXED32}
)


def _wire_type_of(proto_type: str) -> int:
    if proto_type in _VARINT_TYPES:
        return _WIRE_VARINT
    if proto_type in _FIXED64_TYPES:
        return _WIRE_FIXED64
    if proto_type in _FIXED32_TYPES:
        return _WIRE_FIXED32
    return _WIRE_LEN


def _read_varint(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise MessageDecodeError(f"truncated varint in {what}")
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise MessageDecodeError(f"varint in {what} overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _check_packed(data: bytes, start: int, end: int, proto_type: str, what: str) -> None:
    if proto_type in _FIXED64_TYPES or proto_type in _FIXED32_TYPES:
        width = 8 if proto_type in _FIXED64_TYPES else 4
        if (end - start) % width:
            raise MessageDecodeError(f"packed {what} is not a whole number of {width}-byte values")
        return
    pos = start
    while pos < end:
        _, pos = _read_varint(data, pos, end, what)


def _check_oneof(members: dict[str, str], group: str, field_name: str, name: str) -> None:
    """Refuse a second member of one oneof: protobuf would keep the last one,
    betterproto2 would keep them all and then fail when asked which is set."""
    seen = members.setdefault(group, field_name)
    if seen != field_name:
        raise MessageDecodeError(
            f"{name} sets two members of its oneof {group!r}: {seen} and {field_name}"
        )


def _check_message(
    data: bytes, start: int, end: int, cls: type[betterproto2.Message], depth: int
) -> None:
    if depth > MAX_NESTING_DEPTH:
        raise MessageDecodeError(f"messages nested deeper than {MAX_NESTING_DEPTH} levels")
    # betterproto2's per-class schema metadata; its classproperty confuses mypy.
    meta: betterproto2.ProtoClassMetadata = cls._betterproto  # type: ignore[arg-type]
    name = cls.__name__
    oneof_members: dict[str, str] = {}
    pos = start
    while pos < end:
        tag, pos = _read_varint(data, pos, end, f"a tag of {name}")
        number, wire_type = tag >> 3, tag & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER:
            raise MessageDecodeError(f"invalid field number {number} in {name}")
        what = f"{name} field {number}"
        if wire_type == _WIRE_VARINT:
            _, pos = _read_varint(data, pos, end, what)
            body_start = body_end = pos
        elif wire_type in (_WIRE_FIXED64, _WIRE_FIXED32):
            body_start = pos
            pos += 8 if wire_type == _WIRE_FIXED64 else 4
            if pos > end:
                raise MessageDecodeError(f"truncated fixed-width value in {what}")
            body_end = pos
        elif wire_type == _WIRE_LEN:
            length, body_start = _read_varint(data, pos, end, what)
            body_end = body_start + length
            if body_end > end:
                raise MessageDecodeError(
                    f"{what} announces {length} bytes but only {end - body_start} remain"
                )
            pos = body_end
        else:
            raise MessageDecodeError(f"unsupported wire type {wire_type} in {what}")

        field_name = meta.field_name_by_number.get(number)
        if field_name is None:
            continue  # an unknown field from a newer peer: structurally sound, skipped
        field_meta = meta.meta_by_field_name[field_name]
        if field_meta.group is not None:
            _check_oneof(oneof_members, field_meta.group, field_name, name)
        expected = _wire_type_of(field_meta.proto_type)
        if wire_type == expected:
            if field_meta.proto_type == betterproto2.TYPE_STRING:
                try:
                    data[body_start:body_end].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MessageDecodeError(f"{what} ({field_name}) is not valid UTF-8") from exc
            elif field_meta.proto_type in (betterproto2.TYPE_MESSAGE, betterproto2.TYPE_MAP):
                child = meta.cls_by_field[field_name]
                _check_message(data, body_start, body_end, child, depth + 1)
        elif wire_type == _WIRE_LEN and field_meta.repeated and expected != _WIRE_LEN:
            _check_packed(data, body_start, body_end, field_meta.proto_type, what)
        else:
            raise MessageDecodeError(
                f"{what} ({field_name}) has wire type {wire_type}, expected {expected}"
            )


def decode_message(
    cls: type[M],
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> M:
    """Decode ``data`` as a ``cls`` message, refusing anything malformed.

    Raises :class:`~omega.errors.MessageDecodeError` when ``data`` is larger
    than ``max_size`` or is not a valid encoding of ``cls`` (see the module
    docstring for the exact rules). Nothing else escapes.
    """
    if max_size < 0:
        raise ConfigurationError(f"max_size must not be negative, got {max_size}")
    raw = data if type(data) is bytes else bytes(data)
    if len(raw) > max_size:
        raise MessageDecodeError(
            f"{cls.__name__} of {len(raw)} bytes exceeds the limit of {max_size} bytes",
            details={"size": len(raw), "limit": max_size},
        )
    message: M | None = _fast_decode(cls, raw)
    if message is not None:
        return message
    return _reference_decode(cls, raw)


def _reference_decode(cls: type[M], raw: bytes) -> M:
    """betterproto2 behind the strict checker: the definitive decoder."""
    _check_message(raw, 0, len(raw), cls, 0)
    try:
        return cls.parse(raw)
    except (ValueError, TypeError, OverflowError) as exc:  # pragma: no cover - caught above
        raise MessageDecodeError(f"invalid {cls.__name__}: {exc}") from exc


def encode_message(message: betterproto2.Message) -> bytes:
    """Encode ``message`` in the standard protobuf binary format."""
    encoded: bytes | None = _fast_encode(message)
    if encoded is None:
        return bytes(message)
    return encoded
