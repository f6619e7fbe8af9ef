"""Records, summaries and CSV output."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from omega.errors import ConfigurationError
from omega.sim import CSV_COLUMNS, MessageRecord, SimResult, percentile


def _record(index: int, latency: float | None, path: str) -> MessageRecord:
    return MessageRecord(
        message_id=f"m{index}",
        sender=0,
        recipient=1,
        sent_at=float(index),
        delivered_at=None if latency is None else index + latency / 1000,
        path=path,
        attempts=1,
        state="delivered" if latency is not None else "sent",
        frames=2,
        wire_bytes=100,
    )


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert math.isnan(percentile([], 0.5))


def test_summary_and_csv(tmp_path: Path) -> None:
    result = SimResult(
        records=[_record(0, 10.0, "direct"), _record(1, 30.0, "store"), _record(2, None, "")],
        events=9,
        virtual_seconds=5.0,
    )
    summary = result.summary()
    assert summary.messages == 3
    assert summary.delivered == 2
    assert summary.delivery_ratio == pytest.approx(2 / 3)
    assert (summary.direct, summary.via_store) == (1, 1)
    assert summary.latency_p50_ms == pytest.approx(10.0)
    assert summary.latency_max_ms == pytest.approx(30.0)
    assert summary.latency_mean_ms == pytest.approx(20.0)
    assert summary.wire_bytes == 300
    assert summary.as_dict()["events"] == 9
    assert "delivered 2" in summary.format()
    path = tmp_path / "trace.csv"
    result.write_csv(path)
    assert path.read_text() == result.csv_text()
    rows = list(csv.reader(path.read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1][CSV_COLUMNS.index("latency_ms")] == "10.000"
    assert rows[3][CSV_COLUMNS.index("delivered_at")] == ""
    assert len(result.trace_digest()) == 64


def test_empty_result() -> None:
    summary = SimResult().summary()
    assert summary.messages == 0
    assert summary.delivery_ratio == 1.0
    assert summary.wire_bytes_per_message == 0.0


def test_parquet_needs_pyarrow(tmp_path: Path) -> None:
    try:
        import pyarrow  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="pyarrow"):
            SimResult(records=[_record(0, 1.0, "direct")]).write_parquet(tmp_path / "t.parquet")
    else:  # pragma: no cover - only where pyarrow is installed
        SimResult(records=[_record(0, 1.0, "direct")]).write_parquet(tmp_path / "t.parquet")
        assert (tmp_path / "t.parquet").stat().st_size > 0


def test_connections_csv_and_group_figures(tmp_path: Path) -> None:
    from omega.sim import CONNECTION_COLUMNS, ConnectionRecord

    result = SimResult(
        records=[
            _record(0, 50.0, "direct"),
            MessageRecord(
                message_id="g", sender=1, recipient=2, sent_at=1.0, kind="group", group_id="ab"
            ),
            MessageRecord(
                message_id="k", sender=1, recipient=2, sent_at=0.0, kind="sender_key", wire_bytes=7
            ),
        ],
        connections=[
            ConnectionRecord(time=1.5, initiator=0, responder=1, relayed=True, handshake_ms=60.0)
        ],
    )
    path = tmp_path / "connections.csv"
    result.write_connections_csv(path)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert tuple(rows[0]) == CONNECTION_COLUMNS
    assert rows[1] == ["1.500000", "0", "1", "1", "60.000"]
    summary = result.summary()
    assert summary.messages == 2  # the distribution is not a user message
    assert summary.group_deliveries == 1
    assert summary.group_delivered == 0
    assert summary.sender_key_distributions == 1
    assert summary.wire_bytes == 107  # ... but its bytes count
    assert summary.connections == 1
    assert "groups: 0 of 1 copies decrypted, 1 distributions" in summary.format()
    assert result.csv_text().splitlines()[2].endswith(",group,ab")
