"""Known-answer scenarios for the simulator (docs/simulation.md)."""

from __future__ import annotations

import math

import pytest

from omega.sim import (
    Burst,
    ChurnConfig,
    Distribution,
    LinkConfig,
    OfflineWindow,
    Partition,
    ScheduledSend,
    SimConfig,
    Simulation,
    WorkloadConfig,
    simulate,
)

LAN = LinkConfig(latency=Distribution(kind="constant", mean=20.0), bandwidth=1e9)


def _sends(*triples: tuple[float, int, int]) -> WorkloadConfig:
    return WorkloadConfig(
        sends=tuple(ScheduledSend(time=t, sender=s, recipient=r) for t, s, r in triples)
    )


@pytest.mark.parametrize("costs", [True, False])
def test_no_loss_no_churn_delivers_everything_directly(costs: bool) -> None:
    config = SimConfig(
        peers=20,
        duration=60.0,
        drain=60.0,
        link=LinkConfig(latency=Distribution(kind="uniform", low=10.0, high=80.0)),
        workload=WorkloadConfig(rate=5.0, degree=4),
        secure_channel=costs,
        prekey_fetch=costs,
    )
    result = simulate(config)
    summary = result.summary()
    assert summary.messages > 200
    assert summary.delivered == summary.messages
    assert summary.direct == summary.messages
    assert summary.via_store == 0
    assert all(record.state == "delivered" for record in result.records)
    assert all(record.attempts == 1 for record in result.records)
    assert summary.latency_p50_ms >= 10.0
    if not costs:
        # one-way latency: the link's base latency plus serialisation, nothing more
        assert summary.latency_max_ms < 81.0
        # each message: its envelope and its Ack on the wire
        assert all(record.frames == 2 for record in result.records)
        assert summary.connections == 0
        return
    first: dict[frozenset[int], float] = {}
    for record in result.records:
        pair = frozenset((record.sender, record.recipient))
        assert record.latency_ms is not None
        if pair not in first:
            # first contact: the bundle from the store (30 ms each way), then the
            # handshake's round trip, then the message: at least 60 + 3 x 10 ms
            assert record.latency_ms >= 90.0
            assert record.frames >= 2 + 2 + 3 + 2  # bundle, handshake, device lists
            first[pair] = record.delivered_at or 0.0
        elif record.sent_at > first[pair]:
            assert record.latency_ms < 81.0  # the link is up: one way, nothing more
    assert summary.connections == len(result.connections) == len(first)
    assert all(connection.handshake_ms >= 20.0 for connection in result.connections)


def test_offline_for_the_whole_run_gets_everything_through_the_store_on_return() -> None:
    config = SimConfig(
        peers=4,
        duration=100.0,
        drain=100.0,
        link=LAN,
        offline=(OfflineWindow(peer=3, start=0.0, end=150.0),),
        workload=_sends(*[(1.0 + i, i % 3, 3) for i in range(12)]),
    )
    result = simulate(config)
    assert len(result.records) == 12
    for record in result.records:
        assert record.path == "store"
        assert record.delivered_at is not None
        assert record.delivered_at >= 150.0
        # a delivery receipt told the sender
        assert record.state == "delivered"
        assert record.acknowledged_at is not None
        # two direct attempts, the deposit, and (the Client's peer_connected rule) one
        # more direct send when the receipt's channel comes up
        assert record.attempts == config.direct_attempts + 2


def test_a_partition_delays_messages_by_at_least_its_duration() -> None:
    config = SimConfig(
        peers=6,
        duration=30.0,
        drain=300.0,
        link=LAN,
        partitions=(Partition(start=10.0, end=70.0, peers=frozenset({4, 5}), store=False),),
        workload=_sends((10.0, 0, 4), (10.0, 1, 5), (20.0, 4, 2), (12.0, 4, 5)),
    )
    result = simulate(config)
    by_pair = {(record.sender, record.recipient): record for record in result.records}
    for pair in ((0, 4), (1, 5), (4, 2)):
        record = by_pair[pair]
        assert record.delivered_at is not None
        assert record.delivered_at >= 70.0
        latency = record.latency_ms
        assert latency is not None
        assert latency >= (70.0 - record.sent_at) * 1000
    # inside the partition, peers still reach each other at once
    inside = by_pair[(4, 5)]
    assert inside.path == "direct"
    assert inside.latency_ms is not None
    assert inside.latency_ms < 150  # first contact: bundle and handshake round trips


def test_a_partition_with_the_store_on_the_other_side_delivers_through_the_store() -> None:
    config = SimConfig(
        peers=3,
        duration=10.0,
        drain=200.0,
        link=LAN,
        partitions=(Partition(start=0.0, end=100.0, peers=frozenset({0}), store=False),),
        workload=_sends((1.0, 1, 2), (2.0, 1, 0)),
    )
    records = simulate(config).records
    assert records[0].path == "direct"
    assert records[1].delivered_at is not None
    assert records[1].delivered_at >= 100.0


def _busy(seed: int) -> SimConfig:
    return SimConfig(
        peers=30,
        duration=120.0,
        drain=600.0,
        seed=seed,
        link=LinkConfig(
            latency=Distribution(kind="lognormal", mean=60.0, stddev=40.0),
            jitter=Distribution(kind="exponential", mean=5.0),
            bandwidth=1e6,
            loss=0.05,
        ),
        churn=ChurnConfig(fraction=0.5, mean_online=60.0, mean_offline=30.0),
        partitions=(Partition(start=30.0, end=60.0, peers=frozenset(range(10)), store=True),),
        workload=WorkloadConfig(
            rate=2.0, bursts=(Burst(start=50.0, duration=5.0, rate=20.0),), degree=6
        ),
    )


def test_same_seed_same_trace_byte_for_byte() -> None:
    first, second = simulate(_busy(7)), simulate(_busy(7))
    assert first.csv_text() == second.csv_text()
    assert first.trace_digest() == second.trace_digest()
    assert first.events == second.events
    other = simulate(_busy(8))
    assert other.trace_digest() != first.trace_digest()


def test_loss_churn_and_bursts_still_deliver_with_retries() -> None:
    result = simulate(_busy(3))
    summary = result.summary()
    assert summary.messages > 250
    assert summary.direct > 0
    assert summary.via_store > 0
    assert summary.delivery_ratio > 0.95
    assert any(record.attempts > 1 for record in result.records)
    assert summary.latency_p99_ms >= summary.latency_p50_ms
    assert summary.wire_bytes == sum(record.wire_bytes for record in result.records)


def test_without_a_store_an_offline_peer_gets_its_messages_directly_when_back() -> None:
    config = SimConfig(
        peers=2,
        duration=5.0,
        drain=900.0,
        store=False,
        link=LAN,
        offline=(OfflineWindow(peer=1, start=0.0, end=60.0),),
        workload=_sends((1.0, 0, 1)),
    )
    (record,) = simulate(config).records
    assert record.path == "direct"
    assert record.delivered_at is not None
    assert record.delivered_at >= 60.0
    # no store: the prekey bundle comes from the peer itself, so nothing is sent before
    assert record.attempts == 1


def test_an_offline_sender_sends_when_back_online() -> None:
    config = SimConfig(
        peers=2,
        duration=5.0,
        drain=100.0,
        link=LAN,
        offline=(OfflineWindow(peer=0, start=0.0, end=30.0),),
        workload=_sends((1.0, 0, 1)),
    )
    (record,) = simulate(config).records
    assert record.path == "direct"
    assert record.attempts == 1
    # the bundle from the store (30 ms each way), the handshake (20 ms each way), the message
    assert record.delivered_at == pytest.approx(30.0 + 0.06 + 0.04 + 0.02, abs=0.001)


def test_undelivered_messages_are_reported_as_such() -> None:
    config = SimConfig(
        peers=2,
        duration=5.0,
        drain=50.0,
        link=LAN,
        offline=(OfflineWindow(peer=1, start=0.0, end=1000.0),),
        workload=_sends((1.0, 0, 1)),
    )
    result = simulate(config)
    (record,) = result.records
    assert record.delivered_at is None
    assert record.latency_ms is None
    assert record.path == ""
    assert record.state == "sent"  # deposited, awaiting the receipt
    summary = result.summary()
    assert summary.delivered == 0
    assert math.isnan(summary.latency_p50_ms)
    assert ",sent," in result.csv_text()


def test_messages_expire_after_their_lifetime() -> None:
    config = SimConfig(
        peers=2,
        duration=5.0,
        drain=16 * 86400.0,
        store=False,
        link=LAN,
        offline=(OfflineWindow(peer=1, start=0.0, end=20 * 86400.0),),
        workload=_sends((1.0, 0, 1)),
    )
    (record,) = simulate(config).records
    assert record.state == "failed"
    assert record.delivered_at is None


def test_progress_is_reported_up_to_one() -> None:
    seen: list[float] = []
    simulation = Simulation(_busy(1))
    simulation.run(seen.append)
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert simulation.now > 0


def test_bandwidth_serialises_frames_on_the_uplink() -> None:
    slow = LinkConfig(latency=Distribution(kind="constant", mean=10.0), bandwidth=8000.0)
    config = SimConfig(
        peers=3, duration=5.0, drain=60.0, link=slow, workload=_sends((1.0, 0, 1), (1.0, 0, 2))
    )
    first, second = simulate(config).records
    assert first.latency_ms is not None
    assert second.latency_ms is not None
    # at 1000 bytes/s a ~700-byte envelope takes ~0.7 s; the second waits for the first
    assert first.latency_ms > 500
    assert second.latency_ms > first.latency_ms + 500


def test_same_trace_across_processes_whatever_the_hash_seed() -> None:
    import os
    import subprocess
    import sys

    code = (
        "from omega.sim import *\n"
        "c = SimConfig(peers=12, duration=30.0, drain=60.0, seed=5,"
        " churn=ChurnConfig(fraction=0.5, mean_online=20.0, mean_offline=10.0),"
        " partitions=(Partition(start=5.0, end=15.0, peers=frozenset({1, 2, 3})),),"
        " workload=WorkloadConfig(rate=2.0, groups=GroupWorkload(count=2, min_size=3,"
        " max_size=5, rate=0.5, removal_fraction=1.0)))\n"
        "print(simulate(c).trace_digest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        output = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
        )
        digests.add(output.stdout.strip())
    assert len(digests) == 1


def test_peers_behind_nat_are_reached_through_the_relay() -> None:
    config = SimConfig(
        peers=20,
        duration=60.0,
        drain=60.0,
        seed=2,
        link=LAN,
        relay=True,
        nat_fraction=0.5,
        workload=WorkloadConfig(rate=3.0, degree=6),
    )
    result = simulate(config)
    summary = result.summary()
    assert summary.delivered == summary.messages
    assert summary.via_relay > 0
    assert summary.direct > 0
    assert summary.via_store == 0
    for record in result.records:
        assert record.path in {"direct", "relay"}
        assert record.state == "delivered"
        if record.path == "relay":
            # two hops to and from the relay, 30 ms each by default
            assert record.latency_ms is not None
            assert record.latency_ms >= 60.0
            assert record.frames >= 4  # message and Ack, each on two hops


def test_without_a_relay_peers_behind_nat_get_messages_through_the_store() -> None:
    config = SimConfig(
        peers=20,
        duration=60.0,
        drain=60.0,
        seed=2,
        link=LAN,
        nat_fraction=0.5,
        workload=WorkloadConfig(rate=3.0, degree=6),
    )
    summary = simulate(config).summary()
    assert summary.delivered == summary.messages
    assert summary.via_relay == 0
    assert summary.via_store > 0


def test_a_partition_can_cut_off_the_relay() -> None:
    config = SimConfig(
        peers=4,
        duration=10.0,
        drain=300.0,
        link=LAN,
        relay=True,
        nat_fraction=1.0,
        partitions=(Partition(start=0.0, end=100.0, peers=frozenset(), relay=True),),
        workload=_sends((1.0, 0, 1)),
    )
    (record,) = simulate(config).records
    assert record.path == "store"
