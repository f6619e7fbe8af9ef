"""The schema tables the fast envelope codecs walk, derived from betterproto2's metadata.

:mod:`omega.protocol.wire` encodes and decodes messages through a fast codec
(:mod:`omega.protocol._codec_py`, or its compiled twin ``_codec_c``) and
falls back to betterproto2 plus the strict wire checker for anything the fast
codec does not handle. This module says which classes the fast codecs handle
and how: a class qualifies when every field is a string, bytes, bool, enum,
int32, int64, uint32, uint64, double, float, fixed32, fixed64, sfixed32,
sfixed64 or a (qualifying) message, singular, optional, in a oneof, or
repeated for strings, bytes, messages and (packed, as proto3 writes them)
int32, int64, uint32 and uint64. Maps, zig-zag integers, other repeated
numbers and well-known wrapper types send the whole class down the reference
path.

The tables come from the generated classes themselves, so a schema change
needs no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import betterproto2

__all__ = [
    "KIND_BOOL",
    "KIND_BYTES",
    "KIND_DOUBLE",
    "KIND_ENUM",
    "KIND_FIXED32",
    "KIND_FIXED64",
    "KIND_FLOAT",
    "KIND_INT32",
    "KIND_INT64",
    "KIND_MESSAGE",
    "KIND_SFIXED32",
    "KIND_SFIXED64",
    "KIND_STRING",
    "KIND_UINT32",
    "KIND_UINT64",
    "MAX_FIELDS",
    "PACKED_KINDS",
    "FieldSpec",
    "describe",
]

KIND_STRING, KIND_BYTES, KIND_MESSAGE = 1, 2, 3
KIND_BOOL, KIND_ENUM, KIND_INT32, KIND_INT64, KIND_UINT32, KIND_UINT64 = 4, 5, 6, 7, 8, 9
# Fixed-width kinds: 64-bit ones (wire type 1) first, then 32-bit ones (wire type 5).
KIND_DOUBLE, KIND_FIXED64, KIND_SFIXED64 = 10, 11, 12
KIND_FLOAT, KIND_FIXED32, KIND_SFIXED32 = 13, 14, 15

MAX_FIELDS = 63
"""Most fields a class may have to qualify (the codecs track seen fields in a 64-bit mask)."""

_MAX_FIELD_NUMBER = 4096  # the codecs index fields by number in a table

_KINDS = {
    betterproto2.TYPE_STRING: KIND_STRING,
    betterproto2.TYPE_BYTES: KIND_BYTES,
    betterproto2.TYPE_MESSAGE: KIND_MESSAGE,
    betterproto2.TYPE_BOOL: KIND_BOOL,
    betterproto2.TYPE_ENUM: KIND_ENUM,
    betterproto2.TYPE_INT32: KIND_INT32,
    betterproto2.TYPE_INT64: KIND_INT64,
    betterproto2.TYPE_UINT32: KIND_UINT32,
    betterproto2.TYPE_UINT64: KIND_UINT64,
    betterproto2.TYPE_DOUBLE: KIND_DOUBLE,
    betterproto2.TYPE_FIXED64: KIND_FIXED64,
    betterproto2.TYPE_SFIXED64: KIND_SFIXED64,
    betterproto2.TYPE_FLOAT: KIND_FLOAT,
    betterproto2.TYPE_FIXED32: KIND_FIXED32,
    betterproto2.TYPE_SFIXED32: KIND_SFIXED32,
}
PACKED_KINDS = frozenset({KIND_INT32, KIND_INT64, KIND_UINT32, KIND_UINT64})
"""Repeated integer kinds the codecs take, always in proto3's packed encoding."""

_REPEATABLE = frozenset({KIND_STRING, KIND_BYTES, KIND_MESSAGE}) | PACKED_KINDS


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a qualifying class, as the fast codecs see it."""

    index: int
    """Position among the class's fields (betterproto2's order, which it encodes in)."""
    number: int
    """Protobuf field number."""
    name: str
    """Attribute name."""
    kind: int
    """One of the ``KIND_*`` constants."""
    optional: bool
    """True when absence is ``None`` (proto3 ``optional``, messages, oneof members)."""
    repeated: bool
    """True for a repeated field (strings, bytes, messages, or packed integers)."""
    group: int
    """1-based index of the field's oneof, 0 when the field is in none."""
    child: type[betterproto2.Message] | None
    """The message class of a message field."""
    enum_members: dict[int, Any] | None
    """Value -> member of an enum field's enum."""
    default: Any
    """Value of a freshly built instance (a new empty list for repeated fields)."""


_cache: dict[type, tuple[FieldSpec, ...] | None] = {}


def describe(cls: type) -> tuple[FieldSpec, ...] | None:
    """The field table of ``cls``, or ``None`` when the fast codecs must not handle it."""
    try:
        return _cache[cls]
    except KeyError:
        pass
    _cache[cls] = None  # while building: a cycle back to cls is not supported
    specs = _build(cls)
    if specs is not None:
        for spec in specs:
            if spec.child is not None and describe(spec.child) is None:
                specs = None
                break
    _cache[cls] = specs
    return specs


def _build(cls: type) -> tuple[FieldSpec, ...] | None:
    if not (isinstance(cls, type) and issubclass(cls, betterproto2.Message)):
        return None
    instance = cls()
    if instance._is_pydantic():
        return None
    meta: betterproto2.ProtoClassMetadata = cls._betterproto  # type: ignore[arg-type]
    if len(meta.meta_by_field_name) > MAX_FIELDS:
        return None
    groups: dict[str, int] = {}
    specs = []
    for index, (name, field_meta) in enumerate(meta.meta_by_field_name.items()):
        kind = _KINDS.get(field_meta.proto_type)
        repeated = bool(field_meta.repeated)
        if (
            kind is None
            or field_meta.map_meta is not None
            or field_meta.unwrap is not None
            or (repeated and kind not in _REPEATABLE)
            or not 1 <= field_meta.number <= _MAX_FIELD_NUMBER
        ):
            return None
        group = 0
        if field_meta.group:
            group = groups.setdefault(field_meta.group, len(groups) + 1)
        child = meta.cls_by_field[name] if kind == KIND_MESSAGE else None
        enum_members = None
        if kind == KIND_ENUM:
            enum_cls: Any = meta.cls_by_field[name]
            enum_members = {int(member): member for member in enum_cls}
        default = getattr(instance, name)
        optional = default is None
        if kind == KIND_MESSAGE and not (optional or repeated):
            return None  # betterproto2 always makes message fields optional
        specs.append(
            FieldSpec(
                index=index,
                number=field_meta.number,
                name=name,
                kind=kind,
                optional=optional,
                repeated=repeated,
                group=group,
                child=child,
                enum_members=enum_members,
                default=default,
            )
        )
    return tuple(specs)
