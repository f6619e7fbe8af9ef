"""Benchmark DHT lookups: latency and hop count on loopback, beside the log2(N) hop bound.

For networks of N Omega nodes (:class:`omega.discovery.DhtNode`, k = 20,
alpha = 3) on loopback in one process, every node joins through a few
earlier ones; R devices publish signed peer records; then L lookups, each
from a random node for a random record, run sequentially and are timed:

* ``omega``: :meth:`DhtNode.lookup`: every value verified (cached per
  value), crawling until 3 nodes have answered with a valid record, the
  highest sequence wins;
* ``stock``: kademlia 2.2.3's own ``ValueSpiderCrawl`` on the same nodes and
  keys (the baseline, measured in the same run): stops at the first round
  that returns any value, takes the most common one, verifies nothing.

Both contenders look up the same key from the same node, in alternating
order (the first lookup from a node also introduces it to peers that have
not met it, which costs them a routing-table update).

Hops are the rounds of parallel requests a lookup makes; Kademlia promises
O(log2 N) of them. Everything runs in one process, so latency here is
mostly the Python cost of the requests (msgpack, routing, verification),
not network delay.

    python bench/dht.py            # N = 100, 500, 1000
    python bench/dht.py --quick    # N = 100, 200; under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import random
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
from kademlia.crawling import ValueSpiderCrawl
from kademlia.node import Node

from omega.crypto import Identity
from omega.discovery import sign_peer_record
from omega.discovery.dht import DhtConfig, DhtNode
from omega.discovery.dht_values import peer_record_key
from omega.testing.clock import ManualClock
from omega.testing.discovery import START_TIME
from omega.testing.random import SeededRandom

NOW_MS = int(START_TIME * 1000)


class CountingCrawl(ValueSpiderCrawl):  # type: ignore[misc]
    """The stock value crawler, counting its rounds (selection unchanged)."""

    rounds = 0

    async def find(self) -> Any:
        self.rounds += 1
        return await super().find()


async def build(count: int, clock: ManualClock, rng: random.Random) -> list[DhtNode]:
    stack = AsyncExitStack()
    # Every node shares 127.0.0.1: lift the per-IP limits meant for the internet.
    config = {
        "rpc_timeout": 5.0,
        "store_burst_per_ip": 1_000_000,
        "store_rate_per_ip": 1e6,
        "request_burst_per_ip": 1_000_000,
        "request_rate_per_ip": 1e6,
    }
    first = await stack.enter_async_context(DhtNode(DhtConfig(**config), clock=clock))  # type: ignore[arg-type]
    nodes = [first]
    for _ in range(count - 1):
        seeds = rng.sample(nodes, min(3, len(nodes)))
        boot = tuple(f"127.0.0.1:{node.address[1]}" for node in seeds)
        node = DhtNode(DhtConfig(bootstrap=boot, **config), clock=clock)  # type: ignore[arg-type]
        nodes.append(await stack.enter_async_context(node))
    nodes[0]._bench_stack = stack  # type: ignore[attr-defined]
    return nodes


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(count: int, records: int, lookups: int) -> dict[str, float]:
    rng = random.Random(count)
    clock = ManualClock(START_TIME)
    started = time.perf_counter()
    nodes = await build(count, clock, rng)
    joined = time.perf_counter() - started
    try:
        people = [
            Identity.create(
                device_name="bench", created_at=NOW_MS, rng=SeededRandom(b"bench%d" % i)
            )
            for i in range(records)
        ]
        for i, person in enumerate(people):
            record = sign_peer_record(
                person.device,
                addresses=[f"/ip4/127.0.0.1/tcp/{4000 + i}"],
                sequence=1,
                expires_at=NOW_MS + 3_600_000,
            )
            await rng.choice(nodes).publish_peer_record(record)
        omega_ms: list[float] = []
        omega_hops: list[int] = []
        stock_ms: list[float] = []
        stock_hops: list[int] = []
        omega_misses = stock_misses = 0
        for index in range(lookups):
            node = rng.choice(nodes)
            key = peer_record_key(rng.choice(people).device.device_key)
            # Same node and key for both; which goes first alternates, since the first
            # lookup also introduces the node to peers that have not met it yet.
            for contender in ("omega", "stock") if index % 2 else ("stock", "omega"):
                if contender == "omega":
                    before = time.perf_counter()
                    result = await node.lookup(key)
                    omega_ms.append((time.perf_counter() - before) * 1000)
                    omega_hops.append(result.rounds)
                    omega_misses += result.value is None
                    continue
                target = Node(key)
                crawl = CountingCrawl(
                    node.protocol,
                    target,
                    node.protocol.router.find_neighbors(target, node.config.alpha),
                    node.config.ksize,
                    node.config.alpha,
                )
                before = time.perf_counter()
                value = await crawl.find()
                stock_ms.append((time.perf_counter() - before) * 1000)
                stock_hops.append(crawl.rounds)
                stock_misses += value is None
    finally:
        await nodes[0]._bench_stack.aclose()  # type: ignore[attr-defined]
    return {
        "nodes": count,
        "join_seconds": round(joined, 2),
        "log2_n": round(math.log2(count), 2),
        "omega_p50_ms": round(statistics.median(omega_ms), 3),
        "omega_p99_ms": round(percentile(omega_ms, 0.99), 3),
        "omega_hops_mean": round(statistics.fmean(omega_hops), 2),
        "omega_hops_max": max(omega_hops),
        "stock_p50_ms": round(statistics.median(stock_ms), 3),
        "stock_p99_ms": round(percentile(stock_ms, 0.99), 3),
        "stock_hops_mean": round(statistics.fmean(stock_hops), 2),
        "stock_hops_max": max(stock_hops),
        "omega_over_stock_p50": round(statistics.median(omega_ms) / statistics.median(stock_ms), 2),
        "omega_misses": omega_misses,
        "stock_misses": stock_misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 and 200, under a minute")
    arguments = parser.parse_args()
    logging.disable(logging.CRITICAL)  # rpcudp logs every unanswered request
    sizes = (100, 200) if arguments.quick else (100, 500, 1000)
    records, lookups = (30, 100) if arguments.quick else (50, 300)
    rows = []
    print(
        f"{'N':>5} {'log2N':>6} | {'omega p50':>9} {'p99':>7} {'hops':>5} {'max':>4} | "
        f"{'stock p50':>9} {'p99':>7} {'hops':>5} {'max':>4} | {'ratio':>5} {'join s':>6}"
    )
    for size in sizes:
        row = anyio.run(measure, size, records, lookups, backend="asyncio")
        rows.append(row)
        print(
            f"{size:>5} {row['log2_n']:>6} | {row['omega_p50_ms']:>7}ms {row['omega_p99_ms']:>5}ms "
            f"{row['omega_hops_mean']:>5} {row['omega_hops_max']:>4} | "
            f"{row['stock_p50_ms']:>7}ms {row['stock_p99_ms']:>5}ms {row['stock_hops_mean']:>5} "
            f"{row['stock_hops_max']:>4} | {row['omega_over_stock_p50']:>5} "
            f"{row['join_seconds']:>6}",
            flush=True,
        )
    within = all(row["omega_hops_max"] <= math.ceil(row["log2_n"]) for row in rows)
    print(f"every omega lookup within log2(N) hops: {within}")
    print(
        json.dumps(
            {
                "benchmark": "dht",
                "python": platform.python_version(),
                "quick": arguments.quick,
                "records": records,
                "lookups_per_size": lookups,
                "unit": "milliseconds per lookup; hops = rounds of alpha parallel requests",
                "rows": rows,
                "ratios": {
                    f"omega_over_stock_p50_n{row['nodes']}": row["omega_over_stock_p50"]
                    for row in rows
                },
                "hops_within_log2_n": within,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
