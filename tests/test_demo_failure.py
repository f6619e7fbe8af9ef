"""omega demo reports a failed network step as a typed demo failure, not a traceback."""

from __future__ import annotations

import io

import pytest

import omega.demo as demo
from omega.errors import ConnectionClosedError


def test_network_failure_is_reported_as_a_demo_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> None:
        raise ConnectionClosedError("the peer has finished sending")

    monkeypatch.setattr(demo, "_over_the_network", broken)
    with pytest.raises(
        demo.DemoFailedError, match="over the network: the peer has finished sending"
    ):
        demo.run_demo(io.StringIO(), qr=False)
