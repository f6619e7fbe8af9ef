"""Token buckets: the relay's per-device rate and bandwidth limits."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; time is passed in (seconds)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now

    def try_take(self, amount: float, now: float) -> bool:
        """Take ``amount`` tokens if there are that many; say whether it did."""
        self._refill(now)
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def is_full(self, now: float) -> bool:
        """True when the bucket holds ``burst`` tokens (forgetting it would grant nothing)."""
        self._refill(now)
        return self._tokens >= self._burst

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens, going into debt; return the seconds to wait to repay it."""
        self._refill(now)
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
