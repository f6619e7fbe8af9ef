"""Fuzz the bot's parsing of untrusted input: command lines and webhook signatures.

Run: ``python fuzz/fuzz_bot_commands.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first byte picks the target; the rest is
text (UTF-8, errors replaced) or header and body bytes. Anything but an
OmegaError escaping is a crash, and so is a parsed command whose arguments do
not have their declared types.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from omega.bot.commands import Arg, Command, split_command
from omega.bot.signing import verify
from omega.errors import OmegaError


async def _handler(ctx: Any, product: str, quantity: int = 1, *prices: Decimal) -> None:
    """A command with typed arguments."""


COMMAND = Command.build("order", _handler)
EXPLICIT = Command.build("flag", _handler, args=[Arg("on", bool), Arg("ratio", float, default=1.0)])
SECRET = b"fuzzing secret of sixteen+ bytes"


def _parse(text: str) -> None:
    split = split_command(text)
    if split is None:
        return
    for command in (COMMAND, EXPLICIT):
        try:
            parsed = command.parse(split[1])
        except OmegaError:
            continue
        for spec in command.args:
            value = parsed.arguments[spec.name]
            values = value if spec.rest else (value,)
            for item in values:
                if item is not spec.default and not isinstance(item, spec.type):
                    raise AssertionError(f"{spec.name}={item!r} is not a {spec.type}")


def _verify(data: bytes) -> None:
    timestamp, _, rest = data.partition(b"\n")
    signature, _, body = rest.partition(b"\n")
    try:
        verify(
            SECRET,
            timestamp=timestamp.decode("utf-8", "replace"),
            signature=signature.decode("utf-8", "replace"),
            body=body,
            now=1_700_000_000,
        )
    except OmegaError:
        return
    raise AssertionError("a forged signature was accepted")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Parse ``data`` as a command line or check it as a signed request."""
    if not data:
        return
    if data[0] % 2:
        _verify(data[1:])
    else:
        _parse("/" + data[1:].decode("utf-8", "replace"))


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
