"""Command parsing, argument conversion and help, without a network."""

from __future__ import annotations

import contextlib
import enum
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.bot import Arg, BotConfig
from omega.bot.commands import Command, call_arguments, converter_for, split_command, split_words
from omega.errors import CommandSyntaxError, ConfigurationError


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


async def _handler(ctx: Any, name: str, count: int = 2, *rest: float) -> None:
    """Do things.

    More text that help does not show.
    """


def test_split_command() -> None:
    assert split_command("/ping") == ("ping", "")
    assert split_command("/Ping@bot  a b ") == ("ping", "a b")
    assert split_command("/order\n3 apples") == ("order", "3 apples")
    assert split_command("!ping", "!") == ("ping", "")
    for text in ("ping", "/", "/ ", "/@bot", "/pi.ng", "/@"):
        assert split_command(text) is None


def test_signature_commands() -> None:
    command = Command.build("Do", _handler, aliases=["D"])
    assert command.name == "do"
    assert command.aliases == ("d",)
    assert command.description == "Do things."
    assert command.usage == "/do <name> [count] [rest...]"
    assert "Also: /d" in command.help_text()
    parsed = command.parse("x 5 1.5 2")
    assert parsed.arguments == {"name": "x", "count": 5, "rest": (1.5, 2.0)}
    assert call_arguments(command, parsed) == (("x", 5, 1.5, 2.0), {})
    assert command.parse("x").arguments["count"] == 2
    with pytest.raises(CommandSyntaxError, match="<rest> must be number"):
        command.parse("x 1 y")


def test_explicit_specs_and_converters() -> None:
    command = Command.build(
        "paint",
        _handler,
        description="Paint it",
        args=[
            Arg("colour", Colour, help="which colour"),
            Arg("price", Decimal, default=None),
            Arg("code", lambda text: int(text, 16), default=0),
        ],
    )
    assert command.usage == "/paint <colour> [price] [code]"
    text = command.help_text()
    assert "colour (red|blue): which colour" in text
    assert "code (<lambda>), default 0" in text
    parsed = command.parse("2 9.50 ff")
    assert call_arguments(command, parsed) == (
        (),
        {"colour": Colour.BLUE, "price": Decimal("9.50"), "code": 255},
    )
    assert command.parse("red").arguments["colour"] is Colour.RED
    with pytest.raises(CommandSyntaxError, match=r"must be red\|blue"):
        command.parse("green")
    with pytest.raises(CommandSyntaxError, match=r"<price> must be number, got 'abc"):
        command.parse("red abc")
    with pytest.raises(CommandSyntaxError, match=r"\.\.\.'"):
        command.parse("red " + "9" * 30 + "x" * 30)


def test_converters() -> None:
    assert converter_for(int | None)[1] == "integer"
    assert converter_for(float)[0]("1.5") == 1.5
    convert_bool = converter_for(bool)[0]
    assert [convert_bool(v) for v in ("Yes", "off", "1", "n")] == [True, False, True, False]
    with pytest.raises(ConfigurationError):
        converter_for(int | str)
    with pytest.raises(ConfigurationError):
        converter_for(42)


def test_bad_registrations() -> None:
    with pytest.raises(ConfigurationError, match="letters"):
        Command.build("bad name", _handler)
    with pytest.raises(ConfigurationError, match="identifier"):
        Arg("not valid")
    with pytest.raises(ConfigurationError, match="last argument"):
        Command.build("x", _handler, args=[Arg("a", rest=True), Arg("b")])

    async def keywords(ctx: Any, *, flag: str) -> None: ...

    with pytest.raises(ConfigurationError, match="positional"):
        Command.build("x", keywords)

    async def unresolvable(ctx: Any, value: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    with pytest.raises(ConfigurationError, match="annotations"):
        Command.build("x", unresolvable)


def test_too_many_words() -> None:
    with pytest.raises(CommandSyntaxError, match="too many"):
        split_words("a " * 65)


def test_config_validation() -> None:
    for bad in (
        {"command_prefix": ""},
        {"command_prefix": "a b"},
        {"max_concurrent_handlers": 0},
        {"handler_timeout": 0.0},
        {"recovery_window": 10 * 86400.0, "handled_retention": 5 * 86400.0},
        {"shutdown_timeout": True},
    ):
        with pytest.raises(ConfigurationError):
            BotConfig(**bad)  # type: ignore[arg-type]
    assert BotConfig(handler_timeout=None).handler_timeout is None


@settings(max_examples=100)
@given(st.text(max_size=200))
def test_parsing_any_text_either_works_or_raises_a_syntax_error(text: str) -> None:
    command = Command.build("do", _handler)
    split = split_command("/do " + text)
    assert split is not None
    with contextlib.suppress(CommandSyntaxError):
        command.parse(split[1])
