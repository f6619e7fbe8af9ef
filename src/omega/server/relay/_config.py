"""The relay server's configuration: one frozen, validated dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omega.errors import ConfigurationError
from omega.protocol.framing import DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT
from omega.transport._relay_protocol import FRAME_OVERHEAD, MAX_RELAY_ID_BYTES

__all__ = ["RelayServerConfig"]


def _int(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{name} must be an int in {low}..{high}, got {value!r}", details={name: value}
        )


def _positive(value: object, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ConfigurationError(
            f"{name} must be a positive finite number, got {value!r}", details={name: value}
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayServerConfig:
    """Settings of one relay server process (docs/servers.md, "Relay" lists them with defaults)."""

    relay_id: str = "omega-relay"
    """Name of the deployment, signed into every registration; the same on every process."""
    host: str = "127.0.0.1"
    """Interface the WebSocket (and TCP) listeners bind."""
    port: int = 8080
    """WebSocket port; also serves ``/health`` and ``/metrics`` over plain HTTP. 0: ephemeral."""
    tcp_port: int | None = None
    """Port of the length-prefixed TCP listener; ``None`` for none. 0: ephemeral."""
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE + FRAME_OVERHEAD
    """Largest relay frame accepted, in bytes (a 1 MiB data frame plus its header)."""
    max_sessions: int = 10_000
    """Sessions (registered or not) served at once, over all listeners."""
    max_sessions_per_device: int = 64
    """Sessions one device key may hold at once (each dial is a session)."""
    max_streams_per_session: int = 256
    """Streams open at once on one session."""
    max_buffered_bytes: int = 4 * 1024 * 1024
    """Bytes the relay queues for one session before forwarding to it waits."""
    stall_timeout: float = 10.0
    """Seconds forwarding to a session may wait for its queue before the session is dropped."""
    registration_timeout: float = 10.0
    """Seconds a new session has to answer the challenge."""
    max_clock_skew: float = 120.0
    """Largest difference, in seconds, between a registration's timestamp and the relay's clock."""
    bytes_per_second: float = 16 * 1024 * 1024
    """Sustained bytes per second one device may send through the relay (token bucket)."""
    burst_bytes: int = 32 * 1024 * 1024
    """Bytes one device may send at once above the sustained rate."""
    frames_per_second: float = 10_000.0
    """Sustained frames per second one device may send."""
    burst_frames: int = 20_000
    """Frames one device may send at once above the sustained rate."""
    connects_per_second: float = 20.0
    """Sustained new streams per second one device may open."""
    burst_connects: int = 100
    """New streams one device may open at once above the sustained rate."""
    redis_url: str | None = None
    """Redis shared by every relay process of the deployment; ``None`` for a lone relay."""
    redis_prefix: str = "omega:relay"
    """Prefix of the Redis keys and channels the relays use."""
    shutdown_grace: float = 5.0
    """Seconds a stopping relay lets open sessions finish before closing them."""

    def __post_init__(self) -> None:
        if not isinstance(self.relay_id, str) or not (
            0 < len(self.relay_id.encode("utf-8")) <= MAX_RELAY_ID_BYTES
        ):
            raise ConfigurationError(f"relay_id must be 1..{MAX_RELAY_ID_BYTES} UTF-8 bytes")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigurationError("host must be a non-empty string")
        _int(self.port, "port", 0, 65535)
        if self.tcp_port is not None:
            _int(self.tcp_port, "tcp_port", 0, 65535)
        _int(self.max_frame_size, "max_frame_size", 1024, MAX_FRAME_SIZE_LIMIT)
        _int(self.max_sessions, "max_sessions", 1, 1 << 24)
        _int(self.max_sessions_per_device, "max_sessions_per_device", 1, 1 << 20)
        _int(self.max_streams_per_session, "max_streams_per_session", 1, 1 << 20)
        _int(self.max_buffered_bytes, "max_buffered_bytes", 1024, 1 << 34)
        _int(self.burst_bytes, "burst_bytes", 1, 1 << 40)
        _int(self.burst_frames, "burst_frames", 1, 1 << 32)
        _int(self.burst_connects, "burst_connects", 1, 1 << 20)
        for name in (
            "stall_timeout",
            "registration_timeout",
            "max_clock_skew",
            "bytes_per_second",
            "frames_per_second",
            "connects_per_second",
            "shutdown_grace",
        ):
            _positive(getattr(self, name), name)
        if self.redis_url is not None and not (
            isinstance(self.redis_url, str) and self.redis_url.startswith(("redis://", "rediss://"))
        ):
            raise ConfigurationError("redis_url must be a redis:// or rediss:// URL")
        if not isinstance(self.redis_prefix, str) or not self.redis_prefix:
            raise ConfigurationError("redis_prefix must be a non-empty string")
