"""Benchmark ``omega.sim``: simulated messages per wall-clock second and memory per peer.

Each size runs in a fresh child process (so its peak memory is its own):
``peers`` peers on a random social graph (mean degree 8) exchange
``messages`` 1:1 messages at 50 per virtual second over lognormal links
(mean 60 ms), 1% frame loss and 20% of the peers churning (10 min online,
5 min offline), with a store-and-forward server. Every message runs the real
protocol code: X3DH once per pair, the Double Ratchet per message, envelope
encode/decode, the binding, framing and the delivery engine; the cost model
is on (prekey bundle fetches and Noise handshakes cross the network). The
full run adds a group run: 1,000 peers in 100 groups of 3 to 12 members
posting 0.2 messages per second each for 60 s (every copy counts as a
message; the real Sender Keys and distributions run).

Baseline, measured in the same run: the same crypto and wire work *without*
the simulator (one sender and one receiver sealing, opening and acknowledging
messages back to back), so ``sim_overhead`` says what the event loop, the
network model and the bookkeeping add on top of the protocol code.

Figures: wall-clock seconds, CPU seconds, simulated messages per wall-clock
and per CPU second (the machine is shared: CPU time is the steadier one),
peak RSS growth over the imports, and that growth per peer.

    python bench/sim.py            # 1,000 peers x 10,000 and 10,000 peers x 100,000 messages
    python bench/sim.py --quick    # 1,000 x 2,000 and 10,000 x 2,000 (under a minute)

Target: 10,000 peers exchanging 100,000 messages in under 5 minutes (wall).
The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time


def _config(peers: int, messages: int) -> object:
    from omega.sim import (
        ChurnConfig,
        Distribution,
        GroupWorkload,
        LinkConfig,
        SimConfig,
        WorkloadConfig,
    )

    if messages == 0:  # the group run
        return SimConfig(
            peers=peers,
            duration=60.0,
            drain=600.0,
            seed=1,
            link=LinkConfig(
                latency=Distribution(kind="lognormal", mean=60.0, stddev=30.0), loss=0.01
            ),
            workload=WorkloadConfig(
                groups=GroupWorkload(count=100, min_size=3, max_size=12, rate=0.2)
            ),
        )
    rate = 50.0
    return SimConfig(
        peers=peers,
        duration=messages / rate * 1.2,
        drain=1800.0,
        seed=1,
        link=LinkConfig(latency=Distribution(kind="lognormal", mean=60.0, stddev=30.0), loss=0.01),
        churn=ChurnConfig(fraction=0.2, mean_online=600.0, mean_offline=300.0),
        workload=WorkloadConfig(rate=rate, degree=8, max_messages=messages),
    )


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_one(peers: int, messages: int) -> dict[str, float | int]:
    """Run one size in this process; the figures."""
    from omega.sim import Simulation

    config = _config(peers, messages)
    before = _rss_kib()
    wall, cpu = time.perf_counter(), time.process_time()
    simulation = Simulation(config)  # type: ignore[arg-type]
    result = simulation.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    growth = max(0, _rss_kib() - before) * 1024
    summary = result.summary()
    return {
        "peers": peers,
        "messages": summary.messages,
        "delivered": summary.delivered,
        "via_store": summary.via_store,
        "events": summary.events,
        "peers_materialised": result.peers_materialised,
        "group_copies": summary.group_deliveries,
        "sender_key_distributions": summary.sender_key_distributions,
        "connections": summary.connections,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "messages_per_wall_s": round(summary.messages / wall, 1),
        "messages_per_cpu_s": round(summary.messages / cpu, 1),
        "peak_rss_growth_mib": round(growth / 2**20, 1),
        "bytes_per_peer": int(growth / peers),
    }


def baseline(messages: int) -> dict[str, float]:
    """The protocol work alone: seal, open and acknowledge ``messages`` back to back."""
    from omega.sim import EPOCH_MS, SimPeer

    pairs = [
        (SimPeer(2 * i, seed=2, now=EPOCH_MS), SimPeer(2 * i + 1, seed=2, now=EPOCH_MS))
        for i in range(50)
    ]
    cpu = time.process_time()
    for index in range(messages):
        sender, receiver = pairs[index % len(pairs)]
        now = EPOCH_MS + index
        message_id = sender.new_message_id()
        content = SimPeer.text_content(
            64, message_id=message_id, timestamp=now, conversation_id=receiver.user_id
        )
        frame = sender.seal(
            message_id=message_id, recipient=receiver, content=content, timestamp=now
        )
        received = receiver.open(frame, now=now, from_device=sender.device_key)
        SimPeer.read_ack(SimPeer.ack(received.message_id, now=now))
    cpu = time.process_time() - cpu
    return {"messages": messages, "cpu_s": round(cpu, 3), "messages_per_cpu_s": messages / cpu}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(run_one(int(sys.argv[2]), int(sys.argv[3]))))
        return
    quick = "--quick" in sys.argv
    sizes = (
        [(1000, 2000), (10_000, 2000)]
        if quick
        else [(1000, 10_000), (10_000, 100_000), (1000, 0)]  # 0: the group run
    )
    base = baseline(1000 if quick else 3000)
    print(f"baseline (protocol code alone): {base['messages_per_cpu_s']:.0f} messages/cpu s")
    runs = []
    for peers, messages in sizes:
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(peers), str(messages)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["workload"] = "groups" if messages == 0 else "1:1"
        runs.append(figures)
        print(
            f"{peers:>6} peers {figures['messages']:>7} {figures['workload']} messages:"
            f" wall {figures['wall_s']:7.1f} s"
            f" cpu {figures['cpu_s']:7.1f} s  {figures['messages_per_wall_s']:8.0f} msg/wall s"
            f" {figures['messages_per_cpu_s']:8.0f} msg/cpu s  peak +"
            f"{figures['peak_rss_growth_mib']} MiB ({figures['bytes_per_peer']} B/peer)"
            f"  delivered {figures['delivered']} ({figures['via_store']} via store)"
        )
    ratios = {
        f"sim_overhead_{run['peers']}" + ("_groups" if run["workload"] == "groups" else ""): round(
            base["messages_per_cpu_s"] / run["messages_per_cpu_s"], 2
        )
        for run in runs
    }
    big = runs[1]
    target = {"10k_peers_100k_messages_under_300_s": big["wall_s"] < 300} if not quick else {}
    for name, value in ratios.items():
        print(f"{name}: the simulator costs {value:.2f}x the protocol code alone per message")
    if target:
        print(f"target 10,000 peers x 100,000 messages < 300 s wall: {big['wall_s']} s")
    print(
        json.dumps(
            {
                "benchmark": "sim",
                "python": platform.python_version(),
                "quick": quick,
                "baseline": base,
                "runs": runs,
                "ratios": ratios,
                "targets_met": target,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
