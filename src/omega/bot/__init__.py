"""The Bot SDK: bots are ordinary Omega peers whose messages run handlers.

::

    from omega.bot import Bot, CommandContext

    bot = Bot(identity)

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        await ctx.reply("pong")

    await bot.run()

Commands with typed arguments and a generated ``/help``
(:mod:`omega.bot.commands`), filters (:mod:`omega.bot.filters`), middleware
(:mod:`omega.bot.middleware`), persistent per-conversation state and
exactly-once processing across restarts (:mod:`omega.bot.base`), webhooks
(:mod:`omega.bot.webhooks`), human handoff (:mod:`omega.bot.handoff`) and a
test client (:mod:`omega.bot.testing`). See docs/bots.md.
"""

from __future__ import annotations

from omega.bot import filters
from omega.bot._bot import BOT_STORE_FILE, Bot, MessageHandler
from omega.bot.base import BotStore
from omega.bot.commands import REQUIRED, Arg, Command
from omega.bot.config import BotConfig
from omega.bot.context import CommandContext, MessageContext
from omega.bot.filters import Filter
from omega.bot.handoff import Handoff
from omega.bot.memory import MemoryBotStore
from omega.bot.middleware import Middleware, allow_list, logging_middleware, rate_limit
from omega.bot.sqlite import SQLiteBotStore
from omega.bot.webhooks import InboundEndpoint, OutboundWebhook, WebhookConfig

__all__ = [
    "BOT_STORE_FILE",
    "REQUIRED",
    "Arg",
    "Bot",
    "BotConfig",
    "BotStore",
    "Command",
    "CommandContext",
    "Filter",
    "Handoff",
    "InboundEndpoint",
    "MemoryBotStore",
    "MessageContext",
    "MessageHandler",
    "Middleware",
    "OutboundWebhook",
    "SQLiteBotStore",
    "WebhookConfig",
    "allow_list",
    "filters",
    "logging_middleware",
    "rate_limit",
]
