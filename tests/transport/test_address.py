"""Transport addresses: the multiaddr-style grammar, canonical printing, typed errors."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import IdentityKeyPair
from omega.errors import DecodeError, InvalidAddressError
from omega.transport.address import MAX_ADDRESS_LENGTH, Address, HostKind

USER_ID = IdentityKeyPair.from_seed(bytes(32)).user_id


@pytest.mark.parametrize(
    ("text", "canonical", "transport", "port"),
    [
        ("/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "tcp", 4001),
        ("/ip6/::1/tcp/0", "/ip6/::1/tcp/0", "tcp", 0),
        ("/IP6/0:0:0:0:0:0:0:1/TCP/65535", "/ip6/::1/tcp/65535", "tcp", 65535),
        ("/dns/Example.ORG/tcp/443/wss", "/dns/example.org/tcp/443/wss", "wss", 443),
        ("/dns4/a-b.c/tcp/80/ws", "/dns4/a-b.c/tcp/80/ws", "ws", 80),
        ("/dns6/localhost/udp/4433/quic-v1", "/dns6/localhost/udp/4433/quic-v1", "quic", 4433),
        ("/ip4/10.0.0.1/udp/1/QUIC-V1", "/ip4/10.0.0.1/udp/1/quic-v1", "quic", 1),
        ("  /memory/alice.1_~-  \n", "/memory/alice.1_~-", "memory", None),
        ("/memory/Bob", "/memory/Bob", "memory", None),
    ],
)
def test_valid_addresses_parse_and_print_canonically(
    text: str, canonical: str, transport: str, port: int | None
) -> None:
    address = Address.parse(text)
    assert str(address) == canonical
    assert address.transport == transport
    assert address.port == port
    assert Address.parse(canonical) == address


def test_a_peer_suffix_names_the_expected_user() -> None:
    address = Address.parse(f"/ip4/127.0.0.1/tcp/1/omega/{USER_ID.upper()}")
    assert address.peer == USER_ID
    assert str(address) == f"/ip4/127.0.0.1/tcp/1/omega/{USER_ID}"
    assert address.with_peer(None) == Address.parse("/ip4/127.0.0.1/tcp/1")
    assert Address.parse(f"/memory/omega/omega/{USER_ID}").host == "omega"
    assert address.with_port(2).port == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "starts with '/'"),
        ("ip4/1.2.3.4/tcp/1", "starts with '/'"),
        ("/", "empty component"),
        ("/ip4/1.2.3.4/tcp/1/", "empty component"),
        ("/ip4//tcp/1", "empty component"),
        ("/ip9/1.2.3.4/tcp/1", "unknown first component"),
        ("/ip4", "needs a value"),
        ("/ip4/1.2.3.04/tcp/1", "not an IPv4 address"),
        ("/ip4/::1/tcp/1", "not an IPv4 address"),
        ("/ip6/1.2.3.4/tcp/1", "not an IPv6 address"),
        ("/ip6/fe80::1%eth0/tcp/1", "zone"),
        ("/dns/-bad.org/tcp/1", "not a valid host name"),
        ("/dns/a..b/tcp/1", "not a valid host name"),
        ("/dns/" + "a" * 64 + "/tcp/1", "not a valid host name"),
        ("/dns/under_score/tcp/1", "not a valid host name"),
        ("/ip4/1.2.3.4", "continues with /tcp"),
        ("/ip4/1.2.3.4/sctp/1", "continues with /tcp"),
        ("/ip4/1.2.3.4/tcp/01", "decimal integer"),
        ("/ip4/1.2.3.4/tcp/+1", "decimal integer"),
        ("/ip4/1.2.3.4/tcp/65536", "decimal integer"),
        ("/ip4/1.2.3.4/tcp/1_0", "decimal integer"),
        ("/ip4/1.2.3.4/tcp/1/quic-v1", "only /ws or /wss"),
        ("/ip4/1.2.3.4/tcp/1/ws/ws", "only /ws or /wss"),
        ("/ip4/1.2.3.4/udp/1", "must be followed by /quic-v1"),
        ("/ip4/1.2.3.4/udp/1/quic", "must be followed by /quic-v1"),
        ("/memory/a b", "memory name"),
        ("/memory/" + "x" * 65, "memory name"),
        ("/memory/a/tcp/1", "after the memory name"),
        ("/omega/" + USER_ID, "no host component"),
        ("/ip4/1.2.3.4/tcp/1/omega/omega1qqqq", "/omega: invalid user id"),
        ("/ip4/1.2.3.4/tcp/1/omega/" + USER_ID[:-1] + "x", "/omega: invalid user id"),
        ("/" + "a" * MAX_ADDRESS_LENGTH, "longer than"),
    ],
)
def test_invalid_addresses_raise_a_typed_error_saying_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidAddressError, match=reason) as info:
        Address.parse(text)
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "invalid_address"


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidAddressError, match="string"):
        Address.parse(b"/memory/a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [
        ("ip4", "1.2.3.4", "tcp", 1),
        (HostKind.IP4, 1234, "tcp", 1),
        (HostKind.IP4, "1.2.3.4", "udp", 1),
        (HostKind.IP4, "1.2.3.4", "memory", 1),
        (HostKind.MEMORY, "a", "tcp", 1),
        (HostKind.MEMORY, "a", "memory", 1),
        (HostKind.IP4, "1.2.3.4", "tcp", None),
        (HostKind.IP4, "1.2.3.4", "tcp", True),
        (HostKind.IP4, "1.2.3.4", "tcp", 70000),
    ],
)
def test_direct_construction_is_validated_too(arguments: tuple[object, ...]) -> None:
    with pytest.raises(InvalidAddressError):
        Address(*arguments)  # type: ignore[arg-type]


def test_construction_normalises() -> None:
    address = Address(HostKind.IP6, "0::1", "quic", 9, USER_ID.upper())
    assert str(address) == f"/ip6/::1/udp/9/quic-v1/omega/{USER_ID}"
    assert HostKind.DNS4.is_dns
    assert not HostKind.IP4.is_dns
    assert address.is_memory is False


_labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.tuples(st.just(HostKind.IP4), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just(HostKind.IP6), st.ip_addresses(v=6).map(str)),
    st.tuples(
        st.sampled_from([HostKind.DNS, HostKind.DNS4, HostKind.DNS6]),
        st.lists(_labels, min_size=1, max_size=4).map(".".join),
    ),
)
_peers = st.one_of(
    st.none(),
    st.sampled_from([IdentityKeyPair.from_seed(bytes([seed]) * 32).user_id for seed in range(4)]),
)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    if draw(st.booleans()):
        name = draw(st.from_regex(r"[A-Za-z0-9._~-]{1,64}", fullmatch=True))
        return Address(HostKind.MEMORY, name, "memory", None, draw(_peers))
    kind, host = draw(_hosts)
    transport = draw(st.sampled_from(["tcp", "ws", "wss", "quic"]))
    port = draw(st.integers(0, 65535))
    return Address(kind, host, transport, port, draw(_peers))


@settings(max_examples=300)
@given(addresses())
def test_printing_then_parsing_round_trips(address: Address) -> None:
    text = str(address)
    assert Address.parse(text) == address
    assert str(Address.parse(text)) == text
    if address.host_kind is HostKind.IP6:
        assert ipaddress.IPv6Address(address.host).compressed == address.host


@settings(max_examples=500)
@given(st.text(alphabet="/ip46dnsmemorytcpudpquicvwsx0123456789.:-_", max_size=60))
def test_any_text_parses_canonically_or_raises_the_typed_error(text: str) -> None:
    try:
        address = Address.parse(text)
    except InvalidAddressError:
        return
    assert Address.parse(str(address)) == address
