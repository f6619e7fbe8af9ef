"""Messages received while the bot was down, or not finished when it stopped, are
processed on restart exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import anyio
import pytest

from omega.bot import Bot, BotConfig, MemoryBotStore, MessageContext
from omega.bot.testing import FAST_CLIENT_CONFIG
from omega.client import Client, DataDir, Event, MessageReceived
from omega.crypto import Identity
from omega.mailbox.memory import MemoryStoreServer
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore
from omega.transport import MemoryNetwork, MemoryTransport, TransportRegistry

pytestmark = pytest.mark.anyio


class Setup:
    def __init__(self) -> None:
        self.network = MemoryNetwork()
        self.server = MemoryStoreServer()
        self.identity = Identity.create(display_name="Bot", device_name="srv", created_at=0)
        self.keys, self.messages, self.state = (
            MemoryKeyStore(),
            MemoryMessageStore(),
            MemoryBotStore(),
        )
        self.completed: list[str] = []
        self.block = True
        self.started = anyio.Event()

    def registry(self) -> TransportRegistry:
        registry = TransportRegistry()
        registry.register("memory", lambda: MemoryTransport(self.network))
        return registry

    def bot(self, **options: object) -> Bot:
        mailbox = self.server.client(source="bot")
        bot = Bot(
            self.identity,
            key_store=self.keys,
            message_store=self.messages,
            store=self.state,
            transports=self.registry(),
            listen=["/memory/bot"],
            mailbox=mailbox,
            key_directory=mailbox,
            client_config=FAST_CLIENT_CONFIG,
            config=BotConfig(shutdown_timeout=0.05),
            **options,  # type: ignore[arg-type]
        )

        @bot.on_message()
        async def handle(ctx: MessageContext) -> None:
            if ctx.text == "m1" and self.block:
                self.started.set()
                await anyio.sleep(3600)
            await ctx.reply("done " + ctx.text)
            self.completed.append(ctx.text)

        return bot

    def user(self) -> Client:
        mailbox = self.server.client(source="user")
        return Client(
            identity=Identity.create(display_name="Customer", device_name="p", created_at=0),
            key_store=MemoryKeyStore(),
            message_store=MemoryMessageStore(),
            transports=self.registry(),
            listen=["/memory/user"],
            mailbox=mailbox,
            key_directory=mailbox,
            config=FAST_CLIENT_CONFIG,
        )


async def _replies(events: AsyncIterator[Event], count: int) -> list[str]:
    texts: list[str] = []
    with anyio.fail_after(15):
        async for event in events:
            if isinstance(event, MessageReceived):
                texts.append(event.message.text)
                if len(texts) == count:
                    return texts
    raise AssertionError("events ended")  # pragma: no cover


async def test_stop_mid_stream_and_restart_processes_each_message_once() -> None:
    setup = Setup()
    async with setup.user() as user:
        replies: AsyncGenerator[Event, None] = user.events()  # type: ignore[assignment]
        bot = setup.bot()
        async with bot:
            await user.add_contact(str(bot.contact_uri), addresses=bot.client.addresses)
            await user.send_text(bot.user_id, "m0")
            assert await _replies(replies, 1) == ["done m0"]
            await user.send_text(bot.user_id, "m1")
            with anyio.fail_after(10):
                await setup.started.wait()
            await user.send_text(bot.user_id, "m2")
            await user.send_text(bot.user_id, "m3")
            await user.send_text(bot.user_id, "m4")
            with anyio.fail_after(10):
                while bot.pending < 4:
                    await anyio.sleep(0.01)
            assert setup.completed == ["m0"]
        # The bot is down: m1 was cancelled by the shutdown timeout, m2..m4 never ran.
        for i in range(5, 7):
            await user.send_text(bot.user_id, f"m{i}")
        await anyio.sleep(0.3)
        setup.block = False
        restarted = setup.bot()
        async with restarted:
            with anyio.fail_after(15):
                while len(setup.completed) < 7:
                    await anyio.sleep(0.02)
            assert restarted.handled_count == 6
        await anyio.sleep(0)
        assert Counter(setup.completed) == Counter(f"m{i}" for i in range(7))
        # A third start has nothing left to do.
        async with setup.bot() as third:
            await anyio.sleep(0.3)
            assert third.handled_count == 0
        got = await _replies(replies, 6)
        assert sorted(got) == sorted(f"done m{i}" for i in range(1, 7))
        await replies.aclose()


async def test_a_new_bot_does_not_answer_old_history() -> None:
    setup = Setup()
    setup.block = False
    async with setup.user() as user:
        # The device ran as a plain client first and received a message.
        async with Client(
            identity=setup.identity,
            key_store=setup.keys,
            message_store=setup.messages,
            transports=setup.registry(),
            listen=["/memory/bot"],
            config=FAST_CLIENT_CONFIG,
        ) as plain:
            await user.add_contact(str(plain.contact_uri), addresses=plain.addresses)
            await user.send_text(plain.user_id, "old")
            with anyio.fail_after(10):
                while not await plain.history(user.user_id):
                    await anyio.sleep(0.02)
        async with setup.bot() as bot:
            await user.send_text(bot.user_id, "new")
            with anyio.fail_after(10):
                while not setup.completed:
                    await anyio.sleep(0.02)
        assert setup.completed == ["new"]


async def test_from_data_dir_keeps_state_in_bot_db(tmp_path: Path) -> None:
    identity = Identity.create(display_name="Bot", device_name="srv", created_at=0)
    DataDir(tmp_path).save_identity(identity, "a long passphrase")
    for expected in (None, "remembered"):
        bot = await Bot.from_data_dir(tmp_path, passphrase="a long passphrase")
        async with bot:
            assert (await bot.store.load_state("someone")).get("note") == expected
            await bot.store.save_state("someone", {"note": "remembered"})
    data = (tmp_path / "bot.db").read_bytes()
    assert b"remembered" not in data
