"""Conformance suites: a new backend proves itself by passing the suite of its interface.

* :func:`omega.testing.key_store.check_key_store` for key stores.
* :func:`omega.testing.transport.check_transport` for transports (and
  :class:`omega.testing.clock.ManualClock`, a clock tests move by hand).
* :class:`omega.testing.random.SeededRandom`: a reproducible random source.
"""

from __future__ import annotations
