"""Configuration of a store server, and the wall clock it reads by default."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio

from omega.errors import ConfigurationError

__all__ = ["DEFAULT_TTL_SECONDS", "StoreConfig", "WallClock"]

DEFAULT_TTL_SECONDS = 14 * 24 * 3600
"""Lifetime of an unacknowledged message unless the depositor asks for less: 14 days."""


class WallClock:
    """A :class:`omega.transport.clock.Clock` reading Unix time (``time.time()``).

    The store needs wall time (messages expire on a date); tests pass an
    :class:`omega.testing.clock.ManualClock` started at some Unix time instead.
    """

    def now(self) -> float:
        """Unix time in seconds."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until Unix time ``deadline``."""
        await anyio.sleep(max(0.0, deadline - time.time()))


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """Limits and lifetimes of one store server; every field has a safe default."""

    default_ttl_seconds: int = DEFAULT_TTL_SECONDS
    """Lifetime of a message whose depositor names none."""
    max_ttl_seconds: int = 30 * 24 * 3600
    """Cap on the lifetime a depositor may ask for (longer requests are shortened)."""
    max_payload_bytes: int = 256 * 1024
    """Largest payload accepted."""
    max_messages_per_recipient: int = 10_000
    """Most messages one mailbox holds."""
    max_bytes_per_recipient: int = 64 * 1024 * 1024
    """Most payload bytes one mailbox holds."""
    max_fetch: int = 1000
    """Most messages one fetch returns."""
    max_acknowledge: int = 1000
    """Most message ids one acknowledgement names."""
    challenge_ttl_seconds: int = 60
    """How long an auth challenge stays valid."""
    max_wait_seconds: float = 60.0
    """Longest long poll a client may hold."""
    requests_per_second: float = 20.0
    """Sustained requests per source (deposits, challenges, prekey claims)."""
    request_burst: int = 200
    """Requests a source may make at once before the rate applies."""
    bytes_per_second: int = 1024 * 1024
    """Sustained deposited payload bytes per source."""
    bytes_burst: int = 16 * 1024 * 1024
    """Payload bytes a source may deposit at once; at least ``max_payload_bytes``."""
    max_tracked_sources: int = 100_000
    """Bound on the rate limiter's memory (least recently seen sources are forgotten)."""
    max_one_time_prekeys: int = 500
    """Most one-time prekeys the server keeps per device."""
    sweep_interval_seconds: float = 60.0
    """How often the sweeper purges expired messages and spent nonces."""
    auth_secret: bytes | None = None
    """32-byte key of the challenge MACs, shared by every process of a deployment
    (None: a random key per process, fine for a single process)."""

    def __post_init__(self) -> None:
        positive = {
            "default_ttl_seconds": self.default_ttl_seconds,
            "max_ttl_seconds": self.max_ttl_seconds,
            "max_payload_bytes": self.max_payload_bytes,
            "max_messages_per_recipient": self.max_messages_per_recipient,
            "max_bytes_per_recipient": self.max_bytes_per_recipient,
            "max_fetch": self.max_fetch,
            "max_acknowledge": self.max_acknowledge,
            "challenge_ttl_seconds": self.challenge_ttl_seconds,
            "max_wait_seconds": self.max_wait_seconds,
            "requests_per_second": self.requests_per_second,
            "request_burst": self.request_burst,
            "bytes_per_second": self.bytes_per_second,
            "bytes_burst": self.bytes_burst,
            "max_tracked_sources": self.max_tracked_sources,
            "max_one_time_prekeys": self.max_one_time_prekeys,
            "sweep_interval_seconds": self.sweep_interval_seconds,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        if self.default_ttl_seconds > self.max_ttl_seconds:
            raise ConfigurationError("default_ttl_seconds exceeds max_ttl_seconds")
        if self.bytes_burst < self.max_payload_bytes:
            raise ConfigurationError("bytes_burst must be at least max_payload_bytes")
        if self.max_bytes_per_recipient < self.max_payload_bytes:
            raise ConfigurationError("max_bytes_per_recipient must be at least max_payload_bytes")
        if self.auth_secret is not None and (
            not isinstance(self.auth_secret, bytes) or len(self.auth_secret) != 32
        ):
            raise ConfigurationError("auth_secret must be 32 bytes")
