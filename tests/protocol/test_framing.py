"""Length-prefixed framing: both implementations, and their agreement.

Every behavioural test runs against the pure-Python reference and the
compiled Cython twin. The twin's parameter is skipped, with the reason, when
it is not built, unless ``OMEGA_REQUIRE_ACCELERATED=1`` makes that a failure.
"""

from __future__ import annotations

import array
import importlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega import _accel
from omega.errors import (
    ConfigurationError,
    FrameTooLargeError,
    MalformedFrameError,
    OmegaError,
)
from omega.protocol import _framing_py, framing

COMPILED_MODULE = "omega.protocol._framing_c"
REQUIRE_ACCELERATED = os.environ.get("OMEGA_REQUIRE_ACCELERATED", "").strip() == "1"


def _compiled_or_skip() -> ModuleType:
    try:
        return importlib.import_module(COMPILED_MODULE)
    except ImportError as exc:
        if REQUIRE_ACCELERATED:
            pytest.fail(
                f"{COMPILED_MODULE} is not importable ({exc}) but OMEGA_REQUIRE_ACCELERATED=1"
            )
        pytest.skip(
            f"{COMPILED_MODULE} is not built ({exc}); "
            "build it with `python setup.py build_ext --inplace`"
        )


@pytest.fixture(scope="module", params=["pure", "compiled"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """One framing implementation: the pure reference or the compiled twin."""
    if request.param == "pure":
        return _framing_py
    return _compiled_or_skip()


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    """The compiled twin, for the differential tests."""
    return _compiled_or_skip()


def frames_of(*payloads: bytes) -> bytes:
    return b"".join(_framing_py.encode_frame(payload) for payload in payloads)


# --- known vectors --------------------------------------------------------------------------

PREFIX_VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (16383, "ff7f"),
    (16384, "808001"),
    (1 << 20, "808040"),
]


def test_constants_match_the_spec(impl: ModuleType) -> None:
    assert impl.DEFAULT_MAX_FRAME_SIZE == 1 << 20
    assert impl.MAX_FRAME_SIZE_LIMIT == 2**31 - 1
    assert impl.FrameDecoder().max_frame_size == 1 << 20
    assert sorted(impl.__all__) == sorted(_framing_py.__all__)


@pytest.mark.parametrize(("size", "prefix_hex"), PREFIX_VECTORS)
def test_known_vectors_encode_and_decode(impl: ModuleType, size: int, prefix_hex: str) -> None:
    payload = bytes(index % 251 for index in range(size))
    frame = impl.encode_frame(payload)
    assert frame == bytes.fromhex(prefix_hex) + payload

    decoder = impl.FrameDecoder()
    assert decoder.feed(frame) == [payload]
    assert decoder.buffered == 0
    assert not decoder.failed


@pytest.mark.parametrize(("size", "prefix_hex"), PREFIX_VECTORS[:6])
def test_known_vectors_byte_by_byte(impl: ModuleType, size: int, prefix_hex: str) -> None:
    payload = b"\xa5" * size
    stream = bytes.fromhex(prefix_hex) + payload
    decoder = impl.FrameDecoder()
    for index in range(len(stream) - 1):
        assert decoder.feed(stream[index : index + 1]) == []
        assert decoder.buffered == index + 1
    assert decoder.feed(stream[-1:]) == [payload]
    assert decoder.buffered == 0


def test_largest_prefix_is_five_bytes(impl: ModuleType) -> None:
    limit = impl.MAX_FRAME_SIZE_LIMIT
    decoder = impl.FrameDecoder(limit)
    assert decoder.max_frame_size == limit
    assert decoder.feed(bytes.fromhex("ffffffff07") + b"abc") == []
    assert decoder.buffered == 8


def test_empty_frames_and_empty_chunks(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x00\x00\x01") == [b"", b""]
    assert decoder.feed(b"") == []
    assert decoder.buffered == 1
    assert decoder.feed(b"z\x00") == [b"z", b""]
    assert impl.encode_frame(b"") == b"\x00"


# --- round trips under any chunking ---------------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda size, fill: bytes([fill]) * size, st.integers(0, 20_000), st.integers(0, 255)),
)


@st.composite
def chunkings(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """Split ``stream`` at random points (repeats give empty chunks), or into single bytes."""
    if draw(st.booleans()):
        return [stream[index : index + 1] for index in range(len(stream))]
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(payloads, max_size=12), data=st.data())
def test_round_trip_under_any_chunking(
    impl: ModuleType, messages: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(impl.encode_frame(message) for message in messages)
    decoder = impl.FrameDecoder()
    received: list[bytes] = []
    for chunk in data.draw(chunkings(stream)):
        out = decoder.feed(chunk)
        assert all(type(frame) is bytes for frame in out)
        received.extend(out)
        assert decoder.buffered <= 5 + decoder.max_frame_size
    assert received == messages
    assert decoder.buffered == 0
    assert not decoder.failed


@pytest.mark.parametrize("size", [65_535, 65_536, 65_537, 300_000])
def test_large_frames_in_small_chunks(impl: ModuleType, size: int) -> None:
    # 64 KiB is where the compiled twin switches how it holds an incomplete frame.
    big = bytes(index % 253 for index in range(size))
    stream = frames_of(b"a", big, b"", b"tail", big[:70_000], b"x")
    decoder = impl.FrameDecoder()
    received: list[bytes] = []
    for start in range(0, len(stream), 997):
        received.extend(decoder.feed(stream[start : start + 997]))
        assert decoder.buffered <= 3 + size
    assert received == [b"a", big, b"", b"tail", big[:70_000], b"x"]
    assert decoder.buffered == 0


def test_error_while_holding_a_large_frame_drops_it(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder()
    assert decoder.feed(b"\x80\x80\x08" + b"z" * 100_000) == []  # a frame of 131072 bytes
    assert decoder.buffered == 100_003
    assert decoder.feed(b"z" * 31_072 + b"\x80\x00") == [b"z" * 131_072]
    assert decoder.failed
    assert decoder.buffered == 0


def test_bytearray_and_memoryview_input(impl: ModuleType) -> None:
    stream = frames_of(b"first", b"second", b"third")
    decoder = impl.FrameDecoder()
    caller_buffer = bytearray(stream[:9])
    assert decoder.feed(caller_buffer) == [b"first"]
    # The decoder neither keeps the caller's buffer exported nor aliases it.
    caller_buffer[:] = b"\xff" * 9
    caller_buffer.extend(b"grows")
    assert decoder.feed(memoryview(b"xx" + stream + b"yy")[11 : -2 - 6]) == [b"second"]
    assert decoder.feed(memoryview(bytearray(stream[-6:]))) == [b"third"]

    assert impl.encode_frame(bytearray(b"ab")) == b"\x02ab"
    assert impl.encode_frame(memoryview(b"xabx")[1:3]) == b"\x02ab"


def test_multibyte_buffers_are_read_as_raw_bytes(impl: ModuleType) -> None:
    words = array.array("H", [0x0102, 0x0304])
    assert impl.encode_frame(words) == b"\x04" + words.tobytes()
    decoder = impl.FrameDecoder()
    assert decoder.feed(memoryview(array.array("B", [2, 7, 8]))) == [b"\x07\x08"]
    words = array.array("H")
    words.frombytes(b"\x02\x03\x04\x00")
    assert decoder.feed(words) == [b"\x03\x04", b""]


@pytest.mark.parametrize("bad", ["text", 5, None, [1, 2]])
def test_non_buffers_are_type_errors_and_leave_the_decoder_usable(
    impl: ModuleType, bad: object
) -> None:
    decoder = impl.FrameDecoder()
    assert decoder.feed(b"\x01") == []
    with pytest.raises(TypeError):
        decoder.feed(bad)
    assert not decoder.failed
    assert decoder.feed(b"!") == [b"!"]
    with pytest.raises(TypeError):
        impl.encode_frame(bad)


def test_non_contiguous_buffers_are_refused(impl: ModuleType) -> None:
    strided = memoryview(b"\x01a\x01b")[::2]
    with pytest.raises(BufferError):
        impl.FrameDecoder().feed(strided)
    with pytest.raises(BufferError):
        impl.encode_frame(strided)


# --- limits ---------------------------------------------------------------------------------


def test_frame_of_exactly_the_limit_is_accepted(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder(300)
    assert decoder.feed(frames_of(b"q" * 300)) == [b"q" * 300]
    assert impl.encode_frame(b"q" * 300, max_frame_size=300)[:2] == b"\xac\x02"


def test_oversize_frame_is_refused_when_its_prefix_completes(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder(300)
    assert decoder.feed(b"\xad") == []  # first byte of the prefix of 301
    assert decoder.buffered == 1
    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed(b"\x02" + b"p" * 5000)
    assert (caught.value.size, caught.value.limit) == (301, 300)
    assert caught.value.message == "frame of 301 bytes exceeds the maximum of 300 bytes"
    assert decoder.failed
    assert decoder.buffered == 0


def test_oversize_frame_is_refused_before_its_payload_arrives(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder(1024)
    assert decoder.feed(frames_of(b"ok")) == [b"ok"]
    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed(b"\x80\x80\x40")  # announces 1 MiB; none of it has to arrive
    assert caught.value.size == 1 << 20
    assert decoder.buffered == 0
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"\x00" * 4096)
    assert decoder.buffered == 0


def test_valid_five_byte_prefix_over_the_limit_is_too_large_not_malformed(
    impl: ModuleType,
) -> None:
    decoder = impl.FrameDecoder(impl.MAX_FRAME_SIZE_LIMIT)
    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed(bytes.fromhex("ffffffff7f"))
    assert caught.value.size == 2**35 - 1
    assert caught.value.limit == 2**31 - 1


def test_encode_refuses_a_payload_over_the_limit(impl: ModuleType) -> None:
    with pytest.raises(FrameTooLargeError) as caught:
        impl.encode_frame(b"x" * 11, max_frame_size=10)
    assert (caught.value.size, caught.value.limit) == (11, 10)
    with pytest.raises(FrameTooLargeError):
        impl.encode_frame(bytes(impl.DEFAULT_MAX_FRAME_SIZE + 1))
    assert len(impl.encode_frame(bytes(impl.DEFAULT_MAX_FRAME_SIZE))) == (1 << 20) + 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "max_frame_size must be between 1 and 2147483647, got 0"),
        (-5, "max_frame_size must be between 1 and 2147483647, got -5"),
        (2**31, "max_frame_size must be between 1 and 2147483647, got 2147483648"),
        (2**70, f"max_frame_size must be between 1 and 2147483647, got {2**70}"),
        (True, "max_frame_size must be an int, not bool"),
        (1.5, "max_frame_size must be an int, not float"),
        ("1024", "max_frame_size must be an int, not str"),
        (None, "max_frame_size must be an int, not NoneType"),
    ],
)
def test_invalid_max_frame_size_is_a_configuration_error(
    impl: ModuleType, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        impl.FrameDecoder(value)
    assert caught.value.message == message
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ConfigurationError, match=r"^max_frame_size must be"):
        impl.encode_frame(b"", max_frame_size=value)


def test_max_frame_size_is_read_only(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder(10)
    with pytest.raises(AttributeError):
        decoder.max_frame_size = 20
    assert decoder.max_frame_size == 10
    assert impl.FrameDecoder(1).max_frame_size == 1


# --- malformed prefixes ---------------------------------------------------------------------

NON_MINIMAL = ["8000", "ff00", "ff8000", "80808000", "8080808000"]


@pytest.mark.parametrize("prefix_hex", NON_MINIMAL)
def test_non_minimal_prefix_is_malformed_when_its_zero_byte_arrives(
    impl: ModuleType, prefix_hex: str
) -> None:
    prefix = bytes.fromhex(prefix_hex)
    decoder = impl.FrameDecoder(impl.MAX_FRAME_SIZE_LIMIT)
    assert decoder.feed(prefix[:-1]) == []
    with pytest.raises(MalformedFrameError) as caught:
        decoder.feed(prefix[-1:] + b"payload")
    assert caught.value.message == (
        f"length prefix {prefix.hex(' ')} is not a minimal varint: "
        "it ends in a 0x00 byte after a continuation byte"
    )
    assert caught.value.details == {"prefix": prefix}
    assert decoder.failed
    assert decoder.buffered == 0


def test_six_byte_prefix_is_malformed_at_its_fifth_byte(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder()
    assert decoder.feed(b"\x81\x82\x83\x84") == []
    assert decoder.buffered == 4
    with pytest.raises(MalformedFrameError) as caught:
        decoder.feed(b"\x85")  # the sixth byte (0x01) never needs to arrive
    assert caught.value.message == "length prefix 81 82 83 84 85 ... is longer than 5 bytes"
    assert caught.value.details == {"prefix": b"\x81\x82\x83\x84\x85"}
    with pytest.raises(MalformedFrameError):
        impl.FrameDecoder().feed(bytes.fromhex("808080808001"))


# --- errors: nothing lost, then sticky ------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_tail", "error_type"),
    [(b"\x80\x00", MalformedFrameError), (b"\x80\x80\x40", FrameTooLargeError)],
)
def test_frames_before_an_error_are_returned_and_the_error_comes_next(
    impl: ModuleType, bad_tail: bytes, error_type: type[OmegaError]
) -> None:
    decoder = impl.FrameDecoder(1000)
    assert decoder.feed(b"\x05he") == []
    assert decoder.feed(b"llo" + frames_of(b"", b"world") + bad_tail) == [b"hello", b"", b"world"]
    assert decoder.failed
    assert decoder.buffered == 0
    with pytest.raises(error_type):
        decoder.feed(b"")


def test_errors_are_sticky(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder()
    with pytest.raises(MalformedFrameError) as first:
        decoder.feed(b"\xff\x00")
    later: list[BaseException] = []
    for chunk in (b"", frames_of(b"valid"), b"\x00"):
        with pytest.raises(MalformedFrameError) as caught:
            decoder.feed(chunk)
        later.append(caught.value)
    for error in later:
        assert str(error) == str(first.value)
        assert error.details == first.value.details  # type: ignore[attr-defined]
        assert error is not first.value  # a fresh exception each time: no growing traceback
    assert decoder.failed
    assert decoder.buffered == 0


def test_too_large_error_is_sticky_with_its_fields(impl: ModuleType) -> None:
    decoder = impl.FrameDecoder(2)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"\x03abc")
    with pytest.raises(FrameTooLargeError) as again:
        decoder.feed(b"\x01a")
    assert (again.value.size, again.value.limit) == (3, 2)


# --- the two implementations agree ----------------------------------------------------------

MAX_FRAME_SIZES = [1, 2, 5, 127, 128, 300, 16_384, 1 << 20, 2**31 - 1]

stream_pieces = st.one_of(
    st.binary(max_size=40),  # garbage
    st.binary(max_size=300).map(_framing_py.encode_frame),  # valid frames
    st.sampled_from([b"\x80\x00", b"\xff\xff\xff\xff\xff", b"\xff\xff\xff\xff\x0f", b"\x00"]),
)


def outcome(feed: Callable[[bytes], list[bytes]], chunk: bytes) -> tuple[object, ...]:
    """What one ``feed`` did, in a form that compares across implementations."""
    try:
        return ("frames", feed(chunk))
    except OmegaError as exc:
        return ("error", type(exc), str(exc), dict(exc.details))


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(stream_pieces, max_size=12),
    max_frame_size=st.sampled_from(MAX_FRAME_SIZES),
    data=st.data(),
)
def test_differential_pure_and_compiled_agree(
    compiled: ModuleType, pieces: list[bytes], max_frame_size: int, data: st.DataObject
) -> None:
    stream = b"".join(pieces)
    pure_decoder = _framing_py.FrameDecoder(max_frame_size)
    compiled_decoder = compiled.FrameDecoder(max_frame_size)
    for chunk in [*data.draw(chunkings(stream)), b""]:
        assert outcome(pure_decoder.feed, chunk) == outcome(compiled_decoder.feed, chunk)
        assert pure_decoder.buffered == compiled_decoder.buffered
        assert pure_decoder.failed == compiled_decoder.failed


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=400), max_frame_size=st.sampled_from(MAX_FRAME_SIZES))
def test_differential_encode_agrees(
    compiled: ModuleType, payload: bytes, max_frame_size: int
) -> None:
    assert outcome(
        lambda chunk: [_framing_py.encode_frame(chunk, max_frame_size=max_frame_size)], payload
    ) == outcome(
        lambda chunk: [compiled.encode_frame(chunk, max_frame_size=max_frame_size)], payload
    )


# --- the public facade picks the right implementation ---------------------------------------


def _facade_in_subprocess(*, pure: bool) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != "OMEGA_PURE_PYTHON"}
    if pure:
        env["OMEGA_PURE_PYTHON"] = "1"
    script = (
        "import json, omega\n"
        "from omega.protocol import framing\n"
        "print(json.dumps({'status': omega.accelerator_status()['framing'],"
        " 'module': framing.FrameDecoder.__module__}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_facade_takes_the_pure_path_when_forced() -> None:
    assert _facade_in_subprocess(pure=True) == {
        "status": False,
        "module": "omega.protocol._framing_py",
    }


def test_facade_takes_the_compiled_path_when_built(compiled: ModuleType) -> None:
    assert _facade_in_subprocess(pure=False) == {
        "status": True,
        "module": compiled.FrameDecoder.__module__,
    }


def test_facade_re_exports_the_selected_implementation() -> None:
    expected = _framing_py
    if not _accel.pure_python_forced():
        try:
            expected = importlib.import_module(COMPILED_MODULE)
        except ImportError:
            expected = _framing_py
    assert framing._impl is expected
    for name in framing.__all__:
        assert getattr(framing, name) is getattr(expected, name)
    assert sorted(framing.__all__) == sorted(_framing_py.__all__)
    assert framing.__doc__
