"""Plots of simulation results (needs the ``sim`` extra: matplotlib).

:func:`plot_latency_cdf` draws the cumulative distribution of delivery
latencies (one curve per result), :func:`plot_delivery_over_time` the
messages sent and delivered per time bin. Both write an image file (the
format follows the suffix, e.g. ``.png`` or ``.svg``) with matplotlib's
non-interactive Agg backend and raise
:class:`~omega.errors.ConfigurationError` when matplotlib is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omega.errors import ConfigurationError
from omega.sim._results import USER_KINDS, SimResult

__all__ = ["matplotlib_available", "plot_delivery_over_time", "plot_latency_cdf"]


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError("plots need matplotlib: pip install 'omega-p2p[sim]'") from None
    return plt


def plot_latency_cdf(
    results: SimResult | Mapping[str, SimResult], path: str | Path, *, log_scale: bool = True
) -> Path:
    """Write the CDF of delivery latencies (ms) of ``results`` to ``path``; return ``path``."""
    plt = _pyplot()
    curves = {"run": results} if isinstance(results, SimResult) else dict(results)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, result in curves.items():
        records = [record for record in result.records if record.kind in USER_KINDS]
        latencies = sorted(
            latency for record in records if (latency := record.latency_ms) is not None
        )
        total = max(1, len(records))
        fractions = [(index + 1) / total for index in range(len(latencies))]
        axes.step([max(v, 1e-3) for v in latencies], fractions, where="post", label=label)
    if log_scale:
        axes.set_xscale("log")
    axes.set_xlabel("delivery latency (ms)")
    axes.set_ylabel("fraction of messages delivered")
    axes.set_ylim(0, 1.02)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target)
    plt.close(figure)
    return target


def plot_delivery_over_time(
    result: SimResult, path: str | Path, *, bin_seconds: float | None = None
) -> Path:
    """Write messages sent and delivered per time bin to ``path``; return ``path``.

    User messages only (1:1 messages and group copies; not sender key distributions).
    """
    plt = _pyplot()
    records = [record for record in result.records if record.kind in USER_KINDS]
    end = max(
        [result.virtual_seconds] + [record.delivered_at or record.sent_at for record in records]
    )
    width = bin_seconds or max(1.0, math.ceil(end / 60))
    bins = int(end // width) + 1
    sent, delivered = [0] * bins, [0] * bins
    for record in records:
        sent[int(record.sent_at // width)] += 1
        if record.delivered_at is not None:
            delivered[int(record.delivered_at // width)] += 1
    times = [index * width for index in range(bins)]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.step(times, sent, where="post", label="sent")
    axes.step(times, delivered, where="post", label="delivered")
    axes.set_xlabel("virtual time (s)")
    axes.set_ylabel(f"messages per {width:g} s")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target)
    plt.close(figure)
    return target
