"""Benchmark the relay: frames/s and added latency, beside a direct connection in the same run.

Paths, all over WebSocket on loopback, raw frames (no secure channel, so the
figures are the relay's own cost):

* ``direct``: :class:`~omega.transport.websocket.WebSocketTransport` dial and listen
  (the baseline: what the relay's carrier costs without the relay);
* ``relay``: :class:`~omega.transport.relay.RelayTransport` through one
  :class:`~omega.server.relay.RelayServer`;
* ``two_relays``: the listener registered at one relay, the dialer at
  another, the two meeting through Redis pub/sub (skipped, and said so,
  when Redis at ``$OMEGA_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/0``
  cannot be reached).

Workloads: ``throughput``, one-way 1 KiB frames with the receiver reading
as fast as it can (frames per second until the last one arrived);
``latency``, ping-pong of 64-byte frames (median round trip). Relays and
clients share this process and its event loop, so every figure includes the
relay's CPU time on the same core: a relay on its own machine adds less.
Each figure is the median of several runs.

    python bench/relay.py            # full run
    python bench/relay.py --quick    # under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio

from omega.crypto import Identity
from omega.server.relay import RelayServer, RelayServerConfig
from omega.testing.random import SeededRandom
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener, Transport, listening
from omega.transport.relay import RelayCredentials, RelayTransport
from omega.transport.websocket import WebSocketTransport

FRAME = bytes(1024)
PING = bytes(64)
GENEROUS = {
    "bytes_per_second": 1e12,
    "burst_bytes": 1 << 40,
    "frames_per_second": 1e9,
    "burst_frames": 1 << 31,
}


def identity(name: str) -> Identity:
    return Identity.create(
        device_name=name, created_at=1_700_000_000_000, rng=SeededRandom(name.encode())
    )


async def bench_handler(connection: FrameConnection) -> None:
    """First frame picks the workload: b"sink" counts frames and answers at the end, else echo."""
    mode = await connection.receive_frame()
    if mode == b"sink":
        count = int(await connection.receive_frame())
        for _ in range(count):
            await connection.receive_frame()
        await connection.send_frame(b"done")
    else:
        async for frame in connection:
            await connection.send_frame(frame)


async def throughput(dialer: Transport, address: Address, frames: int) -> float:
    async with await dialer.dial(address) as connection:
        await connection.send_frame(b"sink")
        await connection.send_frame(str(frames).encode())
        start = time.perf_counter()
        for _ in range(frames):
            await connection.send_frame(FRAME)
        assert await connection.receive_frame() == b"done"
        return frames / (time.perf_counter() - start)


async def latency(dialer: Transport, address: Address, pings: int) -> float:
    async with await dialer.dial(address) as connection:
        await connection.send_frame(b"echo")
        samples = []
        for _ in range(pings):
            start = time.perf_counter()
            await connection.send_frame(PING)
            await connection.receive_frame()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e6


@asynccontextmanager
async def relays(count: int, redis_url: str | None) -> AsyncIterator[list[RelayServer]]:
    prefix = f"omega-bench-relay-{secrets.token_hex(4)}"
    servers = [
        RelayServer(
            RelayServerConfig(port=0, redis_url=redis_url, redis_prefix=prefix, **GENEROUS)  # type: ignore[arg-type]
        )
        for _ in range(count)
    ]
    async with anyio.create_task_group() as task_group:
        for server in servers:
            await task_group.start(server.serve)
        yield servers
        task_group.cancel_scope.cancel()


def relay_address(server: RelayServer) -> Address:
    return Address.parse(f"/ip4/127.0.0.1/tcp/{server.addresses[0].port}/ws/relay")


async def redis_reachable(url: str) -> bool:
    try:
        import redis.asyncio as redis
    except ImportError:
        return False
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        async with client:
            await client.ping()
    except (OSError, redis.RedisError):
        return False
    return True


async def wait_advertised(url: str, server: RelayServer, device_id: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    async with client:
        key = f"{server.config.redis_prefix}:device:{device_id}"
        while not await client.exists(key):
            await anyio.sleep(0.01)


async def measure(
    name: str,
    listen: Callable[[AsyncExitStack], Any],
    dialer: Transport,
    frames: int,
    pings: int,
    repeats: int,
) -> dict[str, float]:
    async with AsyncExitStack() as stack:
        address: Address = await listen(stack)
        fps = [await throughput(dialer, address, frames) for _ in range(repeats)]
        rtt = [await latency(dialer, address, pings) for _ in range(repeats)]
    result = {"frames_per_second": statistics.median(fps), "rtt_micros": statistics.median(rtt)}
    print(
        f"{name:<12} {result['frames_per_second']:>12,.0f} frames/s "
        f"{result['rtt_micros']:>10,.0f} us round trip"
    )
    return result


async def run(quick: bool) -> dict[str, Any]:
    frames, pings, repeats = (3000, 300, 3) if quick else (20000, 2000, 5)
    alice, bob = identity("alice"), identity("bob")
    alice_relay = RelayTransport(RelayCredentials.from_identity(alice))
    bob_relay = RelayTransport(RelayCredentials.from_identity(bob))
    figures: dict[str, dict[str, float]] = {}
    redis_url = os.environ.get("OMEGA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    have_redis = await redis_reachable(redis_url)
    print(f"1 KiB frames x {frames} one way; {pings} pings of 64 bytes; median of {repeats}")

    async def direct(stack: AsyncExitStack) -> Address:
        where = Address.parse("/ip4/127.0.0.1/tcp/0/ws")
        listener: Listener = await stack.enter_async_context(
            listening(WebSocketTransport(), where, bench_handler)
        )
        return listener.addresses[0]

    figures["direct"] = await measure(
        "direct", direct, WebSocketTransport(), frames, pings, repeats
    )

    async with relays(2 if have_redis else 1, redis_url if have_redis else None) as servers:

        async def one(stack: AsyncExitStack) -> Address:
            listener: Listener = await stack.enter_async_context(
                listening(bob_relay, relay_address(servers[0]), bench_handler)
            )
            return listener.addresses[0]

        figures["relay"] = await measure("relay", one, alice_relay, frames, pings, repeats)
        if have_redis:

            async def two(stack: AsyncExitStack) -> Address:
                await stack.enter_async_context(
                    listening(bob_relay, relay_address(servers[0]), bench_handler)
                )
                await wait_advertised(redis_url, servers[0], bob.device.device_id)
                return relay_address(servers[1]).with_relay_target(bob.device.device_id)

            figures["two_relays"] = await measure(
                "two_relays", two, alice_relay, frames, pings, repeats
            )
        else:
            print("two_relays   skipped: no Redis reachable at", redis_url)
    base = figures["direct"]
    ratios: dict[str, float] = {}
    for name in ("relay", "two_relays"):
        if name in figures:
            ratios[f"{name}_throughput_over_direct"] = (
                figures[name]["frames_per_second"] / base["frames_per_second"]
            )
            ratios[f"{name}_rtt_over_direct"] = figures[name]["rtt_micros"] / base["rtt_micros"]
            ratios[f"{name}_added_latency_micros"] = (
                figures[name]["rtt_micros"] - base["rtt_micros"]
            )
    print()
    for key, value in ratios.items():
        print(f"{key:<40} {value:,.2f}")
    return {
        "benchmark": "relay",
        "python": platform.python_version(),
        "quick": quick,
        "repeats": repeats,
        "frames": frames,
        "pings": pings,
        "statistic": "median",
        "redis": have_redis,
        "figures": figures,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames; under a minute")
    args = parser.parse_args()
    result = anyio.run(run, args.quick)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
