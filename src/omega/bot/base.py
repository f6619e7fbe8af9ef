"""The bot store interface: what a bot remembers across restarts.

A :class:`BotStore` keeps, for one bot:

* the **handled set**: (conversation, message id) pairs whose handlers ran to
  the end, so a restart never processes a message twice;
* the **checkpoint**: a time (Unix ms) such that every incoming message
  received before it is handled; recovery looks back from it;
* **per-conversation state**: a small JSON object per conversation
  (:meth:`~omega.bot.MessageContext.state`);
* **handoffs**: which customer conversations a human contact is handling.

Implementations: :class:`~omega.bot.memory.MemoryBotStore` and
:class:`~omega.bot.sqlite.SQLiteBotStore`; both pass
:func:`omega.bot.testing.check_bot_store`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from omega.errors import ConfigurationError

__all__ = ["MAX_STATE_SIZE", "BotStore", "encode_state"]

MAX_STATE_SIZE = 64 * 1024
"""Largest per-conversation state, in bytes of compact JSON."""


def encode_state(state: Mapping[str, Any]) -> bytes:
    """``state`` as compact UTF-8 JSON; :class:`~omega.errors.ConfigurationError` if it
    is not a JSON object of at most :data:`MAX_STATE_SIZE` bytes."""
    if not isinstance(state, Mapping):
        raise ConfigurationError("conversation state must be a mapping")
    try:
        data = json.dumps(dict(state), separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"conversation state must be JSON: {exc}") from exc
    if len(data) > MAX_STATE_SIZE:
        raise ConfigurationError(
            f"conversation state is {len(data)} bytes; the limit is {MAX_STATE_SIZE}"
        )
    return data


class BotStore(ABC):
    """Where a bot keeps its handled set, checkpoint, conversation state and handoffs."""

    @abstractmethod
    async def is_handled(self, conversation_id: str, message_id: str) -> bool:
        """Whether the message's handlers ran to the end."""

    @abstractmethod
    async def mark_handled(
        self, conversation_id: str, message_id: str, *, at: int, checkpoint: int | None = None
    ) -> None:
        """Record the message as handled at ``at`` (and move the checkpoint, in one write)."""

    @abstractmethod
    async def checkpoint(self) -> int | None:
        """The checkpoint, or ``None`` before the bot first ran."""

    @abstractmethod
    async def set_checkpoint(self, at: int) -> None:
        """Set the checkpoint."""

    @abstractmethod
    async def prune_handled(self, before: int) -> int:
        """Forget handled entries recorded before ``before``; return how many."""

    @abstractmethod
    async def load_state(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's state (an empty dict when there is none)."""

    @abstractmethod
    async def save_state(self, conversation_id: str, state: Mapping[str, Any]) -> None:
        """Replace the conversation's state (an empty mapping deletes it).

        Raises :class:`~omega.errors.ConfigurationError` for state that is not
        a JSON object of at most :data:`MAX_STATE_SIZE` bytes.
        """

    @abstractmethod
    async def handoffs(self) -> dict[str, str]:
        """Customer user id -> the human contact handling that conversation."""

    @abstractmethod
    async def set_handoff(self, customer_id: str, human_id: str | None) -> None:
        """Hand ``customer_id`` to ``human_id`` (``None``: back to the bot)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the store's resources (idempotent)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
