"""Workload generation: 1:1 traffic over a social graph, as Poisson streams."""

from __future__ import annotations

import random

from omega.sim.config import SimConfig

__all__ = ["Workload", "build_graph"]

_US = 1_000_000


def build_graph(kind: str, peers: int, degree: int, rng: random.Random) -> list[list[int]] | None:
    """Contact lists per peer, or ``None`` for the complete graph (drawn on the fly).

    ``random``: each peer adds ``max(1, degree // 2)`` new random contacts and
    every edge is symmetric, so the mean degree is about ``degree``.
    ``ring``: the ``degree // 2`` neighbours on each side (at least one).
    ``star``: peer 0 knows everyone, the others know peer 0.
    """
    if kind == "complete":
        return None
    contacts: list[set[int]] = [set() for _ in range(peers)]
    if kind == "star":
        contacts[0].update(range(1, peers))
        for peer in range(1, peers):
            contacts[peer].add(0)
    elif kind == "ring":
        reach = max(1, degree // 2)
        for peer in range(peers):
            for step in range(1, reach + 1):
                other = (peer + step) % peers
                if other != peer:
                    contacts[peer].add(other)
                    contacts[other].add(peer)
    else:
        picks = min(max(1, degree // 2), peers - 1)
        for peer in range(peers):
            added = 0
            while added < picks and len(contacts[peer]) < peers - 1:
                other = rng.randrange(peers)
                if other != peer and other not in contacts[peer]:
                    contacts[peer].add(other)
                    contacts[other].add(peer)
                    added += 1
    return [sorted(c) for c in contacts]


class Workload:
    """Random 1:1 sends of a :class:`~omega.sim.config.SimConfig`'s workload.

    Stream 0 is the steady ``rate`` over ``[0, duration)``; stream ``i > 0``
    is burst ``i - 1``. Inter-arrival times are exponential.
    """

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        workload = config.workload
        self._rng = rng
        self._peers = config.peers
        self._size = workload.message_size
        self._remaining = workload.max_messages
        self._windows: list[tuple[int, int, float]] = [
            (0, int(config.duration * _US), workload.rate)
        ]
        for burst in workload.bursts:
            start = int(burst.start * _US)
            self._windows.append((start, start + int(burst.duration * _US), burst.rate))
        needs_graph = any(rate > 0 for _, _, rate in self._windows) and self._remaining > 0
        self._graph = (
            build_graph(workload.graph, config.peers, workload.degree, rng) if needs_graph else None
        )

    @property
    def streams(self) -> int:
        """Number of Poisson streams."""
        return len(self._windows)

    def _after(self, stream: int, time: int) -> int | None:
        start, end, rate = self._windows[stream]
        if rate <= 0:
            return None
        next_time = max(time, start) + max(1, int(self._rng.expovariate(rate) * _US))
        return next_time if next_time < end else None

    def first_arrival(self, stream: int) -> int | None:
        """Time (µs) of the stream's first message, or ``None``."""
        return self._after(stream, self._windows[stream][0])

    def next_send(self, stream: int, now: int) -> tuple[int, int, int, int | None] | None:
        """``(sender, recipient, size, next arrival or None)``, or ``None`` when exhausted."""
        if self._remaining <= 0:
            return None
        self._remaining -= 1
        sender = self._rng.randrange(self._peers)
        if self._graph is None:
            recipient = self._rng.randrange(self._peers - 1)
            recipient += recipient >= sender
        else:
            contacts = self._graph[sender]
            recipient = contacts[self._rng.randrange(len(contacts))]
        return sender, recipient, self._size, self._after(stream, now)
