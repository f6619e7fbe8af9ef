"""Validation of simulation configuration and the latency distributions."""

from __future__ import annotations

import random

import pytest

from omega.errors import ConfigurationError
from omega.sim import (
    Burst,
    ChurnConfig,
    Distribution,
    LinkConfig,
    OfflineWindow,
    Partition,
    ScheduledSend,
    SimConfig,
    WorkloadConfig,
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Distribution(kind="pareto"),
        lambda: Distribution(mean=-1.0),
        lambda: Distribution(kind="uniform", low=5.0, high=1.0),
        lambda: Distribution(kind="lognormal", mean=0.0),
        lambda: Distribution(mean=True),
        lambda: LinkConfig(loss=1.5),
        lambda: LinkConfig(bandwidth=0.0),
        lambda: Partition(start=10.0, end=5.0, peers=frozenset()),
        lambda: Partition(start=0.0, end=5.0, peers=frozenset({-1})),
        lambda: OfflineWindow(peer=0, start=3.0, end=1.0),
        lambda: ChurnConfig(fraction=2.0),
        lambda: ChurnConfig(mean_online=0.0),
        lambda: Burst(start=0.0, duration=-1.0, rate=1.0),
        lambda: ScheduledSend(time=0.0, sender=1, recipient=1),
        lambda: ScheduledSend(time=0.0, sender=0, recipient=1, size=0),
        lambda: WorkloadConfig(graph="smallworld"),
        lambda: WorkloadConfig(degree=0),
        lambda: SimConfig(peers=1),
        lambda: SimConfig(peers=2, seed=-1),
        lambda: SimConfig(peers=2, connect_timeout=0.0),
        lambda: SimConfig(peers=2, offline=(OfflineWindow(peer=2, start=0.0, end=1.0),)),
        lambda: SimConfig(
            peers=2, partitions=(Partition(start=0.0, end=1.0, peers=frozenset({5})),)
        ),
        lambda: SimConfig(
            peers=2,
            workload=WorkloadConfig(sends=(ScheduledSend(time=0.0, sender=0, recipient=3),)),
        ),
    ],
)
def test_bad_values_are_refused(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_distributions_sample_what_they_promise() -> None:
    rng = random.Random(1)
    assert Distribution(kind="constant", mean=7.0).sample(rng) == 7.0
    uniform = [Distribution(kind="uniform", low=2.0, high=4.0).sample(rng) for _ in range(500)]
    assert min(uniform) >= 2.0
    assert max(uniform) <= 4.0
    normal = [Distribution(kind="normal", mean=1.0, stddev=5.0).sample(rng) for _ in range(500)]
    assert min(normal) == 0.0  # clipped
    lognormal = [
        Distribution(kind="lognormal", mean=50.0, stddev=20.0).sample(rng) for _ in range(4000)
    ]
    assert 45.0 < sum(lognormal) / len(lognormal) < 55.0
    assert min(lognormal) > 0.0
    exponential = [Distribution(kind="exponential", mean=10.0).sample(rng) for _ in range(4000)]
    assert 9.0 < sum(exponential) / len(exponential) < 11.0
    assert Distribution(kind="exponential", mean=0.0).sample(rng) == 0.0


def test_collections_are_frozen() -> None:
    partition = Partition(start=0.0, end=1.0, peers={1, 2})  # type: ignore[arg-type]
    assert partition.peers == frozenset({1, 2})
    workload = WorkloadConfig(sends=[ScheduledSend(time=0.0, sender=0, recipient=1)])  # type: ignore[arg-type]
    assert isinstance(workload.sends, tuple)
