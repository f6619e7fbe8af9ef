"""Group state and the rules that replay an operation log into it (docs/groups.md, "Rules")."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from omega.groups._operations import OperationKind, Permissions, VerifiedOperation
from omega.protocol import Group, Member, MemberRole, PermissionLevel

__all__ = ["GroupState", "MemberInfo", "refusal", "replay_order", "resolve"]

_RESTRICTIVE = frozenset({OperationKind.REMOVE_MEMBER, OperationKind.LEAVE})


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member of a group."""

    user_id: str
    """The member's user id."""
    role: MemberRole
    """OWNER, ADMIN or MEMBER."""
    joined_at: int
    """Timestamp of the operation that added the member (Unix ms, informative)."""


@dataclass(frozen=True, slots=True)
class GroupState:
    """The state of a group, as its operation log resolves (immutable snapshot)."""

    group_id: str
    """The group id."""
    name: str
    """Display name."""
    avatar_hash: bytes
    """SHA-256 of the avatar image, or empty."""
    permissions: Permissions
    """Lowest role allowed for each action."""
    members: Mapping[str, MemberInfo]
    """Current members by user id."""
    created_at: int
    """Timestamp of the genesis operation (Unix ms, informative)."""
    creator_id: str
    """User id of the creator."""
    max_members: int
    """The member limit fixed at creation."""
    heads: tuple[bytes, ...]
    """Ids of the operations no other operation follows yet, sorted."""
    epoch: int = 0
    """How many effective removals and leaves the state went through (rekey counter)."""
    operation_count: int = field(default=0)
    """How many operations the log holds (effective or not)."""

    def role_of(self, user_id: str) -> MemberRole | None:
        """The role of ``user_id``, or None for a non-member."""
        member = self.members.get(user_id)
        return None if member is None else member.role

    def is_member(self, user_id: str) -> bool:
        """True when ``user_id`` is a current member."""
        return user_id in self.members

    def may_send(self, user_id: str) -> bool:
        """True when ``user_id`` may post group messages under the permissions."""
        return _allowed(self.role_of(user_id), self.permissions.send_messages)

    def may_delete_for_everyone(self, user_id: str) -> bool:
        """True when ``user_id`` may delete other members' messages for everyone."""
        return _allowed(self.role_of(user_id), self.permissions.remove_members)

    def to_group(self) -> Group:
        """The plan's ``Group`` message (members sorted by user id)."""
        return Group(
            group_id=self.group_id,
            name=self.name,
            avatar_hash=self.avatar_hash,
            members=[
                Member(user_id=m.user_id, role=m.role, joined_at=m.joined_at)
                for m in sorted(self.members.values(), key=lambda m: m.user_id)
            ],
            permissions=self.permissions.to_proto(),
            created_at=self.created_at,
        )


def _allowed(role: MemberRole | None, level: PermissionLevel) -> bool:
    # PermissionLevel EVERYONE/ADMINS/OWNER and MemberRole MEMBER/ADMIN/OWNER share 0/1/2.
    return role is not None and int(role) >= int(level)


class _Replay:
    """The mutable state while operations are applied in order."""

    def __init__(self, genesis: VerifiedOperation) -> None:
        assert genesis.permissions is not None
        self.genesis = genesis
        self.name = genesis.name
        self.avatar_hash = genesis.avatar_hash
        self.permissions: Permissions = genesis.permissions
        self.members: dict[str, MemberInfo] = {
            genesis.author_id: MemberInfo(
                user_id=genesis.author_id, role=MemberRole.OWNER, joined_at=genesis.timestamp
            )
        }
        self.epoch = 0

    def role(self, user_id: str) -> MemberRole | None:
        member = self.members.get(user_id)
        return None if member is None else member.role

    def apply(self, op: VerifiedOperation) -> tuple[str, ...]:
        """Apply ``op`` if the rules allow it; returns the users whose rights it revoked."""
        if refusal(self, op) is not None:
            return ()
        kind = op.kind
        if kind is OperationKind.ADD_MEMBER:
            self.members[op.target_id] = MemberInfo(
                user_id=op.target_id, role=MemberRole.MEMBER, joined_at=op.timestamp
            )
        elif kind in _RESTRICTIVE:
            target = op.author_id if kind is OperationKind.LEAVE else op.target_id
            del self.members[target]
            self.epoch += 1
            return (target,)
        elif kind is OperationKind.SET_ROLE:
            previous = self.members[op.target_id]
            self.members[op.target_id] = MemberInfo(
                user_id=op.target_id, role=op.role, joined_at=previous.joined_at
            )
            if int(op.role) < int(previous.role):
                return (op.target_id,)
        elif kind is OperationKind.RENAME:
            self.name = op.name
        elif kind is OperationKind.SET_AVATAR:
            self.avatar_hash = op.avatar_hash
        elif kind is OperationKind.SET_PERMISSIONS:
            assert op.permissions is not None
            self.permissions = op.permissions
        return ()

    def snapshot(self, heads: tuple[bytes, ...], operation_count: int) -> GroupState:
        return GroupState(
            group_id=self.genesis.group_id,
            name=self.name,
            avatar_hash=self.avatar_hash,
            permissions=self.permissions,
            members=dict(self.members),
            created_at=self.genesis.timestamp,
            creator_id=self.genesis.author_id,
            max_members=self.genesis.max_members,
            heads=heads,
            epoch=self.epoch,
            operation_count=operation_count,
        )


def refusal(state: _Replay, op: VerifiedOperation) -> str | None:
    """Why ``op`` may not apply to ``state`` (docs/groups.md, "Rules"), or None if it may."""
    if op.kind is OperationKind.CREATE:
        return "a group has one genesis operation"
    author = state.role(op.author_id)
    if author is None:
        return "the author is not a member"
    kind, permissions = op.kind, state.permissions
    if kind is OperationKind.LEAVE:
        return None
    if kind in (OperationKind.RENAME, OperationKind.SET_AVATAR):
        return None if _allowed(author, permissions.edit_info) else "role may not edit the info"
    if kind is OperationKind.SET_PERMISSIONS:
        return None if author is MemberRole.OWNER else "only an owner may set permissions"
    target = state.role(op.target_id)
    if kind is OperationKind.ADD_MEMBER:
        if not _allowed(author, permissions.add_members):
            return "role may not add members"
        if target is not None:
            return "already a member"
        if len(state.members) >= state.genesis.max_members:
            return "the group is full"
        return None
    if target is None:
        return "the target is not a member"
    if kind is OperationKind.REMOVE_MEMBER:
        if op.target_id == op.author_id:
            return "a member leaves rather than removing itself"
        if not _allowed(author, permissions.remove_members):
            return "role may not remove members"
        return None if int(author) > int(target) else "the target's role is not below the author's"
    # SET_ROLE
    if op.role == target:
        return "the member already has that role"
    if op.target_id == op.author_id:
        return None if int(op.role) < int(author) else "a member may not promote itself"
    if int(author) <= int(target) or int(op.role) > int(author):
        return "the author's role must exceed the target's and reach the new role"
    return None


def _priority(op: VerifiedOperation) -> int:
    restrictive = op.kind in _RESTRICTIVE or (
        op.kind is OperationKind.SET_ROLE and op.role is MemberRole.MEMBER
    )
    return 0 if restrictive else 1


def replay_order(ops: Mapping[bytes, VerifiedOperation]) -> list[VerifiedOperation]:
    """Every operation, parents first; among ready ones restrictive first, then by id."""
    children: dict[bytes, list[bytes]] = {op_id: [] for op_id in ops}
    waiting: dict[bytes, int] = {}
    ready: list[tuple[int, bytes]] = []
    for op in ops.values():
        waiting[op.op_id] = len(op.parents)
        for parent in op.parents:
            children[parent].append(op.op_id)
        if not op.parents:
            heapq.heappush(ready, (_priority(op), op.op_id))
    order: list[VerifiedOperation] = []
    while ready:
        _, op_id = heapq.heappop(ready)
        order.append(ops[op_id])
        for child in children[op_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (_priority(ops[child]), child))
    return order


def resolve(
    ops: Mapping[bytes, VerifiedOperation], genesis_id: bytes
) -> tuple[_Replay, tuple[bytes, ...]]:
    """Replay a causally closed set of operations into a state; returns it and the heads.

    Two passes over :func:`replay_order`: the first finds the effective
    revocations (removal, leave, demotion); the second skips every operation
    whose author is revoked by an effective revocation concurrent with it,
    then applies the rest under the rules (docs/groups.md, "Resolution").
    """
    order = replay_order(ops)
    index = {op.op_id: position for position, op in enumerate(order)}
    ancestors: list[int] = []
    for op in order:
        mask = 0
        for parent in op.parents:
            position = index[parent]
            mask |= ancestors[position] | (1 << position)
        ancestors.append(mask)
    first = _Replay(ops[genesis_id])
    revoked: dict[str, list[int]] = {}
    for position, op in enumerate(order[1:], start=1):
        for user_id in first.apply(op):
            revoked.setdefault(user_id, []).append(position)
    final = _Replay(ops[genesis_id])
    for position, op in enumerate(order[1:], start=1):
        if not _revoked_concurrently(position, revoked.get(op.author_id, ()), ancestors):
            final.apply(op)
    parents = {parent for op in order for parent in op.parents}
    heads = tuple(sorted(op_id for op_id in ops if op_id not in parents))
    return final, heads


def _revoked_concurrently(position: int, revocations: Iterable[int], ancestors: list[int]) -> bool:
    for revocation in revocations:
        if revocation == position:
            continue
        before = (ancestors[position] >> revocation) & 1
        after = (ancestors[revocation] >> position) & 1
        if not before and not after:
            return True
    return False
