"""Fuzz the frame decoders with arbitrary byte streams in arbitrary chunkings.

Run: ``python fuzz/fuzz_framing.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks the chunk size and
the decoder's ``max_frame_size``; the rest is the stream. Both the pure and
(when built) the compiled decoder read it, and anything but an OmegaError
escaping, the two disagreeing in any way, or the frames accepted not
re-encoding to exactly the bytes consumed, is a crash.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from omega.errors import OmegaError
from omega.protocol import _framing_py


def _implementations() -> tuple[ModuleType, ...]:
    try:
        return (_framing_py, importlib.import_module("omega.protocol._framing_c"))
    except ImportError:
        return (_framing_py,)


IMPLEMENTATIONS = _implementations()
CHUNK_SIZES = (1, 2, 3, 5, 7, 16, 64, 1 << 30)  # the last one feeds the stream whole
MAX_FRAME_SIZES = (1, 2, 127, 128, 300, 16_384, 1 << 20, 2**31 - 1)


def _run(module: ModuleType, stream: bytes, chunk_size: int, max_frame_size: int) -> list[object]:
    """Feed ``stream`` to a fresh decoder; record everything observable after each call."""
    decoder = module.FrameDecoder(max_frame_size)
    events: list[object] = []
    chunks = [stream[start : start + chunk_size] for start in range(0, len(stream), chunk_size)]
    for chunk in [*chunks, b""]:
        try:
            events.append(("frames", decoder.feed(chunk)))
        except OmegaError as exc:
            events.append(("error", type(exc), str(exc), dict(exc.details)))
        events.append(("state", decoder.buffered, decoder.failed))
    return events


def _check_consumed_prefix(events: list[object], stream: bytes, max_frame_size: int) -> None:
    """Frames must re-encode to exactly the stream bytes they came from (prefixes are minimal)."""
    frames = [
        frame
        for event in events
        if isinstance(event, tuple) and event[0] == "frames"
        for frame in event[1]
    ]
    encoded = b"".join(
        _framing_py.encode_frame(frame, max_frame_size=max_frame_size) for frame in frames
    )
    if not stream.startswith(encoded):
        raise AssertionError("accepted frames do not re-encode to the start of the stream")
    final_state = events[-1]
    assert isinstance(final_state, tuple)
    _, buffered, failed = final_state
    if not failed and len(encoded) + buffered != len(stream):
        raise AssertionError("decoder lost or invented bytes")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data[1:]`` with every implementation, chunked as ``data[0]`` selects."""
    if not data:
        return
    chunk_size = CHUNK_SIZES[data[0] & 0x07]
    max_frame_size = MAX_FRAME_SIZES[(data[0] >> 3) & 0x07]
    stream = data[1:]
    reference = _run(IMPLEMENTATIONS[0], stream, chunk_size, max_frame_size)
    for other in IMPLEMENTATIONS[1:]:
        if _run(other, stream, chunk_size, max_frame_size) != reference:
            raise AssertionError(f"{other.__name__} disagrees with the pure decoder")
    _check_consumed_prefix(reference, stream, max_frame_size)


def main() -> None:
    """Run under atheris."""
    import atheris  # optional: TestOneInput must run without it

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
