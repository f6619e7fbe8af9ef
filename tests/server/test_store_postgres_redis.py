"""The PostgreSQL backend and the Redis hot paths, on the real servers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from omega.crypto import Identity
from omega.errors import ServerUnavailableError, StorageError
from omega.mailbox import MemoryBackend, MemoryStoreServer, StoreConfig, StoreService
from omega.mailbox.http import StoreClient
from omega.server.store.app import create_app
from omega.testing.clock import ManualClock
from omega.testing.mailbox import check_key_directory, check_mailbox, check_store_backend

pytestmark = [pytest.mark.anyio, pytest.mark.services]

DAY = 86_400


def _schema() -> str:
    return f"omega_store_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A DSN and a fresh schema name, dropped afterwards."""
    import asyncpg

    schema = _schema()
    yield postgres_dsn, schema
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


async def _open(pg: tuple[str, str], now_ms: int | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    from omega.server.store.postgres import PostgresBackend

    dsn, schema = pg
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    kwargs.setdefault("partition_days_ahead", 2)
    return await PostgresBackend.open(dsn, schema=schema, now_ms=now, **kwargs)  # type: ignore[arg-type]


async def test_postgres_backend_conforms(pg: tuple[str, str]) -> None:
    async def open_backend():  # type: ignore[no-untyped-def]
        return await _open(pg, now_ms=1_700_000_000_000 - DAY * 1000)

    await check_store_backend(open_backend)


async def test_the_service_over_postgres_conforms(pg: tuple[str, str]) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    config = StoreConfig(default_ttl_seconds=DAY, max_ttl_seconds=DAY)
    async with await _open(pg, now_ms=1_700_000_000_000) as backend:
        server = MemoryStoreServer(clock=clock, backend=backend, config=config)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)
            await server.service.sweep()

        await check_mailbox(server.client, advance=advance)
        await check_key_directory(server.client)


async def test_expiry_drops_whole_day_partitions(pg: tuple[str, str]) -> None:
    start = 1_700_000_000.0
    clock = ManualClock(start=start)
    async with await _open(pg, now_ms=int(start * 1000), partition_days_ahead=3) as backend:
        server = MemoryStoreServer(
            clock=clock,
            backend=backend,
            config=StoreConfig(default_ttl_seconds=DAY, max_ttl_seconds=2 * DAY),
        )
        device = Identity.create(device_name="d", created_at=1).device
        client = server.client()
        for n in range(5):
            await client.deposit(device.device_key, f"m{n}", b"x")
        await client.deposit(device.device_key, "late", b"y", ttl_seconds=2 * DAY)

        async def partitions() -> int:
            async with backend._connection("count") as db:
                return int(
                    await db.fetchval(
                        "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
                        " JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1",
                        backend.schema,
                    )
                )

        before = await partitions()
        expiry_day_end = (int(start) + DAY) // DAY * DAY + DAY
        clock.advance(expiry_day_end - start + 1)  # past the end of the first messages' day
        assert await server.service.sweep() == 5
        assert [e.message_id for e in await client.fetch(device)] == ["late"]
        assert await partitions() >= before - 2, "old days dropped, new days created"
        async with backend._connection("count") as db:
            first_day = int(start * 1000) // (DAY * 1000)
            assert not await db.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"{backend.schema}.messages_d{first_day}"
            ), "the partition of a day that ended is dropped"


async def test_concurrent_claims_on_postgres_never_share_a_prekey(pg: tuple[str, str]) -> None:
    async with await _open(pg, max_connections=8) as backend:
        device = bytes(range(32))
        await backend.put_prekeys(
            device,
            user_id="u",
            certificate=b"c",
            signed_prekey=b"s",
            one_time_prekeys=[(n, bytes([n % 256]) * 32) for n in range(40)],
        )
        got: list[int] = []

        async def claim() -> None:
            record = await backend.claim_prekeys(device, "u")
            assert record is not None
            if record.one_time_prekey is not None:
                got.append(record.one_time_prekey[0])

        async with anyio.create_task_group() as group:
            for _ in range(60):
                group.start_soon(claim)
        assert len(got) == len(set(got)), "no one-time prekey handed out twice"
        assert await backend.count_one_time_prekeys(device) == 40 - len(got)


async def test_a_terminated_connection_fails_one_request_and_the_server_keeps_serving(
    pg: tuple[str, str],
) -> None:
    import asyncpg

    backend = await _open(pg, min_connections=2, max_connections=2)
    service = StoreService(backend, config=StoreConfig(request_burst=10_000))
    app = create_app(service, run_sweeper=False)
    client = StoreClient("http://store", transport=httpx.ASGITransport(app=app))
    device = Identity.create(device_name="d", created_at=1).device
    async with backend, client:
        await client.deposit(device.device_key, "before", b"1")
        admin = await asyncpg.connect(pg[0])
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                f"omega-store-{pg[1]}",
            )
        finally:
            await admin.close()
        assert killed >= 1
        failures = 0
        for n in range(4):
            try:
                await client.deposit(device.device_key, f"after-{n}", b"2")
            except ServerUnavailableError:
                failures += 1
        assert failures <= 2, "only requests on a killed connection fail"
        ids = [e.message_id for e in await client.fetch(device)]
        assert ids[0] == "before", "nothing stored before the failure is lost"
        assert len(ids) == 1 + 4 - failures
        assert await client.health()


async def test_a_closed_postgres_backend_and_bad_settings(pg: tuple[str, str]) -> None:
    from omega.server.store.postgres import PostgresBackend

    backend = await _open(pg)
    await backend.drop_schema()
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(StorageError, match="closed"):
        await backend.get_device_list("u")
    with pytest.raises(ValueError, match="schema"):
        await PostgresBackend.open(pg[0], schema="bad;name", now_ms=0)
    with pytest.raises(ValueError, match="ahead"):
        await PostgresBackend.open(pg[0], schema="fine", partition_days_ahead=1, now_ms=0)
    with pytest.raises(StorageError):
        await PostgresBackend.open("postgresql://nobody:x@127.0.0.1:1/none", now_ms=0)


async def test_redis_wakes_a_long_poll_in_another_process(redis_url: str) -> None:
    from omega.server.store.hotpath import RedisNotifier

    prefix = f"omega-test-{uuid.uuid4().hex}"
    backend = MemoryBackend()
    secret = bytes(32)
    config = StoreConfig(auth_secret=secret)
    device = Identity.create(device_name="d", created_at=1).device
    async with (
        RedisNotifier.open(redis_url, prefix=prefix) as first_notifier,
        RedisNotifier.open(redis_url, prefix=prefix) as second_notifier,
    ):
        first = MemoryStoreServer(backend=backend, config=config)
        first.service.notifier = first_notifier
        second = MemoryStoreServer(backend=backend, config=config)
        second.service.notifier = second_notifier
        woke: list[bool] = []
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                woke.append(await first.client().wait_for_messages(device, timeout=10))

            group.start_soon(wait)
            with anyio.fail_after(5):
                while not first_notifier._local.listener_count:
                    await anyio.sleep(0.01)
            await second.client().deposit(device.device_key, "m", b"x")
        assert woke == [True], "a deposit in one process wakes a poll in another"


async def test_redis_spends_nonces_once(redis_url: str) -> None:
    from omega.server.store.hotpath import RedisNonceBackend

    prefix = f"omega-test-{uuid.uuid4().hex}"
    backend = RedisNonceBackend.from_url(MemoryBackend(), redis_url, prefix=prefix)
    future = int(time.time() * 1000) + 60_000
    async with backend:
        assert await backend.spend_nonce(b"n" * 16, future)
        assert not await backend.spend_nonce(b"n" * 16, future)
        server = MemoryStoreServer(backend=backend)
        await check_mailbox(server.client)
        await check_key_directory(server.client)
    broken = RedisNonceBackend.from_url(MemoryBackend(), "redis://127.0.0.1:1/0")
    async with broken:
        with pytest.raises(StorageError):
            await broken.spend_nonce(b"n" * 16, future)


async def test_the_command_builds_sharded_postgres_with_redis(
    pg: tuple[str, str], redis_url: str
) -> None:
    from contextlib import AsyncExitStack

    from omega.server.store._serve import build_backend
    from omega.server.store.command import StoreServerSettings
    from omega.server.store.hotpath import RedisNonceBackend

    settings = StoreServerSettings(
        backend="postgres",
        postgres_shards=(pg[0], pg[0]),
        postgres_schema=pg[1],
        redis_url=redis_url,
        max_ttl_seconds=DAY,
    )
    async with AsyncExitStack() as stack:
        backend = await build_backend(settings, stack)
        assert isinstance(backend, RedisNonceBackend)
        server = MemoryStoreServer(backend=backend)
        await check_key_directory(server.client)
