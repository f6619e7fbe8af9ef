"""A bot store in memory: for tests and bots that may forget everything on restart."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from omega.bot.base import BotStore, encode_state

__all__ = ["MemoryBotStore"]


class MemoryBotStore(BotStore):
    """A :class:`~omega.bot.base.BotStore` in memory; reuse one object to survive a bot
    restart within one process."""

    def __init__(self) -> None:
        self._handled: dict[tuple[str, str], int] = {}
        self._checkpoint: int | None = None
        self._states: dict[str, bytes] = {}
        self._handoffs: dict[str, str] = {}

    async def is_handled(self, conversation_id: str, message_id: str) -> bool:
        return (conversation_id, message_id) in self._handled

    async def mark_handled(
        self, conversation_id: str, message_id: str, *, at: int, checkpoint: int | None = None
    ) -> None:
        self._handled[(conversation_id, message_id)] = at
        if checkpoint is not None:
            self._checkpoint = checkpoint

    async def checkpoint(self) -> int | None:
        return self._checkpoint

    async def set_checkpoint(self, at: int) -> None:
        self._checkpoint = at

    async def prune_handled(self, before: int) -> int:
        old = [key for key, at in self._handled.items() if at < before]
        for key in old:
            del self._handled[key]
        return len(old)

    async def load_state(self, conversation_id: str) -> dict[str, Any]:
        data = self._states.get(conversation_id)
        return dict(json.loads(data)) if data is not None else {}

    async def save_state(self, conversation_id: str, state: Mapping[str, Any]) -> None:
        data = encode_state(state)
        if state:
            self._states[conversation_id] = data
        else:
            self._states.pop(conversation_id, None)

    async def handoffs(self) -> dict[str, str]:
        return dict(self._handoffs)

    async def set_handoff(self, customer_id: str, human_id: str | None) -> None:
        if human_id is None:
            self._handoffs.pop(customer_id, None)
        else:
            self._handoffs[customer_id] = human_id

    async def aclose(self) -> None:
        return None
