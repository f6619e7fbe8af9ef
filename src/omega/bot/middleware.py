"""Middleware: code around every handler call.

A middleware is ``async def mw(ctx, call_next) -> None``: it may inspect or
change ``ctx``, answer and return without calling ``call_next()`` (the
message is then handled), or call it to go on. They run in the order added,
before commands, handoff forwarding and message handlers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from omega.bot.context import MessageContext
from omega.errors import ConfigurationError

__all__ = ["Middleware", "NextHandler", "allow_list", "logging_middleware", "rate_limit"]

NextHandler = Callable[[], Awaitable[None]]
Middleware = Callable[[MessageContext, NextHandler], Awaitable[None]]


def logging_middleware(logger: logging.Logger | None = None) -> Middleware:
    """Log one ``key=value`` line per message: sender, kind, outcome and duration."""
    log = logger or logging.getLogger("omega.bot")

    async def middleware(ctx: MessageContext, call_next: NextHandler) -> None:
        started = time.perf_counter()
        outcome = "error"
        try:
            await call_next()
            outcome = "ok"
        finally:
            log.info(
                "event=bot_message sender=%s message=%s kind=%s outcome=%s ms=%.1f",
                ctx.sender_id[:20],
                ctx.message_id,
                ctx.kind,
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    return middleware


def allow_list(
    user_ids: Iterable[str], *, reply: str | None = "Sorry, this bot is private."
) -> Middleware:
    """Only these users reach the handlers; others get ``reply`` (None: silence)."""
    allowed = frozenset(user_id.lower() for user_id in user_ids)

    async def middleware(ctx: MessageContext, call_next: NextHandler) -> None:
        if ctx.sender_id in allowed:
            await call_next()
        elif reply is not None:
            await ctx.reply(reply)

    return middleware


class _Bucket:
    __slots__ = ("tokens", "updated", "warned")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.warned = False


def rate_limit(
    *,
    rate: float = 1.0,
    burst: int = 5,
    reply: str | None = "You are sending messages too fast; please wait a moment.",
    max_users: int = 100_000,
    clock: Callable[[], float] = time.monotonic,
) -> Middleware:
    """Per-user token bucket: ``rate`` messages a second, bursts of ``burst``.

    Messages over the limit are dropped (they count as handled); the sender
    gets ``reply`` once per burst of drops. Memory is bounded: at most
    ``max_users`` buckets, the least recently seen forgotten first.
    """
    if rate <= 0 or burst < 1 or max_users < 1:
        raise ConfigurationError("rate_limit needs rate > 0, burst >= 1 and max_users >= 1")
    buckets: OrderedDict[str, _Bucket] = OrderedDict()
    log = logging.getLogger("omega.bot")

    async def middleware(ctx: MessageContext, call_next: NextHandler) -> None:
        now = clock()
        bucket = buckets.get(ctx.sender_id)
        if bucket is None:
            bucket = buckets[ctx.sender_id] = _Bucket(float(burst), now)
            if len(buckets) > max_users:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(ctx.sender_id)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.warned = False
            await call_next()
            return
        log.info("event=bot_rate_limited sender=%s", ctx.sender_id[:20])
        if not bucket.warned and reply is not None:
            bucket.warned = True
            await ctx.reply(reply)

    return middleware
