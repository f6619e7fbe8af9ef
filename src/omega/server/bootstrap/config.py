"""Configuration of the bootstrap node: defaults, a TOML file, ``OMEGA_BOOTSTRAP_*`` variables.

Precedence, lowest first: the defaults below, the ``[bootstrap]`` table of
the TOML file given with ``--config``, environment variables, command-line
flags. Example file::

    [bootstrap]
    host = "0.0.0.0"
    port = 7400
    health_host = "127.0.0.1"
    health_port = 7401
    state_file = "/var/lib/omega/bootstrap.json"
    peers = ["198.51.100.7:7400", "boot2.example.org:7400"]
    save_interval = 300

Every key has an environment variable: ``OMEGA_BOOTSTRAP_`` and the key in
upper case (``OMEGA_BOOTSTRAP_PEERS`` is a comma-separated list).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from omega.discovery.dht import parse_host_port
from omega.errors import ConfigurationError

__all__ = ["DEFAULT_PORT", "ENV_PREFIX", "BootstrapConfig"]

DEFAULT_PORT = 7400
"""UDP port a bootstrap node listens on unless configured."""

ENV_PREFIX = "OMEGA_BOOTSTRAP_"
"""Prefix of the environment variables that configure a bootstrap node."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapConfig:
    """Configuration of one bootstrap node; validated on construction."""

    host: str = "0.0.0.0"  # noqa: S104 - a bootstrap node serves the internet by design
    """IP address the DHT listens on (UDP)."""
    port: int = DEFAULT_PORT
    """UDP port of the DHT; 0 picks a free one."""
    health_host: str = "127.0.0.1"
    """IP address of the health endpoint (HTTP over TCP)."""
    health_port: int = DEFAULT_PORT + 1
    """TCP port of the health endpoint; 0 picks a free one."""
    state_file: Path | None = None
    """Where the routing table is kept across restarts (JSON); ``None`` keeps nothing."""
    peers: tuple[str, ...] = ()
    """Other bootstrap nodes to join, as ``host:port``."""
    save_interval: float = 300.0
    """Seconds between saves of the routing table (it is also saved on shutdown)."""

    def __post_init__(self) -> None:
        for name in ("host", "health_host"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError:
                raise ConfigurationError(f"{name} must be an IP address") from None
        for name in ("port", "health_port"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
                raise ConfigurationError(f"{name} must be in 0..65535, got {value!r}")
        for peer in self.peers:
            parse_host_port(peer)
        if not self.save_interval > 0:
            raise ConfigurationError("save_interval must be positive")

    @classmethod
    def load(
        cls,
        *,
        file: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, object] | None = None,
    ) -> BootstrapConfig:
        """Build the configuration from a TOML file, the environment and explicit overrides."""
        values: dict[str, object] = {}
        if file is not None:
            values.update(_from_file(file))
        values.update(_from_env(os.environ if env is None else env))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return replace(cls(), **values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigurationError(f"invalid bootstrap configuration: {exc}") from exc


_NAMES = {field.name for field in fields(BootstrapConfig)}


def _convert(name: str, value: object, source: str) -> object:
    if name not in _NAMES:
        raise ConfigurationError(f"{source}: unknown setting {name!r}")
    if name == "state_file":
        return Path(str(value))
    if name == "peers":
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ConfigurationError(f"{source}: peers must be a list of host:port strings")
    if name in ("port", "health_port"):
        try:
            return int(str(value))
        except ValueError:
            raise ConfigurationError(f"{source}: {name} must be an integer") from None
    if name == "save_interval":
        try:
            return float(str(value))
        except ValueError:
            raise ConfigurationError(f"{source}: save_interval must be a number") from None
    return str(value)


def _from_file(path: Path) -> dict[str, object]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the configuration {path}: {exc}") from exc
    table = document.get("bootstrap", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [bootstrap] must be a table")
    return {name: _convert(name, value, str(path)) for name, value in table.items()}


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for variable, value in env.items():
        if variable.startswith(ENV_PREFIX):
            name = variable[len(ENV_PREFIX) :].lower()
            values[name] = _convert(name, value, variable)
    return values
