"""The bot end to end, through BotTestClient: commands, handlers, errors, concurrency."""

from __future__ import annotations

import enum
from decimal import Decimal

import anyio
import pytest

from omega.bot import Arg, Bot, BotConfig, CommandContext, MessageContext, filters
from omega.bot.testing import BotTestClient
from omega.crypto import Identity
from omega.errors import LocalProtocolError
from omega.protocol import LocationContent, MessageContent

pytestmark = pytest.mark.anyio


def new_bot(config: BotConfig | None = None) -> Bot:
    identity = Identity.create(display_name="Shop bot", device_name="server", created_at=0)
    return Bot(identity, config=config)


class Unit(enum.Enum):
    BOX = "box"
    KG = "kg"


def shop_bot() -> Bot:
    bot = new_bot()

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        """Check the bot is alive."""
        await ctx.reply("pong")

    @bot.command("order")
    async def order(
        ctx: CommandContext, product: str, quantity: int = 1, unit: Unit = Unit.BOX
    ) -> None:
        """Order a product."""
        await ctx.reply(f"{quantity} {unit.value} of {product}")

    @bot.command("note", args=[Arg("words", str, rest=True, help="what to note")])
    async def note(ctx: CommandContext, words: tuple[str, ...]) -> None:
        await ctx.reply("|".join(words))

    @bot.command("price", aliases=["cost"])
    async def price(ctx: CommandContext, amount: Decimal, express: bool = False) -> None:
        """Price with tax."""
        await ctx.reply(f"{amount * Decimal('1.1'):.2f}{' express' if express else ''}")

    @bot.command("tag")
    async def tag(ctx: CommandContext, first: str, *rest: str) -> None:
        await ctx.reply(f"{first}:{len(rest)}")

    @bot.on_message(filters.regex(r"(?i)\bhello\b"))
    async def hello(ctx: MessageContext) -> None:
        await ctx.reply(f"Hello {await ctx.sender_name()}!", quote=True)

    @bot.on_message(filters.content("location"))
    async def where(ctx: MessageContext) -> None:
        assert ctx.content.location is not None
        await ctx.reply(f"at {ctx.content.location.name}")

    @bot.on_message(filters.text() & ~filters.command())
    async def echo(ctx: MessageContext) -> None:
        await ctx.reply("echo: " + ctx.text)

    return bot


async def test_commands_arguments_and_help() -> None:
    async with BotTestClient(shop_bot()) as tester:
        assert (await tester.send("/ping")).text == "pong"
        assert (await tester.send("/PING@shopbot")).text == "pong"
        assert (await tester.send('/order "green apples" 3 kg')).text == "3 kg of green apples"
        assert (await tester.send("/order tomatoes")).text == "1 box of tomatoes"
        assert (await tester.send("/note a 'b c' d")).text == "a|b c|d"
        assert (await tester.send("/cost 10 yes")).text == "11.00 express"
        assert (await tester.send("/tag x y z")).text == "x:2"
        help_text = (await tester.send("/help")).text
        assert "/order <product> [quantity] [unit] - Order a product." in help_text
        assert "/ping - Check the bot is alive." in help_text
        detail = (await tester.send("/help order")).text
        assert "quantity (integer), default 1" in detail
        assert "unit (box|kg)" in detail
        assert "No command /nope" in (await tester.send("/help nope")).text


async def test_bad_input_gets_a_clear_reply() -> None:
    async with BotTestClient(shop_bot()) as tester:
        reply = await tester.send("/order apples many")
        assert reply.text == "Sorry, <quantity> must be integer, got 'many'"
        assert "missing <product>" in (await tester.send("/order")).text
        assert "too many arguments" in (await tester.send("/ping now please")).text
        assert "cannot read the arguments" in (await tester.send('/order "apples')).text
        assert "must be yes/no" in (await tester.send("/price 3 maybe")).text
        assert "must be number" in (await tester.send("/price NaN")).text
        assert "must be box|kg" in (await tester.send("/order x 1 ton")).text
        unknown = await tester.send("/frobnicate")
        assert unknown.text == "Unknown command /frobnicate. Send /help for the list."
        assert (await tester.send("/ping")).text == "pong"


async def test_message_handlers_filters_and_kinds() -> None:
    async with BotTestClient(shop_bot()) as tester:
        sent = await tester.user.say("well hello there")
        reply = await tester.receive()
        assert reply.text == "Hello Tester!"
        assert reply.message.reply_to == sent
        assert (await tester.send("what?")).text == "echo: what?"
        location = MessageContent(location=LocationContent(latitude=1, longitude=2, name="Dock"))
        assert (await tester.send(location)).text == "at Dock"


async def test_a_failing_handler_is_answered_and_the_bot_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = new_bot(BotConfig(error_reply="Oops, try again", handler_timeout=0.5))

    @bot.command("boom")
    async def boom(ctx: CommandContext) -> None:
        raise RuntimeError("kaput")

    @bot.command("slow")
    async def slow(ctx: CommandContext) -> None:
        await anyio.sleep(30)

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        await ctx.reply("pong")

    async with BotTestClient(bot) as tester:
        assert (await tester.send("/boom")).text == "Oops, try again"
        assert (await tester.send("/slow")).text == "Oops, try again"
        assert (await tester.send("/ping")).text == "pong"
    assert "event=bot_handler_failed" in caplog.text
    assert "kaput" in caplog.text


async def test_handlers_run_concurrently_but_in_order_per_conversation() -> None:
    bot = new_bot(BotConfig(max_concurrent_handlers=4))
    running = 0
    peak = 0
    gate = anyio.Event()

    @bot.on_message()
    async def work(ctx: MessageContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if ctx.text.startswith("wait"):
            with anyio.fail_after(5):
                await gate.wait()
        running -= 1
        await ctx.reply(ctx.text)

    async with BotTestClient(bot) as tester:
        others = [await tester.new_user(f"user{i}") for i in range(3)]
        for user in others:
            await user.say("wait")
        # The first user's messages are answered while the others wait.
        for i in range(3):
            await tester.user.say(f"n{i}")
        assert [(await tester.receive()).text for _ in range(3)] == ["n0", "n1", "n2"]
        assert peak == 4
        gate.set()
        for user in others:
            assert (await user.receive()).text == "wait"


async def test_conversation_state_persists() -> None:
    bot = new_bot()

    @bot.command("count")
    async def count(ctx: CommandContext) -> None:
        async with ctx.state() as state:
            state["n"] = state.get("n", 0) + 1
        await ctx.reply(str((await ctx.load_state())["n"]))

    @bot.command("reset")
    async def reset(ctx: CommandContext) -> None:
        await ctx.save_state({})
        await ctx.reply("reset")

    async with BotTestClient(bot) as tester:
        other = await tester.new_user("Other")
        assert (await tester.send("/count")).text == "1"
        assert (await tester.send("/count")).text == "2"
        assert (await other.send("/count")).text == "1"
        assert (await tester.send("/reset")).text == "reset"
        assert (await tester.send("/count")).text == "1"


async def test_registration_errors() -> None:
    bot = new_bot()

    @bot.command("a", aliases=["b"])
    async def a(ctx: CommandContext) -> None:
        pass

    with pytest.raises(LocalProtocolError, match="twice"):
        bot.command("b")(a)
    with pytest.raises(LocalProtocolError, match="not running"):
        _ = bot.client
    async with BotTestClient(bot):
        pass
    with pytest.raises(LocalProtocolError, match="runs once"):
        await bot.__aenter__()
