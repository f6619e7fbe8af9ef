"""Conformance suites: a new backend proves itself by passing the suite of its interface.

* :func:`omega.testing.key_store.check_key_store` for key stores.
* :func:`omega.testing.message_store.check_message_store` for message stores.
* :func:`omega.testing.transport.check_transport` for transports (and
  :class:`omega.testing.clock.ManualClock`, a clock tests move by hand).
* :class:`omega.testing.random.SeededRandom`: a reproducible random source.
* :mod:`omega.testing.wire`: protobuf encodings built by hand, for decoder tests.
"""

from __future__ import annotations

from omega.testing.message_store import check_message_store

__all__ = ["check_message_store"]
