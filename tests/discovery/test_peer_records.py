"""Signed peer records: signing, verification rules in order, and property tests."""

from __future__ import annotations

import pytest
from discovery_helpers import HOUR_MS, NOW_MS
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import Identity, LocalDevice
from omega.discovery import (
    MAX_ADDRESSES,
    MAX_MAILBOXES,
    MAX_PEER_RECORD_SIZE,
    PEER_RECORD_CONTEXT,
    check_mailbox_url,
    sign_peer_record,
    verify_peer_record,
)
from omega.errors import (
    CertificateError,
    ConfigurationError,
    ExpiredRecordError,
    InvalidSignatureError,
    InvalidUserIdError,
    MessageDecodeError,
)
from omega.protocol import PeerRecord, SignedPeerRecord, decode_message, encode_message
from omega.transport.address import Address


def _sign(device: LocalDevice, **overrides: object) -> SignedPeerRecord:
    fields: dict[str, object] = {
        "addresses": ["/ip4/192.0.2.1/tcp/4001", Address.parse("/ip6/::1/udp/4433/quic-v1")],
        "relays": ["/dns/relay.example.org/tcp/443/wss"],
        "mailboxes": ["https://store.example.org/omega"],
        "sequence": 7,
        "expires_at": NOW_MS + HOUR_MS,
    }
    fields.update(overrides)
    return sign_peer_record(device, **fields)  # type: ignore[arg-type]


def _resign(device: LocalDevice, record: PeerRecord) -> SignedPeerRecord:
    body = encode_message(record)
    return SignedPeerRecord(
        peer_record=body,
        signature=device.key_pair.sign(PEER_RECORD_CONTEXT + body),
        certificate=device.certificate.to_signed(),
    )


def _record(signed: SignedPeerRecord) -> PeerRecord:
    return decode_message(PeerRecord, signed.peer_record)


def test_a_signed_record_verifies_standalone_and_keeps_every_field(alice: Identity) -> None:
    signed = _sign(alice.device)
    info = verify_peer_record(encode_message(signed), now=NOW_MS)
    assert info.user_id == alice.user_id
    assert info.device_key == alice.device.device_key
    assert info.device_id == alice.device.device_id
    assert [str(a) for a in info.addresses] == [
        "/ip4/192.0.2.1/tcp/4001",
        "/ip6/::1/udp/4433/quic-v1",
    ]
    assert [str(a) for a in info.relays] == ["/dns/relay.example.org/tcp/443/wss"]
    assert info.mailboxes == ("https://store.example.org/omega",)
    assert (info.sequence, info.expires_at) == (7, NOW_MS + HOUR_MS)
    assert info.signed == signed
    assert info.certificate is not None
    assert info.certificate.device_key == alice.device.device_key
    assert verify_peer_record(signed, now=NOW_MS, user_id=alice.user_id.upper()) == info


def test_the_record_bytes_are_the_documented_encoding(alice: Identity) -> None:
    signed = _sign(alice.device)
    record = _record(signed)
    assert record.version == 1
    assert record.user_id == alice.user_id
    assert record.addresses == ["/ip4/192.0.2.1/tcp/4001", "/ip6/::1/udp/4433/quic-v1"]
    assert alice.device.key_pair.sign(PEER_RECORD_CONTEXT + signed.peer_record) == signed.signature


def test_a_record_for_another_user_is_refused(alice: Identity, bob: Identity) -> None:
    with pytest.raises(InvalidSignatureError):  # the certificate is not signed by bob
        verify_peer_record(_sign(alice.device), now=NOW_MS, user_id=bob.user_id)
    with pytest.raises(InvalidUserIdError):
        verify_peer_record(_sign(alice.device), now=NOW_MS, user_id="omega1nope")


def test_an_expired_record_is_refused(alice: Identity) -> None:
    signed = _sign(alice.device, expires_at=NOW_MS + 1)
    verify_peer_record(signed, now=NOW_MS)
    with pytest.raises(ExpiredRecordError) as info:
        verify_peer_record(signed, now=NOW_MS + 1)
    assert info.value.details == {"expires_at": NOW_MS + 1, "now": NOW_MS + 1}


def test_a_tampered_record_fails_its_signature(alice: Identity) -> None:
    signed = _sign(alice.device)
    tampered = bytearray(signed.peer_record)
    tampered[-1] ^= 1
    with pytest.raises(InvalidSignatureError):
        verify_peer_record(
            SignedPeerRecord(
                peer_record=bytes(tampered),
                signature=signed.signature,
                certificate=signed.certificate,
            ),
            now=NOW_MS,
            user_id=alice.user_id,
        )


def test_a_record_signed_by_another_key_than_the_certified_device_fails(
    alice: Identity, bob: Identity
) -> None:
    body = _sign(alice.device).peer_record
    forged = SignedPeerRecord(
        peer_record=body,
        signature=bob.device.key_pair.sign(PEER_RECORD_CONTEXT + body),
        certificate=alice.device.certificate.to_signed(),
    )
    with pytest.raises(InvalidSignatureError):
        verify_peer_record(forged, now=NOW_MS)


def test_a_record_with_another_users_certificate_fails(alice: Identity, bob: Identity) -> None:
    signed = _sign(alice.device)
    with pytest.raises(InvalidSignatureError):
        verify_peer_record(
            SignedPeerRecord(
                peer_record=signed.peer_record,
                signature=signed.signature,
                certificate=bob.device.certificate.to_signed(),
            ),
            now=NOW_MS,
        )


def test_a_record_without_certificate_is_refused(alice: Identity) -> None:
    signed = _sign(alice.device)
    with pytest.raises(CertificateError, match="no device certificate"):
        verify_peer_record(
            SignedPeerRecord(peer_record=signed.peer_record, signature=signed.signature),
            now=NOW_MS,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version 2"),
        ({"device_key": bytes(32)}, "another device"),
        ({"addresses": ["/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1"]}, "twice"),
        ({"addresses": ["tcp://1.2.3.4:1"]}, "invalid address"),
        ({"relays": ["/memory/x"] * 2}, "twice"),
        ({"addresses": ["/memory/a"] * (MAX_ADDRESSES + 1)}, "maximum"),
        ({"mailboxes": ["ftp://x.org/"]}, "http"),
        ({"mailboxes": ["https://a.org/", "https://a.org/"]}, "twice"),
        ({"mailboxes": [f"https://m{i}.org/" for i in range(MAX_MAILBOXES + 1)]}, "maximum"),
        ({"addresses": [], "relays": [], "mailboxes": []}, "no address"),
    ],
)
def test_rule_breaks_are_certificate_errors(
    alice: Identity, change: dict[str, object], message: str
) -> None:
    record = _record(_sign(alice.device))
    for name, value in change.items():
        setattr(record, name, value)
    with pytest.raises(CertificateError, match=message):
        verify_peer_record(_resign(alice.device, record), now=NOW_MS)


def test_a_record_naming_another_user_is_refused(alice: Identity, bob: Identity) -> None:
    record = _record(_sign(alice.device))
    record.user_id = bob.user_id
    with pytest.raises(InvalidSignatureError):  # the certificate is not bob's
        verify_peer_record(_resign(alice.device, record), now=NOW_MS)
    with pytest.raises(CertificateError, match="another user"):
        verify_peer_record(_resign(alice.device, record), now=NOW_MS, user_id=alice.user_id)


def test_oversized_records_are_refused_before_any_signature_work(alice: Identity) -> None:
    signed = _sign(alice.device)
    huge = SignedPeerRecord(
        peer_record=bytes(MAX_PEER_RECORD_SIZE + 1),
        signature=signed.signature,
        certificate=signed.certificate,
    )
    with pytest.raises(MessageDecodeError):
        verify_peer_record(huge, now=NOW_MS)
    with pytest.raises(MessageDecodeError):
        verify_peer_record(encode_message(huge), now=NOW_MS)
    with pytest.raises(MessageDecodeError):
        verify_peer_record(b"\xff\xff", now=NOW_MS)
    with pytest.raises(ConfigurationError):
        verify_peer_record("text", now=NOW_MS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sequence": -1}, "sequence"),
        ({"sequence": 1 << 64}, "sequence"),
        ({"sequence": True}, "sequence"),
        ({"expires_at": 0}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"addresses": ["nowhere"]}, "nowhere"),
        ({"mailboxes": ["https://user:pw@x.org/"]}, "user info"),
        ({"addresses": [], "relays": [], "mailboxes": []}, "no address"),
    ],
)
def test_signing_refuses_what_verification_would(
    alice: Identity, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _sign(alice.device, **overrides)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://store.example.org/", True),
        ("http://127.0.0.1:8080/mailbox", True),
        ("https://[::1]:443/x?y=1", True),
        ("", False),
        ("https://" + "a" * 600, False),
        ("https://exa mple.org/", False),
        ("https://xn--é.org/", False),
        ("ftp://example.org/", False),
        ("https:///path", False),
        ("https://u@example.org/", False),
        ("https://example.org/#frag", False),
        ("https://example.org/#", False),
        ("https://example.org:99999/", False),
        ("https://[::1/", False),
    ],
)
def test_mailbox_urls(url: str, ok: bool) -> None:
    assert (check_mailbox_url(url) is None) is ok


@settings(max_examples=25)
@given(
    ports=st.lists(st.integers(1, 65535), min_size=1, max_size=MAX_ADDRESSES, unique=True),
    sequence=st.integers(0, (1 << 64) - 1),
    lifetime=st.integers(1, 1 << 40),
)
def test_every_signed_record_verifies_until_it_expires(
    ports: list[int], sequence: int, lifetime: int
) -> None:
    from omega.testing.random import SeededRandom

    alice = Identity.create(device_name="a", created_at=NOW_MS, rng=SeededRandom(b"p"))
    signed = sign_peer_record(
        alice.device,
        addresses=[f"/ip4/10.0.0.1/tcp/{port}" for port in ports],
        sequence=sequence,
        expires_at=NOW_MS + lifetime,
    )
    assert len(encode_message(signed)) <= MAX_PEER_RECORD_SIZE
    info = verify_peer_record(encode_message(signed), now=NOW_MS)
    assert [a.port for a in info.addresses] == ports
    assert info.sequence == sequence
    with pytest.raises(ExpiredRecordError):
        verify_peer_record(signed, now=NOW_MS + lifetime)
