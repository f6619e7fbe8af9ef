"""The group log engine: a hash-linked DAG of signed operations, resolved into a state.

Sans-I/O: times come in as ``now`` (Unix ms), randomness as ``rng``; bytes
in, events and bytes out (docs/groups.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from omega.crypto import LocalDevice, user_id_from_public_key
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    ConfigurationError,
    DecodeError,
    GroupPermissionError,
    InvalidGroupOperationError,
    OmegaError,
    UnauthorizedGroupOperationError,
)
from omega.groups._operations import (
    GROUP_OPERATION_VERSION,
    SALT_SIZE,
    OperationKind,
    Permissions,
    VerifiedOperation,
    derive_group_id,
    sign_operation,
    verify_operation,
)
from omega.groups._state import GroupState, _Replay, refusal, replay_order, resolve
from omega.groups.config import GroupConfig
from omega.groups.events import (
    GroupEvent,
    GroupStateChanged,
    OperationAccepted,
    OperationDuplicate,
    OperationPending,
    OperationRefused,
)
from omega.protocol import (
    GroupAddMember,
    GroupCreate,
    GroupLeave,
    GroupOperation,
    GroupOperationBatch,
    GroupRemoveMember,
    GroupRename,
    GroupSetAvatar,
    GroupSetPermissions,
    GroupSetRole,
    MemberRole,
    SignedGroupOperation,
    decode_message,
    encode_message,
)

__all__ = ["GroupLog"]


def _author_of(device: LocalDevice) -> str:
    return user_id_from_public_key(device.certificate.identity_key)


class GroupLog:
    """One group's operation log and its resolved :class:`GroupState`.

    Start one with :meth:`create` (a new group), :meth:`from_batch` (the log
    an inviter sent, or :meth:`to_bytes` read back). Feed received
    operations to :meth:`receive` / :meth:`receive_batch`; make changes with
    :meth:`add_member`, :meth:`remove_member`, :meth:`leave`,
    :meth:`set_role`, :meth:`rename`, :meth:`set_avatar` and
    :meth:`set_permissions`, each returning the encoded
    ``SignedGroupOperation`` to send to every member.
    """

    def __init__(self, genesis: VerifiedOperation, *, config: GroupConfig | None = None) -> None:
        self._config = config or GroupConfig()
        if genesis.kind is not OperationKind.CREATE:
            raise InvalidGroupOperationError(
                "a group log starts with a genesis operation", details={"reason": "genesis"}
            )
        if genesis.max_members > self._config.max_members_accepted:
            raise InvalidGroupOperationError(
                f"the group's member limit {genesis.max_members} exceeds the "
                f"{self._config.max_members_accepted} this device accepts",
                details={"reason": "max_members"},
            )
        self._genesis = genesis
        self._ops: dict[bytes, VerifiedOperation] = {genesis.op_id: genesis}
        self._pending: dict[bytes, VerifiedOperation] = {}
        self._replay = _Replay(genesis)
        self._heads: tuple[bytes, ...] = (genesis.op_id,)
        self._state: GroupState | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        device: LocalDevice,
        *,
        name: str,
        now: int,
        permissions: Permissions | None = None,
        avatar_hash: bytes = b"",
        config: GroupConfig | None = None,
        rng: RandomSource = system_random,
    ) -> tuple[GroupLog, bytes]:
        """A new group owned by ``device``'s user; returns the log and the signed genesis.

        Draws the 16-byte salt the group id derives from. Raises
        :class:`~omega.errors.InvalidGroupOperationError` for an invalid name
        or avatar hash.
        """
        config = config or GroupConfig()
        author_id = _author_of(device)
        salt = random_bytes(rng, SALT_SIZE)
        operation = GroupOperation(
            version=GROUP_OPERATION_VERSION,
            group_id=derive_group_id(author_id, salt),
            author_id=author_id,
            timestamp=now,
            create=GroupCreate(
                salt=salt,
                name=name,
                avatar_hash=avatar_hash,
                permissions=(permissions or Permissions()).to_proto(),
                max_members=config.max_members,
            ),
        )
        encoded = sign_operation(operation, device)
        return cls(verify_operation(encoded), config=config), encoded

    @classmethod
    def from_batch(
        cls, data: bytes, *, config: GroupConfig | None = None
    ) -> tuple[GroupLog, list[GroupEvent]]:
        """Load an encoded ``GroupOperationBatch`` holding a genesis (and more).

        Raises :class:`~omega.errors.InvalidGroupOperationError` when the
        batch is malformed or holds no valid genesis; operations refused
        beyond it are reported as :class:`OperationRefused` events.
        """
        config = config or GroupConfig()
        signed = cls._decode_batch(data, config)
        genesis: GroupLog | None = None
        for item in signed:
            try:
                operation = verify_operation(item)
            except InvalidGroupOperationError:
                continue
            if operation.kind is OperationKind.CREATE:
                genesis = cls(operation, config=config)
                break
        if genesis is None:
            raise InvalidGroupOperationError(
                "the batch holds no valid genesis operation", details={"reason": "genesis"}
            )
        return genesis, genesis._receive_all(signed)

    @staticmethod
    def _decode_batch(data: bytes, config: GroupConfig) -> list[bytes]:
        try:
            batch = decode_message(GroupOperationBatch, data, max_size=config.max_batch_bytes)
        except DecodeError as exc:
            raise InvalidGroupOperationError(
                f"malformed group operation batch: {exc}", details={"reason": "malformed"}
            ) from exc
        return [encode_message(item) for item in batch.operations]

    def to_bytes(self) -> bytes:
        """The whole log (pending operations last) as an encoded ``GroupOperationBatch``."""
        return self.export(include_pending=True)

    # -- reading ------------------------------------------------------------------------

    @property
    def group_id(self) -> str:
        """The group id."""
        return self._genesis.group_id

    @property
    def genesis_id(self) -> bytes:
        """Id of the genesis operation."""
        return self._genesis.op_id

    @property
    def config(self) -> GroupConfig:
        """The bounds in force."""
        return self._config

    @property
    def state(self) -> GroupState:
        """The resolved state of the group."""
        if self._state is None:
            self._state = self._replay.snapshot(self._heads, len(self._ops))
        return self._state

    @property
    def pending_count(self) -> int:
        """Operations waiting for their parents."""
        return len(self._pending)

    def __contains__(self, op_id: object) -> bool:
        return op_id in self._ops

    def export(self, since: Iterable[bytes] = (), *, include_pending: bool = False) -> bytes:
        """Encode the operations that do not precede ``since`` (ids), parents first.

        With no ``since``, the whole log: what a new member needs. With the
        heads another member announced, what that member is missing.
        """
        known = self._closure(op_id for op_id in since if op_id in self._ops)
        missing = {op_id: op for op_id, op in self._ops.items() if op_id not in known}
        ordered = [op for op in replay_order(self._ops) if op.op_id in missing]
        if include_pending:
            ordered += list(self._pending.values())
        return encode_message(
            GroupOperationBatch(
                operations=[
                    decode_message(SignedGroupOperation, op.encoded, max_size=len(op.encoded))
                    for op in ordered
                ]
            )
        )

    def _closure(self, op_ids: Iterable[bytes]) -> set[bytes]:
        seen: set[bytes] = set()
        stack = list(op_ids)
        while stack:
            op_id = stack.pop()
            if op_id not in seen:
                seen.add(op_id)
                stack.extend(self._ops[op_id].parents)
        return seen

    # -- receiving ----------------------------------------------------------------------

    def receive(self, data: bytes) -> list[GroupEvent]:
        """Take one encoded ``SignedGroupOperation`` from any member.

        Returns events: accepted, pending (parents missing), duplicate, and
        :class:`GroupStateChanged` when the resolved state changed. Raises
        :class:`~omega.errors.InvalidGroupOperationError` (forged, malformed,
        another group, capacity) or
        :class:`~omega.errors.UnauthorizedGroupOperationError` (its author
        could not make it at its causal position); the log is then unchanged.
        """
        before = self.state
        events = self._receive_one(verify_operation(data))
        return self._with_change(before, events)

    def receive_batch(self, data: bytes) -> list[GroupEvent]:
        """Take an encoded ``GroupOperationBatch``; refused items become events."""
        return self._receive_all(self._decode_batch(data, self._config))

    def _receive_all(self, items: list[bytes]) -> list[GroupEvent]:
        before = self.state
        events: list[GroupEvent] = []
        for item in items:
            op_id = b""
            try:
                operation = verify_operation(item)
                op_id = operation.op_id
                events += self._receive_one(operation)
            except OmegaError as exc:
                reason = str(exc.details.get("reason", exc.code))
                events.append(OperationRefused(op_id=op_id, code=exc.code, reason=reason))
        return self._with_change(before, events)

    def _with_change(self, before: GroupState, events: list[GroupEvent]) -> list[GroupEvent]:
        after = self.state
        if _visible(before) != _visible(after):
            events.append(GroupStateChanged(previous=before, state=after))
        return events

    def _receive_one(self, op: VerifiedOperation) -> list[GroupEvent]:
        if op.group_id != self.group_id:
            raise InvalidGroupOperationError(
                "the operation is for another group", details={"reason": "group_id"}
            )
        if op.op_id in self._ops or op.op_id in self._pending:
            return [OperationDuplicate(op_id=op.op_id)]
        if op.kind is OperationKind.CREATE:
            raise InvalidGroupOperationError(
                "a group has one genesis operation", details={"reason": "genesis"}
            )
        missing = tuple(parent for parent in op.parents if parent not in self._ops)
        if missing:
            if len(self._pending) >= self._config.max_pending:
                raise InvalidGroupOperationError(
                    "too many operations wait for their parents", details={"reason": "capacity"}
                )
            self._pending[op.op_id] = op
            return [OperationPending(op_id=op.op_id, missing=missing)]
        self._admit(op)
        events: list[GroupEvent] = [OperationAccepted(operation=op)]
        return events + self._drain_pending()

    def _drain_pending(self) -> list[GroupEvent]:
        events: list[GroupEvent] = []
        progress = True
        while progress:
            progress = False
            for op_id, op in list(self._pending.items()):
                if all(parent in self._ops for parent in op.parents):
                    del self._pending[op_id]
                    progress = True
                    try:
                        self._admit(op)
                    except InvalidGroupOperationError as exc:
                        reason = str(exc.details.get("reason", exc.code))
                        events.append(OperationRefused(op_id=op_id, code=exc.code, reason=reason))
                    else:
                        events.append(OperationAccepted(operation=op))
        return events

    def _admit(self, op: VerifiedOperation) -> None:
        """Check ``op`` against the state at its causal position, then add it."""
        if len(self._ops) >= self._config.max_operations:
            raise InvalidGroupOperationError(
                "the group log is full", details={"reason": "capacity"}
            )
        extends_heads = op.parents == self._heads
        if extends_heads:
            causal = self._replay
        else:
            past = self._closure(op.parents)
            causal, _ = resolve({op_id: self._ops[op_id] for op_id in past}, self.genesis_id)
        problem = refusal(causal, op)
        if problem is not None:
            raise UnauthorizedGroupOperationError(
                f"{op.kind.value} by {op.author_id}: {problem}",
                details={"reason": problem, "kind": op.kind.value},
            )
        self._ops[op.op_id] = op
        self._state = None
        if extends_heads:
            # Everything else precedes it: it replays last and is concurrent with nothing.
            self._replay.apply(op)
            self._heads = (op.op_id,)
        else:
            self._replay, self._heads = resolve(self._ops, self.genesis_id)

    # -- local changes ------------------------------------------------------------------

    def _local(self, device: LocalDevice, now: int, **change: object) -> bytes:
        operation = GroupOperation(
            version=GROUP_OPERATION_VERSION,
            group_id=self.group_id,
            parents=list(self._heads),
            author_id=_author_of(device),
            timestamp=now,
            **change,  # type: ignore[arg-type]
        )
        encoded = sign_operation(operation, device)
        try:
            op = verify_operation(encoded)
        except InvalidGroupOperationError as exc:
            raise ConfigurationError(exc.message, details=exc.details) from exc
        problem = refusal(self._replay, op)
        if problem is not None:
            raise GroupPermissionError(
                f"{op.kind.value}: {problem}", details={"reason": problem, "kind": op.kind.value}
            )
        self._admit(op)
        return encoded

    def add_member(self, device: LocalDevice, user_id: str, *, now: int) -> bytes:
        """Add ``user_id`` as a MEMBER; returns the signed operation to send."""
        return self._local(device, now, add_member=GroupAddMember(user_id=user_id))

    def remove_member(self, device: LocalDevice, user_id: str, *, now: int) -> bytes:
        """Remove the member ``user_id``; returns the signed operation to send."""
        return self._local(device, now, remove_member=GroupRemoveMember(user_id=user_id))

    def leave(self, device: LocalDevice, *, now: int) -> bytes:
        """Leave the group; returns the signed operation to send."""
        return self._local(device, now, leave=GroupLeave())

    def set_role(self, device: LocalDevice, user_id: str, role: MemberRole, *, now: int) -> bytes:
        """Promote or demote ``user_id``; returns the signed operation to send."""
        return self._local(device, now, set_role=GroupSetRole(user_id=user_id, role=role))

    def rename(self, device: LocalDevice, name: str, *, now: int) -> bytes:
        """Rename the group; returns the signed operation to send."""
        return self._local(device, now, rename=GroupRename(name=name))

    def set_avatar(self, device: LocalDevice, avatar_hash: bytes, *, now: int) -> bytes:
        """Set (or, with ``b""``, clear) the avatar hash; returns the signed operation."""
        return self._local(device, now, set_avatar=GroupSetAvatar(avatar_hash=avatar_hash))

    def set_permissions(self, device: LocalDevice, permissions: Permissions, *, now: int) -> bytes:
        """Change the permissions (owners only); returns the signed operation to send."""
        return self._local(
            device, now, set_permissions=GroupSetPermissions(permissions=permissions.to_proto())
        )

    def __repr__(self) -> str:
        return (
            f"GroupLog(group_id={self.group_id!r}, members={len(self.state.members)}, "
            f"operations={len(self._ops)}, pending={len(self._pending)})"
        )


def _visible(state: GroupState) -> tuple[object, ...]:
    return (
        state.name,
        state.avatar_hash,
        state.permissions,
        dict(state.members),
        state.epoch,
    )
