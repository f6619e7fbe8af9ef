"""Simulation of many Omega peers on a virtual network (docs/simulation.md).

``omega.sim`` runs N peers with the real protocol code (X3DH, Double
Ratchet, envelopes and their binding, content encoding, wire framing and the
client's delivery engine) in a deterministic discrete-event loop with a
virtual clock: per-link latency distributions, bandwidth, loss, partitions
that open and heal, churn, a store-and-forward server and a relay, the
secure channel's handshakes, and group traffic through the real
``omega.groups`` engine (Sender Keys, removals). The same seed gives the
same trace, byte for byte.

Example::

    from omega.sim import ScheduledSend, SimConfig, WorkloadConfig, simulate

    result = simulate(SimConfig(peers=2, workload=WorkloadConfig(sends=(
        ScheduledSend(time=1.0, sender=0, recipient=1),))))
    print(result.summary().format())
"""

from __future__ import annotations

from collections.abc import Callable

from omega.sim._engine import EPOCH_MS, Simulation
from omega.sim._links import handshake_sizes
from omega.sim._network import RELAY, STORE, Network
from omega.sim._peer import Received, SimPeer
from omega.sim._results import (
    CONNECTION_COLUMNS,
    CSV_COLUMNS,
    ConnectionRecord,
    MessageRecord,
    SimResult,
    Summary,
    percentile,
)
from omega.sim._workload import Workload, build_graph
from omega.sim.config import (
    DISTRIBUTION_KINDS,
    GRAPH_KINDS,
    Burst,
    ChurnConfig,
    Distribution,
    GroupRemoval,
    GroupSend,
    GroupSpec,
    GroupWorkload,
    LinkConfig,
    OfflineWindow,
    Partition,
    ScheduledSend,
    SimConfig,
    WorkloadConfig,
)

__all__ = [
    "CONNECTION_COLUMNS",
    "CSV_COLUMNS",
    "DISTRIBUTION_KINDS",
    "EPOCH_MS",
    "GRAPH_KINDS",
    "RELAY",
    "STORE",
    "Burst",
    "ChurnConfig",
    "ConnectionRecord",
    "Distribution",
    "GroupRemoval",
    "GroupSend",
    "GroupSpec",
    "GroupWorkload",
    "LinkConfig",
    "MessageRecord",
    "Network",
    "OfflineWindow",
    "Partition",
    "Received",
    "ScheduledSend",
    "SimConfig",
    "SimPeer",
    "SimResult",
    "Simulation",
    "Summary",
    "Workload",
    "WorkloadConfig",
    "build_graph",
    "handshake_sizes",
    "percentile",
    "simulate",
]


def simulate(config: SimConfig, *, progress: Callable[[float], None] | None = None) -> SimResult:
    """Run the scenario ``config`` and return its results."""
    return Simulation(config).run(progress)
