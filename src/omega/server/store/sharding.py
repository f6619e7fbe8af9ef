"""Sharding by key across several backends with consistent hashing.

Each shard has a stable name; the ring holds ``virtual_nodes`` points per
shard at SHA-256(``name#i``). A mailbox lives on the shard owning its
recipient hash (and so does its revocation mark), a nonce on the shard
owning its hex, a device list on the shard owning its user id, a device's
prekeys on the shard owning its key.
Adding a shard moves only about 1/n of the keys (documented in
docs/servers.md: move them, or drain old shards, before switching).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence

import anyio

from omega.errors import ConfigurationError
from omega.mailbox.backend import DepositOutcome, PrekeyRecord, StoreBackend, StoredMessage

__all__ = ["ConsistentHashRing", "ShardedBackend"]


def _point(value: str) -> int:
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")


class ConsistentHashRing:
    """A consistent-hash ring over named shards."""

    def __init__(self, names: Sequence[str], *, virtual_nodes: int = 160) -> None:
        if not names or len(set(names)) != len(names):
            raise ConfigurationError("a ring needs at least one shard, each named once")
        if virtual_nodes < 1:
            raise ConfigurationError("virtual_nodes must be positive")
        ring = sorted((_point(f"{name}#{i}"), name) for name in names for i in range(virtual_nodes))
        self._points = [point for point, _ in ring]
        self._names = [name for _, name in ring]

    def shard_for(self, key: str) -> str:
        """The name of the shard owning ``key``."""
        index = bisect.bisect(self._points, _point(key)) % len(self._points)
        return self._names[index]


class ShardedBackend(StoreBackend):
    """A :class:`~omega.mailbox.backend.StoreBackend` spread over named shards."""

    def __init__(self, shards: Mapping[str, StoreBackend], *, virtual_nodes: int = 160) -> None:
        self._shards = dict(shards)
        self._ring = ConsistentHashRing(list(self._shards), virtual_nodes=virtual_nodes)

    def shard(self, key: str) -> StoreBackend:
        """The backend owning ``key``."""
        return self._shards[self._ring.shard_for(key)]

    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        return await self.shard(message.recipient_hash).insert_message(
            message, max_messages=max_messages, max_bytes=max_bytes
        )

    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        return await self.shard(recipient_hash).list_messages(recipient_hash, now=now, limit=limit)

    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        return await self.shard(recipient_hash).delete_messages(recipient_hash, message_ids)

    async def purge_expired(self, now: int) -> int:
        removed = [0]

        async def purge(backend: StoreBackend) -> None:
            removed[0] += await backend.purge_expired(now)

        async with anyio.create_task_group() as group:
            for backend in self._shards.values():
                group.start_soon(purge, backend)
        return removed[0]

    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        return await self.shard(nonce.hex()).spend_nonce(nonce, expires_at)

    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        return await self.shard(user_id).get_device_list(user_id)

    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        return await self.shard(user_id).put_device_list(
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
        return await self.shard(device_key.hex()).put_prekeys(
            device_key,
            user_id=user_id,
            certificate=certificate,
            signed_prekey=signed_prekey,
            one_time_prekeys=one_time_prekeys,
        )

    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        return await self.shard(device_key.hex()).claim_prekeys(device_key, user_id)

    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        return await self.shard(device_key.hex()).count_one_time_prekeys(device_key)

    async def delete_prekeys(self, device_key: bytes) -> None:
        await self.shard(device_key.hex()).delete_prekeys(device_key)

    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        return await self.shard(recipient_hash).revoke_device(recipient_hash, revoked_at=revoked_at)

    async def is_revoked(self, recipient_hash: str) -> bool:
        return await self.shard(recipient_hash).is_revoked(recipient_hash)

    async def aclose(self) -> None:
        """Close every shard."""
        for backend in self._shards.values():
            await backend.aclose()
