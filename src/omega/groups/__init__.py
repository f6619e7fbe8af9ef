"""Groups: membership as a signed, hash-linked operation log that every member resolves alike.

Sans-I/O (layer 4, written like layer 3): no clock, no randomness, no I/O;
``now`` and ``rng`` are arguments. docs/groups.md specifies the protocol.

* :class:`GroupLog`: one group's log; receive operations, make changes.
* :class:`GroupState`, :class:`MemberInfo`, :class:`Permissions`: the resolved state.
* :func:`verify_operation`, :class:`VerifiedOperation`: one signed operation.
* :class:`GroupSession`, :class:`Rekey`: one device's Sender Keys in a group;
  :class:`GroupSessionChanges`: the parts of it to persist.
* :class:`GroupConfig`: member limit (256 by default) and memory bounds.
"""

from __future__ import annotations

from omega.groups._log import GroupLog
from omega.groups._messaging import GroupSession, GroupSessionChanges, Rekey
from omega.groups._operations import (
    GROUP_ID_CONTEXT,
    GROUP_OPERATION_CONTEXT,
    GROUP_OPERATION_ID_CONTEXT,
    GROUP_OPERATION_VERSION,
    MAX_GROUP_NAME_BYTES,
    MAX_PARENTS,
    MAX_SIGNED_OPERATION_SIZE,
    OperationKind,
    Permissions,
    VerifiedOperation,
    derive_group_id,
    operation_id,
    verify_operation,
)
from omega.groups._state import GroupState, MemberInfo
from omega.groups.config import DEFAULT_MAX_MEMBERS, MAX_MEMBERS_LIMIT, GroupConfig
from omega.groups.events import (
    GroupEvent,
    GroupStateChanged,
    OperationAccepted,
    OperationDuplicate,
    OperationPending,
    OperationRefused,
)

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "GROUP_ID_CONTEXT",
    "GROUP_OPERATION_CONTEXT",
    "GROUP_OPERATION_ID_CONTEXT",
    "GROUP_OPERATION_VERSION",
    "MAX_GROUP_NAME_BYTES",
    "MAX_MEMBERS_LIMIT",
    "MAX_PARENTS",
    "MAX_SIGNED_OPERATION_SIZE",
    "GroupConfig",
    "GroupEvent",
    "GroupLog",
    "GroupSession",
    "GroupSessionChanges",
    "GroupState",
    "GroupStateChanged",
    "MemberInfo",
    "OperationAccepted",
    "OperationDuplicate",
    "OperationKind",
    "OperationPending",
    "OperationRefused",
    "Permissions",
    "Rekey",
    "VerifiedOperation",
    "derive_group_id",
    "operation_id",
    "verify_operation",
]
