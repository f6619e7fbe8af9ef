"""``omega sim run``."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest

from omega.cli import main

SCENARIO = """
peers = 12
duration = 30
drain = 60
[workload]
rate = 2
[[offline]]
peer = 1
start = 0
end = 40
"""


def test_sim_run_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    out = io.StringIO()
    status = main(["sim", "run", str(scenario), "--out", str(tmp_path / "out"), "--seed", "4"], out)
    assert status == 0
    text = out.getvalue()
    assert "delivered" in text
    assert "trace sha256" in text
    assert "100%" in capsys.readouterr().err  # the progress bar
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["messages"] > 20
    assert summary["delivery_ratio"] == 1.0
    lines = (tmp_path / "out" / "messages.csv").read_text().splitlines()
    assert lines[0].startswith("message_id,")
    assert len(lines) == summary["messages"] + 1
    assert (tmp_path / "out" / "latency_cdf.png").stat().st_size > 0
    assert (tmp_path / "out" / "delivery.png").stat().st_size > 0


def test_sim_run_same_seed_same_digest(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    digests = []
    for _ in range(2):
        out = io.StringIO()
        assert main(["sim", "run", str(scenario), "--no-progress", "--peers", "8"], out) == 0
        digests.append(out.getvalue().split("trace sha256 ")[1].strip())
    assert digests[0] == digests[1]


def test_sim_run_options_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    out = io.StringIO()
    args = ["sim", "run", str(scenario), "--no-progress", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "o")], out) == 0
    assert not (tmp_path / "o" / "latency_cdf.png").exists()
    parquet = main([*args, "--out", str(tmp_path / "p"), "--parquet"], io.StringIO())
    if importlib.util.find_spec("pyarrow") is None:
        assert parquet == 1
        assert "pyarrow" in capsys.readouterr().err
    else:  # pragma: no cover - pyarrow is optional
        assert parquet == 0
        assert (tmp_path / "p" / "messages.parquet").stat().st_size > 0
    assert main(["sim", "run", str(tmp_path / "nope.toml")], io.StringIO()) == 1
    assert "no scenario file" in capsys.readouterr().err
