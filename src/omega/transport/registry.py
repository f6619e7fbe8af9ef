"""The transport registry: which :class:`~omega.transport.base.Transport` serves which address.

Registration is explicit, never an import side effect::

    registry = TransportRegistry()
    registry.register("tcp", TcpTransport)
    transport = registry.create_for(Address.parse("/ip4/127.0.0.1/tcp/4001"))

The key is :attr:`Address.transport <omega.transport.address.Address.transport>`
(``"tcp"``, ``"ws"``, ``"wss"``, ``"quic"``, ``"memory"``, ``"relay"``). A factory is any
zero-argument callable returning a new transport: bind its configuration
with ``functools.partial`` or a lambda. :func:`register_builtin_transports`
registers Omega's own, importing the WebSocket, QUIC and relay modules (and
their libraries) only when one of them is created.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from omega.errors import ConfigurationError
from omega.transport.address import Address
from omega.transport.base import Transport
from omega.transport.memory import MemoryNetwork, MemoryTransport
from omega.transport.tcp import TcpTransport

if TYPE_CHECKING:
    from omega.transport.relay import RelayConfig, RelayCredentials

__all__ = [
    "TransportFactory",
    "TransportRegistry",
    "default_registry",
    "register_builtin_transports",
    "register_transport",
]

TransportFactory = Callable[[], Transport]
"""Creates a new transport."""

_NAME_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")


class TransportRegistry:
    """A mapping from transport names to factories."""

    def __init__(self) -> None:
        self._factories: dict[str, TransportFactory] = {}

    def register(self, name: str, factory: TransportFactory, *, replace: bool = False) -> None:
        """Register ``factory`` under ``name``.

        Raises :class:`~omega.errors.ConfigurationError` for a malformed name,
        a factory that is not callable, or a name already taken (unless
        ``replace``).
        """
        if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
            raise ConfigurationError(f"invalid transport name {name!r}: [a-z][a-z0-9-]{{0,31}}")
        if not callable(factory):
            raise ConfigurationError(f"the factory for {name!r} is not callable")
        if name in self._factories and not replace:
            raise ConfigurationError(f"a transport is already registered as {name!r}")
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Forget ``name``; unknown names are ignored."""
        self._factories.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._factories))

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def create(self, name: str) -> Transport:
        """Return a new transport registered as ``name``; ConfigurationError if unknown."""
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(self.names()) or "none"
            raise ConfigurationError(
                f"no transport registered for {name!r} (registered: {known})",
                details={"name": name},
            )
        return factory()

    def create_for(self, address: Address) -> Transport:
        """Return a new transport able to dial and listen on ``address``."""
        return self.create(address.transport)


_DEFAULT_REGISTRY: Final = TransportRegistry()


def default_registry() -> TransportRegistry:
    """The process-wide registry :func:`register_transport` fills; empty until then."""
    return _DEFAULT_REGISTRY


def register_transport(
    name: str,
    factory: TransportFactory,
    *,
    registry: TransportRegistry | None = None,
    replace: bool = False,
) -> None:
    """Register ``factory`` as ``name`` in ``registry`` (the default registry if omitted)."""
    (registry if registry is not None else _DEFAULT_REGISTRY).register(
        name, factory, replace=replace
    )


def _websocket(tls: bool) -> Transport:
    from omega.transport.websocket import WebSocketTransport

    return WebSocketTransport(tls=tls)


def _quic() -> Transport:
    try:
        from omega.transport.quic import QuicTransport
    except ImportError as exc:
        raise ConfigurationError(
            "the QUIC transport needs aioquic: pip install 'omega-p2p[quic]'"
        ) from exc
    return QuicTransport()


def _relay(credentials: RelayCredentials | None, config: RelayConfig | None) -> Transport:
    if credentials is None:
        raise ConfigurationError(
            "the relay transport registers this device at the relay: pass relay_credentials "
            "to register_builtin_transports, or register a configured RelayTransport factory"
        )
    from omega.transport.relay import RelayTransport

    return RelayTransport(credentials, config)


def register_builtin_transports(
    registry: TransportRegistry | None = None,
    *,
    network: MemoryNetwork | None = None,
    replace: bool = False,
    relay_credentials: RelayCredentials | None = None,
    relay_config: RelayConfig | None = None,
) -> TransportRegistry:
    """Register memory, tcp, ws, wss, quic and relay with default settings; return the registry.

    In-memory transports share ``network`` (a new one if omitted). ``wss``
    and ``quic`` need TLS settings to listen: register configured factories
    with ``replace=True`` for that. ``relay`` needs this device's
    ``relay_credentials`` (creating it without them raises
    :class:`~omega.errors.ConfigurationError`). WebSocket, QUIC and the relay
    are imported when first created, so their libraries are needed only by
    who uses them.
    """
    target = registry if registry is not None else _DEFAULT_REGISTRY
    shared = network if network is not None else MemoryNetwork()
    target.register("memory", lambda: MemoryTransport(shared), replace=replace)
    target.register("tcp", TcpTransport, replace=replace)
    target.register("ws", lambda: _websocket(False), replace=replace)
    target.register("wss", lambda: _websocket(True), replace=replace)
    target.register("quic", _quic, replace=replace)
    target.register("relay", lambda: _relay(relay_credentials, relay_config), replace=replace)
    return target
