"""Shared fixtures for the discovery tests: deterministic identities and a wall clock."""

from __future__ import annotations

import pytest
from discovery_helpers import NOW_MS

from omega.crypto import Identity
from omega.testing.clock import ManualClock
from omega.testing.discovery import START_TIME
from omega.testing.random import SeededRandom


@pytest.fixture
def alice() -> Identity:
    return Identity.create(
        device_name="alice phone", created_at=NOW_MS, rng=SeededRandom(b"discovery/alice")
    )


@pytest.fixture
def bob() -> Identity:
    return Identity.create(
        device_name="bob laptop", created_at=NOW_MS, rng=SeededRandom(b"discovery/bob")
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_TIME)
