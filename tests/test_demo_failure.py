"""omega demo reports a failed step as a typed demo failure, not a traceback."""

from __future__ import annotations

import io

import pytest

import omega.demo as demo
from omega.errors import ConnectionClosedError


def test_network_failure_is_reported_as_a_demo_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> None:
        raise ConnectionClosedError("the peer has finished sending")

    monkeypatch.setattr(demo, "_conversation", broken)
    with pytest.raises(demo.DemoFailedError, match="demo step failed: the peer has finished"):
        demo.run_demo(io.StringIO(), qr=False)


def test_a_failed_check_stops_the_tour(monkeypatch: pytest.MonkeyPatch) -> None:
    async def none_stored(*args: object) -> int:
        return 0

    monkeypatch.setattr(demo, "_stored_count", none_stored)
    with pytest.raises(demo.DemoFailedError, match="the store holds the message for Carol"):
        demo.run_demo(io.StringIO(), qr=False)


def test_a_step_that_hangs_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: object) -> bool:
        return False

    monkeypatch.setattr(demo, "STEP_TIMEOUT", 0.5)
    monkeypatch.setattr(demo, "_has", never)
    with pytest.raises(demo.DemoFailedError, match="did not finish in time"):
        demo.run_demo(io.StringIO(), qr=False)
