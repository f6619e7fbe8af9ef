"""Configuration of a :class:`~omega.bot.Bot`."""

from __future__ import annotations

from dataclasses import dataclass

from omega.errors import ConfigurationError

__all__ = ["BotConfig"]


def _check(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be a number in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BotConfig:
    """Settings of a bot. Times are seconds; a reply template set to ``None`` sends nothing."""

    command_prefix: str = "/"
    """What starts a command."""
    max_concurrent_handlers: int = 32
    """Handlers running at the same time (messages of one conversation run one at a time)."""
    max_pending: int = 10_000
    """Messages waiting for a handler; beyond it the client's inbound path waits (backpressure)."""
    handler_timeout: float | None = 60.0
    """A handler running longer is cancelled and answered with ``error_reply``."""
    error_reply: str | None = "Sorry, something went wrong. Please try again later."
    """Sent when a handler raises (the bot logs the error and keeps serving)."""
    unknown_command_reply: str | None = "Unknown command /{name}. Send /help for the list."
    """Sent for a command nobody registered (``{name}`` is replaced)."""
    syntax_error_reply: str | None = "Sorry, {error}"
    """Sent for malformed command arguments (``{error}`` is replaced)."""
    help_command: bool = True
    """Generate ``/help`` unless the bot defines it."""
    help_header: str = "Commands:"
    """First line of the generated ``/help``."""
    shutdown_timeout: float = 10.0
    """On stop, how long running handlers may take to finish before they are cancelled."""
    recovery_window: float = 24 * 3600.0
    """On start, how far before the checkpoint unhandled messages are looked for."""
    handled_retention: float = 30 * 24 * 3600.0
    """How long handled message ids are remembered."""
    mark_read: bool = False
    """Mark each handled message read (sends the sender a read receipt)."""

    def __post_init__(self) -> None:
        if not self.command_prefix or any(c.isspace() for c in self.command_prefix):
            raise ConfigurationError("command_prefix must be a non-empty word")
        _check("max_concurrent_handlers", self.max_concurrent_handlers, 1, 100_000)
        _check("max_pending", self.max_pending, 1, 10_000_000)
        if self.handler_timeout is not None:
            _check("handler_timeout", self.handler_timeout, 0.001, 86400)
        _check("shutdown_timeout", self.shutdown_timeout, 0, 3600)
        _check("recovery_window", self.recovery_window, 0, 365 * 86400)
        _check("handled_retention", self.handled_retention, 3600, 3650 * 86400)
        if self.handled_retention < self.recovery_window:
            raise ConfigurationError("handled_retention must cover recovery_window")
