"""Transport addresses: one multiaddr-style syntax for every transport.

An address names how to reach a peer as a path of ``/protocol/value``
components, outermost first, in the style of libp2p's multiaddr
(docs/transports.md explains the choice):

======================================================  =====================
address                                                 transport
======================================================  =====================
``/ip4/127.0.0.1/tcp/4001``                             TCP
``/ip6/::1/tcp/4001``                                   TCP over IPv6
``/dns/example.org/tcp/4001``                           TCP, name resolved
``/ip4/127.0.0.1/tcp/8080/ws``                          WebSocket (``ws://``)
``/dns/example.org/tcp/443/wss``                        WebSocket over TLS
``/ip4/127.0.0.1/udp/4433/quic-v1``                     QUIC (RFC 9000)
``/dns/relay.example/tcp/443/wss/relay``                a relay (listen here)
``/dns/relay.example/tcp/443/wss/relay/<device id>``    a device behind a relay
``/ip4/127.0.0.1/tcp/4001/relay/<user id>``             a user behind a relay (TCP)
``/memory/alice``                                       in-memory (tests, sim)
======================================================  =====================

Any of them may end in ``/omega/<user id>``: the user the dialer expects to
answer, checked by the secure channel's handshake.

The grammar, exactly::

    address   = ( host transport / host relay / "/memory/" name ) [ "/omega/" user-id ]
    host      = "/ip4/" ipv4 / "/ip6/" ipv6 / ( "/dns/" / "/dns4/" / "/dns6/" ) hostname
    transport = "/tcp/" port [ "/ws" / "/wss" ] / "/udp/" port "/quic-v1"
    relay     = "/tcp/" port [ "/ws" / "/wss" ] "/relay" [ "/" ( user-id / device-id ) ]

``ipv4`` is dotted decimal without leading zeros; ``ipv6`` is any RFC 4291
text form without a zone; ``hostname`` is 1..253 characters of LDH labels
(letters, digits, inner hyphens; 1..63 characters each) separated by dots;
``port`` is a decimal integer in 0..65535 without leading zeros (0 asks a
listener for an ephemeral port); ``name`` is 1..64 characters of
``A-Z a-z 0-9 . _ ~ -``; ``user-id`` is an Omega user id (docs/protocol.md,
section 4); ``device-id`` is 16 hex digits, a device's display id
(:func:`omega.crypto.devices.device_id`).

A relay address names the relay (host, port, and how to reach it: plain
TCP, ``/ws`` or ``/wss``) and, after ``/relay``, the device or user the
relay should connect the dialer to. Without a target it is the address a
device listens on: it registers there and receives what the relay forwards.

:meth:`Address.parse` strips surrounding whitespace (addresses are pasted),
accepts upper case where the value is case-insensitive, and refuses
everything else with :class:`~omega.errors.InvalidAddressError`.
``str(address)`` prints the canonical form: lowercase host names and user
ids, IPv6 compressed (RFC 5952), so ``Address.parse(str(a)) == a``.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Final

from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.errors import InvalidAddressError, InvalidUserIdError

__all__ = ["MAX_ADDRESS_LENGTH", "RELAY_CARRIERS", "TRANSPORT_NAMES", "Address", "HostKind"]

MAX_ADDRESS_LENGTH: Final = 1024
"""Longest address text accepted by :meth:`Address.parse`, in characters."""

TRANSPORT_NAMES: Final = ("tcp", "ws", "wss", "quic", "memory", "relay")
"""Every value :attr:`Address.transport` may take; also the registry's names."""

_PORT_RE: Final = re.compile(r"0|[1-9][0-9]{0,4}")
_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DEVICE_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
RELAY_CARRIERS: Final = ("tcp", "ws", "wss")
"""How a relay address may reach its relay (:attr:`Address.via`)."""
_MEMORY_NAME_RE: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_MAX_HOSTNAME_LENGTH: Final = 253


class HostKind(enum.Enum):
    """How an address names its host: the first component of the address."""

    IP4 = "ip4"
    IP6 = "ip6"
    DNS = "dns"
    DNS4 = "dns4"
    DNS6 = "dns6"
    MEMORY = "memory"

    @property
    def is_dns(self) -> bool:
        """True for the three DNS kinds, whose host must be resolved first."""
        return self in (HostKind.DNS, HostKind.DNS4, HostKind.DNS6)


def _invalid(text: str, reason: str) -> InvalidAddressError:
    return InvalidAddressError(
        f"invalid address {text!r}: {reason}", details={"address": text, "reason": reason}
    )


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed, validated transport address (see the module docstring).

    Construct it with :meth:`parse` or directly; either way every field is
    checked and normalised, raising :class:`~omega.errors.InvalidAddressError`.

    >>> address = Address.parse(" /IP6/0:0::1/tcp/4001 ")
    >>> str(address), address.transport, address.port
    ('/ip6/::1/tcp/4001', 'tcp', 4001)
    """

    host_kind: HostKind
    """How :attr:`host` is to be read."""
    host: str
    """IP address, host name, or in-memory listener name, in canonical form."""
    transport: str
    """The transport that carries connections: one of ``TRANSPORT_NAMES``."""
    port: int | None = None
    """TCP or UDP port, 0..65535; ``None`` exactly for in-memory addresses."""
    peer: str | None = None
    """User id the dialer expects to answer (``/omega/...``), canonical, or ``None``."""
    via: str | None = None
    """For relay addresses: how the relay is reached (``tcp``, ``ws`` or ``wss``); else ``None``."""
    relay_target: str | None = None
    """For relay addresses: the user id or device id to connect to; ``None`` to listen."""

    def __post_init__(self) -> None:
        text = self._raw_text()
        if not isinstance(self.host_kind, HostKind):
            raise _invalid(text, "host_kind must be a HostKind")
        if not isinstance(self.host, str):
            raise _invalid(text, "host must be a string")
        object.__setattr__(self, "host", _canonical_host(self.host_kind, self.host, text))
        if self.transport not in TRANSPORT_NAMES:
            raise _invalid(text, f"unknown transport {self.transport!r}")
        is_memory = self.host_kind is HostKind.MEMORY
        if is_memory != (self.transport == "memory"):
            raise _invalid(text, "/memory addresses, and only they, use the memory transport")
        if is_memory:
            if self.port is not None:
                raise _invalid(text, "a /memory address has no port")
        elif isinstance(self.port, bool) or not isinstance(self.port, int):
            raise _invalid(text, "a network address needs an integer port")
        elif not 0 <= self.port <= 65535:
            raise _invalid(text, f"port {self.port} is outside 0..65535")
        if self.peer is not None:
            object.__setattr__(self, "peer", _canonical_user_id(self.peer, text))
        if self.transport == "relay":
            if self.via not in RELAY_CARRIERS:
                raise _invalid(text, f"a relay is reached over one of {RELAY_CARRIERS}")
            if self.relay_target is not None:
                target = _canonical_relay_target(self.relay_target, text)
                object.__setattr__(self, "relay_target", target)
        elif self.via is not None or self.relay_target is not None:
            raise _invalid(text, "only relay addresses have via and relay_target")

    def _raw_text(self) -> str:
        """A best-effort rendering for error messages, before validation."""
        return f"{getattr(self.host_kind, 'value', self.host_kind)}:{self.host!r}:{self.port!r}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse an address string (see the module docstring for the grammar).

        Raises :class:`~omega.errors.InvalidAddressError` saying what is
        wrong, for anything that is not a string in that grammar.
        """
        if not isinstance(text, str):
            raise InvalidAddressError(f"an address is a string, not {type(text).__name__}")
        stripped = text.strip()
        if len(stripped) > MAX_ADDRESS_LENGTH:
            raise _invalid(stripped[:64] + "...", f"longer than {MAX_ADDRESS_LENGTH} characters")
        if not stripped.startswith("/"):
            raise _invalid(stripped, "an address starts with '/'")
        parts = stripped[1:].split("/")
        if any(part == "" for part in parts):
            raise _invalid(stripped, "empty component (doubled or trailing '/')")
        return cls._from_parts(parts, stripped)

    @classmethod
    def _from_parts(cls, parts: list[str], text: str) -> Address:
        peer: str | None = None
        if len(parts) >= 2 and parts[-2].lower() == "omega":
            peer = parts[-1]
            parts = parts[:-2]
        if not parts:
            raise _invalid(text, "no host component")
        kind_name = parts[0].lower()
        try:
            kind = HostKind(kind_name)
        except ValueError:
            raise _invalid(text, f"unknown first component {parts[0]!r}") from None
        if len(parts) < 2:
            raise _invalid(text, f"/{kind.value} needs a value")
        # Validate here too, so that errors quote the text the user pasted.
        host = _canonical_host(kind, parts[1], text)
        if peer is not None:
            peer = _canonical_user_id(peer, text)
        rest = [part.lower() for part in parts[2:]]
        if kind is HostKind.MEMORY:
            if rest:
                raise _invalid(text, f"unexpected component after the memory name: /{rest[0]}")
            return cls(kind, host, "memory", None, peer)
        via = target = None
        if "relay" in rest[2:]:
            position = rest.index("relay", 2)
            after = parts[2 + position + 1 :]
            if len(after) > 1:
                raise _invalid(text, "/relay is followed by at most one target")
            target = _canonical_relay_target(after[0], text) if after else None
            via, port_text = _transport_of(rest[:position], text)
            if via == "quic":
                raise _invalid(text, "a relay is reached over /tcp, /ws or /wss")
            transport = "relay"
        else:
            transport, port_text = _transport_of(rest, text)
        if _PORT_RE.fullmatch(port_text) is None or int(port_text) > 65535:
            raise _invalid(text, f"port {port_text!r} is not a decimal integer in 0..65535")
        return cls(kind, host, transport, int(port_text), peer, via, target)

    @property
    def is_memory(self) -> bool:
        """True for ``/memory/...`` addresses."""
        return self.host_kind is HostKind.MEMORY

    def with_peer(self, user_id: str | None) -> Address:
        """Return this address with ``/omega/<user_id>`` set (or removed, for ``None``)."""
        return replace(self, peer=user_id)

    def with_port(self, port: int) -> Address:
        """Return this address with another port (e.g. the one a listener bound)."""
        return replace(self, port=port)

    @property
    def is_relay(self) -> bool:
        """True for ``.../relay[/target]`` addresses."""
        return self.transport == "relay"

    def with_relay_target(self, target: str | None) -> Address:
        """Return this relay address with another target (``None``: the listening address)."""
        if not self.is_relay:
            raise _invalid(str(self), "only a relay address has a relay target")
        return replace(self, relay_target=target)

    def relay_address(self) -> Address:
        """The address of the relay itself: host, port and carrier, without ``/relay``."""
        if self.via is None:
            raise _invalid(str(self), "not a relay address")
        return Address(self.host_kind, self.host, self.via, self.port)

    def __str__(self) -> str:
        out = f"/{self.host_kind.value}/{self.host}"
        if self.transport == "quic":
            out += f"/udp/{self.port}/quic-v1"
        elif self.transport != "memory":
            out += f"/tcp/{self.port}"
            carrier = self.via if self.transport == "relay" else self.transport
            if carrier in ("ws", "wss"):
                out += f"/{carrier}"
            if self.transport == "relay":
                out += "/relay" if self.relay_target is None else f"/relay/{self.relay_target}"
        if self.peer is not None:
            out += f"/omega/{self.peer}"
        return out


def _transport_of(rest: list[str], text: str) -> tuple[str, str]:
    """Return ``(transport, port text)`` from the components after the host."""
    if len(rest) < 2 or rest[0] not in ("tcp", "udp"):
        raise _invalid(text, "a network address continues with /tcp/<port> or /udp/<port>")
    layer, port_text, upper = rest[0], rest[1], rest[2:]
    if layer == "tcp":
        if not upper:
            return "tcp", port_text
        if upper in (["ws"], ["wss"]):
            return upper[0], port_text
        raise _invalid(text, f"after /tcp/<port> only /ws or /wss may follow, not /{upper[0]}")
    if upper == ["quic-v1"]:
        return "quic", port_text
    raise _invalid(text, "/udp/<port> must be followed by /quic-v1 (and nothing else)")


def _canonical_host(kind: HostKind, host: str, text: str) -> str:
    if kind is HostKind.MEMORY:
        if _MEMORY_NAME_RE.fullmatch(host) is None:
            raise _invalid(text, "a memory name is 1..64 characters of A-Z a-z 0-9 . _ ~ -")
        return host
    if kind is HostKind.IP4:
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _invalid(text, f"{host!r} is not an IPv4 address") from None
    if kind is HostKind.IP6:
        if "%" in host:
            raise _invalid(text, "IPv6 zone indices are not supported")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise _invalid(text, f"{host!r} is not an IPv6 address") from None
    name = host.lower()
    if len(name) > _MAX_HOSTNAME_LENGTH or not all(
        _LABEL_RE.fullmatch(label) for label in name.split(".")
    ):
        raise _invalid(text, f"{host!r} is not a valid host name")
    return name


def _canonical_relay_target(target: str, text: str) -> str:
    """A user id (canonical) or a 16-hex-digit device id (lowercase)."""
    if not isinstance(target, str):
        raise _invalid(text, "a relay target is a string")
    if _DEVICE_ID_RE.fullmatch(target.lower()) is not None:
        return target.lower()
    return _canonical_user_id(target, text)


def _canonical_user_id(user_id: str, text: str) -> str:
    try:
        return user_id_from_public_key(public_key_from_user_id(user_id))
    except InvalidUserIdError as exc:
        raise _invalid(text, f"/omega: {exc.message}") from exc
