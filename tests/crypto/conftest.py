"""Shared fixtures for the omega.crypto tests: deterministic randomness and keys."""

from __future__ import annotations

import hashlib

import pytest

from omega.crypto import DeviceKeyPair, IdentityKeyPair


class DeterministicRandom:
    """A seeded RandomSource: SHAKE-256(seed || counter), one call per counter value."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, size: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(size)


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
