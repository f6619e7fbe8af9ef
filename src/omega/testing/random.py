"""A deterministic random source for tests, fuzzing, benchmarks and simulations.

Every Omega function that needs randomness takes an ``rng``
(:data:`omega.crypto.random.RandomSource`, a callable ``size -> bytes``).
:class:`SeededRandom` is one that gives the same bytes for the same seed, so
a run can be reproduced byte for byte. Never use it for real keys.
"""

from __future__ import annotations

import hashlib

__all__ = ["SeededRandom"]


class SeededRandom:
    """Draw *n* (counting from 1) is ``SHAKE-256(seed || n as 8 bytes big-endian)[:size]``.

    ``counter`` is the number of draws so far (assignable, to replay a draw).
    With ``record=True`` every value handed out is also appended to ``drawn``,
    so a test can recompute what the code under test derived from it.
    """

    def __init__(self, seed: bytes, *, record: bool = False) -> None:
        self.seed = seed
        self.counter = 0
        self.record = record
        self.drawn: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        self.counter += 1
        value = hashlib.shake_256(self.seed + self.counter.to_bytes(8, "big")).digest(size)
        if self.record:
            self.drawn.append(value)
        return value
