"""GroupLog: the rules, bad input leaving the state unchanged, limits, sync and persistence."""

from __future__ import annotations

import pytest
from group_helpers import NOW, device, new_group, replica, user

from omega.errors import (
    ConfigurationError,
    GroupPermissionError,
    InvalidGroupOperationError,
    UnauthorizedGroupOperationError,
)
from omega.groups import (
    GroupConfig,
    GroupLog,
    GroupStateChanged,
    OperationAccepted,
    OperationDuplicate,
    OperationPending,
    OperationRefused,
    Permissions,
    verify_operation,
)
from omega.protocol import GroupOperationBatch, MemberRole, PermissionLevel, encode_message
from omega.testing.random import SeededRandom

ADMIN, MEMBER, OWNER = MemberRole.ADMIN, MemberRole.MEMBER, MemberRole.OWNER


def test_create_makes_the_author_the_only_owner() -> None:
    log, _operations = new_group()
    state = log.state
    assert {u: m.role for u, m in state.members.items()} == {user(0): OWNER}
    assert (state.name, state.creator_id, state.max_members) == ("friends", user(0), 256)
    assert state.heads == (log.genesis_id,)
    assert state.epoch == 0
    group = state.to_group()
    assert group.group_id == log.group_id
    assert group.members[0].role == OWNER
    assert repr(log).startswith("GroupLog(")


def test_owner_adds_promotes_renames_and_removes() -> None:
    log, _ = new_group(3)
    log.set_role(device(0), user(1), ADMIN, now=NOW)
    log.rename(device(1), "renamed", now=NOW)
    log.set_avatar(device(1), b"\x01" * 32, now=NOW)
    log.remove_member(device(1), user(2), now=NOW)
    state = log.state
    assert state.name == "renamed"
    assert state.avatar_hash == b"\x01" * 32
    assert state.role_of(user(1)) is ADMIN
    assert not state.is_member(user(2))
    assert state.epoch == 1


def _denied(call: object, reason_part: str) -> None:
    with pytest.raises(GroupPermissionError) as info:
        call()  # type: ignore[operator]
    assert reason_part in str(info.value.details["reason"])


def test_role_rules_are_enforced_locally() -> None:
    log, _ = new_group(4)
    log.set_role(device(0), user(1), ADMIN, now=NOW)
    before = log.state
    _denied(lambda: log.rename(device(2), "x", now=NOW), "edit the info")
    _denied(lambda: log.add_member(device(2), user(9), now=NOW), "add members")
    _denied(lambda: log.remove_member(device(2), user(3), now=NOW), "remove members")
    _denied(lambda: log.remove_member(device(1), user(0), now=NOW), "not below")
    _denied(lambda: log.remove_member(device(0), user(0), now=NOW), "leaves")
    _denied(lambda: log.remove_member(device(0), user(9), now=NOW), "not a member")
    _denied(lambda: log.add_member(device(0), user(1), now=NOW), "already")
    _denied(lambda: log.set_role(device(2), user(2), ADMIN, now=NOW), "promote itself")
    _denied(lambda: log.set_role(device(1), user(1), ADMIN, now=NOW), "already has")
    _denied(lambda: log.set_role(device(1), user(2), OWNER, now=NOW), "exceed")
    _denied(lambda: log.set_role(device(1), user(0), MEMBER, now=NOW), "exceed")
    _denied(lambda: log.set_permissions(device(1), Permissions(), now=NOW), "owner")
    _denied(lambda: log.leave(device(9), now=NOW), "not a member")
    assert log.state == before


def test_permissions_can_open_actions_to_everyone() -> None:
    log, _ = new_group(2)
    everyone = PermissionLevel.EVERYONE
    log.set_permissions(device(0), Permissions(add_members=everyone, edit_info=everyone), now=NOW)
    log.add_member(device(1), user(2), now=NOW)
    log.rename(device(2), "ours", now=NOW)
    assert log.state.name == "ours"
    assert log.state.is_member(user(2))
    assert log.state.may_send(user(2))
    assert not log.state.may_delete_for_everyone(user(2))
    only_owner = PermissionLevel.OWNER
    log.set_permissions(device(0), Permissions(send_messages=only_owner), now=NOW)
    assert not log.state.may_send(user(1))
    assert log.state.may_send(user(0))


def test_self_demotion_and_leave() -> None:
    log, _ = new_group(2)
    log.set_role(device(0), user(1), OWNER, now=NOW)
    log.set_role(device(1), user(1), MEMBER, now=NOW)
    log.leave(device(1), now=NOW)
    assert dict(log.state.members).keys() == {user(0)}
    assert log.state.epoch == 1


def test_invalid_local_values_are_configuration_errors() -> None:
    log, _ = new_group()
    with pytest.raises(ConfigurationError):
        log.rename(device(0), "\x00", now=NOW)
    with pytest.raises(ConfigurationError):
        GroupConfig(max_members=0)
    with pytest.raises(ConfigurationError):
        GroupConfig(max_members=2000)
    with pytest.raises(ConfigurationError):
        GroupConfig(max_members_accepted=10**9)


def test_remote_operations_replay_identically() -> None:
    log, operations = new_group(3)
    operations.append(log.set_role(device(0), user(1), ADMIN, now=NOW))
    operations.append(log.remove_member(device(1), user(2), now=NOW))
    other = replica(operations)
    assert other.state == log.state


def test_unauthorized_remote_operation_is_refused_and_state_unchanged() -> None:
    log, operations = new_group(3)
    # User 2 makes a rename on its own copy where it was made admin ...
    forged_view = replica(operations)
    forged_view.set_role(device(0), user(2), ADMIN, now=NOW)
    rename = forged_view.rename(device(2), "hijacked", now=NOW)
    # ... which every honest member, lacking that promotion, holds pending ...
    assert isinstance(log.receive(rename)[0], OperationPending)
    # ... but a rename by a plain member on the real state is refused outright.
    before = log.state
    member_view = replica(operations)
    member_view._replay.members[user(2)] = member_view._replay.members[user(0)]  # a cheater
    cheat = member_view.rename(device(2), "hijacked", now=NOW)
    with pytest.raises(UnauthorizedGroupOperationError) as info:
        log.receive(cheat)
    assert "edit the info" in str(info.value.details["reason"])
    assert log.state == before


def test_operation_by_a_non_member_is_refused() -> None:
    log, operations = new_group(2)
    outsider = replica(operations)
    outsider._replay.members[user(7)] = outsider._replay.members[user(0)]
    operation = outsider.add_member(device(7), user(8), now=NOW)
    before = log.state
    with pytest.raises(UnauthorizedGroupOperationError, match="not a member"):
        log.receive(operation)
    assert log.state == before


def test_replayed_operation_is_a_duplicate_and_changes_nothing() -> None:
    log, operations = new_group(3)
    before = log.state
    for operation in operations:
        assert log.receive(operation) == [
            OperationDuplicate(op_id=verify_operation(operation).op_id)
        ]
    assert log.state == before


def test_a_second_genesis_and_another_groups_operations_are_refused() -> None:
    log, _ = new_group(2)
    _other, other_ops = new_group(2, seed=b"other")
    with pytest.raises(InvalidGroupOperationError, match="another group"):
        log.receive(other_ops[1])
    with pytest.raises(InvalidGroupOperationError):
        GroupLog(verify_operation(other_ops[1]))
    # The creator signs a second, different genesis with the same salt: same group id.
    twin, second_genesis = GroupLog.create(
        device(0), name="twin", now=NOW, rng=SeededRandom(b"group")
    )
    assert twin.group_id == log.group_id
    assert twin.genesis_id != log.genesis_id
    before = log.state
    with pytest.raises(InvalidGroupOperationError) as info:
        log.receive(second_genesis)
    assert info.value.details["reason"] == "genesis"
    assert log.state == before


def test_reordered_operations_wait_for_their_parents() -> None:
    log, operations = new_group(4)
    other = GroupLog(verify_operation(operations[0]))
    events = other.receive(operations[3])
    assert isinstance(events[0], OperationPending)
    assert other.pending_count == 1
    other.receive(operations[2])
    events = other.receive(operations[1])
    accepted = [e for e in events if isinstance(e, OperationAccepted)]
    assert len(accepted) == 3
    assert isinstance(events[-1], GroupStateChanged)
    assert events[-1].added == {user(1), user(2), user(3)}
    assert not events[-1].removed
    assert other.state == log.state
    assert other.pending_count == 0


def test_pending_bound() -> None:
    _log, operations = new_group(4)
    other = GroupLog(verify_operation(operations[0]), config=GroupConfig(max_pending=1))
    other.receive(operations[2])
    assert other.receive(operations[2])[0] == OperationDuplicate(
        op_id=verify_operation(operations[2]).op_id
    )
    with pytest.raises(InvalidGroupOperationError, match="wait"):
        other.receive(operations[3])


def test_operation_bound() -> None:
    config = GroupConfig(max_operations=3)
    log, operations = new_group(3, config=config)
    with pytest.raises(InvalidGroupOperationError, match="full"):
        log.add_member(device(0), user(5), now=NOW)
    other = replica(operations[:3], config=config)
    fourth = new_group(4)[1][3]
    with pytest.raises(InvalidGroupOperationError, match="full"):
        other.receive(fourth)
    assert len(other.state.members) == 3


def test_the_member_limit_holds_locally_and_remotely() -> None:
    config = GroupConfig(max_members=256)
    log, operations = new_group(256, config=config)
    assert len(log.state.members) == 256
    before = log.state
    with pytest.raises(GroupPermissionError, match="full"):
        log.add_member(device(0), user(256), now=NOW)
    assert log.state == before
    # A cheating replica that ignores the limit cannot make others accept the 257th.
    cheat = replica(operations[:1])
    cheat._replay.genesis = verify_operation(
        new_group(1, config=GroupConfig(max_members=300))[1][0]
    )
    cheat_ops = [cheat.add_member(device(0), user(i), now=NOW) for i in range(1, 258)]
    honest = GroupLog(verify_operation(operations[0]), config=config)
    for operation in cheat_ops[:255]:
        honest.receive(operation)
    with pytest.raises(UnauthorizedGroupOperationError, match="full"):
        honest.receive(cheat_ops[255])
    assert len(honest.state.members) == 256


def test_a_thousand_members() -> None:
    config = GroupConfig(max_members=1000)
    log, _operations = new_group(1000, config=config)
    assert len(log.state.members) == 1000
    with pytest.raises(GroupPermissionError, match="full"):
        log.add_member(device(0), user(1000), now=NOW)
    other, events = GroupLog.from_batch(log.to_bytes())  # 1000 is accepted by default
    assert other.state == log.state
    assert not any(isinstance(e, OperationRefused) for e in events)


def test_member_limit_beyond_what_this_device_accepts() -> None:
    log, _ = new_group(2, config=GroupConfig(max_members=1000))
    with pytest.raises(InvalidGroupOperationError, match="accepts"):
        GroupLog.from_batch(
            log.to_bytes(), config=GroupConfig(max_members=10, max_members_accepted=999)
        )


def test_to_bytes_round_trip_and_export_since() -> None:
    log, operations = new_group(3)
    middle_heads = log.state.heads
    log.rename(device(0), "later", now=NOW)
    log.remove_member(device(0), user(2), now=NOW)
    loaded, _ = GroupLog.from_batch(log.to_bytes())
    assert loaded.state == log.state
    assert loaded.to_bytes() == log.to_bytes()
    behind = replica(operations)
    assert behind.state.heads == middle_heads
    behind.receive_batch(log.export(since=behind.state.heads))
    assert behind.state == log.state
    assert log.export(since=log.state.heads) == encode_message(GroupOperationBatch())


def test_batch_errors() -> None:
    log, _operations = new_group(2)
    with pytest.raises(InvalidGroupOperationError, match="malformed"):
        GroupLog.from_batch(b"\xff")
    with pytest.raises(InvalidGroupOperationError, match="no valid genesis"):
        GroupLog.from_batch(log.export(since=[log.genesis_id]))
    with pytest.raises(InvalidGroupOperationError, match="malformed"):
        log.receive_batch(b"\xff")
    with pytest.raises(InvalidGroupOperationError, match="malformed"):
        GroupLog.from_batch(log.to_bytes(), config=GroupConfig(max_batch_bytes=100))
    other, _ = new_group(2, seed=b"other")
    events = log.receive_batch(other.to_bytes())
    assert all(isinstance(e, OperationRefused) for e in events)
    assert len(events) == 2
