"""The real servers the server-side backends will use are wired into the suite.

These run a real round trip against each server, so a misconfigured CI
(server down, wrong credentials, missing client library) fails here first
rather than deep inside a backend's tests.
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.services


@pytest.mark.anyio
async def test_postgres_round_trip(postgres_dsn: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute("CREATE TEMP TABLE omega_probe (id uuid PRIMARY KEY, body bytea)")
        key = uuid.uuid4()
        await connection.execute("INSERT INTO omega_probe VALUES ($1, $2)", key, b"\x00ciphertext")
        assert await connection.fetchval("SELECT body FROM omega_probe WHERE id=$1", key) == (
            b"\x00ciphertext"
        )
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_redis_round_trip_with_expiry(redis_url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    key = f"omega:probe:{uuid.uuid4()}"
    try:
        await client.set(key, b"\x00ciphertext", px=60_000)
        assert await client.get(key) == b"\x00ciphertext"
        assert 0 < await client.pttl(key) <= 60_000
    finally:
        await client.delete(key)
        await client.aclose()
