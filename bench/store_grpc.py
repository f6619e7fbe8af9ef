"""Benchmark the store's gRPC API beside its HTTP API and the bare service, in one run.

One :class:`omega.mailbox.StoreService` over the in-memory backend (so the
rows measure the APIs, not a database) is served at once over gRPC
(grpclib, :class:`~omega.mailbox.grpc.GrpcStoreClient`, one HTTP/2
connection) and HTTP (uvicorn, :class:`~omega.mailbox.http.StoreClient`,
one httpx pool) on loopback; client and server share this process's event
loop, so each row measures both sides of its stack. ``--callers``
concurrent tasks run:

* ``deposit``: deposits/s of 256-byte payloads;
* ``fetch+ack``: devices served/s, each fetching its one message and
  acknowledging it (two challenges, signed and verified).

``floor`` is the same calls made on the service directly (no API). Ratios:
grpc / http and grpc / floor. The last line printed is one JSON object.

    python bench/store_grpc.py            # 5000 operations per row
    python bench/store_grpc.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import uvicorn

from omega.crypto import Identity, LocalDevice
from omega.mailbox import (
    AuthProof,
    Mailbox,
    MemoryBackend,
    StoreConfig,
    StoreService,
    auth_message,
    recipient_hash,
)
from omega.mailbox.grpc import GrpcStoreClient
from omega.mailbox.http import StoreClient
from omega.server.store.app import create_app
from omega.server.store.grpc import create_grpc_server, listening_socket

CONFIG = StoreConfig(request_burst=10**9, bytes_burst=10**12, max_tracked_sources=10)
PAYLOAD = b"\x42" * 256


async def _run(callers: int, jobs: Sequence[Callable[[], Awaitable[object]]]) -> float:
    """Operations per second running ``jobs`` on ``callers`` concurrent tasks."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(worker)
    return len(jobs) / (time.perf_counter() - started)


async def _floor_fetch_ack(service: StoreService, device: LocalDevice) -> None:
    async def proof(action: str) -> AuthProof:
        challenge = await service.issue_challenge(source="bench", device_key=device.device_key)
        signature = device.key_pair.sign(auth_message(challenge, device.device_key, action))
        return AuthProof(device_key=device.device_key, challenge=challenge, signature=signature)

    messages = await service.fetch(await proof("fetch"))
    await service.acknowledge(await proof("acknowledge"), [m.message_id for m in messages])


async def _client_fetch_ack(client: Mailbox, device: LocalDevice) -> None:
    envelopes = await client.fetch(device)
    await client.acknowledge(device, [e.message_id for e in envelopes])


async def _measure(
    name: str, operations: int, callers: int, devices: list[LocalDevice], client: Any
) -> dict[str, float]:
    keys = [device.device_key for device in devices]

    def deposit(index: int) -> Callable[[], Awaitable[object]]:
        key = keys[index % len(keys)]
        if client is None or isinstance(client, StoreService):
            service = client

            async def direct() -> object:
                return await service.deposit(
                    source="bench",
                    recipient=recipient_hash(key),
                    message_id=f"{name}-{index}",
                    payload=PAYLOAD,
                )

            return direct
        return lambda: client.deposit(key, f"{name}-{index}", PAYLOAD)

    deposits = await _run(callers, [deposit(index) for index in range(operations)])
    if isinstance(client, StoreService):
        jobs = [lambda d=device: _floor_fetch_ack(client, d) for device in devices]
    else:
        jobs = [lambda d=device: _client_fetch_ack(client, d) for device in devices]
    fetches = await _run(callers, jobs)
    return {"deposit": deposits, "fetch+ack": fetches}


async def main_async(operations: int, callers: int) -> dict[str, Any]:
    """Measure every row; returns the figures."""
    service = StoreService(MemoryBackend(), config=CONFIG)
    devices = [
        Identity.create(device_name="d", created_at=1).device for _ in range(operations // 2)
    ]
    grpc_server = create_grpc_server(service)
    grpc_socket = listening_socket("127.0.0.1", 0)
    grpc_port = grpc_socket.getsockname()[1]
    await grpc_server.start(sock=grpc_socket)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    http_server = uvicorn.Server(
        uvicorn.Config(
            create_app(service, run_sweeper=False),
            host="127.0.0.1",
            port=http_port,
            log_level="warning",
            access_log=False,
        )
    )
    results: dict[str, dict[str, float]] = {}
    async with anyio.create_task_group() as group:
        group.start_soon(http_server.serve)
        while not http_server.started:
            await anyio.sleep(0.01)
        results["floor"] = await _measure("floor", operations, callers, devices, service)
        async with GrpcStoreClient("127.0.0.1", grpc_port) as grpc:
            results["grpc"] = await _measure("grpc", operations, callers, devices, grpc)
        async with StoreClient(f"http://127.0.0.1:{http_port}") as http:
            results["http"] = await _measure("http", operations, callers, devices, http)
        http_server.should_exit = True
    grpc_server.close()
    await grpc_server.wait_closed()
    figures: dict[str, Any] = {"operations": operations, "callers": callers}
    print(f"{'ops/s':<12}{'floor':>10}{'grpc':>10}{'http':>10}{'grpc/http':>11}{'grpc/floor':>12}")
    for row in ("deposit", "fetch+ack"):
        floor, grpc_rate, http_rate = (results[k][row] for k in ("floor", "grpc", "http"))
        print(
            f"{row:<12}{floor:>10.0f}{grpc_rate:>10.0f}{http_rate:>10.0f}"
            f"{grpc_rate / http_rate:>11.2f}{grpc_rate / floor:>12.2f}"
        )
        figures[row] = {
            "floor": round(floor, 1),
            "grpc": round(grpc_rate, 1),
            "http": round(http_rate, 1),
            "grpc_over_http": round(grpc_rate / http_rate, 3),
            "grpc_over_floor": round(grpc_rate / floor, 3),
        }
    figures["python"] = platform.python_version()
    return figures


def main() -> None:
    """Parse the arguments, run, print the figures and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 operations per row")
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--callers", type=int, default=50)
    args = parser.parse_args()
    operations = 600 if args.quick else args.operations
    figures = anyio.run(main_async, operations, args.callers)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
