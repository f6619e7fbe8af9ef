"""Transports and the secure channel: how Omega peers reach each other.

* :mod:`omega.transport.address`: the multiaddr-style :class:`Address`.
* :mod:`omega.transport.base`: the ABCs :class:`FrameConnection`,
  :class:`Listener`, :class:`Transport`, and :func:`listening`.
* :mod:`omega.transport.memory`, :mod:`omega.transport.tcp`: transports
  needing nothing beyond Omega's own dependencies.
* :mod:`omega.transport.websocket` (``websockets``) and
  :mod:`omega.transport.quic` (``aioquic``): import them explicitly; nothing
  here imports their libraries.
* :mod:`omega.transport.noise`, :mod:`omega.transport.secure_channel`: the
  Noise XX handshake binding Omega device identities, and the encrypted
  channel over any transport.
* :mod:`omega.transport.registry`: explicit ``register_transport(name, factory)``.
* :mod:`omega.transport.manager`: one authenticated connection per peer.

docs/transports.md describes the address syntax, the handshake byte by byte,
the limits, and how to write a new transport.
"""

from __future__ import annotations

from omega.transport.address import Address, HostKind
from omega.transport.base import (
    ConnectionHandler,
    FrameConnection,
    Listener,
    Transport,
    TransportConfig,
    listening,
)
from omega.transport.memory import MemoryConfig, MemoryNetwork, MemoryTransport
from omega.transport.noise import NoiseCredentials, PeerIdentity
from omega.transport.registry import (
    TransportRegistry,
    default_registry,
    register_builtin_transports,
    register_transport,
)
from omega.transport.secure_channel import (
    SecureChannelConfig,
    SecureConnection,
    SecureTransport,
    secure_handshake,
)
from omega.transport.tcp import TcpConfig, TcpTransport

__all__ = [
    "Address",
    "ConnectionHandler",
    "FrameConnection",
    "HostKind",
    "Listener",
    "MemoryConfig",
    "MemoryNetwork",
    "MemoryTransport",
    "NoiseCredentials",
    "PeerIdentity",
    "SecureChannelConfig",
    "SecureConnection",
    "SecureTransport",
    "TcpConfig",
    "TcpTransport",
    "Transport",
    "TransportConfig",
    "TransportRegistry",
    "default_registry",
    "listening",
    "register_builtin_transports",
    "register_transport",
    "secure_handshake",
]
