"""Benchmark the frame decoders against the cheapest possible frame splitter.

For frames of 64 B, 1 KiB and 64 KiB, a stream of frames with random
payloads is cut into chunks of uniformly random size (1..16 KiB, seeded) and
fed to a fresh decoder, pure-Python and compiled. The floor, measured in the
same run, is a list comprehension that already knows every frame's
boundaries and slices the payloads out of the whole stream as ``bytes``, in
the same batches a decoder returns them (the frames each chunk completes):
the least work any decoder must do. Each figure is the median of several runs,
with the garbage collector paused while timing; MB/s counts payload bytes
(1 MB = 10**6 bytes).

    python bench/framing.py            # 32 MiB of payload per frame size, 9 runs
    python bench/framing.py --quick    # 4 MiB, 5 runs

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from types import ModuleType

from omega.protocol import _framing_py

FRAME_SIZES = (64, 1024, 64 * 1024)
CHUNK_MIN, CHUNK_MAX = 1, 16 * 1024
TARGET_FLOOR_RATIO = 3.0  # accelerated time / floor time on 1 KiB frames, at most
TARGET_SPEEDUP = 5.0  # pure time / accelerated time on 1 KiB frames, at least


class Workload:
    """One frame size: the stream, its chunks, and the payloads a decoder must return."""

    def __init__(self, frame_size: int, payload_bytes: int, rng: random.Random) -> None:
        self.frame_size = frame_size
        self.count = max(1, payload_bytes // frame_size)
        blob = rng.randbytes(self.count * frame_size)
        self.payloads = [blob[i * frame_size : (i + 1) * frame_size] for i in range(self.count)]
        self.stream = b"".join(_framing_py.encode_frame(payload) for payload in self.payloads)
        prefix_length = len(self.stream) // self.count - frame_size
        self.bounds = [
            (start + prefix_length, start + prefix_length + frame_size)
            for start in range(0, len(self.stream), prefix_length + frame_size)
        ]
        self.chunks: list[bytes] = []
        # The floor hands its frames over in the same batches a decoder returns them (the
        # frames each chunk completes), so both keep the same number of frames alive.
        self.batches: list[list[tuple[int, int]]] = []
        position = 0
        next_frame = 0
        while position < len(self.stream):
            size = rng.randint(CHUNK_MIN, CHUNK_MAX)
            self.chunks.append(self.stream[position : position + size])
            position += size
            first = next_frame
            while next_frame < self.count and self.bounds[next_frame][1] <= position:
                next_frame += 1
            self.batches.append(self.bounds[first:next_frame])

    def floor(self) -> int:
        stream = self.stream
        count = 0
        for batch in self.batches:
            count += len([stream[start:end] for start, end in batch])
        return count

    def decoder_run(self, module: ModuleType) -> Callable[[], int]:
        def run() -> int:
            feed = module.FrameDecoder().feed
            count = 0
            for chunk in self.chunks:
                count += len(feed(chunk))
            return count

        return run

    def check(self, module: ModuleType) -> None:
        decoder = module.FrameDecoder()
        frames = [frame for chunk in self.chunks for frame in decoder.feed(chunk)]
        if frames != self.payloads or decoder.buffered:
            raise AssertionError(
                f"{module.__name__} decoded the {self.frame_size} B stream wrongly"
            )
        stream = self.stream
        floor_frames = [stream[start:end] for batch in self.batches for start, end in batch]
        if floor_frames != self.payloads:
            raise AssertionError("the floor's frame boundaries are wrong")


def timed(run: Callable[[], int], expected: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    if count != expected:
        raise AssertionError(f"expected {expected} frames, got {count}")
    return elapsed


def figures(seconds: float, workload: Workload) -> dict[str, float]:
    return {
        "seconds": seconds,
        "frames_per_s": workload.count / seconds,
        "mb_per_s": workload.count * workload.frame_size / seconds / 1e6,
    }


def measure(workload: Workload, decoders: dict[str, ModuleType], repeats: int) -> dict[str, object]:
    runs: dict[str, Callable[[], int]] = {"floor": workload.floor}
    for name, module in decoders.items():
        workload.check(module)
        runs[name] = workload.decoder_run(module)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so drift hits every contender alike
        for name, run in runs.items():
            samples[name].append(timed(run, workload.count))
    result: dict[str, object] = {
        name: figures(statistics.median(times), workload) for name, times in samples.items()
    }
    median = {name: statistics.median(times) for name, times in samples.items()}
    if "accelerated" in median:
        result["accelerated_over_floor"] = median["accelerated"] / median["floor"]
        result["speedup_pure_over_accelerated"] = median["pure"] / median["accelerated"]
    result["pure_over_floor"] = median["pure"] / median["floor"]
    return result


def label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def print_table(results: dict[int, dict[str, object]], decoders: dict[str, ModuleType]) -> None:
    header = f"{'frame':>7}  {'decoder':<12} {'frames/s':>12} {'MB/s':>9} {'time/floor':>11}"
    print(header)
    print("-" * len(header))
    for size, result in results.items():
        floor_seconds = result["floor"]["seconds"]  # type: ignore[index]
        for name in ("floor", *decoders):
            row: dict[str, float] = result[name]  # type: ignore[assignment]
            print(
                f"{label(size):>7}  {name:<12} {row['frames_per_s']:>12,.0f} "
                f"{row['mb_per_s']:>9,.1f} {row['seconds'] / floor_seconds:>10.2f}x"
            )
        if "accelerated" in decoders:
            print(
                f"{'':>7}  accelerated/floor time {result['accelerated_over_floor']:.2f}x, "
                f"pure/accelerated speed-up {result['speedup_pure_over_accelerated']:.1f}x"
            )
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller streams, fewer runs")
    parser.add_argument("--seed", type=int, default=1, help="seed of the payload/chunk RNG")
    args = parser.parse_args()
    payload_bytes = (4 if args.quick else 32) * 1024 * 1024
    repeats = 5 if args.quick else 9

    decoders: dict[str, ModuleType] = {}
    try:
        decoders["accelerated"] = importlib.import_module("omega.protocol._framing_c")
    except ImportError as exc:
        print(f"accelerated decoder not built ({exc}); measuring the pure one only")
    decoders["pure"] = _framing_py

    print(
        f"framing decoders, Python {platform.python_version()}: {label(payload_bytes)} "
        f"of payload per frame size, chunks uniform {CHUNK_MIN}..{CHUNK_MAX} B "
        f"(seed {args.seed}), median of {repeats} runs; floor = bytes slicing at known bounds\n"
    )
    rng = random.Random(args.seed)
    results = {
        size: measure(Workload(size, payload_bytes, rng), decoders, repeats) for size in FRAME_SIZES
    }
    print_table(results, decoders)

    one_k = results[1024]
    targets: dict[str, object] = {}
    if "accelerated" in decoders:
        floor_ratio = float(one_k["accelerated_over_floor"])  # type: ignore[arg-type]
        speedup = float(one_k["speedup_pure_over_accelerated"])  # type: ignore[arg-type]
        targets = {
            "accelerated_within_3x_of_floor_1k": floor_ratio <= TARGET_FLOOR_RATIO,
            "accelerated_5x_faster_than_pure_1k": speedup >= TARGET_SPEEDUP,
        }
        print(
            f"targets on 1 KiB frames: accelerated/floor {floor_ratio:.2f}x "
            f"(want <= {TARGET_FLOOR_RATIO:g}x), pure/accelerated {speedup:.1f}x "
            f"(want >= {TARGET_SPEEDUP:g}x)"
        )
    summary = {
        "benchmark": "framing",
        "python": platform.python_version(),
        "quick": args.quick,
        "seed": args.seed,
        "chunk_bytes": [CHUNK_MIN, CHUNK_MAX],
        "payload_bytes_per_size": payload_bytes,
        "repeats": repeats,
        "statistic": "median",
        "results": {str(size): result for size, result in results.items()},
        "targets": targets,
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
