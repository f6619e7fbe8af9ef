"""Configuration of a :class:`~omega.client.Client`."""

from __future__ import annotations

from dataclasses import dataclass, field

from omega.errors import ConfigurationError
from omega.session.delivery import DeliveryConfig
from omega.transport.manager import ManagerConfig

__all__ = ["ClientConfig"]


def _check(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be a number in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Settings of a client. Times are seconds."""

    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    """Retry and store-fallback policy of the outbox."""
    connections: ManagerConfig = field(default_factory=ManagerConfig)
    """Limits and timers of the connection manager."""
    accept_unknown_senders: bool = True
    """Messages from users who are not contacts are accepted and the sender is
    added as an unverified contact (a bot needs this); False refuses them."""
    key_request_timeout: float = 10.0
    """How long to wait for a peer to answer a key request over a connection."""
    mailbox_poll_interval: float = 30.0
    """Longest wait between two fetches from the store server (a long poll
    returns sooner when something arrives)."""
    sweep_interval: float = 5.0
    """How often disappearing messages are looked for."""
    max_parallel_devices: int = 16
    """Devices the outbox delivers to at the same time."""
    one_time_prekeys_to_publish: int = 50
    """One-time prekeys kept published on the key directory."""
    peer_record_lifetime: float = 24 * 3600.0
    """Lifetime of the signed peer record the client publishes."""
    inbound_rate: float = 50.0
    """Envelopes per second accepted from one device (a token bucket); more are refused."""
    inbound_burst: int = 200
    """Size of that bucket."""

    def __post_init__(self) -> None:
        _check("key_request_timeout", self.key_request_timeout, 0.01, 600)
        _check("mailbox_poll_interval", self.mailbox_poll_interval, 0.01, 3600)
        _check("sweep_interval", self.sweep_interval, 0.01, 3600)
        _check("max_parallel_devices", self.max_parallel_devices, 1, 1024)
        _check("one_time_prekeys_to_publish", self.one_time_prekeys_to_publish, 0, 1000)
        _check("peer_record_lifetime", self.peer_record_lifetime, 60, 30 * 86400)
        _check("inbound_rate", self.inbound_rate, 0.1, 100_000)
        _check("inbound_burst", self.inbound_burst, 1, 1_000_000)
