"""Helpers shared by the transport tests (imported by name: conftest modules clash)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from omega.crypto import Identity
from omega.testing.random import SeededRandom


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
