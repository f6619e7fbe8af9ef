"""The explicit transport registry: nothing registers itself on import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omega.errors import ConfigurationError
from omega.transport.address import Address
from omega.transport.memory import MemoryNetwork, MemoryTransport
from omega.transport.quic import QuicTransport
from omega.transport.registry import (
    TransportRegistry,
    default_registry,
    register_builtin_transports,
    register_transport,
)
from omega.transport.tcp import TcpTransport
from omega.transport.websocket import WebSocketTransport


def test_a_registry_maps_names_to_factories() -> None:
    registry = TransportRegistry()
    assert registry.names() == ()
    registry.register("tcp", TcpTransport)
    assert "tcp" in registry
    assert isinstance(registry.create("tcp"), TcpTransport)
    assert isinstance(registry.create_for(Address.parse("/ip4/127.0.0.1/tcp/1")), TcpTransport)
    assert registry.create("tcp") is not registry.create("tcp")
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("tcp", TcpTransport)
    registry.register("tcp", lambda: MemoryTransport(MemoryNetwork()), replace=True)
    assert isinstance(registry.create("tcp"), MemoryTransport)
    registry.unregister("tcp")
    registry.unregister("never-registered")
    with pytest.raises(
        ConfigurationError, match=r"no transport registered for 'tcp' \(registered: none"
    ):
        registry.create("tcp")


@pytest.mark.parametrize("name", ["", "TCP", "1tcp", "t" * 33, "tc p", 5])
def test_names_are_checked(name: object) -> None:
    with pytest.raises(ConfigurationError, match="invalid transport name"):
        TransportRegistry().register(name, TcpTransport)  # type: ignore[arg-type]


def test_factories_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="not callable"):
        TransportRegistry().register("tcp", TcpTransport())  # type: ignore[arg-type]


def test_builtin_transports_register_explicitly_and_share_one_memory_network() -> None:
    network = MemoryNetwork()
    registry = register_builtin_transports(TransportRegistry(), network=network)
    assert registry.names() == ("memory", "quic", "relay", "tcp", "ws", "wss")
    memory = registry.create("memory")
    assert isinstance(memory, MemoryTransport)
    assert memory._network is network
    assert isinstance(registry.create("ws"), WebSocketTransport)
    wss = registry.create("wss")
    assert isinstance(wss, WebSocketTransport)
    assert wss.config.tls
    assert isinstance(registry.create("quic"), QuicTransport)


def test_the_default_registry_is_filled_only_on_request() -> None:
    registry = default_registry()
    before = registry.names()
    register_transport("test-only", TcpTransport)
    try:
        assert "test-only" in default_registry()
    finally:
        registry.unregister("test-only")
    assert registry.names() == before
    scratch = TransportRegistry()
    register_transport("tcp", TcpTransport, registry=scratch)
    assert scratch.names() == ("tcp",)


def test_importing_omega_transport_registers_nothing() -> None:
    code = (
        "import omega.transport, omega.transport.registry as r, sys; "
        "print(r.default_registry().names(), 'websockets' in sys.modules, 'aioquic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "() False False"


def test_quic_without_aioquic_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = register_builtin_transports(TransportRegistry())
    monkeypatch.setitem(sys.modules, "omega.transport.quic", None)  # as if aioquic were absent
    with pytest.raises(ConfigurationError, match=r"omega-p2p\[quic\]"):
        registry.create("quic")
