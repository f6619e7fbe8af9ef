"""Relay addresses: the grammar's relay branch, canonical form, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transport_helpers import make_identity

from omega.errors import InvalidAddressError
from omega.transport.address import Address, HostKind

BOB = make_identity("bob")


@pytest.mark.parametrize(
    ("text", "via", "target"),
    [
        ("/dns/relay.example/tcp/443/wss/relay", "wss", None),
        ("/ip4/127.0.0.1/tcp/8080/ws/relay/0123456789abcdef", "ws", "0123456789abcdef"),
        ("/ip6/::1/tcp/4001/relay/0123456789ABCDEF", "tcp", "0123456789abcdef"),
        (f"/dns4/r.example/tcp/443/wss/relay/{BOB.user_id.upper()}", "wss", BOB.user_id),
    ],
)
def test_relay_addresses_parse(text: str, via: str, target: str | None) -> None:
    address = Address.parse(text)
    assert address.transport == "relay"
    assert address.is_relay
    assert (address.via, address.relay_target) == (via, target)
    assert Address.parse(str(address)) == address
    relay = address.relay_address()
    assert (relay.transport, relay.host, relay.port) == (via, address.host, address.port)


def test_relay_address_with_expected_peer_round_trips() -> None:
    text = f"/ip4/10.0.0.1/tcp/443/wss/relay/{BOB.device.device_id}/omega/{BOB.user_id}"
    address = Address.parse(text)
    assert address.peer == BOB.user_id
    assert address.relay_target == BOB.device.device_id
    assert str(address) == text
    assert address.with_relay_target(None).relay_target is None
    assert str(address.with_relay_target(BOB.user_id).with_peer(None)).endswith(BOB.user_id)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("/ip4/127.0.0.1/udp/4433/quic-v1/relay", "/tcp, /ws or /wss"),
        ("/ip4/127.0.0.1/tcp/1/relay/abc", "user id"),
        ("/ip4/127.0.0.1/tcp/1/relay/0123456789abcdef/extra", "at most one target"),
        ("/ip4/127.0.0.1/tcp/1/wss/relay/0123456789abcde", "user id"),
        ("/memory/x/relay", "unexpected component"),
    ],
)
def test_malformed_relay_addresses_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidAddressError, match=reason):
        Address.parse(text)


def test_relay_fields_are_checked_on_construction() -> None:
    with pytest.raises(InvalidAddressError, match="reached over"):
        Address(HostKind.IP4, "127.0.0.1", "relay", 1, None, "quic")
    with pytest.raises(InvalidAddressError, match="only relay addresses"):
        Address(HostKind.IP4, "127.0.0.1", "tcp", 1, None, "tcp")
    with pytest.raises(InvalidAddressError, match="only a relay address"):
        Address.parse("/ip4/127.0.0.1/tcp/1").with_relay_target(None)
    with pytest.raises(InvalidAddressError, match="not a relay address"):
        Address.parse("/ip4/127.0.0.1/tcp/1").relay_address()
    with pytest.raises(InvalidAddressError, match="is a string"):
        Address(HostKind.IP4, "127.0.0.1", "relay", 1, None, "tcp", 5)  # type: ignore[arg-type]


@settings(max_examples=50)
@given(
    port=st.integers(0, 65535),
    via=st.sampled_from(["tcp", "ws", "wss"]),
    target=st.one_of(st.none(), st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
)
def test_relay_addresses_round_trip(port: int, via: str, target: str | None) -> None:
    address = Address(HostKind.DNS, "relay.example", "relay", port, None, via, target)
    assert Address.parse(str(address)) == address
