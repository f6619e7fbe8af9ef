"""Typed context objects handed to bot handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from omega.client import Client
from omega.protocol import MessageContent
from omega.session.content import content_kind
from omega.storage.message_base import StoredMessage

if TYPE_CHECKING:  # pragma: no cover
    from omega.bot._bot import Bot

__all__ = ["CommandContext", "MessageContext"]


class MessageContext:
    """One incoming message and what a handler can do about it."""

    __slots__ = ("bot", "content", "extras", "message")

    def __init__(self, bot: Bot, message: StoredMessage, content: MessageContent) -> None:
        self.bot = bot
        """The bot handling the message."""
        self.message = message
        """The stored incoming message."""
        self.content = content
        """Its decoded content."""
        self.extras: dict[str, Any] = {}
        """Free room for middleware to pass values to handlers."""

    @property
    def client(self) -> Client:
        """The bot's client (for anything the context does not wrap)."""
        return self.bot.client

    @property
    def text(self) -> str:
        """The text of a text message ('' for other kinds)."""
        return self.content.text.text if self.content.text is not None else ""

    @property
    def kind(self) -> str:
        """The content kind: ``text``, ``media``, ``location``, ``contact``, ``sticker``."""
        return content_kind(self.content)

    @property
    def sender_id(self) -> str:
        """The sender's user id."""
        return self.message.sender_id

    @property
    def conversation_id(self) -> str:
        """The conversation (the sender's user id for a direct message)."""
        return self.message.conversation_id

    @property
    def message_id(self) -> str:
        """The message's id."""
        return self.message.message_id

    async def sender_name(self) -> str:
        """The sender's display name (their user id's start when they have none)."""
        contact = await self.bot.client.contact(self.sender_id)
        return contact.display_name or self.sender_id[:16]

    async def reply(self, content: MessageContent | str, *, quote: bool = False) -> StoredMessage:
        """Send ``content`` (or a text) to the conversation; ``quote`` marks it a reply."""
        return await self.bot.send(
            self.conversation_id, content, reply_to=self.message_id if quote else None
        )

    async def react(self, emoji: str) -> StoredMessage:
        """React to the message."""
        return await self.bot.client.react(self.conversation_id, self.message_id, emoji)

    async def load_state(self) -> dict[str, Any]:
        """This conversation's persistent state (a JSON object; empty at first)."""
        return await self.bot.store.load_state(self.conversation_id)

    async def save_state(self, state: Mapping[str, Any]) -> None:
        """Replace this conversation's persistent state (an empty mapping deletes it)."""
        await self.bot.store.save_state(self.conversation_id, state)

    @asynccontextmanager
    async def state(self) -> AsyncIterator[dict[str, Any]]:
        """``async with ctx.state() as state:`` load, change, and save when the block ends
        normally (nothing is saved when it raises)."""
        state = await self.load_state()
        yield state
        await self.save_state(state)

    async def transfer_to_human(self, human_id: str, *, reason: str = "") -> None:
        """Hand this conversation to the human contact ``human_id``.

        See :mod:`omega.bot.handoff`.
        """
        await self.bot.handoff.transfer(self.conversation_id, human_id, reason=reason)


class CommandContext(MessageContext):
    """A command message: its name and arguments, parsed and converted."""

    __slots__ = ("arguments", "command", "words")

    def __init__(
        self,
        bot: Bot,
        message: StoredMessage,
        content: MessageContent,
        *,
        command: str,
        words: tuple[str, ...],
        arguments: dict[str, Any],
    ) -> None:
        super().__init__(bot, message, content)
        self.command = command
        """The command's name, without the prefix."""
        self.words = words
        """The argument words as typed (after shell-style splitting)."""
        self.arguments = arguments
        """The converted arguments, by name."""
