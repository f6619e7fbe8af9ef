"""``omega serve store``: run the store-and-forward server and key directory.

Settings come from, in increasing priority: defaults, a TOML file
(``--config``, keys as in :class:`StoreServerSettings`), ``OMEGA_STORE_*``
environment variables (``OMEGA_STORE_PORT=8470``) and command-line flags.
Logs are ``key=value`` lines on stderr. SIGINT or SIGTERM stops accepting
connections, finishes the requests in flight, closes the backend and exits 0.
Only the standard library is imported here at module level.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from omega.errors import ConfigurationError

__all__ = ["HELP", "StoreServerSettings", "configure", "load_settings", "run"]

HELP = "store-and-forward mailboxes and key directory (HTTP and gRPC APIs; SQLite or PostgreSQL)"

ENV_PREFIX = "OMEGA_STORE_"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreServerSettings:
    """Everything ``omega serve store`` can be told; every field has a default."""

    host: str = "127.0.0.1"
    """Address to listen on (keep loopback behind nginx)."""
    port: int = 8470
    """TCP port."""
    grpc_port: int | None = None
    """TCP port of the gRPC API on the same host (None: no gRPC; 0: any free port)."""
    backend: str = "sqlite"
    """``sqlite`` or ``postgres``."""
    sqlite_path: str = ""
    """SQLite file (default: ``store.db`` in the data directory)."""
    postgres_dsn: str = ""
    """PostgreSQL DSN (``backend = "postgres"``)."""
    postgres_schema: str = "omega_store"
    """Schema holding the tables."""
    postgres_shards: tuple[str, ...] = ()
    """Several PostgreSQL DSNs: mailboxes are spread over them by consistent hashing."""
    redis_url: str = ""
    """Optional Redis: wake-ups across processes, and nonces off the database."""
    auth_secret_file: str = ""
    """File holding the 32-byte challenge key as 64 hex digits (share it between processes)."""
    default_ttl_seconds: int = 14 * 24 * 3600
    """Lifetime of a message unless the depositor asks for less."""
    max_ttl_seconds: int = 30 * 24 * 3600
    """Cap on the lifetime a depositor may ask for."""
    max_payload_bytes: int = 256 * 1024
    """Largest payload."""
    max_messages_per_recipient: int = 10_000
    """Most messages per mailbox."""
    max_bytes_per_recipient: int = 64 * 1024 * 1024
    """Most payload bytes per mailbox."""
    requests_per_second: float = 20.0
    """Sustained requests per source address."""
    request_burst: int = 200
    """Burst of requests per source address."""
    proxy_headers: bool = False
    """Trust ``X-Forwarded-For`` from ``forwarded_allow_ips`` (behind nginx)."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies whose forwarding headers are trusted."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""

    def __post_init__(self) -> None:
        if self.backend not in {"sqlite", "postgres"}:
            raise ConfigurationError(f"backend must be sqlite or postgres, not {self.backend!r}")
        if self.backend == "postgres" and not (self.postgres_dsn or self.postgres_shards):
            raise ConfigurationError("backend postgres needs postgres_dsn or postgres_shards")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port must be in 0..65535, got {self.port}")
        if self.grpc_port is not None and not 0 <= self.grpc_port <= 65535:
            raise ConfigurationError(f"grpc_port must be in 0..65535, got {self.grpc_port}")
        if self.log_level not in {"debug", "info", "warning", "error"}:
            raise ConfigurationError(f"unknown log_level {self.log_level!r}")


_FIELDS = {f.name: f for f in fields(StoreServerSettings)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_FIELDS[name].type)
    try:
        if kind in {"int", "int | None"}:
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).lower() in {"1", "true", "yes", "on"}
        if kind.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from exc
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string")
    return value


def load_settings(
    config_file: str | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> StoreServerSettings:
    """Merge defaults, the TOML file, ``OMEGA_STORE_*`` variables and flags, in that order."""
    values: dict[str, Any] = {}
    if config_file:
        try:
            with Path(config_file).open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read {config_file}: {exc}") from exc
        section = document.get("store", document)
        for key, value in section.items():
            if key not in _FIELDS:
                raise ConfigurationError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(key, value)
    for name in _FIELDS:
        if (raw := environ.get(ENV_PREFIX + name.upper())) is not None:
            values[name] = _coerce(name, raw)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value)
    return StoreServerSettings(**values)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``omega serve store``."""
    parser.add_argument("--config", metavar="FILE", help="TOML settings file ([store] table)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8470)")
    parser.add_argument("--grpc-port", type=int, help="also serve the gRPC API on this port")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], help="storage backend")
    parser.add_argument("--sqlite-path", help="SQLite file (default DATA_DIR/store.db)")
    parser.add_argument("--postgres-dsn", help="PostgreSQL DSN")
    parser.add_argument("--redis-url", help="Redis URL (optional)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"time={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()}"
            f" logger={record.name} {record.getMessage()}"
        )
        if record.exc_info:
            line += " exception=" + repr(self.formatException(record.exc_info))
        return line


@contextmanager
def _logging_to(level: str, stream: TextIO) -> Iterator[None]:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _read_secret(path: str) -> bytes | None:
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the auth secret from {path}: {exc}") from exc
    if len(secret) != 32:
        raise ConfigurationError("the auth secret is 32 bytes (64 hex digits)")
    return secret


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Serve until SIGINT or SIGTERM; 0 after a graceful shutdown."""
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "host",
            "port",
            "grpc_port",
            "backend",
            "sqlite_path",
            "postgres_dsn",
            "redis_url",
        )
    }
    overrides["log_level"] = getattr(args, "log_level", None)
    settings = load_settings(getattr(args, "config", None), os.environ, overrides)
    if not settings.sqlite_path:
        settings = dataclasses.replace(settings, sqlite_path=str(Path(args.data_dir) / "store.db"))
    try:
        import anyio
        import uvicorn

        if settings.grpc_port is not None:
            import grpclib  # noqa: F401
        from omega.server.store._serve import serve
    except ImportError as exc:
        raise ConfigurationError(
            f"omega serve store needs the server extra: pip install 'omega-p2p[server]' ({exc})"
        ) from exc
    secret = _read_secret(settings.auth_secret_file)
    _ = uvicorn
    with _logging_to(settings.log_level, sys.stderr):
        anyio.run(serve, settings, secret, out)
    return 0


@contextmanager
def shutdown_signals(on_signal: Any) -> Iterator[None]:
    """Call ``on_signal(signum, frame)`` on SIGINT/SIGTERM while the block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    originals = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)
