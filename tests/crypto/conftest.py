"""Shared fixtures for the omega.crypto tests: deterministic randomness and keys."""

from __future__ import annotations

import pytest

from omega.crypto import DeviceKeyPair, IdentityKeyPair
from omega.testing.random import SeededRandom as DeterministicRandom


@pytest.fixture
def rng() -> DeterministicRandom:
    return DeterministicRandom(b"omega-tests")


@pytest.fixture
def identity() -> IdentityKeyPair:
    return IdentityKeyPair.from_seed(bytes([1]) * 32)


@pytest.fixture
def other_identity() -> IdentityKeyPair:
    return IdentityKeyPair.from_seed(bytes([2]) * 32)


@pytest.fixture
def device() -> DeviceKeyPair:
    return DeviceKeyPair.from_seed(bytes([3]) * 32)


@pytest.fixture
def second_device() -> DeviceKeyPair:
    return DeviceKeyPair.from_seed(bytes([4]) * 32)


@pytest.fixture
def make_rng() -> type[DeterministicRandom]:
    """The deterministic source's class, to build several sources from the same seed."""
    return DeterministicRandom
