"""The resolver conformance suite: a resolver proves itself by passing :func:`check_resolver`.

The static table and the DHT both run it, so they promise the same things:
a published device list and peer record come back verified and equal to
what was published; a newer one replaces an older one and an older one never
comes back; a record is not returned for another user, nor once it has
expired (time comes from the injected clock); a forged record is refused at
publication and never returned; unknown users and devices resolve to
``None``; bad arguments raise typed errors; a closed resolver raises
:class:`~omega.errors.LocalProtocolError`.

``open_pair(clock)`` is an async context manager factory that yields a
``(publisher, resolver)`` pair (the same object for a static table, two
nodes of one network for a DHT) whose clock is ``clock``, a
:class:`~omega.testing.clock.ManualClock` reading Unix seconds. Each check
runs under ``anyio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import anyio

from omega.crypto import Identity, LocalDevice, device_id
from omega.crypto.devices import (
    DEVICE_LIST_CONTEXT,
    DeviceKeyPair,
    certify_device,
    verify_device_certificate,
)
from omega.discovery.base import Publisher, Resolver
from omega.discovery.records import PEER_RECORD_CONTEXT, sign_peer_record
from omega.errors import (
    CryptoError,
    DecodeError,
    DiscoveryError,
    InvalidKeyError,
    InvalidUserIdError,
    LocalProtocolError,
)
from omega.protocol import SignedDeviceList, SignedPeerRecord
from omega.testing.clock import ManualClock
from omega.testing.random import SeededRandom

__all__ = ["START_TIME", "ResolverPair", "check_resolver"]

START_TIME = 1_800_000_000.0
"""Unix time, in seconds, at which the suite starts its clock."""

ResolverPair = Callable[[ManualClock], AbstractAsyncContextManager[tuple[Publisher, Resolver]]]
"""Opens a publisher and a resolver that share one store or network, on ``clock``."""

_TIMEOUT = 30.0
_HOUR_MS = 3_600_000


class _ConformanceError(AssertionError):
    """A resolver broke one of the suite's promises."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _ConformanceError(message)


@dataclass
class _People:
    alice: Identity
    bob: Identity
    mallory: Identity


def _people(seed: bytes) -> _People:
    rng = SeededRandom(seed)
    created = int(START_TIME * 1000)
    return _People(
        alice=Identity.create(device_name="alice phone", created_at=created, rng=rng),
        bob=Identity.create(device_name="bob laptop", created_at=created, rng=rng),
        mallory=Identity.create(device_name="mallory", created_at=created, rng=rng),
    )


def _now_ms(clock: ManualClock) -> int:
    return int(clock.now() * 1000)


async def _refused(publication: Awaitable[None]) -> bool:
    """True when publishing raised a typed refusal (or the network would not store it)."""
    try:
        await publication
    except (CryptoError, DecodeError, DiscoveryError):
        return True
    return False


async def _check_device_lists(open_pair: ResolverPair, seed: bytes) -> None:
    people = _people(seed)
    clock = ManualClock(START_TIME)
    async with open_pair(clock) as (publisher, resolver):
        _require(
            await resolver.resolve_device_list(people.alice.user_id) is None,
            "an unknown user must resolve to None",
        )
        first = people.alice.device_list.to_signed()
        await publisher.publish_device_list(first)
        found = await resolver.resolve_device_list(people.alice.user_id)
        _require(found is not None, "a published device list must be found")
        assert found is not None
        _require(found.sequence == 1, "the device list found is not the one published")
        _require(found.device_list_bytes == first.device_list, "the device list came back altered")
        newer = people.alice.add_device(
            DeviceKeyPair.generate(SeededRandom(seed + b"/second")).public_key,
            name="alice tablet",
            created_at=_now_ms(clock),
        )
        await publisher.publish_device_list(newer.device_list.to_signed())
        found = await resolver.resolve_device_list(people.alice.user_id)
        _require(
            found is not None and found.sequence == 2, "a newer device list must replace the old"
        )
        await _refused(publisher.publish_device_list(first))
        found = await resolver.resolve_device_list(people.alice.user_id)
        _require(
            found is not None and found.sequence == 2, "an older device list must never come back"
        )
        # Alice's next list signed by Mallory's identity key is refused, never returned.
        body = people.alice.add_device(
            DeviceKeyPair.generate(SeededRandom(seed + b"/third")).public_key,
            name="mallory's",
            created_at=_now_ms(clock),
        )
        signed = body.device_list.to_signed()
        forged = SignedDeviceList(
            device_list=signed.device_list,
            signature=people.mallory.key_pair.sign(DEVICE_LIST_CONTEXT + signed.device_list),
        )
        _require(
            await _refused(publisher.publish_device_list(forged)),
            "a device list signed by another identity must be refused",
        )
        found = await resolver.resolve_device_list(people.alice.user_id)
        _require(found is not None and found.sequence == 2, "a forged device list was returned")


async def _check_peer_records(open_pair: ResolverPair, seed: bytes) -> None:
    people = _people(seed)
    clock = ManualClock(START_TIME)
    alice = people.alice.device
    async with open_pair(clock) as (publisher, resolver):
        _require(
            await resolver.resolve_peer(alice.device_key, user_id=people.alice.user_id) is None,
            "an unknown device must resolve to None",
        )
        now = _now_ms(clock)
        record = sign_peer_record(
            alice,
            addresses=["/ip4/192.0.2.1/tcp/4001"],
            relays=["/dns/relay.example.org/tcp/443/wss"],
            mailboxes=["https://store.example.org/"],
            sequence=1,
            expires_at=now + _HOUR_MS,
        )
        await publisher.publish_peer_record(record)
        found = await resolver.resolve_peer(alice.device_key, user_id=people.alice.user_id)
        _require(found is not None, "a published peer record must be found")
        assert found is not None
        _require(
            found.device_key == alice.device_key and found.user_id == people.alice.user_id,
            "the peer record found names another device or user",
        )
        _require(
            [str(a) for a in found.addresses] == ["/ip4/192.0.2.1/tcp/4001"]
            and [str(a) for a in found.relays] == ["/dns/relay.example.org/tcp/443/wss"]
            and found.mailboxes == ("https://store.example.org/",)
            and found.sequence == 1
            and found.expires_at == now + _HOUR_MS,
            "the peer record came back altered",
        )
        _require(
            await resolver.resolve_peer(alice.device_key, user_id=people.bob.user_id) is None,
            "a peer record must not be returned for another user",
        )
        newer = sign_peer_record(
            alice,
            addresses=["/ip4/192.0.2.2/tcp/4001"],
            sequence=2,
            expires_at=now + 2 * _HOUR_MS,
        )
        await publisher.publish_peer_record(newer)
        found = await resolver.resolve_peer(alice.device_key, user_id=people.alice.user_id)
        _require(
            found is not None and found.sequence == 2, "a newer peer record must replace the old"
        )
        await _refused(publisher.publish_peer_record(record))
        found = await resolver.resolve_peer(alice.device_key, user_id=people.alice.user_id)
        _require(
            found is not None and found.sequence == 2, "an older peer record must never come back"
        )
        await _check_forgeries(publisher, resolver, people, clock)
        clock.advance(2 * 3600 + 1)
        _require(
            await resolver.resolve_peer(alice.device_key, user_id=people.alice.user_id) is None,
            "an expired peer record must not be returned",
        )


async def _check_forgeries(
    publisher: Publisher, resolver: Resolver, people: _People, clock: ManualClock
) -> None:
    """Mallory tries to announce addresses for Alice's device; nothing of it is ever returned."""
    victim = people.alice.device
    expires_at = _now_ms(clock) + _HOUR_MS
    # 1. Mallory certifies Alice's device key as her own device and signs with her own device.
    stolen_certificate = certify_device(
        people.mallory.key_pair, victim.device_key, name="stolen", created_at=0
    )
    own = sign_peer_record(
        people.mallory.device,
        addresses=["/ip4/203.0.113.66/tcp/4001"],
        sequence=99,
        expires_at=expires_at,
    )
    forged = SignedPeerRecord(
        peer_record=own.peer_record, signature=own.signature, certificate=stolen_certificate
    )
    _require(
        await _refused(publisher.publish_peer_record(forged)),
        "a peer record whose signature is not the certified device's must be refused",
    )
    # 2. A record for Alice's device signed by Mallory's device key under Alice's certificate.
    impostor = LocalDevice(
        key_pair=people.mallory.device.key_pair,
        certificate=verify_device_certificate(
            certify_device(
                people.mallory.key_pair,
                people.mallory.device.device_key,
                name="impostor",
                created_at=0,
            ),
            identity_key=people.mallory.identity_key,
        ),
    )
    own = sign_peer_record(
        impostor, addresses=["/ip4/203.0.113.66/tcp/4001"], sequence=100, expires_at=expires_at
    )
    swapped = SignedPeerRecord(
        peer_record=own.peer_record,
        signature=impostor.key_pair.sign(PEER_RECORD_CONTEXT + own.peer_record),
        certificate=victim.certificate.to_signed(),
    )
    _require(
        await _refused(publisher.publish_peer_record(swapped)),
        "a peer record signed by another key than the certified device's must be refused",
    )
    found = await resolver.resolve_peer(victim.device_key, user_id=people.alice.user_id)
    _require(
        found is not None and found.sequence == 2 and found.device_key == victim.device_key,
        f"a forged record replaced the peer record of device {device_id(victim.device_key)}",
    )
    # 3. An expired record is refused at publication.
    stale = sign_peer_record(
        victim,
        addresses=["/ip4/192.0.2.9/tcp/4001"],
        sequence=50,
        expires_at=_now_ms(clock) - 1,
    )
    _require(
        await _refused(publisher.publish_peer_record(stale)),
        "an expired peer record must be refused",
    )


async def _check_arguments_and_close(open_pair: ResolverPair, seed: bytes) -> None:
    people = _people(seed)
    clock = ManualClock(START_TIME)
    async with open_pair(clock) as (_publisher, resolver):
        for call in (
            lambda: resolver.resolve_device_list("omega1notauserid"),
            lambda: resolver.resolve_peer(people.alice.device.device_key, user_id="bob"),
        ):
            try:
                await call()
            except InvalidUserIdError:
                pass
            else:
                raise _ConformanceError("an invalid user id must raise InvalidUserIdError")
        try:
            await resolver.resolve_peer(b"short", user_id=people.alice.user_id)
        except InvalidKeyError:
            pass
        else:
            raise _ConformanceError("an invalid device key must raise InvalidKeyError")
    try:
        await resolver.resolve_device_list(people.alice.user_id)
    except LocalProtocolError:
        return
    raise _ConformanceError("a closed resolver must raise LocalProtocolError")


async def check_resolver(open_pair: ResolverPair, *, seed: bytes = b"omega-resolver") -> None:
    """Run every check of the suite against the resolvers ``open_pair`` opens."""
    checks = (_check_device_lists, _check_peer_records, _check_arguments_and_close)
    for check in checks:
        with anyio.fail_after(_TIMEOUT):
            await check(open_pair, seed + check.__name__.encode())
