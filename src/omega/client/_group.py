"""The :class:`Group` handle: one group, as the application sees it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from omega.client._groups import Groups
from omega.client.events import MessageDeleted
from omega.errors import ConfigurationError, GroupPermissionError
from omega.groups import GroupState, MemberInfo, OperationKind, Permissions
from omega.protocol import (
    DeleteContent,
    DeleteScope,
    EditContent,
    MemberRole,
    MessageContent,
    ReactionContent,
    TextContent,
    TextEntity,
)
from omega.session.content import encode_content
from omega.storage.message_base import Direction, StoredMessage

__all__ = ["Group"]


class Group:
    """One group this client is in (or was in: a removed member keeps a read-only view).

    Get one from :meth:`Client.create_group <omega.client.Client.create_group>`,
    :meth:`Client.group <omega.client.Client.group>` or
    :meth:`Client.groups <omega.client.Client.groups>`. The conversation id of
    the group's history is :attr:`group_id`. Changes raise
    :class:`~omega.errors.GroupPermissionError` when our role does not allow
    them (nothing changes then) and
    :class:`~omega.errors.UnknownContactError` when adding someone who is not
    a contact.
    """

    def __init__(self, groups: Groups, group_id: str) -> None:
        self._groups = groups
        self._group_id = group_id

    def __repr__(self) -> str:
        return f"Group({self._group_id[:16]}..., name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Group) and other._group_id == self._group_id

    def __hash__(self) -> int:
        return hash(self._group_id)

    # -- reading ------------------------------------------------------------------------
    @property
    def group_id(self) -> str:
        """The group id (64 hex characters), also the conversation id of its history."""
        return self._group_id

    @property
    def state(self) -> GroupState:
        """The group's resolved state now: name, members and roles, permissions, epoch."""
        return self._groups.state(self._group_id)

    @property
    def name(self) -> str:
        """The group's name."""
        return self.state.name

    @property
    def members(self) -> list[MemberInfo]:
        """Current members, by user id."""
        return sorted(self.state.members.values(), key=lambda member: member.user_id)

    @property
    def is_member(self) -> bool:
        """False once we were removed or left."""
        return self.state.is_member(self._groups.core.user_id)

    async def history(self, *, limit: int = 50, before: int | None = None) -> list[StoredMessage]:
        """The group's messages, newest first."""
        async with self._groups.core.db.transaction() as tx:
            return await tx.messages(self._group_id, limit=limit, before=before)

    # -- messages -----------------------------------------------------------------------
    async def send(
        self,
        content: MessageContent | str,
        *,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        ttl_seconds: int | None = None,
    ) -> StoredMessage | None:
        """Send ``content`` (or a text) to every member, encrypted once under our sender key.

        Returns the stored message (None for edits and deletes).
        Raises :class:`~omega.errors.GroupPermissionError` when we may not
        post, :class:`~omega.errors.ConfigurationError` for invalid content.
        """
        if isinstance(content, str):
            content = MessageContent(text=TextContent(text=content))
        return await self._groups.send_message(
            self._group_id, content, reply_to=reply_to, mentions=mentions, ttl_seconds=ttl_seconds
        )

    async def send_text(
        self,
        text: str,
        *,
        entities: Sequence[TextEntity] = (),
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        ttl_seconds: int | None = None,
    ) -> StoredMessage:
        """Send a text; ``mentions`` (user ids) notify those members."""
        content = MessageContent(text=TextContent(text=text, entities=list(entities)))
        message = await self.send(
            content, reply_to=reply_to, mentions=mentions, ttl_seconds=ttl_seconds
        )
        assert message is not None
        return message

    async def react(self, message_id: str, emoji: str) -> StoredMessage:
        """React to a group message (an empty ``emoji`` removes our reaction)."""
        reaction = ReactionContent(target_message_id=message_id, emoji=emoji)
        stored = await self.send(MessageContent(reaction=reaction))
        assert stored is not None
        return stored

    async def edit(self, message_id: str, text: str) -> StoredMessage:
        """Replace the text of one of our group messages, for every member."""
        message = await self._message(message_id)
        if message.direction is not Direction.OUTGOING:
            raise ConfigurationError("only your own messages can be edited")
        edit = EditContent(target_message_id=message_id, text=TextContent(text=text))
        await self.send(MessageContent(edit=edit))
        return await self._groups_apply_edit(message, text)

    async def delete(self, message_id: str, *, for_everyone: bool = False) -> None:
        """Delete a message for us, or for everyone (ours, or anyone's when our role may
        remove members: the group's ``remove_members`` permission)."""
        message = await self._message(message_id)
        core = self._groups.core
        if for_everyone:
            own = message.sender_id == core.user_id
            if not own and not self.state.may_delete_for_everyone(core.user_id):
                raise GroupPermissionError(
                    "your role may not delete others' messages", details={"reason": "role"}
                )
            delete = DeleteContent(target_message_id=message_id, scope=DeleteScope.FOR_EVERYONE)
            await self.send(MessageContent(delete=delete))
            async with core.db.transaction() as tx:
                await tx.replace_message(_tombstone(message))
        else:
            async with core.db.transaction() as tx:
                await tx.delete_message(self._group_id, message_id)
        await core.emit(
            MessageDeleted(
                conversation_id=self._group_id,
                message_id=message_id,
                for_everyone=for_everyone,
                deleted_by=core.user_id,
            )
        )

    async def _message(self, message_id: str) -> StoredMessage:
        async with self._groups.core.db.transaction() as tx:
            message = await tx.get_message(self._group_id, message_id)
        if message is None:
            raise ConfigurationError(f"no message {message_id} in this group")
        return message

    async def _groups_apply_edit(self, message: StoredMessage, text: str) -> StoredMessage:
        core = self._groups.core
        updated = dataclasses.replace(
            message,
            content=encode_content(
                MessageContent(text=TextContent(text=text), reply_to=message.reply_to)
            ),
            text=text,
            edited_at=core.now(),
        )
        async with core.db.transaction() as tx:
            await tx.replace_message(updated)
        return updated

    # -- membership and settings ------------------------------------------------------------
    async def add(self, user_id: str) -> GroupState:
        """Add a contact as a MEMBER; they get the log and every member's sender key."""
        return await self._groups.change(self._group_id, OperationKind.ADD_MEMBER, user_id=user_id)

    async def remove(self, user_id: str) -> GroupState:
        """Remove a member; every remaining member rotates its sender key."""
        return await self._groups.change(
            self._group_id, OperationKind.REMOVE_MEMBER, user_id=user_id
        )

    async def leave(self) -> GroupState:
        """Leave the group (the others rotate their sender keys)."""
        return await self._groups.change(self._group_id, OperationKind.LEAVE)

    async def promote(self, user_id: str, role: MemberRole = MemberRole.ADMIN) -> GroupState:
        """Raise a member's role (to ADMIN by default)."""
        return await self._groups.change(
            self._group_id, OperationKind.SET_ROLE, user_id=user_id, role=role
        )

    async def demote(self, user_id: str, role: MemberRole = MemberRole.MEMBER) -> GroupState:
        """Lower a member's role (to MEMBER by default)."""
        return await self._groups.change(
            self._group_id, OperationKind.SET_ROLE, user_id=user_id, role=role
        )

    async def rename(self, name: str) -> GroupState:
        """Rename the group."""
        return await self._groups.change(self._group_id, OperationKind.RENAME, name=name)

    async def set_avatar(self, avatar_hash: bytes) -> GroupState:
        """Set the avatar (the SHA-256 of the image, or empty to clear it)."""
        return await self._groups.change(
            self._group_id, OperationKind.SET_AVATAR, avatar_hash=avatar_hash
        )

    async def set_permissions(self, permissions: Permissions) -> GroupState:
        """Change who may post, add, edit the info and remove (owners only)."""
        return await self._groups.change(
            self._group_id, OperationKind.SET_PERMISSIONS, permissions=permissions
        )


def _tombstone(message: StoredMessage) -> StoredMessage:
    return dataclasses.replace(message, content=b"", text="", deleted=True)
