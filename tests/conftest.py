"""Shared fixtures: the anyio backend, the real PostgreSQL and Redis servers, hypothesis settings.

Tests that need a server ask for ``postgres_dsn`` or ``redis_url``. When the
server cannot be reached they are skipped with the reason, unless
``OMEGA_REQUIRE_SERVICES=1`` (set by .ci/run), in which case they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from omega.mailbox.service import StoreService

# Timing belongs in bench/, never in tests: no per-example deadline, so a busy
# CI machine cannot turn a slow example into a failure.
settings.register_profile(
    "omega", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("omega")

DEFAULT_POSTGRES_DSN = "postgresql://omega:omega@127.0.0.1:5432/omega_test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _services_required() -> bool:
    return os.environ.get("OMEGA_REQUIRE_SERVICES", "") == "1"


def _unavailable(service: str, variable: str, reason: str) -> None:
    message = (
        f"{service} is not reachable ({reason}); start it and point {variable} at it, "
        "or run `bash .ci/run`, which installs and starts it"
    )
    if _services_required():
        pytest.fail(f"OMEGA_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    """Omega's drivers run on asyncio (aioquic, aiosqlite and kademlia need it)."""
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a real PostgreSQL database the tests may write to."""
    dsn = os.environ.get("OMEGA_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    try:
        import asyncpg
    except ImportError as exc:
        _unavailable("PostgreSQL", "OMEGA_TEST_POSTGRES_DSN", f"asyncpg is not installed: {exc}")

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable("PostgreSQL", "OMEGA_TEST_POSTGRES_DSN", f"{type(exc).__name__}: {exc}")
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server the tests may write to."""
    url = os.environ.get("OMEGA_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        import redis
    except ImportError as exc:
        _unavailable("Redis", "OMEGA_TEST_REDIS_URL", f"redis-py is not installed: {exc}")
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        _unavailable("Redis", "OMEGA_TEST_REDIS_URL", f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return url


@contextlib.asynccontextmanager
async def _serving(service: StoreService) -> AsyncIterator[str]:
    import uvicorn

    from omega.server.store.app import create_app

    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True


@pytest.fixture
def serve_store() -> Callable[[StoreService], Any]:
    """``async with serve_store(service) as url``: the store's HTTP app on a loopback port."""
    return _serving
