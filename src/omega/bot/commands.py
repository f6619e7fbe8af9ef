"""Bot commands: parsing ``/name arg "quoted arg"``, typed arguments, generated help.

A command's arguments come from its handler's signature (after the context)::

    @bot.command("stock")
    async def stock(ctx: CommandContext, sku: str, quantity: int = 1) -> None: ...

or from explicit :class:`Arg` specs. Text after the name is split like a POSIX
shell (``shlex``): quotes group words, a backslash escapes. Supported types:
``str``, ``int``, ``float``, ``bool`` (yes/no, true/false, on/off, 1/0),
:class:`decimal.Decimal`, any :class:`enum.Enum` (by name or value), ``X | None``
and any callable ``str -> value`` raising :class:`ValueError`. A final
``*words: str`` parameter takes the remaining words.
"""

from __future__ import annotations

import enum
import inspect
import shlex
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from omega.errors import CommandSyntaxError, ConfigurationError

__all__ = [
    "REQUIRED",
    "Arg",
    "Command",
    "ParsedCommand",
    "split_command",
]

MAX_ARGUMENTS = 64
"""Most words a command line may have."""


class _Required(enum.Enum):
    REQUIRED = "REQUIRED"


REQUIRED = _Required.REQUIRED
"""The default of an :class:`Arg` that must be given."""

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected yes or no")


def _to_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError("expected a number") from exc
    if not value.is_finite():
        raise ValueError("expected a finite number")
    return value


def _enum_converter(kind: type[enum.Enum]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        for member in kind:
            if text.lower() in (member.name.lower(), str(member.value).lower()):
                return member
        raise ValueError("expected one of " + ", ".join(m.name.lower() for m in kind))

    return convert


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", "value")


def converter_for(annotation: Any) -> tuple[Callable[[str], Any], str]:
    """The converter and a type name for a parameter annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return converter_for(options[0])
        raise ConfigurationError(f"unsupported argument type {annotation!r}")
    if annotation is inspect.Parameter.empty or annotation is str or annotation is Any:
        return str, "text"
    if annotation is bool:
        return _to_bool, "yes/no"
    if annotation is int:
        return int, "integer"
    if annotation is float:
        return float, "number"
    if annotation is Decimal:
        return _to_decimal, "number"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_converter(annotation), "|".join(m.name.lower() for m in annotation)
    if callable(annotation):
        return annotation, _type_name(annotation)
    raise ConfigurationError(f"unsupported argument type {annotation!r}")


@dataclass(frozen=True, slots=True)
class Arg:
    """An explicit argument spec: ``Arg("quantity", int, default=1, help="boxes")``."""

    name: str
    """The handler's keyword argument that receives the value."""
    type: Any = str
    """A supported type or a converter ``str -> value`` (raising ValueError)."""
    default: Any = REQUIRED
    """The value when the argument is missing; :data:`REQUIRED` if it must be given."""
    help: str = ""
    """One line for ``/help``."""
    rest: bool = False
    """Take every remaining word (a tuple of converted values)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigurationError(f"argument name {self.name!r} is not an identifier")


def split_command(text: str, prefix: str = "/") -> tuple[str, str] | None:
    """``("name", "rest of the line")`` when ``text`` is a command, else ``None``.

    ``/Stock@shop 12`` -> ``("stock", "12")``: names are case-insensitive and an
    ``@botname`` suffix is ignored.
    """
    if not text.startswith(prefix):
        return None
    parts = text[len(prefix) :].split(None, 1)
    if not parts:
        return None
    name = parts[0].partition("@")[0].lower()
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        return None
    return name, parts[1].strip() if len(parts) > 1 else ""


def split_words(rest: str) -> list[str]:
    """The words of an argument line, shell-style; :class:`CommandSyntaxError` on bad quoting."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise CommandSyntaxError(f"cannot read the arguments: {exc}") from exc
    if len(words) > MAX_ARGUMENTS:
        raise CommandSyntaxError(f"too many arguments (at most {MAX_ARGUMENTS})")
    return words


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A command line parsed against its :class:`Command`."""

    name: str
    words: tuple[str, ...]
    arguments: dict[str, Any]


@dataclass(slots=True)
class Command:
    """A registered command: its name, handler, arguments and help."""

    name: str
    handler: Callable[..., Any]
    description: str = ""
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    hidden: bool = False
    positional: bool = False
    _converters: list[tuple[Arg, Callable[[str], Any], str]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        name: str,
        handler: Callable[..., Any],
        *,
        description: str | None = None,
        args: Sequence[Arg] | None = None,
        aliases: Sequence[str] = (),
        hidden: bool = False,
    ) -> Command:
        """A command whose argument specs come from ``args`` or ``handler``'s signature."""
        for label in (name, *aliases):
            if not label or not all(c.isalnum() or c in "_-" for c in label):
                raise ConfigurationError(f"command name {label!r} must be letters, digits, _ or -")
        if description is None:
            description = (inspect.getdoc(handler) or "").split("\n", 1)[0]
        specs = tuple(args) if args is not None else _specs_from_signature(handler)
        command = cls(
            name=name.lower(),
            handler=handler,
            description=description,
            args=specs,
            aliases=tuple(a.lower() for a in aliases),
            hidden=hidden,
            positional=args is None,
        )
        for index, spec in enumerate(specs):
            if spec.rest and index != len(specs) - 1:
                raise ConfigurationError("only the last argument may take the rest")
            convert, type_name = converter_for(spec.type)
            command._converters.append((spec, convert, type_name))
        return command

    @property
    def usage(self) -> str:
        """``/name <required> [optional] [words...]``."""
        parts = [f"/{self.name}"]
        for spec, _, _ in self._converters:
            label = spec.name + ("..." if spec.rest else "")
            required = spec.default is REQUIRED and not spec.rest
            parts.append(f"<{label}>" if required else f"[{label}]")
        return " ".join(parts)

    def help_text(self) -> str:
        """Usage, description and one line per argument."""
        lines = [self.usage]
        if self.description:
            lines.append(self.description)
        for spec, _, type_name in self._converters:
            line = f"  {spec.name} ({type_name})"
            if spec.default is not REQUIRED and spec.default is not None:
                line += f", default {spec.default}"
            if spec.help:
                line += f": {spec.help}"
            lines.append(line)
        if self.aliases:
            lines.append("Also: " + ", ".join("/" + alias for alias in self.aliases))
        return "\n".join(lines)

    def parse(self, rest: str) -> ParsedCommand:
        """Convert the argument line; :class:`CommandSyntaxError` names what is wrong."""
        words = split_words(rest)
        arguments: dict[str, Any] = {}
        remaining = list(words)
        for spec, convert, type_name in self._converters:
            if spec.rest:
                arguments[spec.name] = tuple(
                    _convert(spec, convert, type_name, word) for word in remaining
                )
                remaining = []
            elif remaining:
                arguments[spec.name] = _convert(spec, convert, type_name, remaining.pop(0))
            elif spec.default is REQUIRED:
                raise CommandSyntaxError(
                    f"missing <{spec.name}>. Usage: {self.usage}",
                    details={"argument": spec.name},
                )
            else:
                arguments[spec.name] = spec.default
        if remaining:
            raise CommandSyntaxError(
                f"too many arguments. Usage: {self.usage}", details={"extra": len(remaining)}
            )
        return ParsedCommand(name=self.name, words=tuple(words), arguments=arguments)


def call_arguments(
    command: Command, parsed: ParsedCommand
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments to call ``command.handler`` with (after the context)."""
    if not command.positional:
        return (), dict(parsed.arguments)
    positional: list[Any] = []
    for spec in command.args:
        value = parsed.arguments[spec.name]
        if spec.rest:
            positional.extend(value)
        else:
            positional.append(value)
    return tuple(positional), {}


def _convert(spec: Arg, convert: Callable[[str], Any], type_name: str, word: str) -> Any:
    try:
        return convert(word)
    except (ValueError, TypeError, ArithmeticError) as exc:
        shown = word if len(word) <= 40 else word[:40] + "..."
        raise CommandSyntaxError(
            f"<{spec.name}> must be {type_name}, got {shown!r}",
            details={"argument": spec.name},
        ) from exc


def _specs_from_signature(handler: Callable[..., Any]) -> tuple[Arg, ...]:
    signature = inspect.signature(handler)
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:
        raise ConfigurationError(f"cannot read the annotations of {handler!r}: {exc}") from exc
    parameters = list(signature.parameters.values())[1:]  # the first is the context
    specs: list[Arg] = []
    for parameter in parameters:
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            specs.append(Arg(parameter.name, annotation, default=(), rest=True))
        elif parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            default = (
                REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
            )
            specs.append(Arg(parameter.name, annotation, default=default))
        else:
            raise ConfigurationError(
                f"command handler parameter {parameter.name!r} must be positional "
                "(or describe the arguments with Arg specs)"
            )
    return tuple(specs)
