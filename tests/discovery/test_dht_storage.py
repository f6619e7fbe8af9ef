"""The validating record storage a DHT node plugs into kademlia."""

from __future__ import annotations

import logging

import pytest
from discovery_helpers import HOUR_MS, NOW_MS

from omega.crypto import Identity, sign_device_list
from omega.discovery import sign_peer_record
from omega.discovery._storage import RecordStorage, StorageLimits, ValueCache
from omega.discovery.dht_values import (
    device_list_key,
    encode_dht_value,
    peer_record_key,
)
from omega.errors import ExpiredRecordError, MessageDecodeError, RevokedDeviceError
from omega.testing.clock import ManualClock
from omega.testing.random import SeededRandom

LIMITS = StorageLimits(
    max_records=3, max_bytes=1 << 20, max_record_lifetime_ms=2 * HOUR_MS, device_list_ttl_ms=HOUR_MS
)


def _peer(identity: Identity, sequence: int = 1, lifetime: int = HOUR_MS) -> bytes:
    return encode_dht_value(
        sign_peer_record(
            identity.device,
            addresses=["/ip4/127.0.0.1/tcp/1"],
            sequence=sequence,
            expires_at=NOW_MS + lifetime,
        )
    )


def _people(count: int) -> list[Identity]:
    return [
        Identity.create(device_name="s", created_at=NOW_MS, rng=SeededRandom(b"store%d" % i))
        for i in range(count)
    ]


def test_records_are_served_while_live_and_dropped_after(
    clock: ManualClock, alice: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "omega.discovery.dht")
    storage = RecordStorage(LIMITS, clock, ValueCache())
    peer_key = peer_record_key(alice.device.device_key)
    list_key = device_list_key(alice.user_id)
    storage[peer_key] = _peer(alice)
    storage[list_key] = encode_dht_value(alice.device_list.to_signed())
    storage[bytes(20)] = b"junk"
    assert "dht.local_store_refused" in caplog.text
    assert storage.count == 2
    assert storage.total_bytes == len(_peer(alice)) + len(storage[list_key])
    assert storage[peer_key] == _peer(alice)
    assert dict(storage) == {peer_key: _peer(alice), list_key: storage[list_key]}
    assert storage.iter_older_than(0) == list(storage)
    assert storage.iter_older_than(60) == []
    clock.advance(30 * 60)
    assert storage.offer(list_key, storage[list_key]) is None  # a republish keeps it alive
    clock.advance(45 * 60)
    assert storage.get(peer_key) is None  # expired
    assert storage.get(list_key) is not None
    clock.advance(20 * 60)
    with pytest.raises(KeyError):
        storage[list_key]  # not re-stored within the TTL
    assert storage.count == 0
    assert storage.total_bytes == 0


def test_limits_on_records_bytes_and_lifetime(clock: ManualClock) -> None:
    people = _people(5)
    storage = RecordStorage(LIMITS, clock, ValueCache())
    for person in people[:3]:
        assert storage.offer(peer_record_key(person.device.device_key), _peer(person)) is None
    key = peer_record_key(people[3].device.device_key)
    assert storage.offer(key, _peer(people[3])) == "storage full"
    assert storage.offer(b"short", _peer(people[3])) == "malformed key"
    # An update of a held key is always possible.
    held = peer_record_key(people[0].device.device_key)
    assert storage.offer(held, _peer(people[0], sequence=2)) is None
    assert storage.offer(held, _peer(people[0], sequence=1)) == "stale_record"
    clock.advance(HOUR_MS / 1000)  # everything expires: room again
    assert storage.offer(key, _peer(people[3], lifetime=2 * HOUR_MS)) is None
    assert storage.offer(
        peer_record_key(people[4].device.device_key), _peer(people[4], lifetime=4 * HOUR_MS)
    ) == ("expiry too far in the future")
    small = RecordStorage(
        StorageLimits(
            max_records=10, max_bytes=100, max_record_lifetime_ms=9 * HOUR_MS, device_list_ttl_ms=1
        ),
        clock,
        ValueCache(),
    )
    assert small.offer(key, _peer(people[3], lifetime=2 * HOUR_MS)) == "storage full"
    storage.cull()


def test_the_cache_checks_signatures_once_but_expiry_and_order_every_time(
    clock: ManualClock, alice: Identity, bob: Identity
) -> None:
    cache = ValueCache(size=1)
    key = peer_record_key(alice.device.device_key)
    value = _peer(alice, lifetime=10)
    first = cache.read(key, value, now=NOW_MS, previous=None)
    assert cache.read(key, value, now=NOW_MS, previous=None) is first
    with pytest.raises(ExpiredRecordError):
        cache.read(key, value, now=NOW_MS + 10, previous=None)
    with pytest.raises(MessageDecodeError):
        cache.read(key, 5, now=NOW_MS, previous=None)
    other = peer_record_key(bob.device.device_key)
    cache.read(other, _peer(bob), now=NOW_MS, previous=None)  # evicts alice's (size 1)
    # A device list against a held one is verified in full (revocations must be kept).
    list_key = device_list_key(alice.user_id)
    grown = alice.add_device(bob.device.device_key, name="b", created_at=NOW_MS)
    revoked = grown.revoke_device(bob.device.device_key, revoked_at=NOW_MS)
    held = cache.read(
        list_key, encode_dht_value(revoked.device_list.to_signed()), now=0, previous=None
    )
    cache.read(list_key, encode_dht_value(grown.device_list.to_signed()), now=0, previous=None)
    with pytest.raises(RevokedDeviceError):
        cache.read(
            list_key,
            encode_dht_value(
                sign_device_list(
                    alice.key_pair,
                    sequence=4,
                    devices=[c.to_signed() for c in revoked.device_list.devices],
                    revocations=[],
                    issued_at=NOW_MS,
                )
            ),
            now=0,
            previous=held,
        )
