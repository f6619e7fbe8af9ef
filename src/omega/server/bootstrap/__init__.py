"""The DHT bootstrap node (``omega serve bootstrap``).

* :class:`BootstrapServer` runs the node and its health endpoint.
* :class:`BootstrapConfig` is its configuration (TOML, environment, flags).
* :func:`load_state` / :func:`save_state` keep its routing table as JSON.
"""

from __future__ import annotations

from omega.server.bootstrap.config import BootstrapConfig
from omega.server.bootstrap.server import BootstrapServer
from omega.server.bootstrap.state import RoutingState, load_state, save_state

__all__ = ["BootstrapConfig", "BootstrapServer", "RoutingState", "load_state", "save_state"]
