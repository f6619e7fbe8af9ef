"""Redis for the hot paths: arrival notifications across processes, single-use nonces.

:class:`RedisNotifier` publishes each deposit on ``{prefix}:arrived:{recipient_hash}``
and keeps ONE pattern subscription per server process, dispatching to the
long polls and WebSockets waiting in that process, so every process behind a
load balancer wakes its clients whichever process took the deposit.
:class:`RedisNonceBackend` wraps a durable backend and spends challenge
nonces with ``SET key 1 NX PXAT expires_at`` (atomic, self-expiring), taking
that write off the database. Both need the ``server`` extra (redis-py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from omega.errors import StorageError, map_exceptions
from omega.mailbox.backend import (
    DepositOutcome,
    Listener,
    Notifier,
    PrekeyRecord,
    StoreBackend,
    StoredMessage,
)
from omega.mailbox.notify import MemoryNotifier

__all__ = ["RedisNonceBackend", "RedisNotifier"]

_log = logging.getLogger("omega.server.store")


def _errors() -> dict[type[BaseException], type[StorageError]]:
    import redis

    return {redis.RedisError: StorageError, OSError: StorageError}


class RedisNotifier(Notifier):
    """Arrival notifications through Redis pub/sub: ``async with RedisNotifier.open(url)``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._local = MemoryNotifier()
        self._errors = _errors()

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, prefix: str = "omega-store") -> AsyncIterator[RedisNotifier]:
        """Connect, subscribe, and relay notifications to this process while the block runs."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url)
        notifier = cls(client, prefix)
        try:
            with map_exceptions(notifier._errors, "cannot subscribe to Redis"):
                pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.psubscribe(f"{prefix}:arrived:*")
            async with anyio.create_task_group() as group:
                group.start_soon(notifier._relay, pubsub)
                try:
                    yield notifier
                finally:
                    group.cancel_scope.cancel()
                    with anyio.CancelScope(shield=True):
                        await pubsub.aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def _relay(self, pubsub: Any) -> None:
        start = len(f"{self._prefix}:arrived:")
        while True:
            try:
                async for message in pubsub.listen():
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode("ascii", "replace")
                    await self._local.notify(channel[start:])
            except Exception:  # Redis went away: keep trying, long polls still time out
                _log.exception("event=redis_relay_failed")
                await anyio.sleep(1)

    def listen(self, recipient_hash: str) -> AbstractAsyncContextManager[Listener]:
        """Listen in this process; Redis relays arrivals from every process."""
        return self._local.listen(recipient_hash)

    async def notify(self, recipient_hash: str) -> None:
        """Publish the arrival to every process (this one included, through Redis)."""
        try:
            with map_exceptions(self._errors, "cannot publish to Redis"):
                await self._client.publish(f"{self._prefix}:arrived:{recipient_hash}", b"1")
        except StorageError:
            # The message is stored; only the wake-up is lost. Wake local waiters anyway.
            _log.warning("event=redis_publish_failed")
            await self._local.notify(recipient_hash)


class RedisNonceBackend(StoreBackend):
    """A durable backend whose nonce spending goes to Redis (``SET NX PXAT``)."""

    def __init__(self, backend: StoreBackend, client: Any, *, prefix: str = "omega-store") -> None:
        self.backend = backend
        self._client = client
        self._prefix = prefix
        self._errors = _errors()

    @classmethod
    def from_url(
        cls, backend: StoreBackend, url: str, *, prefix: str = "omega-store"
    ) -> RedisNonceBackend:
        """Wrap ``backend`` with a Redis client for ``url``."""
        import redis.asyncio

        return cls(backend, redis.asyncio.Redis.from_url(url), prefix=prefix)

    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        with map_exceptions(self._errors, "Redis failed to spend a nonce"):
            stored = await self._client.set(
                f"{self._prefix}:nonce:{nonce.hex()}", b"1", nx=True, pxat=max(expires_at, 1)
            )
        return bool(stored)

    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        return await self.backend.insert_message(
            message, max_messages=max_messages, max_bytes=max_bytes
        )

    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        return await self.backend.list_messages(recipient_hash, now=now, limit=limit)

    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        return await self.backend.delete_messages(recipient_hash, message_ids)

    async def purge_expired(self, now: int) -> int:
        return await self.backend.purge_expired(now)  # Redis expires nonces by itself

    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        return await self.backend.get_device_list(user_id)

    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        return await self.backend.put_device_list(
            user_id, sequence, signed, expected_sequence=expected_sequence
        )

    async def put_prekeys(
        self,
        device_key: bytes,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        return await self.backend.put_prekeys(
            device_key,
            user_id=user_id,
            certificate=certificate,
            signed_prekey=signed_prekey,
            one_time_prekeys=one_time_prekeys,
        )

    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        return await self.backend.claim_prekeys(device_key, user_id)

    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        return await self.backend.count_one_time_prekeys(device_key)

    async def delete_prekeys(self, device_key: bytes) -> None:
        await self.backend.delete_prekeys(device_key)

    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        return await self.backend.revoke_device(recipient_hash, revoked_at=revoked_at)

    async def is_revoked(self, recipient_hash: str) -> bool:
        return await self.backend.is_revoked(recipient_hash)

    async def aclose(self) -> None:
        """Close the Redis client and the wrapped backend."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await self.backend.aclose()
