"""The Bot SDK example of the original plan (Phase 8): /help, /status and /ping.

Run: python examples/help_status_ping_bot.py
    Demo (the default): starts the bot and a simulated user in memory, prints the
    conversation, exits.
Run: python examples/help_status_ping_bot.py --serve DATA_DIR [--listen ADDRESS]
    Runs the bot for real until Ctrl-C (passphrase from $OMEGA_PASSPHRASE).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import anyio

from omega.bot import Bot, CommandContext, logging_middleware, rate_limit
from omega.bot.testing import BotTestClient
from omega.client import DataDir
from omega.crypto import Identity

STARTED = time.monotonic()


def register(bot: Bot) -> None:
    """Commands; /help is generated from them."""
    bot.use(logging_middleware())
    bot.use(rate_limit(rate=2.0, burst=10))

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        """Check that the bot answers."""
        await ctx.reply("pong")

    @bot.command("status")
    async def status(ctx: CommandContext) -> None:
        """Uptime and how many messages the bot handled."""
        uptime = time.monotonic() - STARTED
        await ctx.reply(f"Up {uptime:.0f} s, {ctx.bot.handled_count} messages handled")

    @bot.command("echo")
    async def echo(ctx: CommandContext, *words: str) -> None:
        """Repeat the words (quote to keep spaces)."""
        await ctx.reply(" | ".join(words) or "(nothing)")


async def demo() -> None:
    logging.getLogger("omega").setLevel(logging.ERROR)
    bot = Bot(Identity.create(display_name="Helper", device_name="server", created_at=0))
    register(bot)
    async with BotTestClient(bot) as user:
        for text in ("/help", "/ping", "/status", '/echo one "two words"', "/dance"):
            print(f"> {text}")
            reply = await user.send(text)
            for line in reply.text.splitlines():
                print(f"< {line}")


async def serve(data_dir: str, listen: str) -> None:
    passphrase = os.environ.get("OMEGA_PASSPHRASE", "change this passphrase")
    directory = DataDir(Path(data_dir))
    if not directory.exists():
        now = int(time.time() * 1000)
        identity = Identity.create(display_name="Helper", device_name="server", created_at=now)
        directory.save_identity(identity, passphrase)
    bot = await Bot.from_data_dir(data_dir, passphrase=passphrase, listen=[listen])
    register(bot)
    logging.basicConfig(level=logging.INFO)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(bot.run)
        await bot.started.wait()
        addresses = ", ".join(str(address) for address in bot.client.addresses)
        print(f"Bot {bot.contact_uri} listening on {addresses}; Ctrl-C stops it", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", metavar="DATA_DIR", help="run for real from DATA_DIR")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/7451")
    args = parser.parse_args()
    if args.serve:
        anyio.run(serve, args.serve, args.listen)
    else:
        anyio.run(demo)


if __name__ == "__main__":
    main()
