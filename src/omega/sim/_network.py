"""The virtual network: who can reach whom, and when a frame arrives.

Nodes are peer numbers, :data:`STORE` (``-1``) and :data:`RELAY` (``-2``).
A frame from ``a`` to ``b`` sent at ``now`` (virtual microseconds) waits for ``a``'s uplink (frames
leave one after the other at the link's bandwidth), then travels the link's
base latency (drawn once per link) plus a jitter draw; it is lost with the
link's loss probability, and never arrives when the two nodes are in
different sides of an open partition or either is offline (checked when it
is sent and when it arrives).
"""

from __future__ import annotations

import random

from omega.sim.config import SimConfig

__all__ = ["RELAY", "STORE", "Network"]

STORE = -1
"""The node number of the store-and-forward server."""
RELAY = -2
"""The node number of the relay."""

_US_PER_MS = 1000
_US_PER_S = 1_000_000


class Network:
    """Reachability, latency, bandwidth and loss of the simulated links."""

    __slots__ = (
        "_base",
        "_classes",
        "_config",
        "_partitions",
        "_rng",
        "_uplink_free",
        "online",
    )

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._base: dict[tuple[int, int], float] = {}
        self._uplink_free: dict[int, int] = {}
        self._partitions = [
            (int(p.start * _US_PER_S), int(p.end * _US_PER_S), p.peers, p.store, p.relay)
            for p in config.partitions
        ]
        self.online = bytearray([1]) * config.peers
        """``online[peer]`` is 1 while the peer is online (the store and relay never go down)."""
        # per link class: (µs per byte on the uplink, loss, base latency, constant jitter or None)
        self._classes = {
            name: (
                8 * _US_PER_S / link.bandwidth,
                link.loss,
                link.latency,
                link.jitter.mean if link.jitter.kind == "constant" else None,
                link.jitter,
            )
            for name, link in (
                (0, config.link),
                (STORE, config.store_link),
                (RELAY, config.relay_link),
            )
        }

    def reachable(self, a: int, b: int, now: int) -> bool:
        """Whether ``a`` and ``b`` are both up and on the same side of every open partition."""
        if (a >= 0 and not self.online[a]) or (b >= 0 and not self.online[b]):
            return False
        if not self._partitions:
            return True
        for start, end, peers, store, relay in self._partitions:
            if start <= now < end and _inside(a, peers, store, relay) != _inside(
                b, peers, store, relay
            ):
                return False
        return True

    def transmit(self, a: int, b: int, size: int, now: int) -> int | None:
        """Send ``size`` bytes from ``a`` to ``b`` at ``now``: arrival (µs), or ``None`` if lost.

        The frame occupies ``a``'s uplink even when it is lost.
        """
        per_byte, loss, latency, constant_jitter, jitter = self._classes[
            a if a < 0 else b if b < 0 else 0
        ]
        free = self._uplink_free.get(a, 0)
        done = (now if now > free else free) + int(size * per_byte)
        self._uplink_free[a] = done
        if loss and self._rng.random() < loss:
            return None
        key = (a, b) if a < b else (b, a)
        base = self._base.get(key)
        if base is None:
            base = latency.sample(self._rng)
            self._base[key] = base
        extra = constant_jitter if constant_jitter is not None else jitter.sample(self._rng)
        return done + int((base + extra) * _US_PER_MS)


def _inside(node: int, peers: frozenset[int], store: bool, relay: bool) -> bool:
    if node == STORE:
        return store
    if node == RELAY:
        return relay
    return node in peers
