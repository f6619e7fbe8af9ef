"""Human handoff: a bot hands a customer's conversation to a human contact and takes it back.

While a customer is handed to a human:

* every message from the customer is forwarded to the human (texts prefixed
  with ``[customer name]``), and no bot handler runs for it;
* every message from the human goes to the customer through the bot (the
  customer keeps talking to the bot's identity). A human serving several
  customers chooses one by replying (quoting) a forwarded message; otherwise
  the customer last forwarded to them or last answered by them gets it;
* the human sends ``/release`` to give the customer back to the bot and
  ``/customers`` to list whom they are serving.

Both sides are told when a conversation changes hands. Handoffs are kept in
the :class:`~omega.bot.base.BotStore`, so they survive restarts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from omega.bot.context import MessageContext
from omega.errors import ConfigurationError
from omega.protocol import MessageContent

if TYPE_CHECKING:  # pragma: no cover
    from omega.bot._bot import Bot

__all__ = ["Handoff"]

logger = logging.getLogger("omega.bot")

_MAX_FORWARDED = 10_000


class Handoff:
    """The handoffs of one bot (``bot.handoff``). Templates may be changed before start."""

    customer_notice = "You are now talking to {human}, a member of our team."
    human_notice = (
        "{customer} has been handed to you{reason}. Your messages go to them; reply to one of "
        "their messages to choose whom to answer. Send /release when you are done."
    )
    customer_release_notice = "You are back with the assistant. Thanks for your patience!"
    human_release_notice = "{customer} is back with the bot."
    release_command = "/release"
    list_command = "/customers"

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._active: dict[str, str] = {}
        self._last_customer: dict[str, str] = {}
        self._forwarded: OrderedDict[str, str] = OrderedDict()

    async def load(self) -> None:
        """Read the handoffs from the bot store (on start)."""
        self._active = await self._bot.store.handoffs()

    @property
    def active(self) -> dict[str, str]:
        """Customer user id -> human user id, for conversations a human handles."""
        return dict(self._active)

    def human_for(self, customer_id: str) -> str | None:
        """The human handling ``customer_id``, or ``None`` (the bot handles them)."""
        return self._active.get(customer_id.lower())

    async def _name(self, user_id: str) -> str:
        try:
            contact = await self._bot.client.contact(user_id)
        except ConfigurationError:  # pragma: no cover - user ids are checked before
            return user_id[:16]
        except Exception:
            return user_id[:16]
        return contact.display_name or user_id[:16]

    async def transfer(self, customer_id: str, human_id: str, *, reason: str = "") -> None:
        """Hand ``customer_id`` to ``human_id`` and tell both."""
        customer_id, human_id = customer_id.lower(), human_id.lower()
        if customer_id == human_id:
            raise ConfigurationError("a customer cannot be handed to themselves")
        if human_id == self._bot.user_id:
            raise ConfigurationError("hand the customer to a human, not to the bot")
        await self._bot.store.set_handoff(customer_id, human_id)
        self._active[customer_id] = human_id
        self._last_customer[human_id] = customer_id
        logger.info("event=bot_handoff customer=%s human=%s", customer_id[:20], human_id[:20])
        customer, human = await self._name(customer_id), await self._name(human_id)
        await self._bot.send(customer_id, self.customer_notice.format(human=human))
        await self._bot.send(
            human_id,
            self.human_notice.format(customer=customer, reason=f" ({reason})" if reason else ""),
        )

    async def release(self, customer_id: str) -> None:
        """Give ``customer_id`` back to the bot and tell both (nothing if not handed off)."""
        customer_id = customer_id.lower()
        human_id = self._active.pop(customer_id, None)
        if human_id is None:
            return
        await self._bot.store.set_handoff(customer_id, None)
        if self._last_customer.get(human_id) == customer_id:
            del self._last_customer[human_id]
        logger.info("event=bot_handback customer=%s human=%s", customer_id[:20], human_id[:20])
        await self._bot.send(customer_id, self.customer_release_notice)
        customer = await self._name(customer_id)
        await self._bot.send(human_id, self.human_release_notice.format(customer=customer))

    async def route(self, ctx: MessageContext) -> bool:
        """Forward ``ctx`` if it belongs to a handed-off conversation; return whether it did."""
        human_id = self._active.get(ctx.sender_id)
        if human_id is not None:
            await self._forward_to_human(ctx, human_id)
            return True
        customers = [c for c, h in self._active.items() if h == ctx.sender_id]
        if not customers:
            return False
        await self._from_human(ctx, customers)
        return True

    async def _forward_to_human(self, ctx: MessageContext, human_id: str) -> None:
        if ctx.kind == "text":
            name = await self._name(ctx.sender_id)
            content: MessageContent | str = f"[{name}] {ctx.text}"
        else:
            content = dataclasses.replace(ctx.content, reply_to=None)
        sent = await self._bot.send(human_id, content)
        self._forwarded[sent.message_id] = ctx.sender_id
        if len(self._forwarded) > _MAX_FORWARDED:
            self._forwarded.popitem(last=False)
        self._last_customer[human_id] = ctx.sender_id

    async def _from_human(self, ctx: MessageContext, customers: list[str]) -> None:
        human_id = ctx.sender_id
        target = self._forwarded.get(ctx.message.reply_to or "")
        if target not in customers:
            last = self._last_customer.get(human_id)
            target = last if last in customers else customers[0] if len(customers) == 1 else None
        command = ctx.text.strip().lower() if ctx.kind == "text" else ""
        if command == self.list_command:
            names = [f"{await self._name(c)} ({c[:16]})" for c in customers]
            await ctx.reply("You are serving: " + ", ".join(names))
            return
        if target is None:
            await ctx.reply("You serve several customers: reply to one of their messages.")
            return
        if command == self.release_command:
            await self.release(target)
            return
        content: MessageContent | str = (
            ctx.text if ctx.kind == "text" else dataclasses.replace(ctx.content, reply_to=None)
        )
        await self._bot.send(target, content)
        self._last_customer[human_id] = target
