"""The fast envelope codecs: both twins agree with betterproto2, Google's runtime and each other.

``_codec_py`` (the pure reference) and ``_codec_c`` (the compiled twin) must
produce exactly betterproto2's bytes and objects for every message they
accept, hand everything unusual back (``None``), and never accept bytes the
strict reference decoder refuses. The compiled parameter is skipped, with the
reason, when it is not built, unless ``OMEGA_REQUIRE_ACCELERATED=1``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import omega.protocol as proto
from omega import _accel
from omega.errors import MessageDecodeError
from omega.protocol import _codec_py, _codec_schema, wire
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
)

COMPILED_MODULE = "omega.protocol._codec_c"
REQUIRE_ACCELERATED = os.environ.get("OMEGA_REQUIRE_ACCELERATED", "").strip() == "1"
PROTO_DIR = Path(proto.__file__).parent

HOT = [
    proto.Frame,
    proto.Message,
    proto.Ack,
    proto.RatchetMessage,
    proto.RatchetHeader,
    proto.PrekeyMessage,
    proto.SenderKeyMessage,
    proto.SenderKeyHeader,
    proto.MessageContent,
    proto.LocationContent,
]
# Everything else the codecs take, and what they must leave to betterproto2.
ALSO_FAST = [
    proto.GroupSessionState,  # repeated GroupSenderKeys
    proto.GroupSenderKeys,  # packed uint32 and uint64
    proto.RatchetSessionState,
    proto.InboundSenderKeysState,
    proto.OutboundSenderKeyState,
    proto.SenderKeyDistribution,
    proto.SignedDeviceList,
    proto.PrekeyBundle,
]


@dataclass(eq=False, repr=False)
class FixedWidth(betterproto2.Message):
    """Every fixed-width type (no Omega message uses the integer ones yet)."""

    f32: int = betterproto2.field(1, betterproto2.TYPE_FIXED32)
    f64: int = betterproto2.field(2, betterproto2.TYPE_FIXED64)
    s32: int = betterproto2.field(3, betterproto2.TYPE_SFIXED32)
    s64: int = betterproto2.field(4, betterproto2.TYPE_SFIXED64)
    d: float = betterproto2.field(5, betterproto2.TYPE_DOUBLE)
    f: float = betterproto2.field(6, betterproto2.TYPE_FLOAT)
    maybe_f32: int | None = betterproto2.field(7, betterproto2.TYPE_FIXED32, optional=True)
    maybe_d: float | None = betterproto2.field(8, betterproto2.TYPE_DOUBLE, optional=True)


@dataclass(eq=False, repr=False)
class PackedBools(betterproto2.Message):
    """Repeated bools: left to betterproto2."""

    flags: list[bool] = betterproto2.field(1, betterproto2.TYPE_BOOL, repeated=True)  # noqa: RUF009


@dataclass(eq=False, repr=False)
class PackedFixed(betterproto2.Message):
    """Repeated fixed-width numbers: left to betterproto2."""

    values: list[int] = betterproto2.field(1, betterproto2.TYPE_FIXED32, repeated=True)  # noqa: RUF009


@dataclass(eq=False, repr=False)
class ZigZag(betterproto2.Message):
    """A zig-zag integer: left to betterproto2."""

    value: int = betterproto2.field(1, betterproto2.TYPE_SINT32)


REFERENCE_ONLY = [PackedBools, PackedFixed, ZigZag]


def _compiled_or_skip() -> ModuleType:
    try:
        return importlib.import_module(COMPILED_MODULE)
    except ImportError as exc:
        if REQUIRE_ACCELERATED:
            pytest.fail(f"{COMPILED_MODULE} is not importable ({exc}) but required")
        pytest.skip(f"{COMPILED_MODULE} is not built ({exc})")


@pytest.fixture(scope="module", params=["pure", "compiled"])
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """One codec: the pure reference or the compiled twin."""
    return _codec_py if request.param == "pure" else _compiled_or_skip()


@pytest.fixture(scope="module")
def google_pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("google_pb_codec")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            "messages.proto",
        ],
        check=True,
        cwd=PROTO_DIR,
    )
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("messages_pb2")
    finally:
        sys.path.remove(str(out))


# --- random messages ------------------------------------------------------------------------

_RANGES = {
    KIND_INT32: (-(2**31), 2**31 - 1),
    KIND_INT64: (-(2**63), 2**63 - 1),
    KIND_UINT32: (0, 2**32 - 1),
    KIND_UINT64: (0, 2**64 - 1),
    KIND_FIXED32: (0, 2**32 - 1),
    KIND_FIXED64: (0, 2**64 - 1),
    KIND_SFIXED32: (-(2**31), 2**31 - 1),
    KIND_SFIXED64: (-(2**63), 2**63 - 1),
}
FLOAT32_MAX = struct.unpack("<f", bytes.fromhex("ffff7f7f"))[0]
SPECIAL_FLOATS = [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, 1e-45, 0.1]


def _value(spec: _codec_schema.FieldSpec, depth: int) -> st.SearchStrategy[Any]:
    if spec.kind == KIND_STRING:
        return st.text(max_size=12)
    if spec.kind == KIND_BYTES:
        return st.binary(max_size=40)
    if spec.kind == KIND_BOOL:
        return st.booleans()
    if spec.kind == KIND_ENUM:
        assert spec.enum_members is not None
        return st.sampled_from(list(spec.enum_members.values()))
    if spec.kind == KIND_MESSAGE:
        assert spec.child is not None
        return st.deferred(lambda: messages_of(spec.child, depth + 1))  # type: ignore[arg-type]
    if spec.kind == KIND_DOUBLE:
        return st.floats() | st.sampled_from(SPECIAL_FLOATS)
    if spec.kind == KIND_FLOAT:  # any double float32 can hold after rounding
        return (
            st.floats(width=32)
            | st.floats(-FLOAT32_MAX, FLOAT32_MAX)
            | st.sampled_from([*SPECIAL_FLOATS, FLOAT32_MAX, -FLOAT32_MAX])
        )
    low, high = _RANGES[spec.kind]
    return st.integers(low, high) | st.sampled_from([0, 1, low, high])


def messages_of(cls: type[betterproto2.Message], depth: int = 0) -> st.SearchStrategy[Any]:
    """Random instances of a class the codecs take, every field and oneof member reachable."""
    specs = _codec_schema.describe(cls)
    assert specs is not None, cls
    plain: dict[str, st.SearchStrategy[Any]] = {}
    groups: dict[int, list[tuple[str, st.SearchStrategy[Any]]]] = {}
    for spec in specs:
        if spec.kind == KIND_MESSAGE and depth >= 3:
            continue
        value = _value(spec, depth)
        if spec.repeated:
            value = st.lists(value, max_size=3)
        if spec.group:
            groups.setdefault(spec.group, []).append((spec.name, value))
        elif spec.optional:
            plain[spec.name] = st.none() | value
        else:
            plain[spec.name] = value

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kwargs = {name: draw(strategy) for name, strategy in plain.items()}
        for members in groups.values():
            chosen = draw(st.sampled_from([None, *members]))
            if chosen is not None:
                kwargs[chosen[0]] = draw(chosen[1])
        return cls(**kwargs)

    return build()


def assert_identical(ours: Any, reference: Any) -> None:
    """Same class, same attributes, same value types, all the way down."""
    assert type(ours) is type(reference)
    if isinstance(reference, betterproto2.Message):
        assert vars(ours).keys() == vars(reference).keys()
        for name, value in vars(reference).items():
            assert_identical(vars(ours)[name], value)
    elif isinstance(reference, list):
        assert len(ours) == len(reference)
        for left, right in zip(ours, reference, strict=True):
            assert_identical(left, right)
    elif isinstance(reference, float):  # bit for bit: NaN payloads and -0.0 too
        assert type(ours) is float
        assert struct.pack("<d", ours) == struct.pack("<d", reference)
    else:
        assert ours == reference


def reference_outcome(cls: type, data: bytes) -> Any:
    """What the strict reference decoder makes of ``data``: an object or the error."""
    try:
        return wire._reference_decode(cls, data)
    except MessageDecodeError as exc:
        return (type(exc), exc.message)


# --- schema -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", HOT + ALSO_FAST, ids=lambda c: c.__name__)
def test_hot_messages_are_handled_by_the_fast_codecs(cls: type) -> None:
    assert _codec_schema.describe(cls) is not None


@pytest.mark.parametrize("cls", REFERENCE_ONLY, ids=lambda c: c.__name__)
def test_other_number_kinds_stay_on_the_reference_path(codec: ModuleType, cls: type) -> None:
    assert _codec_schema.describe(cls) is None
    assert codec.decode(cls, b"", 32) is None
    assert codec.encode(cls()) is None
    assert _codec_schema.describe(int) is None


def test_the_codec_feature_is_registered() -> None:
    assert "codec" in _accel.ACCELERATED_FEATURES
    live = _accel.status()["codec"]
    assert (wire._codec is not _codec_py) == live


# --- agreement on random messages -----------------------------------------------------------


@pytest.mark.parametrize("cls", HOT + ALSO_FAST, ids=lambda c: c.__name__)
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_matches_betterproto2_and_google(
    codec: ModuleType, google_pb: ModuleType, cls: type, data: st.DataObject
) -> None:
    message = data.draw(messages_of(cls))
    expected = bytes(message)
    encoded = codec.encode(message)
    assert encoded == expected
    decoded = codec.decode(cls, encoded, wire.MAX_NESTING_DEPTH)
    assert_identical(decoded, cls.parse(expected))
    google = getattr(google_pb, cls.__name__)()
    google.ParseFromString(encoded)
    assert google.SerializeToString(deterministic=True) == encoded
    assert_identical(codec.decode(cls, google.SerializeToString(), 32), decoded)


@pytest.mark.parametrize("cls", [*HOT, FixedWidth], ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bytes_decode_as_the_reference_does(
    codec: ModuleType, cls: type, data: st.DataObject
) -> None:
    encoded = bytearray(bytes(data.draw(messages_of(cls))))
    for _ in range(data.draw(st.integers(1, 3))):
        if encoded and data.draw(st.booleans()):
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
        else:
            encoded[data.draw(st.integers(0, len(encoded))) :] = data.draw(st.binary(max_size=6))
    raw = bytes(encoded)
    fast = codec.decode(cls, raw, wire.MAX_NESTING_DEPTH)
    expected = reference_outcome(cls, raw)
    if fast is not None:
        assert_identical(fast, expected)
    public = reference_outcome_public(cls, raw)
    if isinstance(expected, tuple):
        assert public == expected
    else:
        assert_identical(public, expected)


def reference_outcome_public(cls: type, data: bytes) -> Any:
    try:
        return proto.decode_message(cls, data)
    except MessageDecodeError as exc:
        return (type(exc), exc.message)


@pytest.mark.parametrize("cls", [*HOT, FixedWidth], ids=lambda c: c.__name__)
@settings(max_examples=60)
@given(raw=st.binary(max_size=64))
def test_random_bytes_never_pass_what_the_reference_refuses(cls: type, raw: bytes) -> None:
    expected = reference_outcome(cls, raw)
    for codec in _available_codecs():
        fast = codec.decode(cls, raw, wire.MAX_NESTING_DEPTH)
        if fast is not None:
            assert_identical(fast, expected)


def _available_codecs() -> list[ModuleType]:
    codecs = [_codec_py]
    with contextlib.suppress(ImportError):
        codecs.append(importlib.import_module(COMPILED_MODULE))
    return codecs


@pytest.mark.parametrize("cls", [*HOT, FixedWidth], ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_twins_agree_exactly(cls: type, data: st.DataObject) -> None:
    codecs = _available_codecs()
    message = data.draw(messages_of(cls))
    raw = bytes(message) + data.draw(st.binary(max_size=3))
    results = [codec.decode(cls, raw, 32) for codec in codecs]
    for result in results[1:]:
        if results[0] is None:
            assert result is None
        else:
            assert_identical(result, results[0])
    assert len({codec.encode(message) for codec in codecs}) == 1


# --- hand-backs -------------------------------------------------------------------------------

HAND_BACK_BYTES = [
    (proto.Ack, "0a0161" + "f80100", "an unknown field"),
    (proto.Ack, "0a01610a0162", "a repeated singular field"),
    (proto.Frame, "1200" + "1a00", "a second oneof member"),
    (proto.Ack, "1863", "an enum value the enum does not name"),
    (proto.Ack, "0a01ff", "invalid UTF-8"),
    (proto.Ack, "10" + "ff" * 9 + "02", "a varint overflowing 64 bits"),
    (proto.Ack, "10" + "ff" * 3, "a truncated varint"),
    (proto.Ack, "0a05616263", "a truncated field"),
    (proto.Ack, "0d00000000", "a wire type that does not match"),
    (proto.Ack, "12", "a varint field tagged length-delimited"),
    (proto.Ack, "00", "field number zero"),
    (proto.RatchetHeader, "1a0100", "a varint field sent length-delimited"),
    (proto.GroupSenderKeys, "1805", "a packed field sent unpacked"),
    (proto.GroupSenderKeys, "1a0105" + "1a0106", "a second packed chunk"),
    (proto.GroupSenderKeys, "1a028080", "a varint running past its chunk"),
    (proto.GroupSenderKeys, "1a0301" + "02", "a chunk longer than the message"),
    (proto.GroupSenderKeys, "1a0bffffffffffffffffff02", "a varint overflowing 64 bits"),
]

PACKED_ACCEPTED = [
    "1a00",  # an empty chunk: an empty list, as betterproto2 reads it
    "1a03010203",
    "1a0580808080" + "10",  # a uint32 beyond 32 bits, masked as betterproto2 does
    "220affffffffffffffffff01" + "1a0100",  # uint64 max, then key ids
    "1a028100",  # a padded varint
]


@pytest.mark.parametrize("hex_bytes", PACKED_ACCEPTED)
def test_packed_integers_decode_as_betterproto2_does(codec: ModuleType, hex_bytes: str) -> None:
    raw = bytes.fromhex(hex_bytes)
    decoded = codec.decode(proto.GroupSenderKeys, raw, 32)
    assert decoded is not None
    assert_identical(decoded, reference_outcome(proto.GroupSenderKeys, raw))


FIXED_HAND_BACK_BYTES = [
    (proto.LocationContent, "0d00000000", "a double sent as 32 bits"),
    (proto.LocationContent, "190000000000000000", "a float sent as 64 bits"),
    (proto.LocationContent, "08" + "00", "a double sent as a varint"),
    (proto.LocationContent, "09" + "00" * 7, "a truncated double"),
    (proto.LocationContent, "1d" + "00" * 3, "a truncated float"),
    (proto.LocationContent, "0900000000000000000900000000000000", "a repeated double"),
]


@pytest.mark.parametrize(("cls", "hex_bytes", "why"), HAND_BACK_BYTES + FIXED_HAND_BACK_BYTES)
def test_unusual_bytes_are_handed_back(
    codec: ModuleType, cls: type, hex_bytes: str, why: str
) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert codec.decode(cls, raw, 32) is None, why
    reference = reference_outcome(cls, raw)
    public = reference_outcome_public(cls, raw)
    if isinstance(reference, tuple):
        assert public == reference
    else:
        assert_identical(public, reference)


def test_unknown_fields_survive_through_the_reference_path(codec: ModuleType) -> None:
    raw = bytes.fromhex("0a0161f80100")
    decoded = proto.decode_message(proto.Ack, raw)
    assert decoded._unknown_fields == bytes.fromhex("f80100")
    assert codec.encode(decoded) is None
    assert proto.encode_message(decoded) == raw


def test_nesting_deeper_than_allowed_is_handed_back(codec: ModuleType) -> None:
    raw = proto.encode_message(proto.Frame(message=proto.Message(message_id="x")))
    assert codec.decode(proto.Frame, raw, 1) is not None
    assert codec.decode(proto.Frame, raw, 0) is None
    assert codec.decode(proto.Frame, b"", -1) is None


BAD_VALUES: list[tuple[Any, str]] = [
    (proto.Ack(message_id=b"bytes"), "bytes in a string field"),  # type: ignore[arg-type]
    (proto.Ack(message_id="\ud800"), "a lone surrogate"),
    (proto.RatchetMessage(header="text"), "a str in a bytes field"),  # type: ignore[arg-type]
    (proto.RatchetHeader(version=-1), "a negative uint32"),
    (proto.RatchetHeader(version=1 << 32), "a uint32 overflow"),
    (proto.Ack(timestamp=1 << 63), "an int64 overflow"),
    (proto.Ack(timestamp=1.5), "a float in an int field"),  # type: ignore[arg-type]
    (proto.Ack(status=proto.MessageType.IMAGE), "another enum's member"),  # type: ignore[arg-type]
    (proto.Ack(status=True), "a bool in an enum field"),  # type: ignore[arg-type]
    (proto.Ack(status=1 << 40), "an enum value out of range"),  # type: ignore[arg-type]
    (proto.KeyRequest(device_list=1), "an int in a bool field"),  # type: ignore[arg-type]
    (proto.Frame(message=proto.Ack()), "a message of another class"),  # type: ignore[arg-type]
    (proto.Message(mentions=("a",)), "a tuple in a repeated field"),  # type: ignore[arg-type]
    (proto.Message(mentions=[b"a"]), "bytes in a repeated string"),  # type: ignore[list-item]
    (proto.Message(ttl_days=1 << 31), "an int32 overflow"),
    (proto.Message(encryption="x"), "a str in an enum field"),  # type: ignore[arg-type]
    (proto.Frame(message=proto.Message(ttl_days=1 << 40)), "a bad nested value"),
    (proto.GroupSenderKeys(key_ids=[-1]), "a negative packed uint32"),
    (proto.GroupSenderKeys(key_ids=[1 << 32]), "a packed uint32 overflow"),
    (proto.GroupSenderKeys(key_epochs=[1 << 64]), "a packed uint64 overflow"),
    (proto.GroupSenderKeys(key_ids=[True]), "a bool in a packed uint32"),
    (proto.GroupSenderKeys(key_epochs=[1.0]), "a float in a packed uint64"),  # type: ignore[list-item]
    (proto.GroupSenderKeys(key_ids=(1,)), "a tuple in a packed field"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("message", "why"), BAD_VALUES)
def test_unexpected_values_are_handed_back(codec: ModuleType, message: Any, why: str) -> None:
    assert codec.encode(message) is None, why


def test_a_message_missing_attributes_is_handed_back(codec: ModuleType) -> None:
    message = proto.Ack(message_id="x")
    del message._unknown_fields
    assert codec.encode(message) is None
    message = proto.Ack(message_id="x")
    del message.__dict__["reason"]
    assert codec.encode(message) is None


def test_plain_ints_encode_like_enum_members(codec: ModuleType) -> None:
    for value in (0, 2):
        message = proto.Ack(message_id="m", status=value)  # type: ignore[arg-type]
        assert codec.encode(message) == bytes(message)


def test_defaults_and_presence(codec: ModuleType) -> None:
    assert codec.encode(proto.Message()) == b""
    assert codec.encode(proto.Message(ttl_days=0)) == bytes.fromhex("4800")
    assert codec.encode(proto.Frame(ping=proto.Ping())) == bytes.fromhex("1a00")
    assert codec.encode(proto.Message(mentions=["", "a"])) == bytes.fromhex("5200520161")
    assert codec.encode(proto.Ack(timestamp=-1)) == bytes.fromhex("10" + "ff" * 9 + "01")
    decoded = codec.decode(proto.Message, bytes.fromhex("4800"), 32)
    assert decoded.ttl_days == 0
    assert decoded.reply_to is None
    assert codec.decode(proto.KeyRequest, bytes.fromhex("0802"), 32).device_list is True
    assert codec.decode(proto.Ping, bytes.fromhex("08" + "ff" * 9 + "01"), 32).nonce == 2**64 - 1


def test_decoded_repeated_fields_are_fresh_lists(codec: ModuleType) -> None:
    first = codec.decode(proto.Message, b"", 32)
    first.mentions.append("x")
    assert codec.decode(proto.Message, b"", 32).mentions == []


# --- fixed-width and floating-point fields ----------------------------------------------------


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fixed_width_round_trip_matches_betterproto2(
    codec: ModuleType, data: st.DataObject
) -> None:
    message = data.draw(messages_of(FixedWidth))
    encoded = codec.encode(message)
    assert encoded == bytes(message)
    assert_identical(codec.decode(FixedWidth, encoded, 32), FixedWidth.parse(encoded))


NEXT_ROUNDS_TO_INFINITY = FLOAT32_MAX + 2.0**103  # halfway: rounds to even, which is infinity
FLOAT_VALUES: list[Any] = [
    proto.LocationContent(latitude=math.nan, longitude=-math.nan),
    proto.LocationContent(latitude=math.inf, longitude=-math.inf),
    proto.LocationContent(latitude=-0.0, longitude=5e-324),  # -0.0 == 0.0: not written
    proto.LocationContent(accuracy_meters=-0.0),  # optional: written, sign kept
    proto.LocationContent(accuracy_meters=0.0),
    proto.LocationContent(accuracy_meters=0.1),  # rounded to the nearest float32
    proto.LocationContent(accuracy_meters=1e-46),  # rounds to 0.0
    proto.LocationContent(accuracy_meters=math.nan),
    proto.LocationContent(accuracy_meters=-math.inf),
    proto.LocationContent(accuracy_meters=FLOAT32_MAX),
    proto.LocationContent(accuracy_meters=math.nextafter(NEXT_ROUNDS_TO_INFINITY, 0.0)),
    proto.MessageContent(location=proto.LocationContent(latitude=48.85, longitude=2.35)),
    FixedWidth(f=-0.0, maybe_d=-0.0, maybe_f32=0, s32=-1, s64=-(2**63), f64=2**64 - 1),
]


@pytest.mark.parametrize("message", FLOAT_VALUES, ids=repr)
def test_floating_point_values_encode_as_betterproto2_does(codec: ModuleType, message: Any) -> None:
    encoded = codec.encode(message)
    assert encoded == bytes(message)
    assert proto.encode_message(message) == encoded
    assert_identical(codec.decode(type(message), encoded, 32), type(message).parse(encoded))


@pytest.mark.parametrize("value", [1e39, -1e39, NEXT_ROUNDS_TO_INFINITY, 1e308])
def test_a_float_beyond_float32_is_handed_back_and_fails_as_betterproto2(
    codec: ModuleType, value: float
) -> None:
    message = proto.LocationContent(accuracy_meters=value)
    assert codec.encode(message) is None
    with pytest.raises(OverflowError) as reference:
        bytes(message)
    with pytest.raises(OverflowError) as public:
        proto.encode_message(message)
    assert str(public.value) == str(reference.value)


FIXED_BAD_VALUES: list[tuple[Any, str]] = [
    (proto.LocationContent(latitude=1), "an int in a double field"),  # type: ignore[arg-type]
    (proto.LocationContent(latitude=True), "a bool in a double field"),  # type: ignore[arg-type]
    (proto.LocationContent(accuracy_meters=2), "an int in a float field"),  # type: ignore[arg-type]
    (FixedWidth(f32=-1), "a negative fixed32"),
    (FixedWidth(f32=2**32), "a fixed32 overflow"),
    (FixedWidth(f64=2**64), "a fixed64 overflow"),
    (FixedWidth(s32=2**31), "an sfixed32 overflow"),
    (FixedWidth(s64=-(2**63) - 1), "an sfixed64 underflow"),
    (FixedWidth(f32=1.0), "a float in a fixed32 field"),  # type: ignore[arg-type]
    (FixedWidth(s64=True), "a bool in an sfixed64 field"),
]


@pytest.mark.parametrize(("message", "why"), FIXED_BAD_VALUES)
def test_unexpected_fixed_width_values_are_handed_back(
    codec: ModuleType, message: Any, why: str
) -> None:
    assert codec.encode(message) is None, why


FIXED_BYTES = [
    (proto.LocationContent, "09" + "0100000000" + "00f07f", "a signalling NaN double"),
    (proto.LocationContent, "1d" + "0100807f", "a signalling NaN float"),
    (proto.LocationContent, "1d" + "01000000", "a float32 subnormal"),
    (proto.LocationContent, "09" + "0000000000000080", "-0.0 sent anyway"),
]


@pytest.mark.parametrize(("cls", "hex_bytes", "why"), FIXED_BYTES)
def test_fixed_width_bytes_decode_as_betterproto2_does(
    codec: ModuleType, cls: type, hex_bytes: str, why: str
) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert_identical(codec.decode(cls, raw, 32), reference_outcome(cls, raw))
