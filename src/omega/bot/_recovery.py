"""On start: process incoming messages stored while the bot was down but never handled."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from omega.bot._dispatch import Dispatcher, Incoming
from omega.errors import OmegaError
from omega.session.content import content_kind, decode_content
from omega.storage.message_base import Direction

if TYPE_CHECKING:  # pragma: no cover
    from omega.bot._bot import Bot

__all__ = ["recover"]

logger = logging.getLogger("omega.bot")

_PAGE = 200
_KINDS = frozenset({"text", "media", "location", "contact", "sticker"})


async def recover(bot: Bot, dispatcher: Dispatcher) -> int:
    """Queue every stored incoming message received since ``checkpoint - recovery_window``
    that is neither handled nor queued; return how many. The first start only sets the
    checkpoint (a new bot does not answer old history)."""
    store, client = bot.store, bot.client
    now = bot.wall_clock()
    checkpoint = await store.checkpoint()
    if checkpoint is None:
        await store.set_checkpoint(now)
        return 0
    floor = checkpoint - int(bot.config.recovery_window * 1000)
    await store.prune_handled(now - int(bot.config.handled_retention * 1000))
    found: list[Incoming] = []
    for conversation in await client.conversations():
        if conversation.last_message_at < floor:
            continue
        before: int | None = None
        while True:
            page = await client.history(conversation.conversation_id, limit=_PAGE, before=before)
            for message in page:
                if (
                    message.direction is not Direction.INCOMING
                    or message.deleted
                    or (message.received_at or 0) < floor
                    or dispatcher.accepted(message.message_id)
                    or await store.is_handled(message.conversation_id, message.message_id)
                ):
                    continue
                try:
                    content = decode_content(message.content)
                except OmegaError as exc:  # pragma: no cover - the client stored it decoded
                    logger.warning(
                        "event=bot_recovery_skipped message=%s error=%s",
                        message.message_id,
                        exc.code,
                    )
                    continue
                if content_kind(content) in _KINDS:
                    found.append(Incoming(message, content))
            if len(page) < _PAGE or page[-1].timestamp < floor:
                break
            before = page[-1].timestamp
    found.sort(key=lambda item: (item.message.received_at or 0, item.message.timestamp))
    for item in found:
        await dispatcher.submit(item)
    return len(found)
