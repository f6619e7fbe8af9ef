"""Running a bot: run()/stop(), signals, sending to strangers, receipts, start failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from omega.bot import Bot, BotConfig, CommandContext, MessageContext
from omega.bot.testing import BotTestClient
from omega.crypto import Identity
from omega.errors import ConfigurationError, UnknownContactError
from omega.storage.message_base import DeliveryState

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def new_bot(config: BotConfig | None = None) -> Bot:
    return Bot(Identity.create(display_name="Bot", device_name="srv", created_at=0), config=config)


async def test_run_until_stop() -> None:
    bot = new_bot()
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: bot.run(handle_signals=False))
        with anyio.fail_after(10):
            while bot._stack is None:
                await anyio.sleep(0.01)
        bot.stop()
    assert bot._stack is None


async def test_send_adds_strangers_and_refuses_blocked_contacts() -> None:
    bot = new_bot()
    stranger = Identity.create(display_name="S", device_name="p", created_at=0)
    async with BotTestClient(bot) as tester:
        sent = await bot.send(stranger.user_id, "hello")
        assert sent.state is DeliveryState.PENDING
        assert (await bot.client.contact(stranger.user_id)).user_id == stranger.user_id
        await bot.client.block(tester.user.user_id)
        with pytest.raises(UnknownContactError):
            await bot.send(tester.user.user_id, "no")


async def test_mark_read_and_silent_errors() -> None:
    bot = new_bot(BotConfig(mark_read=True, error_reply=None, unknown_command_reply=None))

    @bot.command("boom")
    async def boom(ctx: CommandContext) -> None:
        raise ValueError("nope")

    @bot.command("ok")
    async def ok(ctx: CommandContext) -> None:
        await ctx.react("👍")
        await ctx.reply("fine")

    async with BotTestClient(bot) as tester:
        sent = await tester.user.say("/boom")
        await tester.user.expect_silence(0.3)
        with anyio.fail_after(10):
            while True:
                history = await tester.user.client.history(bot.user_id)
                if any(m.message_id == sent and m.state is DeliveryState.READ for m in history):
                    break
                await anyio.sleep(0.02)
        await tester.user.say("/unknown")
        await tester.user.expect_silence(0.3)
        assert (await tester.send("/ok")).text == "fine"


async def test_a_bot_that_cannot_listen_fails_to_start_cleanly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bot = new_bot()
        bot.serve_http(port=taken.getsockname()[1], token="a bearer token of some length")
        with pytest.raises(ConfigurationError, match="cannot listen"):
            async with BotTestClient(bot):
                pass  # pragma: no cover


async def test_handlers_see_extras_and_the_client() -> None:
    bot = new_bot()

    @bot.on_message()
    async def everything(ctx: MessageContext) -> None:
        assert ctx.client is bot.client
        await ctx.reply(f"{ctx.kind}:{ctx.message_id == ctx.message.message_id}")

    async with BotTestClient(bot) as tester:
        assert (await tester.send("x")).text == "text:True"


def test_a_served_bot_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMEGA_PASSPHRASE": "a test passphrase"}
    with subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "echo_bot.py"),
            "--serve",
            str(tmp_path / "bot"),
            "--listen",
            f"/ip4/127.0.0.1/tcp/{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "Echo bot omega://" in line
            assert f"/ip4/127.0.0.1/tcp/{port}/omega/" in line
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            process.kill()
    assert (tmp_path / "bot" / "bot.db").exists()
