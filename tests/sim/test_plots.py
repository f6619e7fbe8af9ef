"""Plots of simulation results."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.errors import ConfigurationError
from omega.sim import ScheduledSend, SimConfig, WorkloadConfig, simulate
from omega.sim.plots import matplotlib_available, plot_delivery_over_time, plot_latency_cdf


def test_plots_are_written(tmp_path: Path) -> None:
    assert matplotlib_available()
    config = SimConfig(
        peers=3,
        duration=10.0,
        drain=10.0,
        workload=WorkloadConfig(
            sends=tuple(ScheduledSend(time=float(t), sender=0, recipient=1) for t in range(5))
        ),
    )
    result = simulate(config)
    cdf = plot_latency_cdf({"a": result, "b": result}, tmp_path / "cdf.png", log_scale=False)
    over_time = plot_delivery_over_time(result, tmp_path / "time.svg", bin_seconds=2.0)
    assert cdf.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in over_time.read_bytes()
    assert plot_latency_cdf(result, tmp_path / "one.png").stat().st_size > 0
    assert plot_delivery_over_time(result, tmp_path / "auto.png").stat().st_size > 0


def test_without_matplotlib_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert not matplotlib_available()
    with pytest.raises(ConfigurationError, match=r"omega-p2p\[sim\]"):
        plot_latency_cdf(simulate(SimConfig(peers=2, duration=1.0, drain=1.0)), tmp_path / "x.png")
