"""End-to-end messaging between two clients, beside the bare secure channel.

Two :class:`omega.client.Client` instances on loopback TCP, each with its
SQLite key and message stores on disk (WAL, ``synchronous=FULL``, at-rest
encryption), exchange text messages: Alice sends N messages of 100 bytes to
Bob, who stores, acknowledges and reports each one. Measured:

* throughput: messages per second from the first ``send`` to Alice seeing the
  last message *delivered* (Bob's acknowledgement processed and persisted);
* latency: from ``send`` to Bob's ``MessageReceived`` event, p50 and p99.

Both clients lift the per-device inbound rate limit (:data:`CONFIG`).

The floor, in the same process and run: the same payloads through the bare
Noise secure channel over TCP, each answered by a small acknowledgement
frame, with no ratchet, no envelope signature and no storage. The ratio
client/floor says what the messaging layer costs. Then a cProfile of a short
client run says where the time goes.

    python bench/e2e.py            # 10,000 messages
    python bench/e2e.py --quick    # 1,000 messages

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import anyio

import omega
from omega.client import Client, ClientConfig, DataDir, DeliveryStateChanged, MessageReceived
from omega.crypto import Identity
from omega.crypto.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, export_identity
from omega.storage.message_base import DeliveryState
from omega.transport import (
    Address,
    FrameConnection,
    NoiseCredentials,
    SecureTransport,
    TcpTransport,
    listening,
)

PAYLOAD = 100
PASSPHRASE = "bench"
CONFIG = ClientConfig(inbound_rate=100_000.0, inbound_burst=100_000)
"""The default per-device limit (50 envelopes/s, bursts of 200) is an anti-abuse policy: left
on, it, not the client, would set the throughput measured here."""


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _create(directory: Path, name: str) -> None:
    identity = Identity.create(display_name=name, device_name="bench", created_at=0)
    directory.mkdir(parents=True)
    export = export_identity(identity, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    (directory / "identity.omega").write_bytes(export)
    DataDir(directory).save_public(identity)


async def measure_client(root: Path, count: int) -> dict[str, float]:
    """Alice sends ``count`` messages to Bob; figures of the run."""
    for name in ("alice", "bob"):
        _create(root / name, name)
    listen = ["/ip4/127.0.0.1/tcp/0"]
    async with (
        await Client.from_data_dir(
            root / "alice", passphrase=PASSPHRASE, listen=listen, config=CONFIG
        ) as alice,
        await Client.from_data_dir(
            root / "bob", passphrase=PASSPHRASE, listen=listen, config=CONFIG
        ) as bob,
    ):
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        delivered = 0
        all_delivered = anyio.Event()

        @bob.on(MessageReceived)
        def received(event: MessageReceived) -> None:
            start = sent_at.get(event.message.message_id)
            if start is not None:
                latencies.append(time.perf_counter() - start)

        @alice.on(DeliveryStateChanged)
        def state(event: DeliveryStateChanged) -> None:
            nonlocal delivered
            if event.state is DeliveryState.DELIVERED:
                delivered += 1
                if delivered == count:
                    all_delivered.set()

        body = "x" * (PAYLOAD - 6)
        started = time.perf_counter()
        for index in range(count):
            now = time.perf_counter()
            message = await alice.send_text(bob.user_id, f"{index:05d} {body}")
            sent_at[message.message_id] = now
        with anyio.fail_after(600):
            await all_delivered.wait()
        elapsed = time.perf_counter() - started
    return {
        "messages_per_s": count / elapsed,
        "latency_p50_ms": _percentile(latencies, 0.5) * 1000,
        "latency_p99_ms": _percentile(latencies, 0.99) * 1000,
        "received": float(len(latencies)),
    }


async def _acknowledge(connection: FrameConnection) -> None:
    async for frame in connection:
        await connection.send_frame(frame[:8])


async def measure_floor(count: int) -> dict[str, float]:
    """The same payloads through the bare secure channel, each acknowledged."""
    server = SecureTransport(TcpTransport(), NoiseCredentials.from_identity(_identity("server")))
    client = SecureTransport(TcpTransport(), NoiseCredentials.from_identity(_identity("client")))
    async with (
        server,
        client,
        listening(server, Address.parse("/ip4/127.0.0.1/tcp/0"), _acknowledge) as listener,
    ):
        connection = await client.dial(listener.addresses[0])
        latencies: list[float] = []
        sent_at: list[float] = []
        done = anyio.Event()

        async def read_acks() -> None:
            for index in range(count):
                await connection.receive_frame()
                latencies.append(time.perf_counter() - sent_at[index])
            done.set()

        payload = bytes(PAYLOAD)
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            group.start_soon(read_acks)
            for _ in range(count):
                sent_at.append(time.perf_counter())
                await connection.send_frame(payload)
            await done.wait()
        elapsed = time.perf_counter() - started
        await connection.aclose()
    return {
        "messages_per_s": count / elapsed,
        "latency_p50_ms": _percentile(latencies, 0.5) * 1000,
        "latency_p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _identity(name: str) -> Identity:
    return Identity.create(display_name=name, device_name="bench", created_at=0)


def profile_client(count: int) -> str:
    """The functions where a short client run spends its own time (top 12)."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as temporary:
        profiler.enable()
        anyio.run(measure_client, Path(temporary), count)
        profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(12)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start : start + 13])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000")
    args = parser.parse_args()
    count = 1_000 if args.quick else 10_000
    print(
        f"omega {omega.__version__}, accelerated={omega.accelerated()}, {platform.python_version()}"
    )
    floor = anyio.run(measure_floor, count)
    with tempfile.TemporaryDirectory() as temporary:
        client = anyio.run(measure_client, Path(temporary), count)
    if client["received"] != count:
        sys.exit(f"Bob received {client['received']:.0f} of {count} messages")
    ratio = client["messages_per_s"] / floor["messages_per_s"]
    print(f"\n{count} messages of {PAYLOAD} bytes, loopback TCP")
    print(f"{'':34}{'messages/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for label, figures in (
        ("bare secure channel (floor)", floor),
        ("Client (ratchet, SQLite, ACKs)", client),
    ):
        print(
            f"{label:34}{figures['messages_per_s']:>12.0f}"
            f"{figures['latency_p50_ms']:>10.2f}{figures['latency_p99_ms']:>10.2f}"
        )
    print(f"client / floor throughput: {ratio:.3f}")
    print("\nWhere the client's time goes (cProfile, 300 messages, by own time):")
    print(profile_client(300))
    result = {
        "benchmark": "e2e",
        "messages": count,
        "payload_bytes": PAYLOAD,
        "accelerated": omega.accelerated(),
        "floor": floor,
        "client": client,
        "client_over_floor_throughput": ratio,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
