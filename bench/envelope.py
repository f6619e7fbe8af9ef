"""Benchmark the envelope codec (encode + decode) against Google's protobuf runtime.

For each hot message shape (a ``Frame`` holding a ``Message`` with 256 bytes
of ciphertext, a ``RatchetMessage``, a ``SenderKeyMessage``, an ``Ack`` and a
``MessageContent`` holding a ``LocationContent``, with doubles and a float),
one operation is ``encode_message`` then ``decode_message`` (strict) of the
same message. Side by side, in one process: Omega's public API (which runs
the compiled codec when built), the pure-Python fast codec, the reference
path (betterproto2 behind the strict checker, what Omega ran before), and
Google's ``protobuf`` runtime on classes compiled at run time from the same
``messages.proto`` (``SerializeToString`` then ``ParseFromString``; it needs
``protobuf`` and ``grpcio-tools``, in the bench and test extras). Medians of
several runs, garbage collector paused while timing. Times are the CPU time of the benchmarking
thread (``time.thread_time``), not wall-clock time: on a shared machine, time
the thread spends preempted by other processes would otherwise land on
whichever contender was running. Every contender runs on this thread
(vodozemac's Rust code and Google's upb included).

    python bench/envelope.py            # 20000 operations per run, 9 runs
    python bench/envelope.py --quick    # 4000 operations, 5 runs

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import omega
import omega.protocol as proto
from omega.protocol import _codec_py, decode_message, encode_message, wire

TARGET_GOOGLE_RATIO = 3.0  # Omega's time / Google's time on the Frame{Message}, at most


def samples() -> dict[str, Any]:
    """The messages every codec encodes and decodes."""
    message = proto.Message(
        message_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        sender_id="omega1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs",
        recipient_id="omega1zqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgp",
        type=proto.MessageType.TEXT,
        timestamp=1_764_000_000_000,
        encrypted_content=bytes(range(256)),
        signature=bytes(64),
        sender_device_key=bytes(range(32)),
        recipient_device_key=bytes(range(32, 64)),
        encryption=proto.EncryptionKind.RATCHET,
    )
    header = proto.RatchetHeader(
        version=1, ratchet_key=bytes(range(32)), previous_chain_length=7, message_number=42
    )
    return {
        "frame_message": proto.Frame(message=message),
        "ratchet_message": proto.RatchetMessage(
            header=encode_message(header), ciphertext=bytes(272)
        ),
        "sender_key_message": proto.SenderKeyMessage(
            header=encode_message(proto.SenderKeyHeader(version=1, key_id=77, iteration=9)),
            ciphertext=bytes(272),
            signature=bytes(64),
        ),
        "ack": proto.Ack(message_id="0f8fad5b-d9cb-469f-a165-70867728950e", timestamp=1),
        # Inside every encrypted message; on the reference path before doubles and floats.
        "message_content": proto.MessageContent(
            location=proto.LocationContent(
                latitude=48.8584, longitude=2.2945, accuracy_meters=5.0, name="Tour Eiffel"
            )
        ),
    }


def google_module() -> tuple[ModuleType | None, str]:
    """Google's classes for messages.proto, compiled now, or why not."""
    try:
        import google.protobuf
        from grpc_tools import protoc  # noqa: F401 - checks it is installed
    except ImportError as exc:
        return (
            None,
            f"Google protobuf baseline unavailable ({exc}); pip install protobuf grpcio-tools",
        )
    out = Path(tempfile.mkdtemp(prefix="omega-bench-pb-"))
    proto_dir = Path(proto.__file__).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"--python_out={out}",
            "messages.proto",
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    try:
        module = importlib.import_module("messages_pb2")
    finally:
        sys.path.remove(str(out))
    from google.protobuf.internal import api_implementation

    return module, (
        f"Google protobuf {google.protobuf.__version__} ({api_implementation.Type()} backend)"
    )


Run = Callable[[int], float]


def _timed(body: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        body()
        return time.thread_time() - start
    finally:
        gc.enable()


def omega_run(message: Any) -> Run:
    cls = type(message)

    def run(n: int) -> float:
        def body() -> None:
            for _ in range(n):
                decode_message(cls, encode_message(message))

        return _timed(body)

    return run


def codec_run(codec: ModuleType, message: Any) -> Run:
    cls = type(message)

    def run(n: int) -> float:
        def body() -> None:
            for _ in range(n):
                codec.decode(cls, codec.encode(message), wire.MAX_NESTING_DEPTH)

        return _timed(body)

    return run


def reference_run(message: Any) -> Run:
    cls = type(message)

    def run(n: int) -> float:
        def body() -> None:
            for _ in range(n):
                wire._reference_decode(cls, bytes(message))

        return _timed(body)

    return run


def google_run(google: ModuleType, message: Any) -> Run:
    theirs = getattr(google, type(message).__name__)()
    theirs.ParseFromString(encode_message(message))
    google_cls = type(theirs)

    def run(n: int) -> float:
        def body() -> None:
            for _ in range(n):
                google_cls.FromString(theirs.SerializeToString())

        return _timed(body)

    return run


def check(message: Any, google: ModuleType | None, compiled: ModuleType | None) -> None:
    """Every codec produces the same bytes before anything is timed."""
    expected = bytes(message)
    assert encode_message(message) == expected
    assert _codec_py.encode(message) == expected
    if compiled is not None:
        assert compiled.encode(message) == expected
    assert decode_message(type(message), expected) == message
    if google is not None:
        theirs = getattr(google, type(message).__name__)()
        theirs.ParseFromString(expected)
        assert theirs.SerializeToString() == expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and runs")
    args = parser.parse_args()
    count, repeats = (4000, 5) if args.quick else (20000, 9)
    google, note = google_module()
    try:
        compiled: ModuleType | None = importlib.import_module("omega.protocol._codec_c")
    except ImportError:
        compiled = None

    runs: dict[str, tuple[Run, int]] = {}
    for name, message in samples().items():
        check(message, google, compiled)
        runs[f"{name}/omega"] = (omega_run(message), count)
        runs[f"{name}/pure_codec"] = (codec_run(_codec_py, message), count // 4)
        if compiled is not None:
            runs[f"{name}/compiled_codec"] = (codec_run(compiled, message), count)
        runs[f"{name}/betterproto2"] = (reference_run(message), count // 20)
        if google is not None:
            runs[f"{name}/google"] = (google_run(google, message), count)
    samples_us: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, n) in runs.items():
            samples_us[name].append(run(n) / n * 1e6)
    micros = {name: statistics.median(values) for name, values in samples_us.items()}
    report(micros, note, args.quick, repeats)


def report(micros: dict[str, float], note: str, quick: bool, repeats: int) -> None:
    status = omega.accelerator_status()
    print(
        f"Omega envelope benchmark, Python {platform.python_version()}, {platform.machine()}, "
        f"encode + strict decode per operation, median of {repeats} runs, "
        f"compiled codec live: {status.get('codec', False)}"
    )
    print(f"baseline: {note}\n")
    header = f"{'workload':<34} {'µs/op':>9} {'/google':>9} {'omega speedup':>14}"
    print(header)
    print("-" * len(header))
    ratios: dict[str, float] = {}
    for workload in sorted({name.split("/")[0] for name in micros}):
        google = micros.get(f"{workload}/google")
        ours = micros[f"{workload}/omega"]
        for name, value in sorted(micros.items()):
            if not name.startswith(workload + "/"):
                continue
            over_google = f"{value / google:8.2f}x" if google else f"{'':>9}"
            speedup = f"{value / ours:13.1f}x"
            print(f"{name:<34} {value:>9.2f} {over_google} {speedup}")
        if google:
            ratios[f"{workload}_omega_over_google"] = ours / google
        ratios[f"{workload}_speedup_over_betterproto2"] = micros[f"{workload}/betterproto2"] / ours
    print()
    verdict = ratios.get("frame_message_omega_over_google")
    if verdict is None:
        print("target (within 3x of Google's runtime): not measured, no Google baseline")
    else:
        met = "met" if verdict <= TARGET_GOOGLE_RATIO else "NOT met"
        print(f"Frame{{Message}}: omega = {verdict:.2f}x Google's runtime (target <= 3x: {met})")
    print(
        json.dumps(
            {
                "benchmark": "envelope",
                "python": platform.python_version(),
                "quick": quick,
                "repeats": repeats,
                "statistic": "median",
                "unit": "microseconds per encode+decode",
                "baseline": note,
                "accelerated_codec": status.get("codec", False),
                "micros": micros,
                "ratios": ratios,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
