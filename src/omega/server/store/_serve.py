"""Build the service from settings and serve it with uvicorn (``omega serve store``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import TextIO

import uvicorn

from omega.mailbox import StoreConfig, StoreService, WallClock
from omega.mailbox.backend import Notifier, StoreBackend
from omega.server.store.app import create_app
from omega.server.store.command import StoreServerSettings, shutdown_signals

__all__ = ["build_backend", "serve"]

_log = logging.getLogger("omega.server.store")


async def build_backend(settings: StoreServerSettings, stack: AsyncExitStack) -> StoreBackend:
    """Open the backend the settings name; the stack closes it."""
    now_ms = int(WallClock().now() * 1000)
    days = settings.max_ttl_seconds // 86_400 + 2
    backend: StoreBackend
    if settings.backend == "sqlite":
        from omega.server.store.sqlite import SQLiteBackend

        backend = await SQLiteBackend.open(settings.sqlite_path)
    else:
        from omega.server.store.postgres import PostgresBackend
        from omega.server.store.sharding import ShardedBackend

        dsns = settings.postgres_shards or (settings.postgres_dsn,)
        shards: dict[str, StoreBackend] = {}
        for index, dsn in enumerate(dsns):
            shard = await PostgresBackend.open(
                dsn, schema=settings.postgres_schema, partition_days_ahead=days, now_ms=now_ms
            )
            stack.push_async_callback(shard.aclose)  # closing twice is harmless
            shards[f"shard-{index}"] = shard
        backend = next(iter(shards.values())) if len(shards) == 1 else ShardedBackend(shards)
    if settings.redis_url:
        from omega.server.store.hotpath import RedisNonceBackend

        backend = RedisNonceBackend.from_url(backend, settings.redis_url)
    stack.push_async_callback(backend.aclose)
    return backend


class _Server(uvicorn.Server):
    """uvicorn, with our graceful shutdown on SIGINT/SIGTERM (no signal re-raised after it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: object) -> None:
            _log.info("event=shutdown_requested signal=%d", signum)
            self.should_exit = True

        with shutdown_signals(stop):
            yield


@asynccontextmanager
async def _notifier(settings: StoreServerSettings) -> AsyncIterator[Notifier | None]:
    if not settings.redis_url:
        yield None
        return
    from omega.server.store.hotpath import RedisNotifier

    async with RedisNotifier.open(settings.redis_url) as notifier:
        yield notifier


@asynccontextmanager
async def _grpc_server(
    service: StoreService, settings: StoreServerSettings, out: TextIO
) -> AsyncIterator[None]:
    """The gRPC API beside the HTTP one, on the same service; closed after HTTP stops."""
    from omega.server.store.grpc import create_grpc_server, listening_socket

    assert settings.grpc_port is not None
    sock = listening_socket(settings.host, settings.grpc_port)
    port = sock.getsockname()[1]
    server = create_grpc_server(service)
    await server.start(sock=sock)
    _log.info("event=store_grpc_listening host=%s port=%d", settings.host, port)
    print(f"omega-store gRPC listening on {settings.host}:{port}", file=out)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
        _log.info("event=store_grpc_closed")


async def serve(settings: StoreServerSettings, secret: bytes | None, out: TextIO) -> None:
    """Serve until asked to stop, then close everything."""
    config = StoreConfig(
        default_ttl_seconds=settings.default_ttl_seconds,
        max_ttl_seconds=settings.max_ttl_seconds,
        max_payload_bytes=settings.max_payload_bytes,
        max_messages_per_recipient=settings.max_messages_per_recipient,
        max_bytes_per_recipient=settings.max_bytes_per_recipient,
        requests_per_second=settings.requests_per_second,
        request_burst=settings.request_burst,
        auth_secret=secret,
    )
    async with AsyncExitStack() as stack:
        backend = await build_backend(settings, stack)
        notifier = await stack.enter_async_context(_notifier(settings))
        service = StoreService(backend, config=config, notifier=notifier)
        server = _Server(
            uvicorn.Config(
                create_app(service),
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                proxy_headers=settings.proxy_headers,
                forwarded_allow_ips=settings.forwarded_allow_ips,
                lifespan="on",
            )
        )
        _log.info(
            "event=store_listening host=%s port=%d backend=%s redis=%s",
            settings.host,
            settings.port,
            settings.backend,
            bool(settings.redis_url),
        )
        print(f"omega-store listening on http://{settings.host}:{settings.port}", file=out)
        if settings.grpc_port is not None:
            await stack.enter_async_context(_grpc_server(service, settings, out))
        out.flush()
        await server.serve()
    _log.info("event=store_closed")
