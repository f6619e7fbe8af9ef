"""``omega serve store``: settings from file, environment and flags; a real process end to end."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from omega.cli import SERVE_COMMANDS, build_parser
from omega.crypto import Identity
from omega.errors import ConfigurationError, ServerUnavailableError
from omega.mailbox.http import StoreClient
from omega.server.store.command import StoreServerSettings, load_settings


def test_the_store_is_registered_and_parses_its_flags() -> None:
    assert SERVE_COMMANDS["store"] == "omega.server.store.command"
    args = build_parser().parse_args(["serve", "store", "--port", "9000", "--backend", "sqlite"])
    assert (args.port, args.backend) == (9000, "sqlite")


def test_settings_merge_file_environment_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text(
        '[store]\nport = 9001\nhost = "0.0.0.0"\nrequests_per_second = 5\n'
        'postgres_shards = ["postgresql://a", "postgresql://b"]\nproxy_headers = true\n'
    )
    environ = {"OMEGA_STORE_PORT": "9002", "OMEGA_STORE_MAX_PAYLOAD_BYTES": "1024"}
    settings = load_settings(str(config), environ, {"host": None, "log_level": "debug"})
    assert settings.port == 9002, "the environment beats the file"
    assert settings.host == "0.0.0.0"
    assert settings.requests_per_second == 5.0
    assert settings.max_payload_bytes == 1024
    assert settings.postgres_shards == ("postgresql://a", "postgresql://b")
    assert settings.proxy_headers is True
    assert settings.log_level == "debug", "flags beat everything"
    assert load_settings(None, {"OMEGA_STORE_PROXY_HEADERS": "no"}, {}).proxy_headers is False


@pytest.mark.parametrize(
    ("text", "environ", "match"),
    [
        ("port = 'x'", {}, "port"),
        ("nonsense = 1", {}, "unknown setting"),
        ("[store\n", {}, "cannot read"),
        ("", {"OMEGA_STORE_BACKEND": "mysql"}, "backend"),
        ("", {"OMEGA_STORE_BACKEND": "postgres"}, "postgres_dsn"),
        ("", {"OMEGA_STORE_PORT": "70000"}, "port"),
        ("", {"OMEGA_STORE_LOG_LEVEL": "loud"}, "log_level"),
        ("host = 5", {}, "string"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, text: str, environ: dict[str, str], match: str
) -> None:
    config = tmp_path / "store.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        load_settings(str(config), environ, {})
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_settings(str(tmp_path / "missing.toml"), {}, {})
    assert StoreServerSettings().port == 8470


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    secret = tmp_path / "secret"
    secret.write_text("ab" * 32)
    config = tmp_path / "store.toml"
    config.write_text(f'[store]\nport = {port}\nauth_secret_file = "{secret}"\n')
    code = "import sys; from omega.cli import main; sys.exit(main())"
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--data-dir",
            str(tmp_path),
            "serve",
            "store",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _until_healthy(client: StoreClient, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if await client.health():
                return
        except ServerUnavailableError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_served_store_keeps_messages_across_a_graceful_restart(tmp_path: Path) -> None:
    port = _free_port()
    device = Identity.create(device_name="d", created_at=1).device
    for round_number in range(2):
        process = _start(tmp_path, port)
        try:
            async with StoreClient(f"http://127.0.0.1:{port}") as client:
                await _until_healthy(client, process)
                if round_number == 0:
                    assert await client.deposit(device.device_key, "kept", b"ciphertext")
                else:
                    assert [e.payload for e in await client.fetch(device)] == [b"ciphertext"]
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, stderr
        assert "event=shutdown_requested" in stderr
        assert "event=store_closed" in stderr
        assert "level=info logger=omega.server.store event=store_listening" in stderr
    assert (tmp_path / "store.db").exists()


def test_run_in_process_serves_until_sigterm(tmp_path: Path) -> None:
    import io
    import os
    import threading

    import httpx

    from omega.cli import main

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    outcome: list[int] = []

    def client() -> None:
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=url) as http:
            while time.monotonic() < deadline:
                try:
                    outcome.append(http.get("/health").status_code)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=client)
    watcher.start()
    out = io.StringIO()
    try:
        status = main(
            [
                "--data-dir",
                str(tmp_path),
                "serve",
                "store",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            out=out,
        )
    finally:
        watcher.join()
    assert status == 0
    assert outcome == [200]
    assert f"listening on {url}" in out.getvalue()
    assert (tmp_path / "store.db").exists()


def test_an_unreadable_auth_secret_is_refused(tmp_path: Path) -> None:
    from omega.server.store.command import _read_secret

    assert _read_secret("") is None
    with pytest.raises(ConfigurationError, match="cannot read"):
        _read_secret(str(tmp_path / "missing"))
    (tmp_path / "short").write_text("abcd")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        _read_secret(str(tmp_path / "short"))
