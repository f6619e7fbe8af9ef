"""The Kademlia DHT node: a :class:`Resolver` and :class:`Publisher` with no central directory.

:class:`DhtNode` runs one node of the `kademlia <https://pypi.org/project/kademlia/>`_
network (msgpack RPCs over UDP) on asyncio, extended through the package's
own seams: a validating storage (``IStorage``), a hardened protocol
(``KademliaProtocol`` subclass) and a value crawler that picks the valid
record with the highest sequence (``ValueSpiderCrawl`` subclass). The
kademlia ``Server`` only provides listening; joining, storing, looking up,
republishing and refreshing are the node's own, and nothing is pickled.

A node stores and serves only records that verify for their key, are
unexpired, are not larger than the size limit and are newer than the one it
holds; a stock kademlia node can still join and route through Omega nodes.
docs/discovery.md specifies the keys and values byte for byte.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio
from kademlia.crawling import NodeSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node

from omega.crypto import VerifiedDeviceList
from omega.crypto.devices import MAX_DEVICE_LIST_SIZE
from omega.discovery._crawl import BestRecordCrawl
from omega.discovery._keys import checked_device_key, identity_key_of
from omega.discovery._protocol import OmegaKademliaProtocol, ProtocolLimits, ProtocolStats
from omega.discovery._storage import SHARED_CACHE, RecordStorage, StorageLimits
from omega.discovery.base import PeerRecordInfo, Publisher, Resolver, WallClock, unix_ms
from omega.discovery.dht_values import (
    DHT_KEY_SIZE,
    DhtValue,
    device_list_key,
    encode_dht_value,
    peer_record_key,
    read_dht_value,
)
from omega.discovery.records import verify_peer_record
from omega.errors import (
    ConfigurationError,
    DiscoveryError,
    LocalProtocolError,
    OmegaError,
    map_exceptions,
)
from omega.protocol import DeviceList, SignedDeviceList, SignedPeerRecord, decode_message
from omega.transport.clock import Clock

__all__ = ["DhtConfig", "DhtNode", "LookupResult", "parse_host_port"]

logger = logging.getLogger("omega.discovery.dht")

_DAY_MS = 24 * 3600 * 1000


def parse_host_port(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` for IPv6) into a pair; ConfigurationError otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"a node address is host:port, got {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    """Configuration of one :class:`DhtNode`; validated on construction."""

    host: str = "127.0.0.1"
    """Interface to listen on (an IP address; ``0.0.0.0`` or ``::`` for all)."""
    port: int = 0
    """UDP port to listen on; 0 picks a free one."""
    bootstrap: tuple[str, ...] = ()
    """Nodes to join through, as ``host:port`` (host names are resolved at join time)."""
    node_id: bytes | None = None
    """This node's 20-byte id; random when ``None`` (a bootstrap server keeps its own)."""
    ksize: int = 20
    """Kademlia's k: bucket size and replication factor."""
    alpha: int = 3
    """Kademlia's alpha: parallel requests per lookup round."""
    rpc_timeout: float = 2.0
    """Seconds to wait for an answer before counting a node as unresponsive."""
    lookup_quorum: int = 3
    """Valid answers a lookup collects before it picks the highest sequence."""
    republish_interval: float = 1800.0
    """Seconds between republishing own records and records held longer than this."""
    refresh_interval: float = 900.0
    """Seconds between routing-table refreshes (and join retries while alone)."""
    max_records: int = 20_000
    """Most records one node holds."""
    max_storage_bytes: int = 64 * 1024 * 1024
    """Most bytes of records one node holds."""
    max_record_lifetime_ms: int = 7 * _DAY_MS
    """A peer record expiring later than this from now is refused."""
    device_list_ttl_ms: int = 2 * _DAY_MS
    """A held device list nobody re-stored for this long is dropped."""
    store_rate: float = 1.0
    """Stores per second one source address may make (token bucket refill)."""
    store_burst: int = 60
    """Stores one source address may make at once (token bucket size)."""
    store_rate_per_ip: float = 20.0
    """Stores per second one source IP may make, over all its ports."""
    store_burst_per_ip: int = 600
    """Stores one source IP may make at once."""
    request_rate_per_ip: float = 200.0
    """Requests per second one source IP may make (beyond it they are dropped unanswered)."""
    request_burst_per_ip: int = 2000
    """Requests one source IP may make at once."""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            raise ConfigurationError(f"host must be an IP address, got {self.host!r}") from None
        if not 0 <= self.port < 65536:
            raise ConfigurationError(f"port must be in 0..65535, got {self.port}")
        for address in self.bootstrap:
            parse_host_port(address)
        if self.node_id is not None and len(self.node_id) != DHT_KEY_SIZE:
            raise ConfigurationError(f"node_id must be {DHT_KEY_SIZE} bytes")
        positive = {
            "ksize": self.ksize,
            "alpha": self.alpha,
            "rpc_timeout": self.rpc_timeout,
            "lookup_quorum": self.lookup_quorum,
            "republish_interval": self.republish_interval,
            "refresh_interval": self.refresh_interval,
            "max_records": self.max_records,
            "max_storage_bytes": self.max_storage_bytes,
            "max_record_lifetime_ms": self.max_record_lifetime_ms,
            "device_list_ttl_ms": self.device_list_ttl_ms,
            "store_rate": self.store_rate,
            "store_burst": self.store_burst,
            "store_rate_per_ip": self.store_rate_per_ip,
            "store_burst_per_ip": self.store_burst_per_ip,
            "request_rate_per_ip": self.request_rate_per_ip,
            "request_burst_per_ip": self.request_burst_per_ip,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not value > 0:
                raise ConfigurationError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What one lookup found, and what it cost."""

    value: DhtValue | None
    """The valid value with the highest sequence, or ``None``."""
    rounds: int
    """Rounds of parallel requests (hops) the lookup took."""
    queried: int
    """Nodes asked."""


class _ListeningServer(Server):  # type: ignore[misc]  # kademlia has no type hints
    """kademlia's Server, used for listening only, with our protocol and no timer of its own."""

    def __init__(self, node: DhtNode) -> None:
        super().__init__(
            ksize=node.config.ksize,
            alpha=node.config.alpha,
            node_id=node.node_id,
            storage=node.storage,
        )
        self._owner = node

    def _create_protocol(self) -> OmegaKademliaProtocol:
        return OmegaKademliaProtocol(
            self.node, self.storage, self.ksize, self._owner.protocol_limits
        )

    def refresh_table(self, interval: float = 3600) -> None:
        """The node runs its own refresh loop on its clock."""


@dataclass(slots=True)
class _Own:
    """Records this node published, republished until they expire."""

    values: dict[bytes, DhtValue] = field(default_factory=dict)


class DhtNode(Resolver, Publisher):
    """One node of the Omega DHT: resolve and publish device lists and peer records.

    Use it as an async context manager (``async with DhtNode(config) as node``);
    it listens on ``config.host:config.port`` (UDP), joins through
    ``config.bootstrap`` and keeps its routing table and records fresh
    until closed. ``clock`` reads Unix seconds
    (:class:`~omega.discovery.base.WallClock` by default). Runs on asyncio.
    """

    def __init__(self, config: DhtConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config if config is not None else DhtConfig()
        self._clock: Clock = clock if clock is not None else WallClock()
        self.node_id: bytes = self.config.node_id or secrets.token_bytes(DHT_KEY_SIZE)
        self._cache = SHARED_CACHE
        self.storage = RecordStorage(
            StorageLimits(
                max_records=self.config.max_records,
                max_bytes=self.config.max_storage_bytes,
                max_record_lifetime_ms=self.config.max_record_lifetime_ms,
                device_list_ttl_ms=self.config.device_list_ttl_ms,
            ),
            self._clock,
            self._cache,
        )
        self.protocol_limits = ProtocolLimits(
            rpc_timeout=self.config.rpc_timeout,
            store_rate=self.config.store_rate,
            store_burst=self.config.store_burst,
            store_rate_per_ip=self.config.store_rate_per_ip,
            store_burst_per_ip=self.config.store_burst_per_ip,
            request_rate_per_ip=self.config.request_rate_per_ip,
            request_burst_per_ip=self.config.request_burst_per_ip,
        )
        self._server = _ListeningServer(self)
        self._node: Node = self._server.node
        self._protocol: OmegaKademliaProtocol | None = None
        self._own = _Own()
        self._state = "new"
        self._address: tuple[str, int] | None = None

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, join through the bootstrap nodes, and start the maintenance loop."""
        if self._state != "new":
            raise LocalProtocolError("a DhtNode starts once")
        self._state = "running"
        with map_exceptions({OSError: DiscoveryError}, "cannot listen for the DHT"):
            await self._server.listen(self.config.port, interface=self.config.host)
        self._protocol = self._server.protocol
        sockname = self._server.transport.get_extra_info("sockname")
        self._address = (sockname[0], sockname[1])
        logger.info("dht.listening node=%s address=%s:%s", self.node_id.hex(), *self._address)
        if self.config.bootstrap:
            await self.bootstrap(self.config.bootstrap)
        self.protocol.spawn(self._maintain())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and cancel everything the node runs; later calls raise."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._protocol is not None:
            await self._protocol.close()
        self._server.stop()

    def _check_open(self) -> OmegaKademliaProtocol:
        if self._state != "running" or self._protocol is None:
            raise LocalProtocolError(f"the DHT node is {self._state}, not running")
        return self._protocol

    @property
    def protocol(self) -> OmegaKademliaProtocol:
        """The running RPC protocol (raises LocalProtocolError unless running)."""
        return self._check_open()

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` the node listens on."""
        if self._address is None:
            raise LocalProtocolError("the DHT node is not listening")
        return self._address

    @property
    def stats(self) -> ProtocolStats:
        """Counters of malformed datagrams and accepted, refused and rate-limited stores."""
        return self.protocol.stats

    def routing_table(self) -> list[tuple[bytes, str, int]]:
        """Every contact of the routing table as ``(node id, host, port)``."""
        router = self.protocol.router
        return [
            (node.id, node.ip, node.port)
            for bucket in router.buckets
            for node in bucket.get_nodes()
        ]

    # joining and maintenance ---------------------------------------------------------------

    async def bootstrap(self, addresses: tuple[str, ...] | list[str]) -> int:
        """Join through ``addresses`` (``host:port``); return how many nodes were found."""
        protocol = self._check_open()
        contacts: list[Node] = []

        async def ping(text: str) -> None:
            host, port = parse_host_port(text)
            try:
                infos = await anyio.getaddrinfo(host, port, type=2)  # SOCK_DGRAM
            except OSError as exc:
                logger.warning("dht.bootstrap_unresolved address=%s error=%s", text, exc)
                return
            ip = str(infos[0][4][0])
            answered, node_id = await protocol.ping((ip, port), self.node_id)
            if answered and isinstance(node_id, bytes) and len(node_id) == DHT_KEY_SIZE:
                contact = Node(node_id, ip, port)
                protocol.welcome_if_new(contact)
                contacts.append(contact)
            else:
                logger.warning("dht.bootstrap_unanswered address=%s", text)

        async with anyio.create_task_group() as group:
            for text in addresses:
                group.start_soon(ping, text)
        if not contacts:
            return 0
        spider = NodeSpiderCrawl(
            protocol, self._node, contacts, self.config.ksize, self.config.alpha
        )
        found = await spider.find()
        logger.info("dht.joined contacts=%d neighbors=%d", len(contacts), len(found))
        return len(found)

    async def refresh(self) -> None:
        """Look up our own id and a random id in every stale bucket (section 2.3 of the paper)."""
        protocol = self._check_open()
        targets = [self.node_id, *protocol.get_refresh_ids()]
        for target in targets:
            node = Node(target)
            nearest = protocol.router.find_neighbors(node, self.config.alpha)
            if nearest:
                spider = NodeSpiderCrawl(
                    protocol, node, nearest, self.config.ksize, self.config.alpha
                )
                await spider.find()
        logger.info("dht.refreshed targets=%d contacts=%d", len(targets), len(self.routing_table()))

    async def republish(self) -> None:
        """Store again our own live records, and records held longer than the interval."""
        self._check_open()
        now = unix_ms(self._clock)
        for key, value in list(self._own.values.items()):
            if not value.is_live(now):
                logger.warning("dht.own_record_expired key=%s", key.hex())
                del self._own.values[key]
                continue
            await self._store(key, value.raw)
        self.storage.cull()
        for key, raw in self.storage.iter_older_than(self.config.republish_interval):
            if key not in self._own.values:
                await self._store(key, raw)

    async def _maintain(self) -> None:
        now = self._clock.now()
        next_refresh = now + self.config.refresh_interval
        next_republish = now + self.config.republish_interval
        while True:
            await self._clock.sleep_until(min(next_refresh, next_republish))
            now = self._clock.now()
            if now >= next_refresh:
                next_refresh = now + self.config.refresh_interval
                if not self.routing_table() and self.config.bootstrap:
                    await self.bootstrap(self.config.bootstrap)
                await self.refresh()
            if now >= next_republish:
                next_republish = now + self.config.republish_interval
                await self.republish()

    # storing and looking up ----------------------------------------------------------------

    async def _store(self, key: bytes, value: bytes) -> int:
        """Store on the k closest nodes (and here if we are one); return how many accepted."""
        protocol = self._check_open()
        target = Node(key)
        nearest = protocol.router.find_neighbors(target)
        nodes: list[Node] = []
        if nearest:
            spider = NodeSpiderCrawl(
                protocol, target, nearest, self.config.ksize, self.config.alpha
            )
            nodes = await spider.find()
        accepted = 0
        if len(nodes) < self.config.ksize or self._node.distance_to(target) < max(
            node.distance_to(target) for node in nodes
        ):
            accepted += self.storage.offer(key, value) is None
        answers: list[bool] = []

        async def store(node: Node) -> None:
            answered, answer = await protocol.call_store(node, key, value)
            answers.append(answered and answer is True)

        async with anyio.create_task_group() as group:
            for node in nodes:
                group.start_soon(store, node)
        return accepted + sum(answers)

    async def _publish(self, key: bytes, value: bytes) -> None:
        checked = read_dht_value(key, value, now=unix_ms(self._clock))
        accepted = await self._store(key, value)
        if accepted == 0:
            raise DiscoveryError(
                "no DHT node accepted the record (none reachable, or they hold a newer one)",
                details={"key": key.hex()},
            )
        self._own.values[key] = checked
        logger.info(
            "dht.published key=%s kind=%s accepted=%d", key.hex(), checked.kind.value, accepted
        )

    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """Verify and store a signed device list on the nodes closest to its key.

        Raises the errors of :func:`~omega.crypto.verify_device_list` for an
        invalid list, :class:`~omega.errors.ConfigurationError` for one too
        large for the DHT, and :class:`~omega.errors.DiscoveryError` when no
        node accepted it.
        """
        self._check_open()
        value = encode_dht_value(signed)
        user_id = decode_message(
            DeviceList, signed.device_list, max_size=MAX_DEVICE_LIST_SIZE
        ).user_id
        await self._publish(device_list_key(user_id), value)

    async def publish_peer_record(self, signed: SignedPeerRecord) -> None:
        """Verify and store a signed peer record on the nodes closest to its key.

        Raises the errors of :func:`~omega.discovery.verify_peer_record` for an
        invalid or expired record and :class:`~omega.errors.DiscoveryError`
        when no node accepted it.
        """
        self._check_open()
        value = encode_dht_value(signed)
        info = verify_peer_record(signed, now=unix_ms(self._clock))
        await self._publish(peer_record_key(info.device_key), value)

    def _validate(self, key: bytes, raw: object) -> DhtValue | None:
        try:
            return self._cache.read(key, raw, now=unix_ms(self._clock), previous=None)
        except OmegaError as exc:
            logger.debug("dht.value_refused key=%s reason=%s", key.hex(), exc.code)
            return None

    async def lookup(self, key: bytes) -> LookupResult:
        """Find the valid value with the highest sequence stored under ``key``."""
        protocol = self._check_open()
        local = self.storage.value(key)
        target = Node(key)
        nearest = protocol.router.find_neighbors(target, self.config.alpha)
        if not nearest:
            return LookupResult(local, 0, 0)
        crawl = BestRecordCrawl(
            protocol,
            target,
            nearest,
            self.config.ksize,
            self.config.alpha,
            validate=lambda raw: self._validate(key, raw),
            quorum=self.config.lookup_quorum,
            spawn=protocol.spawn,
            local=local,
        )
        try:
            value = await crawl.find()
        except OSError as exc:
            logger.warning("dht.lookup_failed key=%s error=%s", key.hex(), exc)
            value = local
        return LookupResult(value, crawl.rounds, crawl.queried)

    async def resolve_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """The newest valid device list of ``user_id`` the network holds, or ``None``."""
        key = device_list_key(user_id)
        self._check_open()
        found = (await self.lookup(key)).value
        return found.device_list if found is not None else None

    async def resolve_peer(self, device_key: bytes, *, user_id: str) -> PeerRecordInfo | None:
        """The newest valid, unexpired peer record of ``device_key`` if it is ``user_id``'s."""
        identity_key_of(user_id)
        checked_device_key(device_key)
        self._check_open()
        found = (await self.lookup(peer_record_key(device_key))).value
        if found is None or found.peer_record is None:
            return None
        if found.peer_record.user_id != user_id.lower():
            logger.warning("dht.peer_of_another_user device=%s", found.peer_record.device_id)
            return None
        return found.peer_record
