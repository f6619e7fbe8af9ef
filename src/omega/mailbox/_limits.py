"""Per-source token buckets with bounded memory."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """One token bucket per source: ``rate`` tokens a second, at most ``burst`` saved.

    Keeps at most ``max_sources`` buckets; the least recently used is
    forgotten first (a forgotten source starts again with a full bucket).
    """

    def __init__(self, *, rate: float, burst: float, max_sources: int) -> None:
        self._rate = rate
        self._burst = burst
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, source: str, amount: float, now: float) -> bool:
        """Take ``amount`` tokens from ``source``'s bucket at ``now`` (seconds), if it has them."""
        tokens, last = self._buckets.pop(source, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
        allowed = tokens >= amount
        if allowed:
            tokens -= amount
        self._buckets[source] = (tokens, now)
        while len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
