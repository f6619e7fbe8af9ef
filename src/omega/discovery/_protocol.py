"""kademlia's RPC protocol, hardened through subclassing.

:class:`OmegaKademliaProtocol` extends ``kademlia.protocol.KademliaProtocol``
(which speaks msgpack over UDP through ``rpcudp``):

* every datagram is checked before anything acts on it: size, kind byte,
  msgpack that decodes, a request naming a known RPC with arguments of the
  right types; anything else is dropped with a log line;
* each source IP has a token bucket of requests, and ``store`` another per
  source address and per source IP; ``store`` goes through the validating
  :class:`RecordStorage` and answers ``False`` (never an exception) for a
  refused record;
* answers to our own requests are checked before the crawlers read them (a
  malformed answer counts as no answer);
* a new contact is handed the records it should hold, keyed by the stored
  key itself (the stock protocol hashes the key again there), scanning at
  most ``max_handoff_scan`` records per contact;
* every task it starts is tracked so that closing the node cancels them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import umsgpack
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from omega.discovery._storage import RecordStorage

__all__ = ["OmegaKademliaProtocol", "ProtocolLimits", "ProtocolStats"]

logger = logging.getLogger("omega.discovery.dht")

_REQUEST = b"\x00"
_RESPONSE = b"\x01"
_HEADER = 21  # kind byte + 20-byte message id
MAX_DATAGRAM = 8192 + _HEADER + 64
_ID = 20

# RPC name -> number of arguments after the sender address; every argument is a 20-byte id
# except store's third (the value, checked by the storage).
_ARITY = {"ping": 1, "stun": 0, "find_node": 2, "find_value": 2, "store": 3}


@dataclass(frozen=True, slots=True)
class ProtocolLimits:
    """Rate limits of one node (copied from :class:`~omega.discovery.DhtConfig`)."""

    rpc_timeout: float
    store_rate: float
    store_burst: int
    store_rate_per_ip: float
    store_burst_per_ip: int
    request_rate_per_ip: float = 200.0
    request_burst_per_ip: int = 2000
    max_handoff_scan: int = 256
    max_sources: int = 4096


@dataclass(slots=True)
class ProtocolStats:
    """Counters of what a node refused; for logs, tests and the health endpoint."""

    malformed: int = 0
    stores_accepted: int = 0
    stores_refused: int = 0
    stores_rate_limited: int = 0
    requests_rate_limited: int = 0
    answers_malformed: int = 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class _RateLimiter:
    """Token buckets by source, bounded in number (least recently used out)."""

    def __init__(self, rate: float, burst: int, max_sources: int) -> None:
        self._rate = rate
        self._burst = burst
        self._max_sources = max_sources
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()

    def allow(self, source: object, now: float) -> tuple[bool, bool]:
        """Take a token for ``source``: (allowed, first refusal since the bucket refilled)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = _Bucket(float(self._burst), now)
            self._buckets[source] = bucket
            if len(self._buckets) > self._max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return True, False
        first = not bucket.warned
        bucket.warned = True
        return False, first


def _is_id(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == _ID


def _request_problem(data: object) -> str | None:
    if not isinstance(data, list) or len(data) != 2:
        return "request is not [name, args]"
    name, args = data
    if not isinstance(name, str) or name not in _ARITY:
        return "unknown rpc"
    if not isinstance(args, list) or len(args) != _ARITY[name]:
        return f"wrong arguments for {name}"
    ids = args[:2] if name == "store" else args
    if not all(_is_id(arg) for arg in ids):
        return f"malformed id in {name}"
    return None


def _is_ip(host: object) -> bool:
    if not isinstance(host, str) or len(host) > 45:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _node_triples_ok(answer: object, limit: int) -> bool:
    if not isinstance(answer, list) or len(answer) > limit:
        return False
    for entry in answer:
        if not isinstance(entry, list) or len(entry) != 3:
            return False
        node_id, host, port = entry
        if not _is_id(node_id) or not _is_ip(host):
            return False
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            return False
    return True


class OmegaKademliaProtocol(KademliaProtocol):  # type: ignore[misc]  # kademlia has no hints
    """The kademlia protocol with validation, rate limits and tracked tasks."""

    def __init__(
        self, source_node: Node, storage: RecordStorage, ksize: int, limits: ProtocolLimits
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = limits.rpc_timeout
        self.record_storage = storage
        self.limits = limits
        self.stats = ProtocolStats()
        self._by_address = _RateLimiter(limits.store_rate, limits.store_burst, limits.max_sources)
        self._by_ip = _RateLimiter(
            limits.store_rate_per_ip, limits.store_burst_per_ip, limits.max_sources
        )
        self._requests = _RateLimiter(
            limits.request_rate_per_ip, limits.request_burst_per_ip, limits.max_sources
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # tasks ---------------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task the node cancels when it closes."""
        if self.closed:
            coroutine.close()
            return
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("dht.task_failed error=%r", task.exception())

    async def close(self) -> None:
        """Stop answering, cancel every task and fail every outstanding request."""
        self.closed = True
        for future, timeout in list(self._outstanding.values()):
            timeout.cancel()
            if not future.done():
                future.set_result((False, None))
        self._outstanding.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # incoming datagrams --------------------------------------------------------------------

    def _malformed(self, address: tuple[str, int], reason: str) -> None:
        self.stats.malformed += 1
        logger.warning("dht.malformed source=%s:%s reason=%s", address[0], address[1], reason)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Check a datagram, then hand a request to its RPC or an answer to its waiter."""
        if self.closed:
            return
        if not _HEADER < len(data) <= MAX_DATAGRAM:
            self._malformed(addr, f"datagram of {len(data)} bytes")
            return
        kind, message_id = data[:1], data[1:_HEADER]
        if kind not in (_REQUEST, _RESPONSE):
            self._malformed(addr, "unknown datagram kind")
            return
        if kind == _REQUEST:
            # Bound the work (and the answers: find_node amplifies) one IP address can cause.
            allowed, first = self._requests.allow(addr[0], time.monotonic())
            if not allowed:
                self.stats.requests_rate_limited += 1
                if first:
                    logger.warning("dht.requests_rate_limited source=%s", addr[0])
                return
        try:
            payload = umsgpack.unpackb(data[_HEADER:])
        except Exception as exc:
            self._malformed(addr, f"undecodable msgpack ({type(exc).__name__})")
            return
        if kind == _RESPONSE:
            future = self._outstanding.get(message_id, (None,))[0]
            if future is not None and future.done():  # its waiter was cancelled
                self._outstanding.pop(message_id)[1].cancel()
                return
            self._accept_response(message_id, payload, addr)
            return
        problem = _request_problem(payload)
        if problem is not None:
            self._malformed(addr, problem)
            return
        name, args = payload
        # Every RPC is synchronous: answer at once rather than through a task per request.
        try:
            answer = getattr(self, f"rpc_{name}")(addr, *args)
            self.transport.sendto(_RESPONSE + message_id + umsgpack.packb(answer), addr)
        except Exception as exc:  # one bad request must never stop the node
            self._malformed(addr, f"{name} failed ({type(exc).__name__})")

    # RPCs ----------------------------------------------------------------------------------

    def rpc_store(self, sender: tuple[str, int], nodeid: bytes, key: bytes, value: object) -> bool:
        """Store a record if the source is within its rate and the record is valid and newer."""
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        now = time.monotonic()
        allowed, first = self._by_address.allow(sender, now)
        if allowed:
            allowed, first = self._by_ip.allow(sender[0], now)
        if not allowed:
            self.stats.stores_rate_limited += 1
            if first:
                logger.warning("dht.store_rate_limited source=%s:%s", sender[0], sender[1])
            return False
        reason = self.record_storage.offer(key, value)
        if reason is not None:
            self.stats.stores_refused += 1
            logger.warning(
                "dht.store_refused source=%s:%s key=%s reason=%s",
                sender[0],
                sender[1],
                key.hex(),
                reason,
            )
            return False
        self.stats.stores_accepted += 1
        return True

    def welcome_if_new(self, node: Node) -> None:
        """Add a new contact; hand it the records it is now among the closest to hold."""
        if not self.router.is_new_node(node):
            return
        # At most max_handoff_scan records per new contact, so that a stream of fresh node ids
        # cannot make the node scan a large store for each; republishing covers the rest.
        for key, value in itertools.islice(self.record_storage, self.limits.max_handoff_scan):
            keynode = Node(key)
            neighbors = self.router.find_neighbors(keynode)
            if neighbors:
                new_node_close = node.distance_to(keynode) < neighbors[-1].distance_to(keynode)
                this_closest = self.source_node.distance_to(keynode) < neighbors[0].distance_to(
                    keynode
                )
            if not neighbors or (new_node_close and this_closest):
                self.spawn(self.call_store(node, key, value))
        self.router.add_contact(node)

    # answers to our requests ---------------------------------------------------------------

    def _answer(self, result: tuple[bool, object], ok: bool, node: Node) -> tuple[bool, object]:
        """A malformed answer counts as none; either way the routing table learns of it."""
        if result[0] and not ok:
            self.stats.answers_malformed += 1
            logger.warning("dht.malformed_answer source=%s:%s", node.ip, node.port)
            result = (False, None)
        self.handle_call_response(result, node)
        return result

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> tuple[bool, object]:
        """Ask ``node_to_ask`` for the nodes closest to ``node_to_find``."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.find_node(address, self.source_node.id, node_to_find.id)
        ok = _node_triples_ok(result[1], 4 * self.router.ksize)
        return self._answer(result, ok, node_to_ask)

    async def call_find_value(self, node_to_ask: Node, node_to_find: Node) -> tuple[bool, object]:
        """Ask ``node_to_ask`` for the value of ``node_to_find``'s key, or closer nodes."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.find_value(address, self.source_node.id, node_to_find.id)
        answer = result[1]
        if isinstance(answer, dict):
            ok = list(answer) == ["value"] and isinstance(answer["value"], bytes)
        else:
            ok = _node_triples_ok(answer, 4 * self.router.ksize)
        return self._answer(result, ok, node_to_ask)

    async def call_store(self, node_to_ask: Node, key: bytes, value: bytes) -> tuple[bool, object]:
        """Ask ``node_to_ask`` to store ``value`` under ``key``."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.store(address, self.source_node.id, key, value)
        ok = isinstance(result[1], bool)
        return self._answer(result, ok, node_to_ask)

    async def call_ping(self, node_to_ask: Node) -> tuple[bool, object]:
        """Ping ``node_to_ask``."""
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.ping(address, self.source_node.id)
        return self._answer(result, _is_id(result[1]), node_to_ask)
