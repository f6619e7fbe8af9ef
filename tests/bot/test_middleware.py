"""Middleware: logging, allow-lists, per-user rate limits; filters composition."""

from __future__ import annotations

import logging

import pytest

from omega.bot import (
    Bot,
    CommandContext,
    MessageContext,
    allow_list,
    filters,
    logging_middleware,
    rate_limit,
)
from omega.bot.middleware import NextHandler
from omega.bot.testing import BotTestClient
from omega.crypto import Identity
from omega.errors import ConfigurationError

pytestmark = pytest.mark.anyio


def ping_bot() -> Bot:
    bot = Bot(Identity.create(display_name="Bot", device_name="srv", created_at=0))

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        await ctx.reply("pong" + ctx.extras.get("suffix", ""))

    return bot


async def test_rate_limit_is_per_user_and_replies_once_per_burst() -> None:
    now = [0.0]
    bot = ping_bot()
    bot.use(rate_limit(rate=1.0, burst=2, reply="slow down", clock=lambda: now[0]))
    async with BotTestClient(bot) as tester:
        other = await tester.new_user("Other")
        assert (await tester.send("/ping")).text == "pong"
        assert (await tester.send("/ping")).text == "pong"
        assert (await tester.send("/ping")).text == "slow down"
        await tester.user.say("/ping")  # dropped silently: already warned
        await tester.user.expect_silence(0.2)
        assert (await other.send("/ping")).text == "pong"  # others are served
        now[0] += 1.0
        assert (await tester.send("/ping")).text == "pong"
    with pytest.raises(ConfigurationError):
        rate_limit(rate=0)


async def test_allow_list_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="omega.bot")
    bot = ping_bot()
    bot.use(logging_middleware())
    async with BotTestClient(bot) as tester:
        stranger = await tester.new_user("Stranger")
        bot.use(allow_list([tester.user.user_id], reply="private"))
        assert (await tester.send("/ping")).text == "pong"
        assert (await stranger.send("/ping")).text == "private"
    assert "event=bot_message" in caplog.text
    assert "outcome=ok" in caplog.text


async def test_custom_middleware_can_pass_values_and_short_circuit() -> None:
    bot = ping_bot()

    @bot.use
    async def tag(ctx: MessageContext, call_next: NextHandler) -> None:
        if ctx.text == "/ping secret":
            await ctx.reply("intercepted")
            return
        ctx.extras["suffix"] = "!"
        await call_next()

    async with BotTestClient(bot) as tester:
        assert (await tester.send("/ping")).text == "pong!"
        assert (await tester.send("/ping secret")).text == "intercepted"


async def test_filter_composition() -> None:
    bot = Bot(Identity.create(display_name="Bot", device_name="srv", created_at=0))
    seen: list[str] = []

    @bot.on_message(filters.text(startswith="buy", ignore_case=True) & ~filters.regex("later"))
    async def buy(ctx: MessageContext) -> None:
        seen.append("buy")
        await ctx.reply("buying")

    @bot.on_message(filters.text(equals="hi") | filters.text(contains="hello"))
    async def greet(ctx: MessageContext) -> None:
        await ctx.reply("hey")

    @bot.on_message(filters.content("sticker", "media"))
    async def media(ctx: MessageContext) -> None:
        await ctx.reply("nice")

    async with BotTestClient(bot) as tester:
        sender_only = filters.sender(tester.user.user_id)
        assert repr(sender_only).startswith("Filter(sender")

        @bot.on_message(sender_only)
        async def fallback(ctx: MessageContext) -> None:
            await ctx.reply("fallback")

        assert (await tester.send("BUY tomatoes")).text == "buying"
        assert (await tester.send("buy later")).text == "fallback"
        assert (await tester.send("hi")).text == "hey"
        assert (await tester.send("oh hello")).text == "hey"
        await tester.user.client.send_sticker(bot.user_id, pack_id="p", sticker_id="s")
        assert (await tester.receive()).text == "nice"
    with pytest.raises(ConfigurationError):
        filters.content("video")
    with pytest.raises(ConfigurationError):
        filters.regex("(")
