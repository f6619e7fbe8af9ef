"""The DHT node: conformance, a 50-node network, forged records, stock kademlia interop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
import umsgpack
from discovery_helpers import HOUR_MS, NOW_MS
from kademlia.crawling import ValueSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node

from omega.crypto import Identity
from omega.discovery import Publisher, Resolver, sign_peer_record
from omega.discovery.dht import DhtConfig, DhtNode
from omega.discovery.dht_values import encode_dht_value, peer_record_key, read_dht_value
from omega.protocol import SignedPeerRecord
from omega.testing.clock import ManualClock
from omega.testing.discovery import check_resolver
from omega.testing.random import SeededRandom

FAST = {"rpc_timeout": 5.0}


def _boot(node: DhtNode) -> str:
    return f"127.0.0.1:{node.address[1]}"


@asynccontextmanager
async def _network(
    count: int, clock: ManualClock, **config: object
) -> AsyncIterator[list[DhtNode]]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            DhtNode(DhtConfig(**{**FAST, **config}), clock=clock)  # type: ignore[arg-type]
        )
        nodes = [first]
        for _ in range(count - 1):
            node = DhtNode(
                DhtConfig(bootstrap=(_boot(first),), **{**FAST, **config}),  # type: ignore[arg-type]
                clock=clock,
            )
            nodes.append(await stack.enter_async_context(node))
        yield nodes


@asynccontextmanager
async def _dht_pair(clock: ManualClock) -> AsyncIterator[tuple[Publisher, Resolver]]:
    async with _network(2, clock) as (first, second):
        yield first, second


@pytest.mark.anyio
async def test_dht_nodes_pass_the_conformance_suite() -> None:
    await check_resolver(_dht_pair)


def _identities(count: int, tag: bytes) -> list[Identity]:
    return [
        Identity.create(device_name="d", created_at=NOW_MS, rng=SeededRandom(tag + b"%d" % i))
        for i in range(count)
    ]


def _record(identity: Identity, port: int, sequence: int = 1) -> SignedPeerRecord:
    return sign_peer_record(
        identity.device,
        addresses=[f"/ip4/127.0.0.1/tcp/{port}"],
        sequence=sequence,
        expires_at=NOW_MS + HOUR_MS,
    )


async def _each(limit: int, calls: list[object]) -> None:
    limiter = anyio.CapacityLimiter(limit)

    async def run(call: object) -> None:
        async with limiter:
            await call()  # type: ignore[operator]

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)


@pytest.mark.anyio
@pytest.mark.slow
async def test_fifty_nodes_find_every_record_refuse_forgeries_and_see_new_addresses(
    clock: ManualClock,
) -> None:
    count = 50
    people = _identities(count, b"fifty")
    victim = people[7]
    victim_key = peer_record_key(victim.device.device_key)
    with anyio.fail_after(180):
        async with _network(count, clock) as nodes:
            # A stock kademlia node sits right next to the victim's key and serves a tampered
            # copy of the victim's record (new address, old signature).
            liar = Server(node_id=bytes([victim_key[0] ^ 1]) + victim_key[1:])
            await liar.listen(0, interface="127.0.0.1")
            try:
                await liar.bootstrap([nodes[0].address])
                await _each(
                    8,
                    [
                        (lambda n=node, p=person, i=i: n.publish_peer_record(_record(p, 4000 + i)))
                        for i, (node, person) in enumerate(zip(nodes, people, strict=True))
                    ],
                )
                honest = _record(victim, 4007)
                body = bytearray(honest.peer_record)
                body[body.index(b"4007")] = ord("6")
                tampered = SignedPeerRecord(
                    peer_record=bytes(body),
                    signature=honest.signature,
                    certificate=honest.certificate,
                )
                liar.storage[victim_key] = encode_dht_value(tampered)
                # Mallory also asks every Omega node to store her own valid record at the
                # victim's key: every one of them declines.
                mallory = _identities(1, b"mallory")[0]
                wrong_place = encode_dht_value(_record(mallory, 6666, sequence=99))
                answers = [
                    await liar.protocol.call_store(
                        Node(b"\0" * 20, *node.address), victim_key, wrong_place
                    )
                    for node in nodes[:10]
                ]
                assert answers == [(True, False)] * 10

                found: dict[tuple[int, int], str] = {}

                async def resolve(reader: int, owner: int) -> None:
                    person = people[owner]
                    info = await nodes[reader].resolve_peer(
                        person.device.device_key, user_id=person.user_id
                    )
                    assert info is not None, f"node {reader} did not find record {owner}"
                    found[reader, owner] = str(info.addresses[0])

                await _each(
                    16,
                    [
                        (lambda r=r, o=o: resolve(r, o))
                        for r in range(count)
                        for o in range(count)
                        if r != o
                    ],
                )
                assert len(found) == count * (count - 1)
                assert all(
                    address == f"/ip4/127.0.0.1/tcp/{4000 + owner}"
                    for (_, owner), address in found.items()
                )
                # The victim moves: every node sees the new address.
                await nodes[7].publish_peer_record(_record(victim, 5007, sequence=2))
                moved = [
                    await node.resolve_peer(victim.device.device_key, user_id=victim.user_id)
                    for node in nodes
                ]
                assert all(
                    info is not None and str(info.addresses[0]) == "/ip4/127.0.0.1/tcp/5007"
                    for info in moved
                )
            finally:
                liar.stop()


@pytest.mark.anyio
async def test_a_stock_kademlia_node_joins_and_routes_through_omega_nodes(
    clock: ManualClock, alice: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(30):
        async with _network(6, clock) as nodes:
            stock = Server()
            await stock.listen(0, interface="127.0.0.1")
            try:
                neighbors = await stock.bootstrap([nodes[0].address])
                assert {(n.ip, n.port) for n in neighbors} == {node.address for node in nodes}
                # Omega nodes route to it too once it has spoken to them.
                assert any(
                    port == stock.transport.get_extra_info("sockname")[1]
                    for _, _, port in nodes[0].routing_table()
                )
                # It cannot store junk on Omega nodes, but it routes and reads Omega records.
                await stock.set("junk", "value")  # (stock set() reports declines as success)
                assert all(node.storage.count == 0 for node in nodes)
                assert "dht.store_refused" in caplog.text
                await nodes[1].publish_peer_record(_record(alice, 4100))
                key = peer_record_key(alice.device.device_key)
                spider = ValueSpiderCrawl(
                    stock.protocol,
                    Node(key),
                    stock.protocol.router.find_neighbors(Node(key)),
                    stock.ksize,
                    stock.alpha,
                )
                value = await spider.find()
                info = read_dht_value(key, value, now=NOW_MS).peer_record
                assert info is not None
                assert info.user_id == alice.user_id
                found = await nodes[5].resolve_peer(alice.device.device_key, user_id=alice.user_id)
                assert found is not None
            finally:
                stock.stop()


def _send(address: tuple[str, int], datagram: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, address)


@pytest.mark.anyio
async def test_malformed_datagrams_are_dropped_with_a_log_line_and_the_node_keeps_routing(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    request = b"\x00" + bytes(20)
    garbage = [
        b"short",
        b"\x07" + bytes(30),
        request + b"\xc1",  # never-used msgpack byte
        request + umsgpack.packb("not a list"),
        request + umsgpack.packb(["explode", []]),
        request + umsgpack.packb(["ping", []]),
        request + umsgpack.packb(["find_node", [b"short", bytes(20)]]),
        request + umsgpack.packb(["store", [bytes(20), bytes(20)]]),
        request + umsgpack.packb(["ping", "args"]),
        request + bytes(9000),
        request + b"\x91" * 4000,  # deeply nested arrays
    ]
    with anyio.fail_after(30):
        async with _network(2, clock) as (first, second):
            for datagram in garbage:
                _send(first.address, datagram)
            with anyio.fail_after(10):
                while first.stats.malformed < len(garbage):
                    await anyio.sleep(0.01)
            assert caplog.text.count("dht.malformed") >= len(garbage)
            assert await second.protocol.call_ping(Node(first.node_id, *first.address)) == (
                True,
                first.node_id,
            )


async def _raw_store(node: DhtNode, key: bytes, value: object, source: DhtNode) -> object:
    answered, answer = await source.protocol.store(node.address, source.node_id, key, value)
    assert answered
    return answer


@pytest.mark.anyio
async def test_forged_oversized_and_misplaced_records_are_declined_not_raised(
    clock: ManualClock, alice: Identity, bob: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(30):
        async with _network(2, clock) as (target, attacker):
            key = peer_record_key(alice.device.device_key)
            honest = _record(alice, 4000)
            forged = SignedPeerRecord(
                peer_record=honest.peer_record,
                signature=bytes(64),
                certificate=honest.certificate,
            )
            cases = {
                "not bytes": 12345,
                "garbage": b"\xff" * 40,
                "forged": encode_dht_value(forged),
                "misplaced": encode_dht_value(_record(bob, 4000)),
                "oversized": bytes(7 * 1024 + 1),
            }
            for name, value in cases.items():
                assert await _raw_store(target, key, value, attacker) is False, name
            assert target.storage.count == 0
            assert caplog.text.count("dht.store_refused") == len(cases)
            # The genuine record is accepted, an older or conflicting one is not.
            assert await _raw_store(target, key, encode_dht_value(honest), attacker) is True
            assert await _raw_store(target, key, encode_dht_value(honest), attacker) is True
            conflicting = _record(alice, 4001)
            assert await _raw_store(target, key, encode_dht_value(conflicting), attacker) is False
            newer = _record(alice, 4002, sequence=2)
            assert await _raw_store(target, key, encode_dht_value(newer), attacker) is True
            assert await _raw_store(target, key, encode_dht_value(honest), attacker) is False
            stored = target.storage.value(key)
            assert stored is not None
            assert stored.sequence == 2
            too_late = sign_peer_record(
                bob.device,
                addresses=["/ip4/127.0.0.1/tcp/1"],
                sequence=1,
                expires_at=NOW_MS + 8 * 24 * HOUR_MS,
            )
            bob_key = peer_record_key(bob.device.device_key)
            assert await _raw_store(target, bob_key, encode_dht_value(too_late), attacker) is False
            assert "expiry too far" in caplog.text


@pytest.mark.anyio
async def test_a_flooding_source_is_rate_limited_and_routing_goes_on(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(30):
        async with _network(2, clock, store_burst=5, store_rate=0.001) as (target, flooder):
            answers = [await _raw_store(target, bytes(20), b"junk", flooder) for _ in range(12)]
            assert answers == [False] * 12
            assert target.stats.stores_refused == 5
            assert target.stats.stores_rate_limited == 7
            assert caplog.text.count("dht.store_rate_limited") == 1
            assert await flooder.protocol.call_ping(Node(target.node_id, *target.address)) == (
                True,
                target.node_id,
            )


@pytest.mark.anyio
async def test_own_records_are_republished_on_the_clock(
    clock: ManualClock, alice: Identity
) -> None:
    with anyio.fail_after(30):
        async with _network(2, clock, republish_interval=60.0) as (publisher, holder):
            await publisher.publish_peer_record(_record(alice, 4000))
            key = peer_record_key(alice.device.device_key)
            assert holder.storage.value(key) is not None
            holder.storage._drop(key)  # the holder lost it (restart, eviction)
            await clock.wait_for_sleepers(2)
            clock.advance(61)
            with anyio.fail_after(10):
                while holder.storage.value(key) is None:
                    await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_publishing_with_nobody_to_store_it_fails_and_a_lone_node_holds_its_own(
    clock: ManualClock, alice: Identity
) -> None:
    from omega.errors import DiscoveryError, LocalProtocolError

    async with DhtNode(DhtConfig(), clock=clock) as lone:
        await lone.publish_peer_record(_record(alice, 4000))
        found = await lone.resolve_peer(alice.device.device_key, user_id=alice.user_id)
        assert found is not None
        with pytest.raises(DiscoveryError):
            await lone.publish_peer_record(_record(alice, 4001))  # same sequence, other bytes
        assert await lone.bootstrap(["127.0.0.1:9"]) == 0
    with pytest.raises(LocalProtocolError):
        await lone.resolve_device_list(alice.user_id)
    with pytest.raises(LocalProtocolError):
        await lone.start()


@pytest.mark.anyio
async def test_a_flood_of_requests_from_one_ip_is_dropped_and_others_still_served(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(30):
        async with _network(2, clock, request_burst_per_ip=20, request_rate_per_ip=0.001) as (
            target,
            _other,
        ):
            ping = b"\x00" + bytes(20) + umsgpack.packb(["ping", [b"\x05" * 20]])
            for _ in range(60):
                _send(target.address, ping)
            with anyio.fail_after(10):
                while target.stats.requests_rate_limited < 60 - 20 + 1:
                    await anyio.sleep(0.01)
            assert caplog.text.count("dht.requests_rate_limited") == 1
            # Everyone here shares 127.0.0.1, so the honest node is limited too: the node
            # itself keeps running and answers once the bucket refills.
            assert target.protocol.closed is False


@pytest.mark.anyio
async def test_a_new_contact_is_handed_the_records_it_should_hold(
    clock: ManualClock, alice: Identity
) -> None:
    with anyio.fail_after(30):
        async with DhtNode(DhtConfig(**FAST), clock=clock) as holder:  # type: ignore[arg-type]
            await holder.publish_peer_record(_record(alice, 4000))  # alone: holds it itself
            key = peer_record_key(alice.device.device_key)
            boot = (_boot(holder),)
            async with DhtNode(DhtConfig(bootstrap=boot, **FAST), clock=clock) as newcomer:  # type: ignore[arg-type]
                with anyio.fail_after(10):
                    while newcomer.storage.value(key) is None:
                        await anyio.sleep(0.01)
