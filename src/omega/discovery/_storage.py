"""The validating record storage a DHT node keeps, plugged into kademlia's ``IStorage`` seam.

Every value enters through :meth:`RecordStorage.offer`, which verifies it
for its key (:func:`~omega.discovery.dht_values.read_dht_value`), keeps only
a newer record than the one held, and bounds the whole store by record
count and bytes. :meth:`RecordStorage.get` serves only what is still live:
an expired peer record, or a device list nobody re-stored within
``device_list_ttl``, is dropped instead of served.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from kademlia.storage import IStorage

from omega.discovery.base import unix_ms
from omega.discovery.dht_values import DhtValue, ValueKind, check_newer, read_dht_value
from omega.errors import OmegaError
from omega.transport.clock import Clock

__all__ = ["SHARED_CACHE", "RecordStorage", "StorageLimits", "ValueCache"]

logger = logging.getLogger("omega.discovery.dht")


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """Bounds of one node's storage (copied from :class:`~omega.discovery.DhtConfig`)."""

    max_records: int
    max_bytes: int
    max_record_lifetime_ms: int
    device_list_ttl_ms: int


class ValueCache:
    """Remembers values that verified, so that signatures are checked once per value.

    Keyed by SHA-256 of key and value; bounded (least recently used out).
    Verification is a pure function of those bytes, so one cache may serve
    every node of a process (:data:`SHARED_CACHE`). Only the signature work
    is cached: expiry and ordering against the held value are checked again
    on every use.
    """

    def __init__(self, size: int = 16384) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, DhtValue] = OrderedDict()

    def read(self, key: bytes, value: object, *, now: int, previous: DhtValue | None) -> DhtValue:
        """:func:`read_dht_value`, with signatures checked at most once per (key, value)."""
        if not isinstance(value, bytes):
            return read_dht_value(key, value, now=now, previous=previous)
        digest = hashlib.sha256(key + value).digest()
        cached = self._entries.get(digest)
        if (
            cached is None
            or not cached.is_live(now)
            or (previous is not None and cached.kind is ValueKind.DEVICE_LIST)
        ):
            # Verify in full: the first time, for the typed expiry error, or to check that a
            # new device list keeps every revocation of the held one.
            cached = read_dht_value(key, value, now=now, previous=previous)
            self._entries[digest] = cached
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            return cached
        self._entries.move_to_end(digest)
        if previous is not None:
            check_newer(cached, previous, now)
        return cached


SHARED_CACHE = ValueCache()
"""The verification cache every node of this process uses unless given another."""


@dataclass(slots=True)
class _Held:
    value: DhtValue
    stored_at: int  # Unix ms of the last accepted store (republish refreshes it)


class RecordStorage(IStorage):  # type: ignore[misc]  # kademlia ships no type hints
    """Validated records by DHT key; what a node stores and serves."""

    def __init__(self, limits: StorageLimits, clock: Clock, cache: ValueCache) -> None:
        self._limits = limits
        self._clock = clock
        self._cache = cache
        self._held: OrderedDict[bytes, _Held] = OrderedDict()
        self._bytes = 0

    @property
    def total_bytes(self) -> int:
        """Bytes of every value held."""
        return self._bytes

    @property
    def count(self) -> int:
        """Records held (a storage is never falsy: kademlia tests ``storage or default``)."""
        return len(self._held)

    def _live(self, key: bytes, now: int) -> _Held | None:
        held = self._held.get(key)
        if held is None:
            return None
        if held.value.is_live(now) and (
            held.value.expires_at is not None
            or now - held.stored_at < self._limits.device_list_ttl_ms
        ):
            return held
        self._drop(key)
        return None

    def _drop(self, key: bytes) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._bytes -= len(held.value.raw)

    def cull(self) -> None:
        """Drop every record that is no longer live."""
        now = unix_ms(self._clock)
        for key in list(self._held):
            self._live(key, now)

    def offer(self, key: object, value: object) -> str | None:
        """Store ``value`` under ``key`` if it is valid and newer; return why not, or ``None``."""
        if not isinstance(key, bytes) or len(key) != 20:
            return "malformed key"
        now = unix_ms(self._clock)
        held = self._live(key, now)
        if held is not None and held.value.raw == value:
            held.stored_at = now  # a republish of the same record keeps it alive
            return None
        try:
            accepted = self._cache.read(
                key, value, now=now, previous=held.value if held is not None else None
            )
        except OmegaError as exc:
            return exc.code
        if held is not None and accepted.sequence == held.value.sequence:
            return "conflicting record with the same sequence"
        expires_at = accepted.expires_at
        if expires_at is not None and expires_at > now + self._limits.max_record_lifetime_ms:
            return "expiry too far in the future"
        size = len(accepted.raw)
        if held is None and not self._has_room(size, now):
            return "storage full"
        self._drop(key)
        self._held[key] = _Held(accepted, now)
        self._bytes += size
        return None

    def _has_room(self, size: int, now: int) -> bool:
        if len(self._held) < self._limits.max_records and self._bytes + size <= (
            self._limits.max_bytes
        ):
            return True
        for key in list(self._held):
            self._live(key, now)
        return len(self._held) < self._limits.max_records and (
            self._bytes + size <= self._limits.max_bytes
        )

    def value(self, key: bytes) -> DhtValue | None:
        """The live verified value held for ``key``, or ``None``."""
        held = self._live(key, unix_ms(self._clock))
        return held.value if held is not None else None

    # kademlia's IStorage interface ---------------------------------------------------------

    def __setitem__(self, key: bytes, value: object) -> None:
        reason = self.offer(key, value)
        if reason is not None:
            logger.info("dht.local_store_refused key=%s reason=%s", _hex(key), reason)

    def __getitem__(self, key: bytes) -> bytes:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The live value of ``key``, or ``default``."""
        held = self._live(key, unix_ms(self._clock))
        return held.value.raw if held is not None else default

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of live records last stored more than ``seconds_old`` ago."""
        now = unix_ms(self._clock)
        limit = now - int(seconds_old * 1000)
        return [
            (key, held.value.raw)
            for key, held in list(self._held.items())
            if self._live(key, now) is not None and held.stored_at <= limit
        ]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        now = unix_ms(self._clock)
        items = [(key, held.value.raw) for key, held in list(self._held.items())]
        return iter([(key, raw) for key, raw in items if self._live(key, now) is not None])


def _hex(key: object) -> str:
    return key.hex() if isinstance(key, bytes) else repr(key)[:40]
