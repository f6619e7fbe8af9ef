"""Events a :class:`~omega.groups.GroupLog` returns from what it receives."""

from __future__ import annotations

from dataclasses import dataclass

from omega.groups._operations import VerifiedOperation
from omega.groups._state import GroupState

__all__ = [
    "GroupEvent",
    "GroupStateChanged",
    "OperationAccepted",
    "OperationDuplicate",
    "OperationPending",
    "OperationRefused",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupEvent:
    """Base of every group log event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationAccepted(GroupEvent):
    """An operation joined the log (it may still be ineffective: docs/groups.md)."""

    operation: VerifiedOperation


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationPending(GroupEvent):
    """An operation waits for parents the log does not hold yet."""

    op_id: bytes
    missing: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationDuplicate(GroupEvent):
    """An operation the log already holds (or holds pending) arrived again; nothing changed."""

    op_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationRefused(GroupEvent):
    """An operation of a batch, or one that waited for its parents, was refused.

    ``code`` and ``reason`` are those of the error a lone operation would have raised.
    """

    op_id: bytes
    code: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStateChanged(GroupEvent):
    """The resolved state changed (one event per call that changed it)."""

    previous: GroupState
    state: GroupState

    @property
    def added(self) -> frozenset[str]:
        """Users who became members."""
        return frozenset(self.state.members) - frozenset(self.previous.members)

    @property
    def removed(self) -> frozenset[str]:
        """Users who stopped being members (removed or left): rekey."""
        return frozenset(self.previous.members) - frozenset(self.state.members)
