"""Fixtures of the CLI tests: a passphrase in the environment and a cheap Argon2 cost."""

from __future__ import annotations

import functools

import pytest

import omega.client.datadir
from omega.crypto import MIN_MEMLIMIT, MIN_OPSLIMIT, export_identity

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity exports at libsodium's minimum cost (the file records the cost, so
    unlocking is as cheap), and the passphrase in ``$OMEGA_PASSPHRASE``."""
    cheap = functools.partial(export_identity, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    monkeypatch.setattr(omega.client.datadir, "export_identity", cheap)
    monkeypatch.setenv("OMEGA_PASSPHRASE", PASSPHRASE)
