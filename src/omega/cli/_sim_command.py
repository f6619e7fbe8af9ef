"""``omega sim run SCENARIO``: run a simulation scenario (docs/simulation.md).

Only the standard library at module level: :mod:`omega.sim` is imported
when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``omega sim`` to the subcommands ``commands``."""
    sim = commands.add_parser("sim", help="simulate many peers on a virtual network")
    actions = sim.add_subparsers(dest="sim_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run a scenario (.toml or .py)")
    run.add_argument("scenario", type=Path, help="the scenario file")
    run.add_argument("--out", type=Path, default=None, help="write results to this directory")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--peers", type=int, default=None, help="override the number of peers")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-plots", action="store_true", help="do not draw plots")
    run.add_argument("--parquet", action="store_true", help="also write Parquet (needs pyarrow)")
    run.set_defaults(handler=cmd_sim_run)


class _ProgressBar:
    """A plain-text progress bar on stderr, redrawn when a percent passes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = -1
        self._start = time.monotonic()

    def __call__(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent == self._shown:
            return
        self._shown = percent
        filled = percent * 30 // 100
        elapsed = time.monotonic() - self._start
        self._stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {elapsed:.0f}s")
        if percent >= 100:
            self._stream.write("\n")
        self._stream.flush()


def _json_value(value: float | int) -> float | int | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def cmd_sim_run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the scenario, print the summary, write the results."""
    import dataclasses

    from omega.sim import simulate
    from omega.sim.plots import matplotlib_available, plot_delivery_over_time, plot_latency_cdf
    from omega.sim.scenario import load_scenario

    config = load_scenario(args.scenario)
    overrides: dict[str, int] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.peers is not None:
        overrides["peers"] = args.peers
    if overrides:
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = simulate(config, progress=None if args.no_progress else _ProgressBar(sys.stderr))
    wall = time.perf_counter() - started
    summary = result.summary()
    print(summary.format(), file=out)
    print(f"wall clock {wall:.1f} s; trace sha256 {result.trace_digest()}", file=out)
    if args.out is None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    result.write_csv(args.out / "messages.csv")
    figures = {key: _json_value(value) for key, value in summary.as_dict().items()}
    figures["wall_seconds"] = round(wall, 3)
    (args.out / "summary.json").write_text(json.dumps(figures, indent=2) + "\n")
    written = ["messages.csv", "summary.json"]
    if args.parquet:
        result.write_parquet(args.out / "messages.parquet")
        written.append("messages.parquet")
    if not args.no_plots:
        if matplotlib_available():
            plot_latency_cdf(result, args.out / "latency_cdf.png")
            plot_delivery_over_time(result, args.out / "delivery.png")
            written += ["latency_cdf.png", "delivery.png"]
        else:
            print("no plots: matplotlib is not installed (pip install 'omega-p2p[sim]')", file=out)
    print(f"wrote {', '.join(written)} to {args.out}", file=out)
    return 0
