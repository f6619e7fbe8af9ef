"""A sales agent bot: answers stock questions from an ERP, takes orders, hands a
customer to a human seller when it cannot help, and relays ERP notifications.

The ERP here is a stub served locally over HTTP: the bot asks it for stock
(GET /stock/<product>), posts every incoming message to it as a signed webhook,
and the ERP pushes a delivery notice through the bot's authenticated HTTP endpoint.

Run: python examples/sales_agent_bot.py
    Demo (the default): the ERP stub, the bot, a customer and a human seller run in
    this process; prints the conversation, exits.
"""

from __future__ import annotations

import json
import logging
import re
import time
from decimal import Decimal

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from omega.bot import Bot, CommandContext, InboundEndpoint, MessageContext, filters
from omega.bot.signing import verify
from omega.bot.testing import BotTestClient, TestUser
from omega.crypto import Identity
from omega.errors import AuthenticationFailedError

WEBHOOK_SECRET = b"shared between the bot and the ERP"
API_TOKEN = "erp-to-bot token, keep it secret"
ORDER_PATTERN = re.compile(r"(?i)(\d+)\s+(?:boxes|caixas)\s+(?:of|de)\s+(\w+)")


class ErpStub:
    """Stock levels, prices, and a webhook inbox, over HTTP."""

    def __init__(self) -> None:
        self.stock = {"tomato": (120, Decimal("49.00")), "lettuce": (0, Decimal("30.00"))}
        self.webhook_events: list[dict[str, object]] = []
        self.app = Starlette(
            routes=[
                Route("/stock/{product}", self.get_stock, methods=["GET"]),
                Route("/omega-webhook", self.webhook, methods=["POST"]),
            ]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=0, log_config=None)
        )

    async def get_stock(self, request: Request) -> JSONResponse:
        product = request.path_params["product"].lower()
        available, price = self.stock.get(product, (0, Decimal(0)))
        return JSONResponse({"product": product, "available": available, "price": str(price)})

    async def webhook(self, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(
                WEBHOOK_SECRET,
                timestamp=request.headers.get("Omega-Timestamp"),
                signature=request.headers.get("Omega-Signature"),
                body=body,
                now=time.time(),
            )
        except AuthenticationFailedError as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        self.webhook_events.append(json.loads(body))
        return JSONResponse({"ok": True})

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


def sales_bot(
    erp_url: str, http: httpx.AsyncClient, seller_id: dict[str, str]
) -> tuple[Bot, InboundEndpoint]:
    """The bot, and its HTTP endpoint for the ERP."""
    bot = Bot(Identity.create(display_name="VendaX Agent", device_name="server", created_at=0))
    bot.add_webhook(erp_url + "/omega-webhook", secret=WEBHOOK_SECRET)
    endpoint = bot.serve_http(token=API_TOKEN)

    async def stock(product: str) -> tuple[int, Decimal]:
        answer = (await http.get(f"{erp_url}/stock/{product}")).json()
        return int(answer["available"]), Decimal(answer["price"])

    @bot.on_message(filters.regex(ORDER_PATTERN))
    async def order_request(ctx: MessageContext) -> None:
        match = ORDER_PATTERN.search(ctx.text)
        assert match is not None
        quantity, product = int(match.group(1)), match.group(2).lower()
        available, price = await stock(product)
        if available >= quantity:
            total = price * quantity
            await ctx.save_state({"order": {"product": product, "quantity": quantity}})
            await ctx.reply(
                f"We have {available} boxes of {product} in stock. Total: R$ {total:,.2f}. "
                "Send /confirm to place the order."
            )
        else:
            await ctx.reply(f"We only have {available} boxes of {product}; let me get a seller.")
            reason = f"wants {quantity} boxes of {product}, {available} in stock"
            await ctx.transfer_to_human(seller_id["id"], reason=reason)

    @bot.command("confirm")
    async def confirm(ctx: CommandContext) -> None:
        """Confirm the order the bot offered."""
        async with ctx.state() as state:
            order = state.pop("order", None)
            if order is None:
                await ctx.reply("There is no order to confirm.")
                return
            state["orders"] = state.get("orders", 1000) + 1
        await ctx.reply(
            f"Order #{state['orders']} confirmed: {order['quantity']} boxes of {order['product']}."
        )

    @bot.command("stock")
    async def stock_command(ctx: CommandContext, product: str) -> None:
        """How many boxes of a product are in stock."""
        available, price = await stock(product)
        await ctx.reply(f"{product}: {available} boxes at R$ {price} each")

    @bot.command("human")
    async def human(ctx: CommandContext) -> None:
        """Talk to a person."""
        await ctx.transfer_to_human(seller_id["id"], reason="asked for a person")

    return bot, endpoint


async def say(user: TestUser, name: str, text: str) -> None:
    print(f"{name} -> bot: {text}")
    await user.say(text)


async def hear(user: TestUser, name: str) -> str:
    reply = await user.receive()
    print(f"bot -> {name}: {reply.text}")
    return reply.text


async def demo() -> None:
    logging.getLogger("omega").setLevel(logging.CRITICAL)
    erp = ErpStub()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(erp.server.serve)
        while not erp.server.started:
            await anyio.sleep(0.01)
        seller_id: dict[str, str] = {}
        http = httpx.AsyncClient(timeout=5)
        bot, endpoint = sales_bot(erp.url, http, seller_id)
        async with http, BotTestClient(bot, user_name="Distribuidora Silva") as tester:
            customer = tester.user
            seller = await tester.new_user("Marina (seller)")
            seller_id["id"] = seller.user_id
            await say(customer, "Customer", "Hi! I need 50 boxes of tomato")
            await hear(customer, "Customer")
            await say(customer, "Customer", "/confirm")
            await hear(customer, "Customer")
            await say(customer, "Customer", "And 30 boxes of lettuce?")
            await hear(customer, "Customer")
            await hear(customer, "Customer")
            await hear(seller, "Seller")
            await say(
                seller,
                "Seller",
                "Lettuce ran out today, more arrives tomorrow at 2 pm. Reserve it?",
            )
            await hear(customer, "Customer")
            await say(customer, "Customer", "Yes please, reserve 30.")
            await hear(seller, "Seller")
            await say(seller, "Seller", "/release")
            await hear(customer, "Customer")
            await hear(seller, "Seller")
            # The ERP notifies the customer through the bot's HTTP endpoint.
            notice = "Your order #1001 left for delivery. ETA 14h-16h"
            print(f"ERP -> bot (HTTP): {notice}")
            answer = await http.post(
                endpoint.url + "/v1/messages",
                json={"to": customer.user_id, "text": notice},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
            answer.raise_for_status()
            await hear(customer, "Customer")
            with anyio.fail_after(5):
                while len(erp.webhook_events) < 5:
                    await anyio.sleep(0.01)
        print(f"ERP received {len(erp.webhook_events)} signed webhook events")
        erp.server.should_exit = True


if __name__ == "__main__":
    anyio.run(demo)
