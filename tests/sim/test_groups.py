"""Known-answer scenarios for group traffic (docs/simulation.md, "Groups")."""

from __future__ import annotations

import pytest

from omega.errors import ConfigurationError
from omega.sim import (
    ChurnConfig,
    Distribution,
    GroupRemoval,
    GroupSend,
    GroupSpec,
    GroupWorkload,
    LinkConfig,
    SimConfig,
    WorkloadConfig,
    simulate,
)

LAN = LinkConfig(latency=Distribution(kind="constant", mean=20.0), bandwidth=1e9)


def _groups(**fields: object) -> WorkloadConfig:
    return WorkloadConfig(groups=GroupWorkload(**fields))  # type: ignore[arg-type]


def test_a_group_without_loss_delivers_every_message_to_every_member() -> None:
    members = (0, 1, 2, 3, 4, 5)
    sends = tuple(GroupSend(time=0.5 * i, group=0, sender=members[i % 6]) for i in range(12))
    config = SimConfig(
        peers=8,
        duration=10.0,
        drain=60.0,
        link=LAN,
        workload=_groups(groups=(GroupSpec(members=members),), sends=sends),
    )
    result = simulate(config)
    copies = [record for record in result.records if record.kind == "group"]
    assert len(copies) == 12 * 5
    assert all(record.delivered_at is not None for record in copies)
    assert all(record.state == "delivered" for record in copies)
    group_id = copies[0].group_id
    assert all(record.group_id == group_id for record in copies)
    # each message reaches each member but its sender, once
    by_message: dict[str, set[int]] = {}
    for record in copies:
        by_message.setdefault(record.message_id, set()).add(record.recipient)
        assert record.recipient != record.sender
    assert all(len(recipients) == 5 for recipients in by_message.values())
    # every member sent its sender key to every other member over a pairwise session
    distributions = [record for record in result.records if record.kind == "sender_key"]
    assert len(distributions) == 6 * 5
    summary = result.summary()
    assert summary.group_deliveries == summary.group_delivered == 60
    assert summary.sender_key_distributions == 30
    assert summary.messages == 60
    assert summary.refused == 0
    # the first message (time 0) waited for its sender key, the others did not
    later = [record for record in copies if record.sent_at >= 2.0]
    assert all((record.latency_ms or 0) < 100 for record in later)


def test_a_removed_member_cannot_read_what_is_sent_after_its_removal() -> None:
    members = (0, 1, 2, 3, 4)
    before = tuple(GroupSend(time=1.0 + i, group=0, sender=members[i]) for i in range(5))
    after = tuple(GroupSend(time=20.0 + i, group=0, sender=members[i % 4]) for i in range(8))
    config = SimConfig(
        peers=5,
        duration=30.0,
        drain=60.0,
        link=LAN,
        workload=_groups(
            groups=(GroupSpec(members=members),),
            sends=before + after,
            removals=(GroupRemoval(time=10.0, group=0, member=4),),
        ),
    )
    result = simulate(config)
    copies = [record for record in result.records if record.kind == "group"]
    to_removed_before = [r for r in copies if r.recipient == 4 and r.sent_at < 10.0]
    assert len(to_removed_before) == 4  # it read what was sent while it was a member
    assert all(r.delivered_at is not None for r in to_removed_before)
    # nobody sends to it after the removal, and the remaining members still get everything
    assert not [r for r in copies if r.recipient == 4 and r.sent_at >= 10.0]
    later = [r for r in copies if r.sent_at >= 20.0]
    assert len(later) == 8 * 3
    assert all(r.delivered_at is not None for r in later)
    # handed every later ciphertext, the removed member's session opens none of them
    summary = result.summary()
    assert summary.removed_checks == 8
    assert summary.removed_reads == 0
    # the owner and the three others each rotated and redistributed to the 3 others
    rekeys = [r for r in result.records if r.kind == "sender_key" and r.sent_at >= 10.0]
    assert len(rekeys) == 4 * 3
    assert all(r.recipient != 4 for r in rekeys)


def test_a_sender_unaware_of_a_removal_still_sends_to_the_removed_member() -> None:
    # member 3 is offline when member 4 is removed: it learns of it only when back
    from omega.sim import OfflineWindow

    config = SimConfig(
        peers=5,
        duration=40.0,
        drain=120.0,
        link=LAN,
        offline=(OfflineWindow(peer=3, start=5.0, end=30.0),),
        workload=_groups(
            groups=(GroupSpec(members=(0, 1, 2, 3, 4)),),
            removals=(GroupRemoval(time=10.0, group=0, member=4),),
            sends=(GroupSend(time=31.0, group=0, sender=3),),
        ),
    )
    result = simulate(config)
    # back at 30 s, member 3 posts before the removal reached it (tries at 10, 12, 16,
    # 24, 40 s): its log still lists member 4, which gets and reads the copy
    (copy,) = [r for r in result.records if r.kind == "group" and r.recipient == 4]
    assert copy.sender == 3
    assert copy.delivered_at is not None
    summary = result.summary()
    assert summary.removed_reads == summary.removed_checks == 1
    # then the removal arrives and member 3 rotates its key for the three others
    rekeys = [r for r in result.records if r.kind == "sender_key" and r.sender == 3]
    assert len([r for r in rekeys if r.sent_at >= 40.0]) == 3


def test_random_groups_with_removals_and_churn_are_deterministic() -> None:
    def config(seed: int) -> SimConfig:
        return SimConfig(
            peers=30,
            duration=60.0,
            drain=300.0,
            seed=seed,
            link=LinkConfig(latency=Distribution(kind="uniform", low=10.0, high=90.0), loss=0.02),
            churn=ChurnConfig(fraction=0.3, mean_online=40.0, mean_offline=20.0),
            workload=WorkloadConfig(
                rate=1.0,
                groups=GroupWorkload(
                    count=3, min_size=3, max_size=6, rate=0.3, removal_fraction=1.0
                ),
            ),
        )

    first, second = simulate(config(4)), simulate(config(4))
    assert first.csv_text() == second.csv_text()
    summary = first.summary()
    assert summary.group_deliveries > 20
    assert summary.group_delivered > 0.8 * summary.group_deliveries
    assert summary.messages > summary.group_deliveries  # 1:1 traffic too
    assert simulate(config(5)).trace_digest() != first.trace_digest()


def test_group_configuration_is_validated() -> None:
    with pytest.raises(ConfigurationError):
        GroupSpec(members=(1,))
    with pytest.raises(ConfigurationError):
        GroupSpec(members=(1, 1))
    with pytest.raises(ConfigurationError):
        GroupWorkload(
            groups=(GroupSpec(members=(0, 1)),), sends=(GroupSend(time=0, group=1, sender=0),)
        )
    with pytest.raises(ConfigurationError):
        GroupWorkload(
            groups=(GroupSpec(members=(0, 1)),), sends=(GroupSend(time=0, group=0, sender=2),)
        )
    with pytest.raises(ConfigurationError):
        GroupWorkload(
            groups=(GroupSpec(members=(0, 1)),), removals=(GroupRemoval(time=0, group=0, member=0),)
        )
    with pytest.raises(ConfigurationError):
        SimConfig(peers=3, workload=_groups(groups=(GroupSpec(members=(0, 5)),)))
    with pytest.raises(ConfigurationError):
        SimConfig(peers=3, workload=_groups(count=1, min_size=4, max_size=5))
