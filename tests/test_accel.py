"""omega._accel picks the compiled twin when it imports, else the pure reference."""

from __future__ import annotations

from types import ModuleType

import pytest

from omega import _accel
from omega.crypto import _kdf


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test add features and selections without leaking them."""
    _accel.status()  # every facade imported and selected before the copy
    monkeypatch.setattr(_accel, "ACCELERATED_FEATURES", dict(_accel.ACCELERATED_FEATURES))
    monkeypatch.setattr(_accel, "_live", dict(_accel._live))


@pytest.mark.usefixtures("registry")
def test_a_twin_that_cannot_be_imported_leaves_the_pure_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a build without a compiler, or a _ratchet_c that finds no libsodium symbols, gives.
    monkeypatch.delenv(_accel.PURE_PYTHON_ENV, raising=False)
    _accel.ACCELERATED_FEATURES["missing"] = ("omega.crypto._kdf", "omega._no_such_twin")
    pure = ModuleType("pure_reference")
    assert _accel.select("missing", pure) is pure
    assert _accel.status()["missing"] is False


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("value", ["1", "true", " YES ", "on"])
def test_the_environment_forces_the_pure_path(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(_accel.PURE_PYTHON_ENV, value)
    assert _accel.pure_python_forced()
    assert _accel.select("ratchet", _kdf) is _kdf


def test_other_values_do_not_force_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_accel.PURE_PYTHON_ENV, "0")
    assert not _accel.pure_python_forced()
