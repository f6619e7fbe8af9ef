"""``omega serve relay``: settings from TOML, environment and flags; health, metrics, SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from omega.cli import main
from omega.errors import ConfigurationError
from omega.server.relay.command import load_settings


def test_settings_merge_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        '[relay]\nrelay_id = "from-file"\nport = 9000\nstall_timeout = 3\ntcp_port = 9001\n'
    )
    environ = {"OMEGA_RELAY_PORT": "9100", "OMEGA_RELAY_REDIS_URL": "redis://r:6379/0"}
    settings = load_settings(config, environ, {"port": "9200", "host": None})
    assert settings == {
        "relay_id": "from-file",
        "port": 9200,
        "stall_timeout": 3,
        "tcp_port": 9001,
        "redis_url": "redis://r:6379/0",
    }
    assert load_settings(None, {"OMEGA_RELAY_TCP_PORT": "none"}, {}) == {"tcp_port": None}
    assert load_settings(None, {"OMEGA_RELAY_BYTES_PER_SECOND": "1.5"}, {}) == {
        "bytes_per_second": 1.5
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[relay]\nport = \n", "cannot read"),
        ("relay = 3\n", "must be a table"),
        ("[relay]\nportt = 1\n", "unknown relay settings"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, match: str) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        load_settings(config, {}, {})


def test_bad_numbers_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="number"):
        load_settings(None, {"OMEGA_RELAY_PORT": "eighty"}, {})
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", {}, {})


class _Output(io.StringIO):
    """Standard output that tells a waiting thread when the relay is listening."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()

    def write(self, text: str) -> int:
        if "listening=" in text:
            self.listening.set()
        return super().write(text)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("omega")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_serve_relay_answers_health_and_metrics_and_stops_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\nrelay_id = "cli-test"\nshutdown_grace = 0.1\n')
    monkeypatch.setenv("OMEGA_RELAY_PORT", "0")
    out = _Output()
    seen: dict[str, object] = {}

    def probe() -> None:
        try:
            if not out.listening.wait(20):
                return
            port = out.getvalue().split("listening=")[1].split("/")[4]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
                seen["health"] = json.loads(reply.read())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                seen["metrics"] = reply.read().decode()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        status = main(
            ["serve", "relay", "--config", str(config), "--log-level", "warning"], out=out
        )
    finally:
        thread.join()
    assert status == 0
    assert seen["health"] == {
        "bus": "off",
        "listening_devices": 0,
        "relay_id": "cli-test",
        "sessions": 0,
        "status": "ok",
    }
    assert "omega_relay_sessions_total 0" in str(seen["metrics"])
    assert out.getvalue().endswith("relay stopped\n")


def test_serve_relay_refuses_a_bad_log_level() -> None:
    assert main(["serve", "relay", "--log-level", "chatty", "--port", "0"], out=io.StringIO()) == 1
