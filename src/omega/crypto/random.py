"""The one source of randomness for :mod:`omega.crypto`.

Nothing in :mod:`omega.crypto` reads a global random generator: every
function that needs random bytes takes an ``rng`` argument, a
:data:`RandomSource`, which defaults to :func:`system_random`. Tests and the
simulator pass a seeded deterministic source instead, so that every run is
reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import nacl.utils

from omega.errors import ConfigurationError

__all__ = ["RandomSource", "random_bytes", "system_random"]

RandomSource = Callable[[int], bytes]
"""A callable that returns the requested number of uniformly random bytes."""


def system_random(size: int) -> bytes:
    """Return ``size`` bytes from the operating system's CSPRNG (libsodium's ``randombytes``)."""
    return nacl.utils.random(size)


def random_bytes(rng: RandomSource, size: int) -> bytes:
    """Draw ``size`` bytes from ``rng``, refusing a source that returns anything else.

    A short or over-long answer from a custom source would silently weaken a
    key or a nonce, so it is a :class:`~omega.errors.ConfigurationError`.
    """
    value: object = rng(size)
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ConfigurationError(
            f"random source returned {got}, expected {size} bytes",
            details={"expected": size},
        )
    return value
