"""Concurrent operations: the resolution rules, and convergence whatever the delivery order."""

from __future__ import annotations

import pytest
from group_helpers import NOW, device, new_group, replica, user
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import GroupPermissionError
from omega.groups import GroupLog, OperationRefused, Permissions, verify_operation
from omega.protocol import MemberRole, PermissionLevel

ADMIN, MEMBER = MemberRole.ADMIN, MemberRole.MEMBER
EVERYONE = PermissionLevel.EVERYONE


def _base() -> tuple[GroupLog, list[bytes]]:
    """User 0 owner, 1 admin, 2..4 members; members may add members."""
    log, operations = new_group(5)
    operations.append(log.set_role(device(0), user(1), ADMIN, now=NOW))
    operations.append(log.set_permissions(device(0), Permissions(add_members=EVERYONE), now=NOW))
    return log, operations


def _merge_both_ways(left: GroupLog, right: GroupLog) -> None:
    left_new, right_new = left.export(), right.export()
    left.receive_batch(right_new)
    right.receive_batch(left_new)
    assert left.state == right.state


def test_removal_wins_over_a_concurrent_promotion() -> None:
    _, operations = _base()
    owner, admin = replica(operations), replica(operations)
    owner.set_role(device(0), user(2), ADMIN, now=NOW)
    admin.remove_member(device(1), user(2), now=NOW)
    _merge_both_ways(owner, admin)
    assert not owner.state.is_member(user(2))


def test_a_removed_member_cannot_backdate_changes() -> None:
    _, operations = _base()
    owner, removed = replica(operations), replica(operations)
    owner.remove_member(device(0), user(3), now=NOW)
    # User 3, not having seen its removal, adds user 7: concurrent with the removal.
    removed.add_member(device(3), user(7), now=NOW)
    _merge_both_ways(owner, removed)
    assert not owner.state.is_member(user(7))
    assert not owner.state.is_member(user(3))


def test_changes_by_a_concurrently_demoted_admin_are_void() -> None:
    _, operations = _base()
    owner, admin = replica(operations), replica(operations)
    owner.set_role(device(0), user(1), MEMBER, now=NOW)
    admin.remove_member(device(1), user(4), now=NOW)
    _merge_both_ways(owner, admin)
    assert owner.state.is_member(user(4))
    assert owner.state.role_of(user(1)) is MEMBER


def test_changes_made_after_seeing_a_revocation_follow_the_normal_rules() -> None:
    _, operations = _base()
    log = replica(operations)
    log.remove_member(device(0), user(3), now=NOW)
    with pytest.raises(GroupPermissionError, match="not a member"):
        log.add_member(device(3), user(7), now=NOW)


def test_concurrent_adds_beyond_the_limit_keep_the_limit() -> None:
    from omega.groups import GroupConfig

    config = GroupConfig(max_members=6)
    _log, operations = new_group(5, config=config)
    left, right = replica(operations, config=config), replica(operations, config=config)
    left.add_member(device(0), user(10), now=NOW)
    right.add_member(device(0), user(11), now=NOW)
    _merge_both_ways(left, right)
    assert len(left.state.members) == 6


def test_a_member_offline_during_changes_catches_up() -> None:
    log, operations = _base()
    offline = replica(operations)
    changes = [
        log.remove_member(device(0), user(4), now=NOW),
        log.add_member(device(1), user(8), now=NOW),
        log.rename(device(1), "later", now=NOW),
    ]
    for change in reversed(changes):  # the store hands them over in any order
        offline.receive(change)
    assert offline.state == log.state


ACTIONS = ("add", "remove", "leave", "promote", "demote", "rename", "permissions", "sync")


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[int, str, int]]:
    steps = st.tuples(st.integers(0, 4), st.sampled_from(ACTIONS), st.integers(0, 7))
    return draw(st.lists(steps, min_size=1, max_size=14))


def _act(log: GroupLog, actor: int, action: str, target: int) -> bytes | None:
    actor_device, target_user = device(actor), user(target)
    calls = {
        "add": lambda: log.add_member(actor_device, target_user, now=NOW),
        "remove": lambda: log.remove_member(actor_device, target_user, now=NOW),
        "leave": lambda: log.leave(actor_device, now=NOW),
        "promote": lambda: log.set_role(actor_device, target_user, ADMIN, now=NOW),
        "demote": lambda: log.set_role(actor_device, target_user, MEMBER, now=NOW),
        "rename": lambda: log.rename(actor_device, f"name {target}", now=NOW),
        "permissions": lambda: log.set_permissions(
            actor_device, Permissions(edit_info=PermissionLevel(target % 3)), now=NOW
        ),
    }
    try:
        return calls[action]()
    except GroupPermissionError:
        return None


@settings(max_examples=30)
@given(scenario=scenarios(), data=st.data())
def test_any_delivery_order_converges_to_one_state(
    scenario: list[tuple[int, str, int]], data: st.DataObject
) -> None:
    _, base = _base()
    replicas = {index: replica(base) for index in range(5)}
    made: list[bytes] = []
    for actor, action, target in scenario:
        if action == "sync":
            events = replicas[actor].receive_batch(replicas[target % 5].export())
            assert not any(isinstance(event, OperationRefused) for event in events)
            continue
        operation = _act(replicas[actor], actor, action, target)
        if operation is not None:
            made.append(operation)
    everything = base + made
    for log in replicas.values():
        for operation in made:
            log.receive(operation)
    reference = replicas[0].state
    assert all(log.state == reference for log in replicas.values())
    for _ in range(2):
        order = data.draw(st.permutations(everything[1:]))
        fresh = GroupLog(verify_operation(base[0]))
        for operation in order:
            fresh.receive(operation)
        assert fresh.pending_count == 0
        assert fresh.state == reference
