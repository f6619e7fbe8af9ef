"""Omega: peer-to-peer, end-to-end-encrypted messaging for Python.

The public API is re-exported here; implementation lives in the layer
packages (see docs/architecture.md). ``omega.accelerated()`` tells whether
the Cython accelerators are live.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from omega import _accel

try:
    __version__ = version("omega-p2p")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "accelerated", "accelerator_status"]


def accelerated() -> bool:
    """True when every accelerated feature runs on its compiled Cython twin.

    False when the extensions were not built (no compiler, or a pure-Python
    install) or when ``OMEGA_PURE_PYTHON=1`` was set before import. See
    :func:`accelerator_status` for the per-feature picture.
    """
    return all(_accel.status().values())


def accelerator_status() -> dict[str, bool]:
    """Map each accelerated feature (``"framing"``, ...) to whether its Cython twin is live."""
    return _accel.status()
