"""Shared fixtures for the omega.crypto tests: deterministic randomness, keys, the twin."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

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


COMPILED_MODULE = "omega.crypto._ratchet_c"


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    """The compiled twin of omega.crypto._kdf; skipped with the reason when it is not built,
    unless OMEGA_REQUIRE_ACCELERATED=1 (then its absence fails)."""
    try:
        return importlib.import_module(COMPILED_MODULE)
    except ImportError as exc:
        if os.environ.get("OMEGA_REQUIRE_ACCELERATED", "").strip() == "1":
            pytest.fail(f"{COMPILED_MODULE} is not importable ({exc}) but required")
        pytest.skip(f"{COMPILED_MODULE} is not built ({exc})")
