"""The bootstrap node: configuration, persistent routing table, health endpoint, the command."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from omega.cli import main
from omega.discovery.dht import DhtConfig, DhtNode
from omega.errors import ConfigurationError, CorruptDataError
from omega.server.bootstrap import (
    BootstrapConfig,
    BootstrapServer,
    RoutingState,
    load_state,
    save_state,
)


def test_configuration_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "bootstrap.toml"
    file.write_text(
        '[bootstrap]\nport = 9000\nhealth_port = 9001\npeers = ["10.0.0.1:7400"]\n'
        'state_file = "state.json"\nsave_interval = 10\n'
    )
    config = BootstrapConfig.load(
        file=file,
        env={"OMEGA_BOOTSTRAP_PORT": "9100", "OMEGA_BOOTSTRAP_PEERS": "10.0.0.2:1, [::1]:2"},
        overrides={"health_port": 9201, "host": None},
    )
    assert (config.port, config.health_port) == (9100, 9201)
    assert config.peers == ("10.0.0.2:1", "[::1]:2")
    assert config.state_file == Path("state.json")
    assert config.save_interval == 10.0
    assert config.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMEGA_BOOTSTRAP_NOPE": "1"}, "unknown setting"),
        ({"OMEGA_BOOTSTRAP_PORT": "x"}, "integer"),
        ({"OMEGA_BOOTSTRAP_PORT": "70000"}, "0..65535"),
        ({"OMEGA_BOOTSTRAP_HOST": "example.org"}, "IP address"),
        ({"OMEGA_BOOTSTRAP_PEERS": "nohost"}, "host:port"),
        ({"OMEGA_BOOTSTRAP_SAVE_INTERVAL": "soon"}, "number"),
        ({"OMEGA_BOOTSTRAP_SAVE_INTERVAL": "0"}, "positive"),
    ],
)
def test_invalid_settings_are_configuration_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BootstrapConfig.load(env=env)


def test_invalid_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        BootstrapConfig.load(file=tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("bootstrap = 3")
    with pytest.raises(ConfigurationError, match="must be a table"):
        BootstrapConfig.load(file=bad, env={})
    bad.write_text("[bootstrap]\npeers = 5")
    with pytest.raises(ConfigurationError, match="peers"):
        BootstrapConfig.load(file=bad, env={})


def test_the_routing_table_round_trips_as_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_state(path) is None
    state = RoutingState(
        node_id=bytes(range(20)),
        contacts=((b"\x01" * 20, "127.0.0.1", 7400), (b"\x02" * 20, "::1", 7401)),
        saved_at=5,
    )
    save_state(path, state)
    assert load_state(path) == state
    document = json.loads(path.read_text())
    assert document["node_id"] == bytes(range(20)).hex()
    assert document["contacts"][1] == {"id": "02" * 20, "host": "::1", "port": 7401}


@pytest.mark.parametrize(
    "content",
    [
        b"\x80\x04pickle",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1, "node_id": "zz", "contacts": []}',
        b'{"version": 1, "node_id": "' + b"0" * 40 + b'", "contacts": {}}',
        b'{"version": 1, "node_id": "' + b"0" * 40 + b'", "contacts": [], "saved_at": "x"}',
        b'{"version": 1, "node_id": "' + b"0" * 40 + b'", "contacts": [{"id": 1}]}',
        b'{"version": 1, "node_id": "'
        + b"0" * 40
        + b'", "contacts": [{"id": "'
        + b"0" * 40
        + b'", "host": "example.org", "port": 1}]}',
        b'{"version": 1, "node_id": "'
        + b"0" * 40
        + b'", "contacts": [{"id": "'
        + b"0" * 40
        + b'", "host": "1.2.3.4", "port": 0}]}',
        b'{"version": 1, "node_id": "' + b"g" * 40 + b'", "contacts": []}',
    ],
)
def test_a_damaged_routing_table_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(CorruptDataError):
        load_state(path)


def test_an_oversized_or_unreadable_routing_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with path.open("wb") as file:
        file.truncate(4 * 1024 * 1024 + 1)
    with pytest.raises(CorruptDataError, match="larger"):
        load_state(path)
    with pytest.raises(CorruptDataError):
        load_state(tmp_path)  # a directory


async def _http(address: tuple[str, int], request: bytes) -> tuple[str, bytes]:
    async with await anyio.connect_tcp(*address) as stream:
        await stream.send(request)
        await stream.send_eof()
        response = b""
        try:
            while True:
                response += await stream.receive()
        except anyio.EndOfStream:
            pass
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


@pytest.mark.anyio
async def test_a_bootstrap_node_serves_health_lets_nodes_join_and_remembers_them(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "state.json"
    config = BootstrapConfig(
        host="127.0.0.1", port=0, health_port=0, state_file=state_file, save_interval=3600
    )
    with anyio.fail_after(30):
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            server = BootstrapServer(config)
            assert server.health() == {"status": "starting"}
            await group.start(server.serve, stop)
            assert server.node is not None
            assert server.health_address is not None
            boot = f"127.0.0.1:{server.node.address[1]}"
            async with DhtNode(DhtConfig(bootstrap=(boot,))) as member:
                status, body = await _http(
                    server.health_address, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                assert status == "HTTP/1.1 200 OK"
                health = json.loads(body)
                assert health["status"] == "ok"
                assert health["contacts"] == 1
                assert health["node_id"] == server.node.node_id.hex()
                for request, expected in [
                    (b"GET /other HTTP/1.1\r\n\r\n", "404"),
                    (b"POST /health HTTP/1.1\r\n\r\n", "405"),
                    (b"nonsense\r\n\r\n", "400"),
                    (b"", "400"),
                ]:
                    assert expected in (await _http(server.health_address, request))[0]
                head, body = await _http(server.health_address, b"HEAD /health HTTP/1.1\r\n\r\n")
                assert "200" in head
                assert body == b""
                member_address = member.address
            node_id = server.node.node_id
            stop.set()
    state = load_state(state_file)
    assert state is not None
    assert state.node_id == node_id
    assert [(host, port) for _, host, port in state.contacts] == [member_address]
    # Restarted, it keeps its id and rejoins what it remembered (if still there).
    with anyio.fail_after(30):
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            again = BootstrapServer(config)
            await group.start(again.serve, stop)
            assert again.node is not None
            assert again.node.node_id == node_id
            stop.set()


def test_omega_serve_bootstrap_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "bootstrap", "--help"])
    assert "--state-file" in capsys.readouterr().out


def test_the_command_runs_until_sigterm_and_saves_its_routing_table(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from omega.cli import main; sys.exit(main(sys.argv[1:]))",
            "serve",
            "bootstrap",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--health-port",
            "0",
            "--state-file",
            str(state_file),
            "--peer",
            "127.0.0.1:9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMEGA_BOOTSTRAP_SAVE_INTERVAL": "600"},
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert line.startswith("bootstrap node "), errors
    assert "/health" in line
    assert process.returncode == 0, errors
    assert "bootstrap.signal signal=SIGTERM" in errors
    assert load_state(state_file) is not None


class _Announced(io.StringIO):
    """An output stream that tells a thread once the server has announced itself."""

    def __init__(self) -> None:
        super().__init__()
        self.announced = threading.Event()

    def write(self, text: str) -> int:
        if text.startswith("bootstrap node "):
            self.announced.set()
        return super().write(text)


def test_run_in_process_stops_on_sigint_and_saves(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    config_file = tmp_path / "bootstrap.toml"
    config_file.write_text('[bootstrap]\nhost = "127.0.0.1"\nport = 0\nhealth_port = 0\n')
    out = _Announced()

    def interrupt() -> None:
        if out.announced.wait(timeout=30):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        status = main(
            [
                "serve",
                "bootstrap",
                "--config",
                str(config_file),
                "--state-file",
                str(state_file),
                "--log-level",
                "warning",
            ],
            out=out,
        )
    finally:
        thread.join()
    assert status == 0
    assert "/health" in out.getvalue()
    assert load_state(state_file) is not None
