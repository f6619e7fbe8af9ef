"""Fast encoding and decoding of the qualifying wire messages, pure-Python reference.

:func:`encode` and :func:`decode` handle the classes
:func:`omega.protocol._codec_schema.describe` accepts, for the inputs they
can handle exactly, and return ``None`` for everything else: then
:mod:`omega.protocol.wire` takes betterproto2's path with the strict wire
checker, which gives the definitive answer and the exact error. So this
codec never decides that bytes are invalid; it only accepts bytes that the
strict path accepts, and builds exactly the object betterproto2 would.

:func:`decode` hands back to the reference path on: a truncated or
overlong varint or field, an unknown field number (betterproto2 keeps
unknown fields), a wire type that does not match the field, a field that
appears twice or a second member of a oneof (betterproto2's
last-one-wins and merge rules; for a repeated integer field, anything but
one packed occurrence whose body is whole varints), an enum value the enum does not name, a
string that is not valid UTF-8, and nesting deeper than ``max_depth``.
:func:`encode` hands back on: unknown fields kept from a parse, a value of
an unexpected type (a ``float`` field takes exactly a ``float``, never an
``int``), an integer outside its field's range, a value a ``float`` field
cannot hold (it overflows float32: betterproto2's ``struct.pack`` raises
``OverflowError``, which the reference path then raises), and a nested
message of another class. Floating-point values are packed and unpacked with
:mod:`struct` exactly as betterproto2 does (float32 rounds to nearest, NaN
and infinities pass, and a non-optional ``-0.0`` counts as the default and
is not written, as betterproto2 compares ``value == 0.0``).

The compiled twin ``omega.protocol._codec_c`` implements the same two
functions with the same results; tests pin the two together and to
betterproto2.
"""

from __future__ import annotations

import struct
from typing import Any

from omega.protocol._codec_schema import (
    KIND_BOOL,
    KIND_BYTES,
    KIND_DOUBLE,
    KIND_ENUM,
    KIND_FIXED32,
    KIND_FIXED64,
    KIND_FLOAT,
    KIND_INT32,
    KIND_INT64,
    KIND_MESSAGE,
    KIND_SFIXED32,
    KIND_SFIXED64,
    KIND_STRING,
    KIND_UINT32,
    KIND_UINT64,
    PACKED_KINDS,
    FieldSpec,
    describe,
)

__all__ = ["MAX_NESTING_DEPTH", "decode", "encode"]

MAX_NESTING_DEPTH = 32
"""Deepest nesting :func:`decode` accepts by default (``omega.protocol.wire``'s limit)."""

_LEN_KINDS = frozenset({KIND_STRING, KIND_BYTES, KIND_MESSAGE})
_RANGES = {
    KIND_ENUM: (-(1 << 31), 1 << 31),
    KIND_INT32: (-(1 << 31), 1 << 31),
    KIND_INT64: (-(1 << 63), 1 << 63),
    KIND_UINT32: (0, 1 << 32),
    KIND_UINT64: (0, 1 << 64),
    KIND_FIXED32: (0, 1 << 32),
    KIND_FIXED64: (0, 1 << 64),
    KIND_SFIXED32: (-(1 << 31), 1 << 31),
    KIND_SFIXED64: (-(1 << 63), 1 << 63),
}
# Fixed-width kinds: (wire type, struct) -- betterproto2's own formats.
_FIXED = {
    KIND_DOUBLE: (1, struct.Struct("<d")),
    KIND_FIXED64: (1, struct.Struct("<Q")),
    KIND_SFIXED64: (1, struct.Struct("<q")),
    KIND_FLOAT: (5, struct.Struct("<f")),
    KIND_FIXED32: (5, struct.Struct("<I")),
    KIND_SFIXED32: (5, struct.Struct("<i")),
}
_FLOAT_KINDS = frozenset({KIND_DOUBLE, KIND_FLOAT})
_MASK64 = (1 << 64) - 1


class _Table:
    """A class's fields indexed for decoding, and a template of its fresh instance."""

    __slots__ = ("by_number", "fields", "repeated", "template")

    def __init__(self, cls: type, fields: tuple[FieldSpec, ...]) -> None:
        self.fields = fields
        self.by_number = {spec.number: spec for spec in fields}
        self.repeated = tuple(spec.name for spec in fields if spec.repeated)
        self.template = {spec.name: spec.default for spec in fields}
        self.template["_unknown_fields"] = b""


_tables: dict[type, _Table | None] = {}


def _table(cls: type) -> _Table | None:
    try:
        return _tables[cls]
    except KeyError:
        fields = describe(cls)
        table = None if fields is None else _Table(cls, fields)
        _tables[cls] = table
        return table


class _HandBackError(Exception):
    """Internal: this input is for the reference path."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _HandBackError
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise _HandBackError
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _convert(spec: FieldSpec, value: int) -> Any:
    """betterproto2's post-processing of a varint."""
    kind = spec.kind
    if kind == KIND_UINT64:
        return value
    if kind == KIND_UINT32:
        return value & 0xFFFFFFFF
    if kind == KIND_BOOL:
        return value > 0
    if kind == KIND_INT32:
        value &= 0xFFFFFFFF
        return (value ^ 0x80000000) - 0x80000000
    value = (value ^ (1 << 63)) - (1 << 63)  # int64 and enum
    if kind == KIND_ENUM:
        assert spec.enum_members is not None
        member = spec.enum_members.get(value)
        if member is None:
            raise _HandBackError
        return member
    return value


def _fixed(kind: int, wire_type: int, data: bytes, pos: int, end: int) -> tuple[Any, int]:
    """A fixed-width value at ``pos``, unpacked as betterproto2 does (with ``struct``)."""
    expected, packer = _FIXED[kind]
    if wire_type != expected or pos + packer.size > end:
        raise _HandBackError
    return packer.unpack_from(data, pos)[0], pos + packer.size


def _read_packed(spec: FieldSpec, data: bytes, pos: int, end: int, items: list[Any]) -> int:
    """Append the varints of the packed chunk at ``pos`` to ``items``; return where it ends."""
    length, pos = _varint(data, pos, end)
    start, pos = pos, pos + length
    if pos > end:
        raise _HandBackError
    while start < pos:
        raw, start = _varint(data, start, pos)
        items.append(_convert(spec, raw))
    return pos


def _decode(table: _Table, cls: Any, data: bytes, pos: int, end: int, depth: int) -> Any:  # noqa: PLR0915, PLR0917 - one loop, no call per field
    if depth < 0:
        raise _HandBackError
    values = dict(table.template)
    for name in table.repeated:
        values[name] = []
    seen: set[int] = set()
    by_number = table.by_number
    while pos < end:
        tag, pos = _varint(data, pos, end)
        spec = by_number.get(tag >> 3)
        if spec is None:
            raise _HandBackError
        wire_type = tag & 7
        if spec.repeated and spec.kind in PACKED_KINDS:
            if wire_type != 2 or spec.index in seen:
                raise _HandBackError  # unpacked, or a second chunk (betterproto2 appends)
            seen.add(spec.index)
            pos = _read_packed(spec, data, pos, end, values[spec.name])
            continue
        if spec.kind in _LEN_KINDS:
            if wire_type != 2:
                raise _HandBackError
            length, pos = _varint(data, pos, end)
            start, pos = pos, pos + length
            if pos > end:
                raise _HandBackError
            if spec.kind == KIND_BYTES:
                value: Any = data[start:pos]
            elif spec.kind == KIND_STRING:
                try:
                    value = data[start:pos].decode("utf-8")
                except UnicodeDecodeError:
                    raise _HandBackError from None
            else:
                assert spec.child is not None
                child = _table(spec.child)
                assert child is not None
                value = _decode(child, spec.child, data, start, pos, depth - 1)
        elif spec.kind in _FIXED:
            value, pos = _fixed(spec.kind, wire_type, data, pos, end)
        else:
            if wire_type != 0:
                raise _HandBackError
            raw, pos = _varint(data, pos, end)
            value = _convert(spec, raw)
        if spec.repeated:
            values[spec.name].append(value)
            continue
        marker = -spec.group if spec.group else spec.index
        if marker in seen:
            raise _HandBackError
        seen.add(marker)
        values[spec.name] = value
    instance = cls.__new__(cls)
    instance.__dict__.update(values)
    return instance


def decode(cls: type, data: bytes, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """Decode ``data`` as ``cls``, or return ``None`` to hand it to the reference path.

    ``max_depth`` is how many levels of nested messages may follow (the
    strict decoder's limit unless told otherwise).
    """
    table = _table(cls)
    if table is None:
        return None
    try:
        return _decode(table, cls, data, 0, len(data), max_depth)
    except _HandBackError:
        return None


def _put_varint(out: bytearray, value: int) -> None:
    value &= _MASK64
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_len(out: bytearray, number: int, body: bytes) -> None:
    _put_varint(out, number << 3 | 2)
    _put_varint(out, len(body))
    out += body


def _put_fixed(out: bytearray, spec: FieldSpec, value: Any) -> None:
    kind = spec.kind
    wire_type, packer = _FIXED[kind]
    if kind in _FLOAT_KINDS:
        if type(value) is not float:
            raise _HandBackError
    elif type(value) is not int:
        raise _HandBackError
    else:
        low, high = _RANGES[kind]
        if not low <= value < high:
            raise _HandBackError
    try:
        packed = packer.pack(value)
    except OverflowError:  # a float beyond float32's range, exactly where struct says so
        raise _HandBackError from None
    _put_varint(out, spec.number << 3 | wire_type)
    out += packed


def _put_item(out: bytearray, spec: FieldSpec, value: Any) -> None:
    kind = spec.kind
    if kind == KIND_BYTES:
        if type(value) is not bytes:
            raise _HandBackError
        _put_len(out, spec.number, value)
    elif kind == KIND_STRING:
        if type(value) is not str:
            raise _HandBackError
        try:
            _put_len(out, spec.number, value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _HandBackError from None
    elif kind == KIND_MESSAGE:
        if type(value) is not spec.child:
            raise _HandBackError
        _put_len(out, spec.number, _encode(value))
    elif kind in _FIXED:
        _put_fixed(out, spec, value)
    else:
        if kind == KIND_BOOL:
            if type(value) is not bool:
                raise _HandBackError
        elif kind == KIND_ENUM:
            if not isinstance(value, int) or isinstance(value, bool):
                raise _HandBackError
            if type(value) is not int:
                assert spec.enum_members is not None
                if spec.enum_members.get(int(value)) is not value:
                    raise _HandBackError  # another enum's member
        elif type(value) is not int:
            raise _HandBackError
        if kind != KIND_BOOL:
            _check_range(kind, value)
        _put_varint(out, spec.number << 3)
        _put_varint(out, int(value))


def _check_range(kind: int, value: int) -> None:
    low, high = _RANGES[kind]
    if not low <= value < high:
        raise _HandBackError


def _put_packed(out: bytearray, spec: FieldSpec, items: list[Any]) -> None:
    """A repeated integer field as proto3 writes it: one chunk of varints, none if empty."""
    if not items:
        return
    body = bytearray()
    for item in items:
        if type(item) is not int:
            raise _HandBackError
        _check_range(spec.kind, item)
        _put_varint(body, item)
    _put_len(out, spec.number, bytes(body))


def _is_default(kind: int, value: Any) -> bool:
    if kind == KIND_STRING:
        return type(value) is str and not value
    if kind == KIND_BYTES:
        return type(value) is bytes and not value
    if kind == KIND_BOOL:
        return value is False
    if kind in _FLOAT_KINDS:
        return type(value) is float and value == 0.0  # -0.0 too, as in betterproto2
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _encode(message: Any) -> bytes:
    table = _table(type(message))
    if table is None:
        raise _HandBackError
    values = message.__dict__
    if values.get("_unknown_fields", None) != b"":
        raise _HandBackError
    out = bytearray()
    for spec in table.fields:
        value = values[spec.name]
        if value is None:
            continue
        if spec.repeated:
            if type(value) is not list:
                raise _HandBackError
            if spec.kind in PACKED_KINDS:
                _put_packed(out, spec, value)
                continue
            for item in value:
                _put_item(out, spec, item)
            continue
        if not spec.optional and _is_default(spec.kind, value):
            continue  # proto3: a singular field at its default is not written
        _put_item(out, spec, value)
    return bytes(out)


def encode(message: Any) -> bytes | None:
    """Encode ``message``, or return ``None`` to hand it to betterproto2."""
    try:
        return _encode(message)
    except (_HandBackError, KeyError):
        return None
