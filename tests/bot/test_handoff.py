"""Human handoff: forwarding both ways, several customers, release, persistence."""

from __future__ import annotations

import pytest

from omega.bot import Bot, CommandContext, MemoryBotStore
from omega.bot.testing import BotTestClient
from omega.crypto import Identity
from omega.errors import ConfigurationError
from omega.protocol import LocationContent, MessageContent

pytestmark = pytest.mark.anyio


def support_bot(human: dict[str, str], store: MemoryBotStore | None = None) -> Bot:
    bot = Bot(Identity.create(display_name="Sales", device_name="srv", created_at=0), store=store)

    @bot.command("human")
    async def to_human(ctx: CommandContext) -> None:
        await ctx.transfer_to_human(human["id"], reason="asked for a person")

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        await ctx.reply("pong")

    return bot


async def test_handoff_forwards_both_ways_and_hands_back() -> None:
    human: dict[str, str] = {}
    bot = support_bot(human)
    async with BotTestClient(bot) as tester:
        agent = await tester.new_user("Alice")
        human["id"] = agent.user_id
        assert "You are now talking to Alice" in (await tester.send("/human")).text
        notice = await agent.receive()
        assert notice.text.startswith("Tester has been handed to you (asked for a person)")
        assert bot.handoff.human_for(tester.user.user_id) == agent.user_id
        await tester.user.say("I need 50 boxes of tomatoes")
        assert (await agent.receive()).text == "[Tester] I need 50 boxes of tomatoes"
        # A command from the customer is forwarded too, not run.
        await tester.user.say("/ping")
        assert (await agent.receive()).text == "[Tester] /ping"
        where = MessageContent(location=LocationContent(latitude=1.5, longitude=2.5, name="Farm"))
        await tester.user.say(where)
        forwarded = await agent.receive()
        assert forwarded.kind == "location"
        await agent.say("They arrive tomorrow at 2pm")
        reply = await tester.receive()
        assert reply.text == "They arrive tomorrow at 2pm"
        await agent.say("/customers")
        assert "You are serving: Tester" in (await agent.receive()).text
        await agent.say("/release")
        assert "back with the assistant" in (await tester.receive()).text
        assert (await agent.receive()).text == "Tester is back with the bot."
        assert bot.handoff.active == {}
        assert (await tester.send("/ping")).text == "pong"
        await bot.handoff.release(tester.user.user_id)  # nothing to release: nothing happens
        with pytest.raises(ConfigurationError):
            await bot.handoff.transfer(agent.user_id, agent.user_id)
        with pytest.raises(ConfigurationError):
            await bot.handoff.transfer(agent.user_id, bot.user_id)


async def test_a_human_serving_several_customers_chooses_by_replying() -> None:
    human: dict[str, str] = {}
    store = MemoryBotStore()
    bot = support_bot(human, store)
    async with BotTestClient(bot) as tester:
        agent = await tester.new_user("Alice")
        human["id"] = agent.user_id
        other = await tester.new_user("Bruno")
        await tester.send("/human")
        await agent.receive()
        await other.send("/human")
        await agent.receive()
        await tester.user.say("first customer here")
        from_tester = await agent.receive()
        await other.say("second customer here")
        await agent.receive()
        # Replying to a forwarded message picks that customer; plain messages go to the
        # customer last forwarded or answered.
        await agent.say("for you, Tester", reply_to=from_tester.message.message_id)
        assert (await tester.receive()).text == "for you, Tester"
        await agent.say("still for you")
        assert (await tester.receive()).text == "still for you"
        await other.say("hello?")
        assert (await agent.receive()).text == "[Bruno] hello?"
        await agent.say("and you, Bruno")
        assert (await other.receive()).text == "and you, Bruno"
        assert await store.handoffs() == {
            tester.user.user_id: agent.user_id,
            other.user_id: agent.user_id,
        }


async def test_handoffs_survive_a_restart() -> None:
    first, second, human_identity = (
        Identity.create(display_name=name, device_name="p", created_at=0)
        for name in ("Ana", "Beto", "Carla")
    )
    store = MemoryBotStore()
    for customer in (first, second):
        await store.set_handoff(customer.user_id, human_identity.user_id)
    bot = support_bot({"id": human_identity.user_id}, store)
    async with BotTestClient(bot) as tester:
        ana = await tester.new_user("Ana", identity=first)
        await tester.new_user("Beto", identity=second)
        carla = await tester.new_user("Carla", identity=human_identity)
        assert bot.handoff.human_for(first.user_id) == human_identity.user_id
        # Nothing forwarded yet since the restart: Carla must pick a customer.
        reply = await carla.send("hello?")
        assert reply.text == "You serve several customers: reply to one of their messages."
        await ana.say("still there?")
        assert (await carla.receive()).text == "[Ana] still there?"
        await carla.say("yes!")
        assert (await ana.receive()).text == "yes!"
