"""Typed events a :class:`~omega.client.Client` reports about its groups.

Delivered like every other client event (``client.events()``,
``@client.on(...)``); each derives from :class:`GroupEvent`, itself an
:class:`~omega.client.events.Event`.
"""

from __future__ import annotations

from dataclasses import dataclass

from omega.client.events import Event
from omega.groups import GroupState
from omega.protocol import MemberRole, MessageContent
from omega.storage.message_base import StoredMessage

__all__ = [
    "GroupCreated",
    "GroupEvent",
    "GroupJoined",
    "GroupMemberAdded",
    "GroupMemberLeft",
    "GroupMemberRemoved",
    "GroupMentioned",
    "GroupMessageReceived",
    "GroupOperationRefused",
    "GroupRenamed",
    "GroupRoleChanged",
    "GroupUpdated",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupEvent(Event):
    """Base of every group event; ``group_id`` names the group."""

    group_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupCreated(GroupEvent):
    """We created a group."""

    state: GroupState


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupJoined(GroupEvent):
    """A member added us to a group and sent us its log; ``invited_by`` is that member."""

    state: GroupState
    invited_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMemberAdded(GroupEvent):
    """``user_id`` became a member, added by ``by``."""

    user_id: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMemberRemoved(GroupEvent):
    """``user_id`` was removed by ``by`` (our own user id when we were removed)."""

    user_id: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMemberLeft(GroupEvent):
    """``user_id`` left the group."""

    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRoleChanged(GroupEvent):
    """``user_id``'s role changed from ``previous`` to ``role`` (by ``by``)."""

    user_id: str
    previous: MemberRole
    role: MemberRole
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRenamed(GroupEvent):
    """The group's name changed."""

    name: str
    previous: str
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupUpdated(GroupEvent):
    """The group's resolved state changed (after the specific events of that change)."""

    state: GroupState


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMessageReceived(GroupEvent):
    """A group message arrived and is stored in the conversation ``group_id``."""

    message: StoredMessage
    content: MessageContent


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMentioned(GroupEvent):
    """A group message mentions us (reported after its :class:`GroupMessageReceived`)."""

    message: StoredMessage
    sender_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupOperationRefused(GroupEvent):
    """A member sent a group operation, distribution or message we refused; state unchanged.

    ``code`` is the :class:`~omega.errors.OmegaError` code, ``reason`` says why.
    """

    sender_id: str
    code: str
    reason: str
