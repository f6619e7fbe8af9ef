"""Helpers shared by the transport tests (imported by name: conftest modules clash)."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass

from omega.crypto import Identity


class SeededRandom:
    """A deterministic RandomSource: SHAKE-256(seed || counter)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, size: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(size)


def make_identity(name: str) -> Identity:
    """A deterministic identity with one device called ``name``."""
    return Identity.create(
        device_name=name, created_at=1_700_000_000_000, rng=SeededRandom(name.encode())
    )


@dataclass(frozen=True)
class Tls:
    """A self-signed certificate for 127.0.0.1 and ``localhost``, as SSL contexts."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    certificate_pem: bytes
    key_pem: bytes
