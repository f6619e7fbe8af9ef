"""Shared helpers for the omega.session tests: deterministic users and devices."""

from __future__ import annotations

from dataclasses import dataclass

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.testing.random import SeededRandom

NOW = 1_700_000_000_000
"""A fixed "current time" in Unix milliseconds."""


@dataclass(frozen=True)
class User:
    """A user with one device whose secret keys the test holds."""

    identity: IdentityKeyPair
    device: LocalDevice

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    @property
    def device_key(self) -> bytes:
        return self.device.device_key


def make_user(seed: bytes) -> User:
    """A user and device whose keys come from ``SeededRandom(seed)`` (same seed, same keys)."""
    rng = SeededRandom(seed)
    identity = IdentityKeyPair.generate(rng)
    return User(identity=identity, device=make_device(identity, rng))


def make_device(identity: IdentityKeyPair, rng: SeededRandom) -> LocalDevice:
    """Another device of ``identity`` with a key from ``rng``."""
    key_pair = DeviceKeyPair.generate(rng)
    signed = certify_device(identity, key_pair.public_key, name="test", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return LocalDevice(key_pair=key_pair, certificate=certificate)


ALICE = make_user(b"omega/tests/session/alice")
BOB = make_user(b"omega/tests/session/bob")
CAROL = make_user(b"omega/tests/session/carol")
