"""The relay server: forwards opaque secure-channel frames between registered devices.

:class:`RelayServer` serves the relay protocol (docs/transports.md, "The
relay protocol") over WebSocket and TCP, with ``/health`` and ``/metrics``;
:class:`RelayServerConfig` holds its settings. Several processes share one
Redis to reach each other's devices. ``omega serve relay`` runs it
(docs/servers.md, "Relay").
"""

from __future__ import annotations

from omega.server.relay._config import RelayServerConfig
from omega.server.relay._metrics import RelayMetrics
from omega.server.relay._server import RelayServer

__all__ = ["RelayMetrics", "RelayServer", "RelayServerConfig"]
