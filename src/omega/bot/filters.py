"""Message filters for ``@bot.on_message(filter)``, composable with ``&``, ``|`` and ``~``::

@bot.on_message(filters.text(contains="price") & ~filters.sender(ADMIN))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from omega.bot.context import MessageContext
from omega.errors import ConfigurationError

__all__ = ["ALL", "Filter", "command", "content", "regex", "sender", "text"]


class Filter:
    """A named predicate over a :class:`~omega.bot.MessageContext`."""

    __slots__ = ("name", "predicate")

    def __init__(self, predicate: Callable[[MessageContext], bool], name: str = "filter") -> None:
        self.predicate = predicate
        self.name = name

    def __call__(self, ctx: MessageContext) -> bool:
        return bool(self.predicate(ctx))

    def __and__(self, other: Filter) -> Filter:
        return Filter(lambda ctx: self(ctx) and other(ctx), f"({self.name} & {other.name})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(lambda ctx: self(ctx) or other(ctx), f"({self.name} | {other.name})")

    def __invert__(self) -> Filter:
        return Filter(lambda ctx: not self(ctx), f"~{self.name}")

    def __repr__(self) -> str:
        return f"Filter({self.name})"


ALL = Filter(lambda ctx: True, "all")
"""Every message."""


def text(
    *,
    equals: str | None = None,
    contains: str | None = None,
    startswith: str | None = None,
    ignore_case: bool = False,
) -> Filter:
    """Text messages; optionally equal to, containing, or starting with a string."""

    def fold(value: str) -> str:
        return value.casefold() if ignore_case else value

    def check(ctx: MessageContext) -> bool:
        if ctx.kind != "text":
            return False
        body = fold(ctx.text)
        if equals is not None and body != fold(equals):
            return False
        if contains is not None and fold(contains) not in body:
            return False
        return startswith is None or body.startswith(fold(startswith))

    return Filter(check, "text")


def regex(pattern: str | re.Pattern[str], *, flags: int = 0) -> Filter:
    """Text messages in which ``pattern`` matches (``re.search``)."""
    try:
        compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ConfigurationError(f"invalid regular expression: {exc}") from exc
    return Filter(
        lambda ctx: ctx.kind == "text" and compiled.search(ctx.text) is not None,
        f"regex({compiled.pattern!r})",
    )


def content(*kinds: str) -> Filter:
    """Messages of these content kinds (``text``, ``media``, ``location``, ``contact``,
    ``sticker``)."""
    known = {"text", "media", "location", "contact", "sticker"}
    unknown = set(kinds) - known
    if not kinds or unknown:
        raise ConfigurationError(f"content kinds are {sorted(known)}, got {sorted(kinds)}")
    wanted = frozenset(kinds)
    return Filter(lambda ctx: ctx.kind in wanted, f"content({','.join(sorted(wanted))})")


def sender(*user_ids: str | Iterable[str]) -> Filter:
    """Messages from these users."""
    ids: set[str] = set()
    for entry in user_ids:
        ids.update([entry] if isinstance(entry, str) else entry)
    wanted = frozenset(user_id.lower() for user_id in ids)
    return Filter(lambda ctx: ctx.sender_id in wanted, f"sender({len(wanted)})")


def command(prefix: str = "/") -> Filter:
    """Text messages that look like a command (start with ``prefix``)."""
    return Filter(lambda ctx: ctx.kind == "text" and ctx.text.startswith(prefix), "command")
