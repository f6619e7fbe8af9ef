"""Fuzz the fast envelope codecs against the strict reference decoder.

Run: ``python fuzz/fuzz_codec.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). A fast codec (pure or compiled) that accepts
bytes the reference refuses, builds another object than the reference, or
disagrees with its twin, is a crash.
"""

from __future__ import annotations

import contextlib
import importlib
import struct
import sys
from types import ModuleType
from typing import Any

import omega.protocol as proto
from omega.errors import OmegaError
from omega.protocol import _codec_py, wire

TARGETS = (
    proto.Frame,
    proto.Message,
    proto.Ack,
    proto.RatchetMessage,
    proto.RatchetHeader,
    proto.PrekeyMessage,
    proto.SenderKeyMessage,
    proto.SenderKeyHeader,
    proto.RatchetSessionState,
    proto.InboundSenderKeysState,
    proto.MessageContent,
    proto.LocationContent,
)


def _codecs() -> list[ModuleType]:
    codecs: list[ModuleType] = [_codec_py]
    with contextlib.suppress(ImportError):
        codecs.append(importlib.import_module("omega.protocol._codec_c"))
    return codecs


CODECS = _codecs()


def _same(left: Any, right: Any) -> bool:
    """Equal all the way down, floats bit for bit (NaN payloads, -0.0)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return struct.pack("<d", left) == struct.pack("<d", right)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if hasattr(left, "__dict__") and not isinstance(left, int):
        return vars(left).keys() == vars(right).keys() and all(
            _same(value, vars(right)[name]) for name, value in vars(left).items()
        )
    return bool(left == right)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data`` as the message type its first byte selects, every way."""
    if not data:
        return
    cls = TARGETS[data[0] % len(TARGETS)]
    raw = data[1:]
    try:
        reference = wire._reference_decode(cls, raw)
    except OmegaError:
        reference = None
    for codec in CODECS:
        fast = codec.decode(cls, raw, wire.MAX_NESTING_DEPTH)
        if fast is None:
            continue
        if reference is None or not _same(fast, reference):
            raise AssertionError(f"{codec.__name__} disagrees with the reference on {cls.__name__}")
        if codec.encode(fast) != bytes(reference):
            raise AssertionError(f"{codec.__name__} re-encodes {cls.__name__} differently")


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
