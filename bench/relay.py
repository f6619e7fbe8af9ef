"""Benchmark the relay: frames/s and added latency, beside a direct connection in the same run.

Paths, all over WebSocket on loopback, raw frames (no secure channel, so the
figures are the relay's own cost):

* ``direct``: :class:`~omega.transport.websocket.WebSocketTransport` dial and listen
  (the baseline: what the relay's carrier costs without the relay);
* ``relay``: :class:`~omega.transport.relay.RelayTransport` through one relay;
* ``two_relays``: the listener registered at one relay, the dialer at
  another, the two meeting through Redis pub/sub (skipped, and said so,
  when Redis at ``$OMEGA_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/0``
  cannot be reached).

Workloads: ``throughput``, one-way 1 KiB frames with the receiver reading
as fast as it can (frames per second until the last one arrived);
``latency``, ping-pong of 64-byte frames (median round trip). Both clients
share this process; the relays run in its event loop too (so every figure
includes the relay's CPU time on the same core), or with ``--processes`` as
``omega serve relay`` subprocesses (closer to a deployment, but on a loaded
machine dominated by scheduling). Each figure is the median of several runs;
the JSON records the load average.

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
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from omega.crypto import Identity
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


@dataclass
class RelayProcess:
    """An ``omega serve relay`` subprocess."""

    port: int
    prefix: str


@asynccontextmanager
async def relays(
    count: int, redis_url: str | None, *, processes: bool
) -> AsyncIterator[list[RelayProcess]]:
    """``count`` relays sharing ``redis_url`` (if given): subprocesses, or tasks of this loop."""
    if not processes:
        async with in_process_relays(count, redis_url) as found:
            yield found
        return
    prefix = f"omega-bench-relay-{secrets.token_hex(4)}"
    environment = dict(os.environ, OMEGA_RELAY_REDIS_PREFIX=prefix, OMEGA_LOG_LEVEL="ERROR")
    environment.update(
        {f"OMEGA_RELAY_{name.upper()}": str(value) for name, value in GENEROUS.items()}
    )
    command = [sys.executable, "-c", "import sys; from omega.cli import main; sys.exit(main())"]
    command += ["serve", "relay", "--port", "0"]
    if redis_url is not None:
        command += ["--redis-url", redis_url]
    async with AsyncExitStack() as stack:
        found = []
        for _ in range(count):
            process = await stack.enter_async_context(
                await anyio.open_process(command, env=environment)
            )
            stack.push_async_callback(process.wait)
            stack.callback(process.terminate)
            assert process.stdout is not None
            line = (await process.stdout.receive()).decode()
            found.append(RelayProcess(int(line.split("listening=")[1].split("/")[4]), prefix))
        yield found


@asynccontextmanager
async def in_process_relays(count: int, redis_url: str | None) -> AsyncIterator[list[RelayProcess]]:
    from omega.server.relay import RelayServer, RelayServerConfig

    prefix = f"omega-bench-relay-{secrets.token_hex(4)}"
    settings = dict(port=0, redis_url=redis_url, redis_prefix=prefix, **GENEROUS)
    servers = [RelayServer(RelayServerConfig(**settings)) for _ in range(count)]  # type: ignore[arg-type]
    async with anyio.create_task_group() as task_group:
        for server in servers:
            await task_group.start(server.serve)
        yield [RelayProcess(server.addresses[0].port or 0, prefix) for server in servers]
        task_group.cancel_scope.cancel()


def relay_address(server: RelayProcess) -> Address:
    return Address.parse(f"/ip4/127.0.0.1/tcp/{server.port}/ws/relay")


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


async def wait_advertised(url: str, server: RelayProcess, device_id: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    async with client:
        key = f"{server.prefix}:device:{device_id}"
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


async def run(quick: bool, processes: bool) -> dict[str, Any]:
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

    count, url = (2, redis_url) if have_redis else (1, None)
    async with relays(count, url, processes=processes) as servers:

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
        "relays_in": "subprocesses" if processes else "this event loop",
        "load_average": os.getloadavg()[0],
        "figures": figures,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames; under a minute")
    parser.add_argument(
        "--processes", action="store_true", help="run each relay as an omega serve subprocess"
    )
    args = parser.parse_args()
    result = anyio.run(run, args.quick, args.processes)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
