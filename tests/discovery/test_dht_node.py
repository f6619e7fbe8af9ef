"""DhtNode details: configuration, answers from a misbehaving peer, maintenance, closing."""

from __future__ import annotations

import logging

import anyio
import pytest
import umsgpack
from discovery_helpers import HOUR_MS, NOW_MS
from kademlia.node import Node

from omega.crypto import Identity
from omega.discovery import ChainResolver, StaticResolver, sign_peer_record
from omega.discovery._protocol import _RateLimiter
from omega.discovery.dht import DhtConfig, DhtNode, parse_host_port
from omega.errors import ConfigurationError, LocalProtocolError
from omega.testing.clock import ManualClock


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.1:7400", ("127.0.0.1", 7400)), ("[::1]:1", ("::1", 1)), (" a.org:5 ", ("a.org", 5))],
)
def test_host_port_parsing(text: str, parsed: tuple[str, int]) -> None:
    assert parse_host_port(text) == parsed


@pytest.mark.parametrize("text", ["", "host", ":5", "host:", "host:0", "host:70000", "h:x"])
def test_bad_host_ports_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_host_port(text)


@pytest.mark.parametrize(
    "fields",
    [
        {"host": "localhost"},
        {"port": 70000},
        {"bootstrap": ("nope",)},
        {"node_id": b"short"},
        {"ksize": 0},
        {"rpc_timeout": 0.0},
        {"store_burst": True},
    ],
)
def test_invalid_configurations_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        DhtConfig(**fields)  # type: ignore[arg-type]


def test_rate_limiter_refills_and_forgets_the_oldest_sources() -> None:
    limiter = _RateLimiter(rate=1.0, burst=2, max_sources=2)
    assert limiter.allow("a", 0.0) == (True, False)
    assert limiter.allow("a", 0.0) == (True, False)
    assert limiter.allow("a", 0.0) == (False, True)
    assert limiter.allow("a", 0.0) == (False, False)  # logged once per exhaustion
    assert limiter.allow("a", 1.0) == (True, False)  # refilled
    limiter.allow("b", 1.0)
    limiter.allow("c", 1.0)  # "a" is forgotten, and starts again with a full bucket
    assert limiter.allow("a", 1.0) == (True, False)


async def _liar(answers: list[object], ready: anyio.Event, address: list[tuple[str, int]]) -> None:
    """A peer that answers each request with the next malformed answer."""
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as udp:
        address.append(udp.extra(anyio.abc.SocketAttribute.local_address))  # type: ignore[arg-type]
        ready.set()
        for answer in answers:
            data, source = await udp.receive()
            await udp.sendto(b"\x01" + data[1:21] + umsgpack.packb(answer), *source)


@pytest.mark.anyio
async def test_malformed_answers_count_as_no_answer(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[object] = [
        "nodes?",
        [[b"x" * 20, "not-an-ip", 1]],
        [[b"x" * 20, "127.0.0.1", 0]],
        [[b"x" * 20, "127.0.0.1"]],
        {"value": 5},
        {"value": b"x", "more": 1},
        "stored?",
        b"short",
    ]
    with anyio.fail_after(20):
        async with DhtNode(DhtConfig(rpc_timeout=5.0), clock=clock) as node:
            ready = anyio.Event()
            address: list[tuple[str, int]] = []
            async with anyio.create_task_group() as group:
                group.start_soon(_liar, answers, ready, address)
                await ready.wait()
                liar = Node(b"\x07" * 20, *address[0])
                target = Node(bytes(20))
                for _ in range(4):
                    assert await node.protocol.call_find_node(liar, target) == (False, None)
                for _ in range(2):
                    assert await node.protocol.call_find_value(liar, target) == (False, None)
                assert await node.protocol.call_store(liar, bytes(20), b"v") == (False, None)
                assert await node.protocol.call_ping(liar) == (False, None)
            assert node.stats.answers_malformed == len(answers)
            assert "dht.malformed_answer" in caplog.text


@pytest.mark.anyio
async def test_closing_fails_outstanding_requests_and_stops_everything(
    clock: ManualClock, alice: Identity
) -> None:
    node = DhtNode(DhtConfig(rpc_timeout=30.0), clock=clock)
    with pytest.raises(LocalProtocolError):
        node.address  # noqa: B018 - not listening yet
    await node.start()
    protocol = node.protocol
    results: list[object] = []

    async def ask() -> None:
        results.append(await protocol.call_ping(Node(b"\x01" * 20, "127.0.0.1", 9)))

    async with anyio.create_task_group() as group:
        group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        await node.aclose()
    assert results == [(False, None)]
    await node.aclose()  # idempotent
    protocol.datagram_received(b"\x00" + bytes(40), ("127.0.0.1", 1))  # ignored once closed

    async def never() -> None:
        raise AssertionError("a closed protocol must not run new tasks")

    protocol.spawn(never())
    with pytest.raises(LocalProtocolError):
        await node.publish_peer_record(
            sign_peer_record(
                alice.device, addresses=["/memory/a"], sequence=1, expires_at=NOW_MS + HOUR_MS
            )
        )


@pytest.mark.anyio
async def test_the_maintenance_loop_refreshes_on_the_clock(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "omega.discovery.dht")
    with anyio.fail_after(20):
        async with DhtNode(DhtConfig(refresh_interval=10.0), clock=clock) as first:
            boot = f"127.0.0.1:{first.address[1]}"
            config = DhtConfig(refresh_interval=10.0, bootstrap=(boot,))
            async with DhtNode(config, clock=clock) as second:
                await clock.wait_for_sleepers(2)
                clock.advance(11)
                while caplog.text.count("dht.refreshed") < 2:
                    await anyio.sleep(0.01)
                assert len(second.routing_table()) == 1


@pytest.mark.anyio
async def test_a_lonely_node_retries_joining(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "omega.discovery.dht")
    config = DhtConfig(refresh_interval=10.0, rpc_timeout=0.2, bootstrap=("localhost:9",))
    with anyio.fail_after(20):
        async with DhtNode(config, clock=clock):
            assert "dht.bootstrap_unanswered address=localhost:9" in caplog.text
            await clock.wait_for_sleepers(1)
            clock.advance(11)
            while caplog.text.count("dht.bootstrap_unanswered") < 2:
                await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_a_chain_of_a_static_table_and_the_dht(
    clock: ManualClock, alice: Identity, bob: Identity
) -> None:
    with anyio.fail_after(20):
        async with DhtNode(DhtConfig(), clock=clock) as first:
            boot = f"127.0.0.1:{first.address[1]}"
            async with DhtNode(DhtConfig(bootstrap=(boot,)), clock=clock) as second:
                await first.publish_device_list(bob.device_list.to_signed())
                table = StaticResolver(
                    {alice.user_id: (alice.device_list.to_signed(), [])}, clock=clock
                )
                chain = ChainResolver([table, second])
                from_table = await chain.resolve_device_list(alice.user_id)
                from_dht = await chain.resolve_device_list(bob.user_id)
                assert from_table is not None
                assert from_table.user_id == alice.user_id
                assert from_dht is not None
                assert from_dht.user_id == bob.user_id
