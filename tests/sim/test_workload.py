"""Social graphs and workload streams."""

from __future__ import annotations

import random

import pytest

from omega.sim import Burst, SimConfig, Workload, WorkloadConfig, build_graph, simulate


@pytest.mark.parametrize("kind", ["random", "ring", "star"])
def test_graphs_are_symmetric_without_self_loops(kind: str) -> None:
    graph = build_graph(kind, 50, 6, random.Random(1))
    assert graph is not None
    for peer, contacts in enumerate(graph):
        assert contacts
        assert peer not in contacts
        for other in contacts:
            assert peer in graph[other]


def test_graph_shapes() -> None:
    rng = random.Random(2)
    assert build_graph("complete", 10, 3, rng) is None
    star = build_graph("star", 5, 3, rng)
    assert star == [[1, 2, 3, 4], [0], [0], [0], [0]]
    ring = build_graph("ring", 6, 2, rng)
    assert ring is not None
    assert ring[0] == [1, 5]
    graph = build_graph("random", 200, 8, rng)
    assert graph is not None
    mean_degree = sum(len(c) for c in graph) / len(graph)
    assert 6.0 < mean_degree < 10.0


def test_complete_graph_traffic_never_sends_to_oneself() -> None:
    config = SimConfig(
        peers=3, duration=20.0, drain=5.0, workload=WorkloadConfig(rate=3.0, graph="complete")
    )
    records = simulate(config).records
    assert len(records) > 20
    assert all(record.sender != record.recipient for record in records)


def test_streams_respect_their_windows_and_the_cap() -> None:
    config = SimConfig(
        peers=10,
        duration=10.0,
        workload=WorkloadConfig(
            rate=5.0, bursts=(Burst(start=100.0, duration=2.0, rate=50.0),), max_messages=1000
        ),
    )
    workload = Workload(config, random.Random(3))
    assert workload.streams == 2
    times = []
    time = workload.first_arrival(1)
    while time is not None:
        times.append(time)
        step = workload.next_send(1, time)
        assert step is not None
        time = step[3]
    assert all(100_000_000 <= t < 102_000_000 for t in times)
    assert 50 < len(times) < 160
    capped = Workload(
        SimConfig(peers=4, workload=WorkloadConfig(rate=1.0, max_messages=1)), random.Random(1)
    )
    assert capped.next_send(0, 0) is not None
    assert capped.next_send(0, 0) is None


def test_no_rate_no_stream() -> None:
    workload = Workload(SimConfig(peers=3), random.Random(1))
    assert workload.first_arrival(0) is None
