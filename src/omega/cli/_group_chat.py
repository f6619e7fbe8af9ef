"""``omega chat --group GROUP``: the terminal chat in a group (see :mod:`omega.cli._chat`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omega.cli._chat import Screen, _Chat
from omega.cli._common import describe_event, format_message, resolve_message_id, short_id

if TYPE_CHECKING:
    import anyio.abc

    from omega.client import Client, Event, Group

__all__ = ["GroupChat"]


class GroupChat(_Chat):
    """The chat's commands, applied to a group: messages go to every member."""

    def __init__(self, client: Client, group: Group, screen: Screen) -> None:
        from omega.cli._common import ContactNames

        self.client = client
        self.group = group
        self.screen = screen
        self.names = ContactNames(client)
        self.name = group.name

    async def open(self) -> None:
        """Print the header, the members and the end of the history."""
        await self.names.refresh()
        where = ", ".join(str(address) for address in self.client.addresses) or "nowhere"
        members = ", ".join([await self.names.name(m.user_id) for m in self.group.members])
        self.screen.show(f"Group {self.name} ({self.group.group_id[:12]}); listening on {where}.")
        self.screen.show(f"Members: {members}")
        if not self.group.is_member:
            self.screen.show("You are no longer a member: you can read, not write.")
        await self.show_history(10)
        self.screen.show("Type /help for the commands, /quit to leave.")

    async def show_history(self, count: int) -> None:
        """Print the last ``count`` messages of the group."""
        for message in reversed(await self.group.history(limit=count)):
            self.screen.show(format_message(message, await self.names.name(message.sender_id)))

    async def show_events(self, receive: anyio.abc.ObjectReceiveStream[Event]) -> None:
        """Print the events of this group as they arrive."""
        from omega.client import (
            GroupEvent,
            GroupMemberAdded,
            GroupMemberLeft,
            GroupMemberRemoved,
            GroupMessageReceived,
            GroupRenamed,
            MessageDeleted,
            MessageEdited,
            ReactionReceived,
        )

        mine = self.group.group_id
        async for event in receive:
            line: str | None = None
            if isinstance(event, GroupEvent) and event.group_id != mine:
                continue
            if isinstance(event, GroupMessageReceived):
                sender = await self.names.name(event.message.sender_id)
                line = format_message(event.message, sender)
            elif isinstance(event, GroupMemberAdded):
                line = f"{await self.names.name(event.user_id)} joined"
            elif isinstance(event, GroupMemberRemoved):
                line = f"{await self.names.name(event.user_id)} was removed"
            elif isinstance(event, GroupMemberLeft):
                line = f"{await self.names.name(event.user_id)} left"
            elif isinstance(event, GroupRenamed):
                line = f"the group is now called {event.name}"
            elif isinstance(event, MessageEdited | MessageDeleted | ReactionReceived):
                conversation = (
                    event.message.conversation_id
                    if isinstance(event, MessageEdited)
                    else event.conversation_id
                )
                if conversation == mine:
                    line = await describe_event(event, self.names)
            if line is not None:
                self.screen.show(line)

    async def _send(self, text: str, *, reply_to: str | None = None) -> None:
        sent = await self.group.send_text(text, reply_to=reply_to)
        self.screen.show(format_message(sent, "me"))

    async def _target(self, rest: str, usage: str) -> tuple[str, str] | None:
        target, _, text = rest.partition(" ")
        if not target:
            self.screen.show(f"usage: {usage}")
            return None
        return await resolve_message_id(self.client, self.group.group_id, target), text.strip()

    async def _react(self, rest: str) -> None:
        found = await self._target(rest, "/react ID EMOJI")
        if found is not None:
            await self.group.react(found[0], found[1])
            done = f"reacted {found[1]} to" if found[1] else "removed your reaction to"
            self.screen.show(f"{done} {short_id(found[0])}")

    async def _edit(self, rest: str) -> None:
        found = await self._target(rest, "/edit ID TEXT")
        if found is None:
            return
        if not found[1]:
            self.screen.show("usage: /edit ID TEXT")
            return
        self.screen.show(format_message(await self.group.edit(found[0], found[1]), "me"))

    async def _delete(self, rest: str) -> None:
        found = await self._target(rest, "/delete ID")
        if found is None:
            return
        [message] = [m for m in await self.group.history(limit=1000) if m.message_id == found[0]]
        own = message.sender_id == self.client.user_id
        await self.group.delete(found[0], for_everyone=own)
        self.screen.show(f"deleted {short_id(found[0])}" + (" for everyone" if own else ""))

    async def _typing(self, rest: str) -> None:
        self.screen.show("typing notices are not sent to groups")
