"""Two relays meeting through a real Redis: peers registered at different relays connect.

One test runs the relays as two ``omega serve relay`` subprocesses; the
others run two RelayServer instances in this process, one of them reaching
Redis through a TCP forwarder the test can cut, to see Redis go away.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
import redis.asyncio as redis
from anyio.abc import SocketStream

from omega.crypto import Identity
from omega.errors import RelayRefusedError, TransportError
from omega.server.relay import RelayServer, RelayServerConfig
from omega.testing.random import SeededRandom
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.noise import NoiseCredentials
from omega.transport.relay import RelayCredentials, RelayTransport
from omega.transport.secure_channel import SecureTransport

pytestmark = pytest.mark.anyio


def make_identity(name: str) -> Identity:
    return Identity.create(
        device_name=name, created_at=1_700_000_000_000, rng=SeededRandom(name.encode())
    )


ALICE = make_identity("alice")
BOB = make_identity("bob")


def relay_at(port: int) -> Address:
    return Address.parse(f"/ip4/127.0.0.1/tcp/{port}/ws/relay")


async def echo(connection: FrameConnection) -> None:
    async for frame in connection:
        await connection.send_frame(frame)


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"omega-test-relay-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)


async def wait_until_advertised(redis_url: str, prefix: str, identity: Identity) -> None:
    client = redis.Redis.from_url(redis_url)
    async with client:
        while not await client.exists(f"{prefix}:device:{identity.device.device_id}"):
            await anyio.sleep(0.01)


async def test_peers_on_two_relay_processes_meet_through_redis(redis_url: str, prefix: str) -> None:
    environment = dict(os.environ, OMEGA_RELAY_REDIS_PREFIX=prefix, OMEGA_LOG_LEVEL="WARNING")
    command = [
        sys.executable,
        "-c",
        "import sys; from omega.cli import main; sys.exit(main())",
        "serve",
        "relay",
        "--port",
        "0",
        "--redis-url",
        redis_url,
        "--relay-id",
        "scale-out-test",
    ]
    with anyio.fail_after(60):
        async with (
            await anyio.open_process(command, env=environment) as first,
            await anyio.open_process(command, env=environment) as second,
        ):
            ports = []
            for process in (first, second):
                assert process.stdout is not None
                line = (await process.stdout.receive()).decode()
                ports.append(int(line.split("listening=")[1].split("/")[4]))
            alice_credentials = NoiseCredentials.from_identity(ALICE)
            bob_credentials = NoiseCredentials.from_identity(BOB)
            bob_side = SecureTransport(
                RelayTransport(RelayCredentials.from_identity(BOB)), bob_credentials
            )
            alice_side = SecureTransport(
                RelayTransport(RelayCredentials.from_identity(ALICE)), alice_credentials
            )
            async with listening(bob_side, relay_at(ports[0]), echo):
                await wait_until_advertised(redis_url, prefix, BOB)
                target = relay_at(ports[1]).with_relay_target(BOB.user_id).with_peer(BOB.user_id)
                async with await alice_side.dial(target) as connection:
                    assert connection.peer.user_id == BOB.user_id
                    for index in range(50):
                        frame = f"frame {index} across two relays".encode() * (index + 1)
                        await connection.send_frame(frame)
                        assert await connection.receive_frame() == frame
            for process in (first, second):
                process.terminate()
                assert await process.wait() == 0


class Forwarder:
    """A TCP forwarder to Redis that the test can cut, so that Redis 'goes away'."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.port = 0
        self._scope = anyio.CancelScope()

    async def _pipe(self, source: SocketStream, sink: SocketStream) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            await sink.aclose()

    async def _handle(self, client: SocketStream) -> None:
        upstream = await anyio.connect_tcp("127.0.0.1", self._target_port)
        async with client, upstream, anyio.create_task_group() as task_group:
            task_group.start_soon(self._pipe, client, upstream)
            task_group.start_soon(self._pipe, upstream, client)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with self._scope:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            async with listener:
                self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
                task_status.started()
                await listener.serve(self._handle)

    def cut(self) -> None:
        self._scope.cancel()


@asynccontextmanager
async def two_relays(
    redis_url: str, prefix: str, second_url: Callable[[str], str] = lambda url: url
) -> AsyncIterator[tuple[RelayServer, RelayServer]]:
    def config(url: str) -> RelayServerConfig:
        return RelayServerConfig(port=0, redis_url=url, redis_prefix=prefix)

    first, second = RelayServer(config(redis_url)), RelayServer(config(second_url(redis_url)))
    async with anyio.create_task_group() as task_group:
        await task_group.start(first.serve)
        await task_group.start(second.serve)
        yield first, second
        task_group.cancel_scope.cancel()


async def test_two_relays_in_process_forward_and_refuse_unknown_targets(
    redis_url: str, prefix: str
) -> None:
    carol = make_identity("carol")
    with anyio.fail_after(20):
        async with two_relays(redis_url, prefix) as (first, second):
            bob = RelayTransport(RelayCredentials.from_identity(BOB))
            alice = RelayTransport(RelayCredentials.from_identity(ALICE))
            async with listening(bob, relay_at(first.addresses[0].port), echo):
                await wait_until_advertised(redis_url, prefix, BOB)
                at_second = relay_at(second.addresses[0].port)
                for target in (BOB.device.device_id, BOB.user_id):
                    async with await alice.dial(at_second.with_relay_target(target)) as connection:
                        for size in (0, 1, 70_000, 1 << 20):
                            await connection.send_frame(bytes(size))
                            assert await connection.receive_frame() == bytes(size)
                        await connection.send_eof()
                        with pytest.raises(TransportError):
                            await connection.receive_frame()
                with pytest.raises(RelayRefusedError, match="not_registered"):
                    await alice.dial(at_second.with_relay_target(carol.user_id))
            assert second.metrics.value("streams_total", "bus") == 2
            assert first.metrics.value("bus_messages_total", "in") > 0
            status, code = first.health()
            assert (status["status"], status["bus"], code) == ("ok", "up", 200)


async def test_redis_going_away_resets_cross_relay_streams_and_spares_local_ones(
    redis_url: str, prefix: str
) -> None:
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    forwarder = Forwarder(redis_port)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as outer:
            await outer.start(forwarder.run)
            via_forwarder: Callable[[str], str] = lambda url: (  # noqa: E731
                f"redis://127.0.0.1:{forwarder.port}/0"
            )
            async with two_relays(redis_url, prefix, via_forwarder) as (first, second):
                bob = RelayTransport(RelayCredentials.from_identity(BOB))
                alice = RelayTransport(RelayCredentials.from_identity(ALICE))
                async with listening(bob, relay_at(first.addresses[0].port), echo):
                    await wait_until_advertised(redis_url, prefix, BOB)
                    remote = await alice.dial(
                        relay_at(second.addresses[0].port).with_relay_target(BOB.user_id)
                    )
                    local = await alice.dial(
                        relay_at(first.addresses[0].port).with_relay_target(BOB.user_id)
                    )
                    async with remote, local:
                        await remote.send_frame(b"before")
                        assert await remote.receive_frame() == b"before"
                        forwarder.cut()
                        with pytest.raises(TransportError, match="unavailable"):
                            await remote.receive_frame()
                        assert second.health()[0]["status"] == "degraded"
                        with pytest.raises(RelayRefusedError, match="unavailable"):
                            await alice.dial(
                                relay_at(second.addresses[0].port).with_relay_target(BOB.user_id)
                            )
                        await local.send_frame(b"local streams go on")
                        assert await local.receive_frame() == b"local streams go on"
            outer.cancel_scope.cancel()


async def test_a_stale_directory_entry_is_refused_by_the_node_it_names(
    redis_url: str, prefix: str
) -> None:
    ghost = make_identity("ghost")
    with anyio.fail_after(20):
        async with two_relays(redis_url, prefix) as (first, second):
            assert first.bus is not None
            client = redis.Redis.from_url(redis_url)
            async with client:  # as if the first relay had crashed before expiring the keys
                await client.set(
                    f"{prefix}:device:{ghost.device.device_id}", f"{first.bus.node} {ghost.user_id}"
                )
                await client.set(
                    f"{prefix}:user:{ghost.user_id}", f"{first.bus.node} {ghost.device.device_id}"
                )
            alice = RelayTransport(RelayCredentials.from_identity(ALICE))
            at_second = relay_at(second.addresses[0].port)
            for target in (ghost.user_id, ghost.device.device_id):
                with pytest.raises(RelayRefusedError, match="not_registered"):
                    await alice.dial(at_second.with_relay_target(target))
            bob = RelayTransport(RelayCredentials.from_identity(BOB))
            async with listening(bob, relay_at(first.addresses[0].port), echo):
                await wait_until_advertised(redis_url, prefix, BOB)
                assert second.bus is not None  # bob's device, claimed for another user:
                assert await second.bus._locate(ghost.user_id, BOB.device.device_id) is None
                assert await second.bus._locate("", BOB.device.device_id) is not None
            client = redis.Redis.from_url(redis_url)
            async with client:  # withdrawn when bob stopped listening
                key = f"{prefix}:device:{BOB.device.device_id}"
                while await client.exists(key):
                    await anyio.sleep(0.01)


async def test_a_relay_whose_redis_is_unreachable_serves_its_own_devices() -> None:
    config = RelayServerConfig(port=0, redis_url="redis://127.0.0.1:1/0")
    async with anyio.create_task_group() as task_group:
        server = await task_group.start(RelayServer(config).serve)
        assert server.bus is not None
        assert not server.bus.up
        assert server.health()[0]["bus"] == "down"
        assert await server.bus._locate(BOB.user_id, "") is None
        await server.bus.publish("nowhere", b"dropped")
        server.bus.publish_nowait("nowhere", b"dropped")
        bob = RelayTransport(RelayCredentials.from_identity(BOB))
        alice = RelayTransport(RelayCredentials.from_identity(ALICE))
        with anyio.fail_after(10):
            async with listening(bob, relay_at(server.addresses[0].port), echo) as listener:
                async with await alice.dial(listener.addresses[0]) as connection:
                    await connection.send_frame(b"served without Redis")
                    assert await connection.receive_frame() == b"served without Redis"
                with pytest.raises(RelayRefusedError, match="unavailable"):
                    await alice.dial(listener.addresses[0].with_relay_target("0123456789abcdef"))
        task_group.cancel_scope.cancel()


async def test_garbage_on_the_bus_is_dropped_and_a_bad_frame_resets_only_its_stream(
    redis_url: str, prefix: str
) -> None:
    with anyio.fail_after(20):
        async with two_relays(redis_url, prefix) as (first, second):
            assert first.bus is not None
            assert second.bus is not None
            bob = RelayTransport(RelayCredentials.from_identity(BOB))
            alice = RelayTransport(RelayCredentials.from_identity(ALICE))
            async with listening(bob, relay_at(first.addresses[0].port), echo):
                await wait_until_advertised(redis_url, prefix, BOB)
                target = relay_at(second.addresses[0].port).with_relay_target(BOB.user_id)
                connection = await alice.dial(target)
                async with connection:
                    await connection.send_frame(b"before")
                    assert await connection.receive_frame() == b"before"
                    (key,) = second.bus.routes
                    channel = f"{prefix}:node:{second.bus.node}"
                    client = redis.Redis.from_url(redis_url)
                    async with client:
                        for garbage in (
                            b"short",
                            b"X" + bytes(16) + b"unknown kind",
                            b"C" + bytes(16) + b"{not json",
                            b"F" + bytes(16) + b"for no route",
                            b"F" + key + b"\xff not a frame",
                        ):
                            await client.publish(channel, garbage)
                    with pytest.raises(TransportError, match="malformed"):
                        await connection.receive_frame()
                async with await alice.dial(target) as again:
                    await again.send_frame(b"the bus still works")
                    assert await again.receive_frame() == b"the bus still works"
            assert second.metrics.value("bus_messages_total", "in") >= 5
