"""DHT keys and values: derivation vectors and the acceptance rules of read_dht_value."""

from __future__ import annotations

import pytest
from discovery_helpers import HOUR_MS, NOW_MS

from omega.crypto import DeviceKeyPair, Identity, IdentityKeyPair
from omega.discovery import sign_peer_record
from omega.discovery.dht_values import (
    MAX_DHT_VALUE_SIZE,
    ValueKind,
    device_list_key,
    encode_dht_value,
    peer_record_key,
    read_dht_value,
)
from omega.errors import (
    CertificateError,
    ConfigurationError,
    ExpiredRecordError,
    MessageDecodeError,
    StaleDeviceListError,
    StaleRecordError,
)
from omega.protocol import DhtRecord, SignedDeviceList, encode_message


def test_keys_match_the_documented_vectors() -> None:
    identity = IdentityKeyPair.from_seed(bytes(32))
    device = DeviceKeyPair.from_seed(bytes([1]) * 32)
    assert device_list_key(identity.user_id).hex() == "1d49d766319332877594145eeab9cd5600c698d3"
    assert peer_record_key(device.public_key).hex() == "9c3b50de6c016fce0bc489e7b7b2649f4fe358de"


def _peer(identity: Identity, sequence: int, expires_at: int = NOW_MS + HOUR_MS) -> bytes:
    return encode_dht_value(
        sign_peer_record(
            identity.device,
            addresses=["/ip4/127.0.0.1/tcp/1"],
            sequence=sequence,
            expires_at=expires_at,
        )
    )


def test_device_lists_are_ordered_and_keep_revocations(alice: Identity, bob: Identity) -> None:
    key = device_list_key(alice.user_id)
    first = read_dht_value(key, encode_dht_value(alice.device_list.to_signed()), now=NOW_MS)
    assert first.kind is ValueKind.DEVICE_LIST
    assert first.expires_at is None
    assert first.is_live(NOW_MS + 10**12)
    assert first.device_list is not None
    with pytest.raises(StaleDeviceListError):
        read_dht_value(key, first.raw, now=NOW_MS, previous=first)
    grown = alice.add_device(bob.device.device_key, name="b", created_at=NOW_MS)
    revoked = grown.revoke_device(bob.device.device_key, revoked_at=NOW_MS)
    second = read_dht_value(key, encode_dht_value(revoked.device_list.to_signed()), now=NOW_MS)
    assert second.sequence == 3
    with pytest.raises(StaleDeviceListError):
        read_dht_value(key, encode_dht_value(grown.device_list.to_signed()), now=0, previous=second)
    with pytest.raises(CertificateError, match="does not belong"):
        read_dht_value(device_list_key(bob.user_id), first.raw, now=NOW_MS)


def test_peer_records_are_ordered_unless_the_held_one_expired(alice: Identity) -> None:
    key = peer_record_key(alice.device.device_key)
    held = read_dht_value(key, _peer(alice, 5, expires_at=NOW_MS + 10), now=NOW_MS)
    assert held.kind is ValueKind.PEER_RECORD
    with pytest.raises(StaleRecordError):
        read_dht_value(key, _peer(alice, 4), now=NOW_MS, previous=held)
    assert read_dht_value(key, _peer(alice, 4), now=NOW_MS + 10, previous=held).sequence == 4
    with pytest.raises(ExpiredRecordError):
        read_dht_value(key, held.raw, now=NOW_MS + 10)
    with pytest.raises(CertificateError, match="does not belong"):
        read_dht_value(bytes(20), held.raw, now=NOW_MS)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        bytes(MAX_DHT_VALUE_SIZE + 1),
        b"\xff",
        encode_message(DhtRecord()),
    ],
)
def test_malformed_values_are_decode_errors(value: object) -> None:
    with pytest.raises(MessageDecodeError):
        read_dht_value(bytes(20), value, now=NOW_MS)


def test_a_value_too_large_for_a_datagram_is_not_encoded() -> None:
    with pytest.raises(ConfigurationError, match="exceeds"):
        encode_dht_value(SignedDeviceList(device_list=bytes(MAX_DHT_VALUE_SIZE), signature=b""))
