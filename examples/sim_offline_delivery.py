"""Simulation: a peer is offline while its friends write to it; the store delivers on return.

Fifty peers on a random social graph chat for ten virtual minutes over
lognormal links; peer 7 is offline until minute 15. Every message to peer 7
goes through the store-and-forward server and arrives when it comes back;
everything else arrives directly. The real X3DH, Double Ratchet, envelopes
and delivery engine run for every message.

Run: python examples/sim_offline_delivery.py [OUTPUT_DIR]
(prints the summary and the messages to peer 7; writes messages.csv and,
with matplotlib, latency_cdf.png to OUTPUT_DIR when given)
"""

import sys
from pathlib import Path

from omega.sim import (
    Distribution,
    LinkConfig,
    OfflineWindow,
    ScheduledSend,
    SimConfig,
    WorkloadConfig,
    simulate,
)
from omega.sim.plots import matplotlib_available, plot_latency_cdf

OFFLINE_PEER = 7
RETURNS_AT = 900.0

config = SimConfig(
    peers=50,
    duration=600.0,
    drain=900.0,
    seed=42,
    link=LinkConfig(latency=Distribution(kind="lognormal", mean=60.0, stddev=30.0)),
    offline=(OfflineWindow(peer=OFFLINE_PEER, start=0.0, end=RETURNS_AT),),
    workload=WorkloadConfig(
        rate=0.5,
        degree=6,
        sends=tuple(
            ScheduledSend(time=60.0 * minute, sender=minute, recipient=OFFLINE_PEER)
            for minute in range(1, 6)
        ),
    ),
)

result = simulate(config)
print(result.summary().format())
to_offline = [record for record in result.records if record.recipient == OFFLINE_PEER]
print(f"messages to peer {OFFLINE_PEER} (offline until {RETURNS_AT:.0f} s): {len(to_offline)}")
for record in to_offline:
    told = record.acknowledged_at or 0.0
    print(
        f"  from {record.sender:>2} sent {record.sent_at:6.1f} s -> delivered "
        f"{record.delivered_at or 0.0:6.1f} s via {record.path}, sender told at {told:.1f} s"
    )
assert all(record.path == "store" for record in to_offline)
assert all((record.delivered_at or 0) >= RETURNS_AT for record in to_offline)
print("every message to the offline peer arrived through the store after it came back")

if len(sys.argv) > 1:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    result.write_csv(out / "messages.csv")
    if matplotlib_available():
        plot_latency_cdf(result, out / "latency_cdf.png")
    print(f"results written to {out}")
