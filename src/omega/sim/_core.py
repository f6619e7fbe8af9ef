"""The simulator's shared state: clock, heap, peers, outboxes, records, wire accounting.

:class:`SimCore` holds what every part of the simulator uses; the parts
(links and handshakes, the store, groups, the delivery loop) are mixins over
it, combined in :class:`~omega.sim._engine.Simulation`. Events are tuples
``(time µs, sequence, kind, a, b, payload)`` in a heap; the sequence number
breaks ties in the order events were scheduled.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any

from omega.session.delivery import DeliveryConfig, DeliveryEngine
from omega.sim._network import Network
from omega.sim._peer import SimPeer
from omega.sim._results import ConnectionRecord, MessageRecord, SimResult
from omega.sim.config import SimConfig
from omega.storage.message_base import DeliveryState, OutboxEntry
from omega.testing.random import SeededRandom

__all__ = ["EPOCH_MS", "Key", "SimCore"]

EPOCH_MS = 1_767_225_600_000
"""Unix milliseconds of virtual time 0 (2026-01-01T00:00:00Z)."""

US = 1_000_000
CONTROL_FRAME = 48
"""Bytes of a fetch request, delete request, deposit reply, notification or bundle request."""
RECORD_OVERHEAD = 17
"""Bytes the secure channel adds to each frame: the record's kind byte and its 16-byte tag."""

Key = tuple[str, int]
"""A record's key: (message id, recipient peer); one per recipient device."""

(
    SEND,
    ATTEMPT,
    ATTEMPT_FAILED,
    DIRECT_ARRIVE,
    ACK_ARRIVE,
    DEPOSIT_ARRIVE,
    DEPOSIT_REPLY,
    FETCH,
    FETCH_ARRIVE,
    FETCH_REPLY,
    DELETE_ARRIVE,
    AVAILABILITY,
    CHURN,
    HEAL,
    WORKLOAD,
    RELAY_FORWARD,
    HANDSHAKE,
    HANDSHAKE_FAILED,
    BUNDLE_REQUEST,
    BUNDLE_REPLY,
    GROUP_SEND,
    GROUP_REMOVE,
    GROUP_OPERATION,
) = range(23)

UNDELIVERED = (DeliveryState.PENDING, DeliveryState.SENT)


def framed(size: int) -> int:
    """Bytes of a frame whose payload is ``size`` bytes: the varint length prefix added."""
    prefix = 1
    while size >= 0x80 << (7 * (prefix - 1)):
        prefix += 1
    return size + prefix


@dataclass(slots=True)
class Outgoing:
    """One outbox entry of a peer, with its record and simulator bookkeeping."""

    entry: OutboxEntry
    record: MessageRecord
    recipient: int
    token: int = 0
    frame: bytes | None = None
    """The sealed envelope ``Frame`` (kept here, not in the entry, to spare a copy)."""
    bundle: bool = False
    """True once the recipient's prekey bundle was fetched (first contact)."""


class SimCore:
    """State and primitives shared by the parts of the simulator."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        seed = config.seed
        # Simulation randomness, not key material: seeded pseudo-random generators.
        self._network_rng = random.Random(f"omega-sim/{seed}/network")  # noqa: S311
        self._network = Network(config, self._network_rng)
        self._engine = DeliveryEngine(
            DeliveryConfig(direct_attempts=config.direct_attempts, ack_timeout=config.ack_timeout),
            rng=SeededRandom(f"omega-sim/{seed}/delivery".encode()),
        )
        self._heap: list[tuple[int, int, int, int, int, Any]] = []
        self._sequence = 0
        self._now = 0
        self._end = int((config.duration + config.drain) * US)
        self._peers: dict[int, SimPeer] = {}
        self._user_peer: dict[str, int] = {}
        self._outbox: dict[int, dict[Key, Outgoing]] = {}
        self._records: dict[Key, MessageRecord] = {}
        self._result = SimResult()
        self._connect_timeout = int(config.connect_timeout * US)
        self._secure = config.secure_channel

    # -- clock and heap -----------------------------------------------------
    @property
    def now(self) -> float:
        """Virtual seconds since the start."""
        return self._now / US

    def _now_ms(self) -> int:
        return EPOCH_MS + self._now // 1000

    def _push(self, time: int, kind: int, a: int = 0, b: int = 0, payload: Any = None) -> None:
        if time > self._end:
            return
        self._sequence += 1
        heapq.heappush(self._heap, (time, self._sequence, kind, a, b, payload))

    # -- peers and accounting -----------------------------------------------
    def _peer(self, index: int) -> SimPeer:
        peer = self._peers.get(index)
        if peer is None:
            peer = SimPeer(index, seed=self.config.seed, now=EPOCH_MS)
            self._peers[index] = peer
            self._user_peer[peer.user_id] = index
        return peer

    def _account(self, key: Key | None, size: int) -> None:
        if key is not None:
            record = self._records.get(key)
            if record is not None:
                record.frames += 1
                record.wire_bytes += size

    def _transmit(self, a: int, b: int, size: int, key: Key | None) -> int | None:
        """Send ``size`` wire bytes from ``a`` to ``b`` now: arrival (µs) or ``None``."""
        if not self._network.reachable(a, b, self._now):
            return None
        self._account(key, size)
        return self._network.transmit(a, b, size, self._now)

    def _arrived(self, a: int, b: int) -> bool:
        return self._network.reachable(a, b, self._now)

    def _connection(self, initiator: int, responder: int, relayed: bool, started: int) -> None:
        self._result.connections.append(
            ConnectionRecord(
                time=self.now,
                initiator=initiator,
                responder=responder,
                relayed=relayed,
                handshake_ms=(self._now - started) / 1000,
            )
        )

    # -- implemented by the delivery loop (abstract here) ---------------------
    def _deliver(self, receiver: int, sender: int, data: bytes, *, path: str) -> str | None:
        raise NotImplementedError  # pragma: no cover - Simulation overrides it

    def _acknowledge(self, sender: int, key: Key) -> None:
        raise NotImplementedError  # pragma: no cover - Simulation overrides it

    def _peer_connected(self, a: int, b: int, in_flight: set[Key]) -> None:
        raise NotImplementedError  # pragma: no cover - Simulation overrides it

    def _enqueue(  # noqa: PLR0917 - one internal constructor of outbox entries
        self,
        sender: int,
        recipient: int,
        message_id: str,
        content: bytes,
        kind: str,
        group_id: str = "",
        frame: bytes | None = None,
    ) -> None:
        raise NotImplementedError  # pragma: no cover - Simulation overrides it
