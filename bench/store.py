"""Benchmark the store server beside a floor measured in the same run.

With ``--clients`` (1000) concurrent clients, for the SQLite and PostgreSQL
backends:

* ``deposit``: deposits/s through :class:`omega.mailbox.StoreService`
  (validation, rate limits, quota and duplicate checks, one transaction);
* ``fetch+ack``: devices served/s, each fetching what the deposits left for
  it (one or two messages) and acknowledging it: two auth challenges issued, signed (Ed25519) and
  verified, two nonces spent, a select and a delete;
* ``http deposit`` (SQLite only): deposits/s through ``StoreClient`` to the
  Starlette app served by uvicorn on loopback, with ``--http-clients`` (100)
  concurrent callers on one httpx pool (client and server share this
  process's event loop, so this row measures both HTTP stacks);
* ``floor``: the same inserts, and the same select + delete per device, issued raw
  through the same driver (aiosqlite one connection / asyncpg pool) by the
  same number of concurrent tasks, without our API.

Ratios are ours / floor (1.0 = no overhead). PostgreSQL rows need the
server at ``$OMEGA_TEST_POSTGRES_DSN`` (default
``postgresql://omega:omega@127.0.0.1:5432/omega_test``); without it the
script says so and goes on. The last line printed is one JSON object.

    python bench/store.py            # 20k operations per row
    python bench/store.py --quick    # under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from omega.crypto import Identity, LocalDevice
from omega.mailbox import AuthProof, StoreConfig, StoreService, auth_message, recipient_hash
from omega.mailbox.backend import StoreBackend
from omega.server.store.sqlite import SQLiteBackend

DSN = os.environ.get(
    "OMEGA_TEST_POSTGRES_DSN", "postgresql://omega:omega@127.0.0.1:5432/omega_test"
)
# Short lifetimes, so that PostgreSQL needs only two days of partitions.
CONFIG = StoreConfig(
    request_burst=10**9,
    bytes_burst=10**12,
    max_tracked_sources=10,
    default_ttl_seconds=3600,
    max_ttl_seconds=3600,
)
PAYLOAD = b"\x42" * 256


async def _run_concurrently(clients: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> float:
    """Run ``jobs`` on ``clients`` concurrent tasks; returns jobs per second."""
    queue = list(jobs)
    start = time.perf_counter()

    async def client() -> None:
        while queue:
            await queue.pop()()

    async with anyio.create_task_group() as group:
        for _ in range(clients):
            group.start_soon(client)
    return len(jobs) / (time.perf_counter() - start)


async def _proof(service: StoreService, device: LocalDevice, action: str) -> AuthProof:
    challenge = await service.issue_challenge(source="bench", device_key=device.device_key)
    signature = device.key_pair.sign(auth_message(challenge, device.device_key, action))
    return AuthProof(device_key=device.device_key, challenge=challenge, signature=signature)


async def bench_service(
    backend: StoreBackend, devices: list[LocalDevice], operations: int, clients: int
) -> dict[str, float]:
    service = StoreService(backend, config=CONFIG)
    targets = [recipient_hash(device.device_key) for device in devices]

    def deposit(n: int) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            await service.deposit(
                source="bench",
                recipient=targets[n % len(targets)],
                message_id=f"d-{n}",
                payload=PAYLOAD,
            )

        return job

    deposits = await _run_concurrently(clients, [deposit(n) for n in range(operations)])

    # Then serve every device once: fetch what waits for it, acknowledge all of it.
    def serve(device: LocalDevice) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            messages = await service.fetch(await _proof(service, device, "fetch"))
            proof = await _proof(service, device, "acknowledge")
            await service.acknowledge(proof, [m.message_id for m in messages])

        return job

    fetches = await _run_concurrently(clients, [serve(device) for device in devices])
    return {"deposit": deposits, "fetch_ack": fetches}


async def floor_sqlite(path: Path, devices: int, operations: int, clients: int) -> dict[str, float]:
    import aiosqlite

    async with aiosqlite.connect(str(path), isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(
            "CREATE TABLE m (seq INTEGER PRIMARY KEY, recipient_hash TEXT, message_id TEXT,"
            " encrypted_payload BLOB, created_at INTEGER, expires_at INTEGER,"
            " UNIQUE (recipient_hash, message_id))"
        )
        lock = anyio.Lock()  # one connection: one statement at a time, like the backend

        def insert(n: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                async with lock:
                    await db.execute(
                        "INSERT INTO m (recipient_hash, message_id, encrypted_payload,"
                        " created_at, expires_at) VALUES (?, ?, ?, 1, 2)",
                        (f"{n % devices:064x}", f"d-{n}", PAYLOAD),
                    )

            return job

        deposits = await _run_concurrently(clients, [insert(n) for n in range(operations)])

        def serve(d: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                async with (
                    lock,
                    db.execute(
                        "SELECT message_id, encrypted_payload FROM m WHERE recipient_hash = ?"
                        " ORDER BY created_at, seq LIMIT 1",
                        (f"{d:064x}",),
                    ) as cursor,
                ):
                    row = await cursor.fetchone()
                async with lock:
                    await db.execute(
                        "DELETE FROM m WHERE recipient_hash = ? AND message_id = ?",
                        (f"{d:064x}", row[0] if row else ""),
                    )

            return job

        fetches = await _run_concurrently(clients, [serve(d) for d in range(devices)])
    return {"deposit": deposits, "fetch_ack": fetches}


async def floor_postgres(
    schema: str, devices: int, operations: int, clients: int
) -> dict[str, float]:
    import asyncpg

    pool = await asyncpg.create_pool(DSN, min_size=10, max_size=10)
    try:
        table = f"{schema}.floor"
        await pool.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await pool.execute(
            f"CREATE TABLE {table} (seq bigserial, recipient_hash text, message_id text,"
            " encrypted_payload bytea, created_at bigint, expires_at bigint,"
            " UNIQUE (recipient_hash, message_id))"
        )

        def insert(n: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                await pool.execute(
                    f"INSERT INTO {table} (recipient_hash, message_id, encrypted_payload,"
                    " created_at, expires_at) VALUES ($1, $2, $3, 1, 2)",
                    f"{n % devices:064x}",
                    f"d-{n}",
                    PAYLOAD,
                )

            return job

        deposits = await _run_concurrently(clients, [insert(n) for n in range(operations)])

        def serve(d: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                rows = await pool.fetch(
                    f"SELECT message_id, encrypted_payload FROM {table}"
                    " WHERE recipient_hash = $1 ORDER BY created_at, seq LIMIT 100",
                    f"{d:064x}",
                )
                await pool.execute(
                    f"DELETE FROM {table} WHERE recipient_hash = $1 AND message_id = ANY($2)",
                    f"{d:064x}",
                    [row["message_id"] for row in rows],
                )

            return job

        fetches = await _run_concurrently(clients, [serve(d) for d in range(devices)])
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
    return {"deposit": deposits, "fetch_ack": fetches}


async def bench_http(
    path: Path, devices: list[LocalDevice], operations: int, clients: int
) -> float:
    import httpx
    import uvicorn

    from omega.mailbox.http import StoreClient
    from omega.server.store.app import create_app

    async with await SQLiteBackend.open(path) as backend:
        service = StoreService(backend, config=CONFIG)
        server = uvicorn.Server(
            uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="error")
        )
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            while not server.started:
                await anyio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            client = StoreClient(f"http://127.0.0.1:{port}")
            client._http = httpx.AsyncClient(  # a bigger pool for 1000 concurrent callers
                base_url=f"http://127.0.0.1:{port}",
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
                timeout=120,
            )

            def deposit(n: int) -> Callable[[], Awaitable[None]]:
                async def job() -> None:
                    device = devices[n % len(devices)]
                    await client.deposit(device.device_key, f"h-{n}", PAYLOAD)

                return job

            rate = await _run_concurrently(clients, [deposit(n) for n in range(operations)])
            await client.aclose()
            server.should_exit = True
    return rate


def _row(name: str, ours: float, floor: float | None) -> None:
    ratio = f"{ours / floor:6.2f}" if floor else "   n/a"
    floor_text = f"{floor:10.0f}" if floor else "       n/a"
    print(f"{name:<28} {ours:10.0f} {floor_text} {ratio}")


async def main_async(quick: bool, clients: int, http_clients: int) -> dict[str, Any]:
    operations = 1500 if quick else 20_000
    device_count = 1000 if quick else 5000
    devices = [Identity.create(device_name="b", created_at=1).device for _ in range(device_count)]
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with await SQLiteBackend.open(Path(tmp) / "store.db") as backend:
            ours = await bench_service(backend, devices, operations, clients)
        floor = await floor_sqlite(Path(tmp) / "floor.db", device_count, operations, clients)
        for key in ours:
            figures[f"sqlite_{key}_per_s"] = ours[key]
            figures[f"sqlite_floor_{key}_per_s"] = floor[key]
            ratios[f"sqlite_{key}_over_floor"] = ours[key] / floor[key]
        http_ops = 150 if quick else 2000
        figures["sqlite_http_deposit_per_s"] = await bench_http(
            Path(tmp) / "http.db", devices, http_ops, http_clients
        )
        ratios["sqlite_http_deposit_over_floor"] = (
            figures["sqlite_http_deposit_per_s"] / floor["deposit"]
        )
    try:
        from omega.server.store.postgres import PostgresBackend

        schema = f"omega_bench_{uuid.uuid4().hex[:10]}"
        backend = await PostgresBackend.open(
            DSN,
            schema=schema,
            now_ms=int(time.time() * 1000),
            max_connections=10,
            partition_days_ahead=2,
        )
    except Exception as exc:  # report and carry on without PostgreSQL
        notes.append(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
    else:
        try:
            ours = await bench_service(backend, devices, operations, clients)
        finally:
            await backend.drop_schema()
            await backend.aclose()
        floor = await floor_postgres(schema + "_floor", device_count, operations, clients)
        for key in ours:
            figures[f"postgres_{key}_per_s"] = ours[key]
            figures[f"postgres_floor_{key}_per_s"] = floor[key]
            ratios[f"postgres_{key}_over_floor"] = ours[key] / floor[key]
    return {
        "figures": figures,
        "ratios": ratios,
        "notes": notes,
        "operations": operations,
        "devices": device_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations (under a minute)")
    parser.add_argument("--clients", type=int, default=1000, help="concurrent clients")
    parser.add_argument(
        "--http-clients", type=int, default=100, help="concurrent clients of the HTTP row"
    )
    args = parser.parse_args()
    result = anyio.run(main_async, args.quick, args.clients, args.http_clients)
    figures, ratios = result["figures"], result["ratios"]
    print(
        f"{args.clients} concurrent clients, {result['operations']} deposits,"
        f" {result['devices']} devices served; operations per second"
    )
    print(f"{'':<28} {'omega':>10} {'floor':>10} {'ratio':>6}")
    for backend in ("sqlite", "postgres"):
        for key, label in (("deposit", "deposit"), ("fetch_ack", "fetch+ack")):
            if f"{backend}_{key}_per_s" in figures:
                _row(
                    f"{backend} {label}",
                    figures[f"{backend}_{key}_per_s"],
                    figures[f"{backend}_floor_{key}_per_s"],
                )
        if backend == "sqlite":
            _row(
                f"sqlite deposit, HTTP x{args.http_clients}",
                figures["sqlite_http_deposit_per_s"],
                figures["sqlite_floor_deposit_per_s"],
            )
    for note in result["notes"]:
        print(note)
    print(
        json.dumps(
            {
                "benchmark": "store",
                "python": platform.python_version(),
                "quick": args.quick,
                "clients": args.clients,
                "http_clients": args.http_clients,
                "operations": result["operations"],
                "devices": result["devices"],
                "unit": "operations per second",
                "figures": figures,
                "ratios": ratios,
                "notes": result["notes"],
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
