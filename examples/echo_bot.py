"""An echo bot: answers every text with the same text.

Run: python examples/echo_bot.py
    Demo (the default): starts the bot and a simulated customer in memory, prints the
    conversation, exits.
Run: python examples/echo_bot.py --serve DATA_DIR [--listen /ip4/0.0.0.0/tcp/7450]
    Runs the bot for real (identity and state in DATA_DIR, created on first run; the
    passphrase comes from $OMEGA_PASSPHRASE) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import anyio

from omega.bot import Bot, MessageContext, filters
from omega.bot.testing import BotTestClient
from omega.client import DataDir
from omega.crypto import Identity


def register(bot: Bot) -> None:
    """The bot's behaviour, the same in demo and real mode."""

    @bot.on_message(filters.text())
    async def echo(ctx: MessageContext) -> None:
        await ctx.reply(ctx.text)

    @bot.on_message()
    async def other(ctx: MessageContext) -> None:
        await ctx.reply(f"I only echo texts (got a {ctx.kind})")


async def demo() -> None:
    logging.getLogger("omega").setLevel(logging.ERROR)  # connections closing at exit are noisy
    bot = Bot(Identity.create(display_name="Echo", device_name="server", created_at=0))
    register(bot)
    async with BotTestClient(bot) as customer:
        for text in ("Hello, bot!", "Olá, tudo bem?", "🦜"):
            print(f"Customer: {text}")
            reply = await customer.send(text)
            print(f"Echo:     {reply.text}")


async def serve(data_dir: str, listen: str) -> None:
    passphrase = os.environ.get("OMEGA_PASSPHRASE", "change this passphrase")
    directory = DataDir(Path(data_dir))
    if not directory.exists():
        identity = Identity.create(
            display_name="Echo", device_name="server", created_at=int(time.time() * 1000)
        )
        directory.save_identity(identity, passphrase)
    bot = await Bot.from_data_dir(data_dir, passphrase=passphrase, listen=[listen])
    register(bot)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(bot.run)
        await bot.started.wait()
        addresses = ", ".join(str(address) for address in bot.client.addresses)
        print(f"Echo bot {bot.contact_uri} listening on {addresses}; Ctrl-C stops it", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", metavar="DATA_DIR", help="run for real from DATA_DIR")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/7450")
    args = parser.parse_args()
    if args.serve:
        anyio.run(serve, args.serve, args.listen)
    else:
        anyio.run(demo)


if __name__ == "__main__":
    main()
