"""Choose between the Cython accelerators and their pure-Python twins.

Each accelerated feature has a pure-Python module (the reference) and a
compiled twin with identical behaviour. The compiled twin is used when it
was built and ``OMEGA_PURE_PYTHON`` is not set to ``1``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_PYTHON_ENV = "OMEGA_PURE_PYTHON"

# Feature name -> (facade module that selects, accelerated module).
ACCELERATED_FEATURES: dict[str, tuple[str, str]] = {
    "framing": ("omega.protocol.framing", "omega.protocol._framing_c"),
    "codec": ("omega.protocol.wire", "omega.protocol._codec_c"),
    "ratchet": ("omega.crypto._symmetric", "omega.crypto._ratchet_c"),
}

_live: dict[str, bool] = {}


def pure_python_forced() -> bool:
    """True when the environment asks for the pure-Python path."""
    return os.environ.get(PURE_PYTHON_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def select(feature: str, pure: ModuleType) -> ModuleType:
    """Return the compiled module for ``feature`` if usable, else ``pure``."""
    _, accelerated_name = ACCELERATED_FEATURES[feature]
    module = pure
    if not pure_python_forced():
        try:
            module = importlib.import_module(accelerated_name)
        except ImportError:
            module = pure
    _live[feature] = module is not pure
    return module


def status() -> dict[str, bool]:
    """Map each accelerated feature to whether its compiled twin is live."""
    for facade, _ in ACCELERATED_FEATURES.values():
        importlib.import_module(facade)
    return {feature: _live[feature] for feature in ACCELERATED_FEATURES}
