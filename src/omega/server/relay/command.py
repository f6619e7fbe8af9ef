"""``omega serve relay``: run a relay server (docs/servers.md, "Relay").

Settings come, each overriding the one before, from the defaults of
:class:`~omega.server.relay.RelayServerConfig`, the ``[relay]`` table of the
TOML file given with ``--config``, ``OMEGA_RELAY_<SETTING>`` environment
variables (``OMEGA_RELAY_PORT=8080``, ``OMEGA_RELAY_REDIS_URL=redis://...``),
and the command-line options. Logs are one ``key=value`` line per event on
standard error. SIGINT or SIGTERM stops the relay gracefully: it refuses new
sessions, lets open ones finish for ``shutdown_grace`` seconds, then closes.

Only the standard library is imported here, so ``omega --help`` works
without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

__all__ = ["HELP", "configure", "load_settings", "run"]

HELP = "relay secure-channel frames between devices that cannot reach each other"
"""One line for ``omega serve --help``."""

ENV_PREFIX = "OMEGA_RELAY_"
"""Environment variables ``OMEGA_RELAY_<SETTING>`` set any setting."""

_FLAGS = {
    "host": "interface to bind (default 127.0.0.1)",
    "port": "WebSocket, /health and /metrics port (default 8080; 0: ephemeral)",
    "tcp_port": "TCP port of the length-prefixed listener (default: none)",
    "relay_id": "name of the deployment, the same on every relay process",
    "redis_url": "Redis shared by the relay processes (redis://...)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the relay's options to ``parser``."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file with a [relay] table")
    for name, text in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=text)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING or ERROR")


def _convert(name: str, text: object, kind: Any) -> object:
    """Turn a TOML or environment value into the type of setting ``name``."""
    from omega.errors import ConfigurationError

    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    base = next(arg for arg in typing.get_args(kind) if arg is not type(None)) if optional else kind
    if optional and text in ("", "none", None):
        return None
    if not isinstance(text, str):
        return text  # TOML already typed it; the config validates it
    try:
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {text!r}") from None
    return text


def load_settings(
    config_file: Path | None, environ: Mapping[str, str], flags: Mapping[str, object]
) -> dict[str, object]:
    """Merge the TOML file, environment and flags into RelayServerConfig keyword arguments."""
    from omega.errors import ConfigurationError
    from omega.server.relay import RelayServerConfig

    hints = typing.get_type_hints(RelayServerConfig)
    names = {field.name for field in dataclasses.fields(RelayServerConfig)}
    settings: dict[str, object] = {}
    if config_file is not None:
        try:
            document = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read {config_file}: {exc}") from exc
        table = document.get("relay", {})
        if not isinstance(table, dict):
            raise ConfigurationError(f"{config_file}: [relay] must be a table")
        unknown = sorted(set(table) - names)
        if unknown:
            raise ConfigurationError(f"{config_file}: unknown relay settings {unknown}")
        settings.update({key: _convert(key, value, hints[key]) for key, value in table.items()})
    for name in sorted(names):
        if (text := environ.get(ENV_PREFIX + name.upper())) is not None:
            settings[name] = _convert(name, text, hints[name])
    for name, flag in flags.items():
        if flag is not None:
            settings[name] = _convert(name, flag, hints[name])
    return settings


def _setup_logging(level_name: str) -> None:
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        from omega.errors import ConfigurationError

        raise ConfigurationError(f"unknown log level {level_name!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger("omega")
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the relay until SIGINT or SIGTERM; return the exit status."""
    from omega.errors import ConfigurationError

    try:
        import anyio

        from omega.server.relay import RelayServer, RelayServerConfig
    except ImportError as exc:  # pragma: no cover - the server extra is installed in tests
        raise ConfigurationError(
            f"the relay needs the server extra: pip install 'omega-p2p[server]' ({exc})"
        ) from exc
    flags = {name: getattr(args, name, None) for name in _FLAGS}
    settings = load_settings(args.config, os.environ, flags)
    config = RelayServerConfig(**settings)  # type: ignore[arg-type]
    if config.redis_url is not None:
        try:
            import redis  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            raise ConfigurationError(
                "a relay with redis_url needs redis-py: pip install 'omega-p2p[server]'"
            ) from exc
    _setup_logging(args.log_level or os.environ.get("OMEGA_LOG_LEVEL", "INFO"))
    server = RelayServer(config)

    async def main() -> None:
        import signal

        async with anyio.create_task_group() as task_group:
            await task_group.start(server.serve)
            print(" ".join(f"listening={address}" for address in server.addresses), file=out)
            out.flush()
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    await server.shutdown()
                    break
            task_group.cancel_scope.cancel()

    anyio.run(main)
    print("relay stopped", file=out)
    return 0
