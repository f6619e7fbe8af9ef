"""Conformance suites: a new backend proves itself by passing the suite of its interface.

* :func:`omega.testing.key_store.check_key_store` for key stores.
"""

from __future__ import annotations
