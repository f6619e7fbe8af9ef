"""The discrete-event simulator: a virtual clock, a heap of events, peers and a store.

Events are tuples ``(time µs, sequence, kind, a, b, payload)`` in a heap;
the sequence number breaks ties in the order events were scheduled, so a
run is a pure function of its configuration and seed. Each peer's outbox
entries go through the real :class:`~omega.session.delivery.DeliveryEngine`
(paths, retries, backoff, ack timeouts); each envelope is built, sent,
decrypted and acknowledged by the real crypto and wire code
(:class:`~omega.sim._peer.SimPeer`). The store is modelled in process with
the store service's semantics: deposits idempotent by (recipient, message
id), fetch, delete after fetch, a push notification to an online recipient.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omega.errors import LocalProtocolError, OmegaError
from omega.protocol.framing import encode_frame
from omega.session.delivery import DeliveryConfig, DeliveryEngine, Outcome, Path
from omega.sim._network import RELAY, STORE, Network
from omega.sim._peer import SimPeer
from omega.sim._results import MessageRecord, SimResult
from omega.sim._workload import Workload
from omega.sim.config import SimConfig
from omega.storage.message_base import DeliveryState, OutboxEntry
from omega.testing.random import SeededRandom

__all__ = ["EPOCH_MS", "Simulation"]

EPOCH_MS = 1_767_225_600_000
"""Unix milliseconds of virtual time 0 (2026-01-01T00:00:00Z)."""

_US = 1_000_000
_CONTROL_FRAME = 48
"""Bytes of a fetch request, delete request, deposit reply or notification."""

(
    _SEND,
    _ATTEMPT,
    _ATTEMPT_FAILED,
    _DIRECT_ARRIVE,
    _ACK_ARRIVE,
    _DEPOSIT_ARRIVE,
    _DEPOSIT_REPLY,
    _FETCH,
    _FETCH_ARRIVE,
    _FETCH_REPLY,
    _DELETE_ARRIVE,
    _AVAILABILITY,
    _CHURN,
    _HEAL,
    _WORKLOAD,
    _RELAY_FORWARD,
) = range(16)

_UNDELIVERED = (DeliveryState.PENDING, DeliveryState.SENT)


@dataclass(slots=True)
class _Outgoing:
    entry: OutboxEntry
    record: MessageRecord
    recipient: int
    token: int = 0


class Simulation:
    """One run of a :class:`~omega.sim.config.SimConfig`. Call :meth:`run` once."""

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
        self._workload = Workload(
            config,
            random.Random(f"omega-sim/{seed}/workload"),  # noqa: S311
        )
        self._heap: list[tuple[int, int, int, int, int, object]] = []
        self._sequence = 0
        self._now = 0
        self._end = int((config.duration + config.drain) * _US)
        self._peers: dict[int, SimPeer] = {}
        self._outbox: dict[int, dict[str, _Outgoing]] = {}
        self._records: dict[str, MessageRecord] = {}
        self._mailbox: dict[int, dict[str, tuple[bytes, str, int]]] = {}
        self._fetching: dict[int, bool] = {}  # peer -> fetch again when done
        self._churn_up = bytearray([1]) * config.peers
        self._offline_windows = [0] * config.peers
        self._result = SimResult()
        self._churn_rng = random.Random(f"omega-sim/{seed}/churn")  # noqa: S311
        nat_rng = random.Random(f"omega-sim/{seed}/nat")  # noqa: S311
        self._natted = frozenset(
            peer for peer in range(config.peers) if nat_rng.random() < config.nat_fraction
        )
        self._handlers: dict[int, Callable[[int, int, Any], None]] = {
            _SEND: self._on_send,
            _ATTEMPT: self._on_attempt,
            _ATTEMPT_FAILED: self._on_attempt_failed,
            _DIRECT_ARRIVE: self._on_direct_arrive,
            _ACK_ARRIVE: self._on_ack_arrive,
            _DEPOSIT_ARRIVE: self._on_deposit_arrive,
            _DEPOSIT_REPLY: self._on_deposit_reply,
            _FETCH: self._on_fetch,
            _FETCH_ARRIVE: self._on_fetch_arrive,
            _FETCH_REPLY: self._on_fetch_reply,
            _DELETE_ARRIVE: self._on_delete_arrive,
            _AVAILABILITY: self._on_availability,
            _CHURN: self._on_churn,
            _HEAL: self._on_heal,
            _WORKLOAD: self._on_workload,
            _RELAY_FORWARD: self._on_relay_forward,
        }
        self._schedule_initial()

    # -- clock and heap -----------------------------------------------------
    @property
    def now(self) -> float:
        """Virtual seconds since the start."""
        return self._now / _US

    def _now_ms(self) -> int:
        return EPOCH_MS + self._now // 1000

    def _push(self, time: int, kind: int, a: int = 0, b: int = 0, payload: object = None) -> None:
        if time > self._end:
            return
        self._sequence += 1
        heapq.heappush(self._heap, (time, self._sequence, kind, a, b, payload))

    def _schedule_initial(self) -> None:
        config = self.config
        for window in config.offline:
            self._push(int(window.start * _US), _AVAILABILITY, window.peer, 1)
            self._push(int(window.end * _US), _AVAILABILITY, window.peer, -1)
        churn = config.churn
        if churn.fraction > 0:
            rng = self._churn_rng
            up_share = churn.mean_online / (churn.mean_online + churn.mean_offline)
            for peer in range(config.peers):
                if rng.random() >= churn.fraction:
                    continue
                up = rng.random() < up_share
                self._churn_up[peer] = up
                self._network.online[peer] = up
                mean = churn.mean_online if up else churn.mean_offline
                self._push(int(rng.expovariate(1.0 / mean) * _US), _CHURN, peer)
        for index, partition in enumerate(config.partitions):
            self._push(int(partition.end * _US), _HEAL, index)
        for send in config.workload.sends:
            self._push(int(send.time * _US), _SEND, send.sender, send.recipient, send.size)
        for stream in range(self._workload.streams):
            first = self._workload.first_arrival(stream)
            if first is not None:
                self._push(first, _WORKLOAD, stream)

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        """Run to the end (``duration + drain``) or until nothing is left to happen.

        ``progress``, if given, is called with the fraction of virtual time
        done, every few thousand events and once at the end.
        """
        heap, handlers, end = self._heap, self._handlers, self._end
        events = 0
        while heap:
            time, _, kind, a, b, payload = heapq.heappop(heap)
            self._now = time
            handlers[kind](a, b, payload)
            events += 1
            if progress is not None and not events % 5000:
                progress(min(1.0, time / end) if end else 1.0)
        if progress is not None:
            progress(1.0)
        result = self._result
        result.events = events
        result.virtual_seconds = self._now / _US
        result.peers_materialised = len(self._peers)
        result.records = list(self._records.values())
        for outbox in self._outbox.values():
            for out in outbox.values():
                out.record.state = out.entry.state.value
        return result

    # -- peers --------------------------------------------------------------
    def _peer(self, index: int) -> SimPeer:
        peer = self._peers.get(index)
        if peer is None:
            peer = SimPeer(index, seed=self.config.seed, now=EPOCH_MS)
            self._peers[index] = peer
        return peer

    def _account(self, message_id: str, size: int) -> None:
        record = self._records.get(message_id)
        if record is not None:
            record.frames += 1
            record.wire_bytes += size

    def _transmit(self, a: int, b: int, data: bytes, account: str) -> int | None:
        if not self._network.reachable(a, b, self._now):
            return None
        size = len(encode_frame(data))
        self._account(account, size)
        return self._network.transmit(a, b, size, self._now)

    def _arrived(self, a: int, b: int) -> bool:
        return self._network.reachable(a, b, self._now)

    def _channel_open(self, src: int, dst: int, relayed: bool) -> bool:
        if relayed:
            return self.config.relay and self._arrived(src, RELAY) and self._arrived(RELAY, dst)
        return self._arrived(src, dst)

    def _channel_send(  # noqa: PLR0917 - a hot internal helper
        self, src: int, dst: int, frame: bytes, account: str, relayed: bool, kind: int, body: Any
    ) -> bool:
        """Send ``frame`` on the secure channel ``src`` -> ``dst``, through the relay if
        ``relayed``; the event ``kind`` with ``body`` fires on arrival. False: no channel."""
        if not self._channel_open(src, dst, relayed):
            return False
        hop = RELAY if relayed else dst
        arrival = self._transmit(src, hop, frame, account)
        if arrival is not None:
            if relayed:
                self._push(arrival, _RELAY_FORWARD, src, dst, (frame, account, kind, body))
            else:
                self._push(arrival, kind, src, dst, body)
        return True

    def _on_relay_forward(self, src: int, dst: int, payload: Any) -> None:
        frame, account, kind, body = payload
        if not self._arrived(src, RELAY):
            return
        arrival = self._transmit(RELAY, dst, frame, account)
        if arrival is not None:
            self._push(arrival, kind, src, dst, body)

    def _landed(self, src: int, dst: int, relayed: bool) -> bool:
        return self._arrived(RELAY, dst) if relayed else self._arrived(src, dst)

    # -- sending ------------------------------------------------------------
    def _on_workload(self, stream: int, _b: int, _payload: Any) -> None:
        send = self._workload.next_send(stream, self._now)
        if send is None:
            return
        sender, recipient, size, next_time = send
        self._on_send(sender, recipient, size)
        if next_time is not None:
            self._push(next_time, _WORKLOAD, stream)

    def _on_send(self, sender: int, recipient: int, size: object) -> None:
        assert isinstance(size, int)
        peer, target = self._peer(sender), self._peer(recipient)
        now_ms = self._now_ms()
        message_id = peer.new_message_id()
        content = SimPeer.text_content(
            size, message_id=message_id, timestamp=now_ms, conversation_id=target.user_id
        )
        entry = OutboxEntry(
            message_id=message_id,
            recipient_id=target.user_id,
            recipient_device_key=target.device_key,
            content=content,
            next_attempt_at=now_ms,
            created_at=now_ms,
            expires_at=self._engine.expires_at(now_ms),
        )
        record = MessageRecord(
            message_id=message_id, sender=sender, recipient=recipient, sent_at=self.now
        )
        self._records[message_id] = record
        self._outbox.setdefault(sender, {})[message_id] = _Outgoing(entry, record, recipient)
        self._push(self._now, _ATTEMPT, sender, 0, (message_id, 0))

    def _reschedule(self, sender: int, out: _Outgoing, at_ms: int) -> None:
        out.token += 1
        at = max(self._now, (at_ms - EPOCH_MS) * 1000)
        self._push(at, _ATTEMPT, sender, 0, (out.entry.message_id, out.token))

    def _current(self, sender: int, payload: Any) -> _Outgoing | None:
        message_id, token = payload
        out = self._outbox.get(sender, {}).get(message_id)
        if out is None or out.token != token or out.entry.state not in _UNDELIVERED:
            return None
        return out

    def _on_attempt(self, sender: int, _b: int, payload: Any) -> None:
        out = self._current(sender, payload)
        if out is None or not self._network.online[sender]:
            return  # delivered, superseded, or the sender is offline (resumed when online)
        now_ms = self._now_ms()
        expired = self._engine.expire_if_due(out.entry, now=now_ms)
        if expired is not None:
            out.entry = expired
            out.record.state = expired.state.value
            return
        path = self._engine.choose_path(
            out.entry, direct_possible=True, store_possible=self.config.store
        )
        if out.entry.ciphertext is None:
            frame = self._peer(sender).seal(
                message_id=out.entry.message_id,
                recipient=self._peer(out.recipient),
                content=out.entry.content,
                timestamp=out.entry.created_at,
            )
            out.entry = dataclasses.replace(out.entry, ciphertext=frame)
        frame = out.entry.ciphertext or b""
        out.record.attempts += 1
        out.token += 1
        token = (out.entry.message_id, out.token)
        timeout = self._now + int(self.config.connect_timeout * _US)
        if path is Path.DIRECT:
            relayed = out.recipient in self._natted
            body = (frame, token[0], relayed)
            message_id = out.entry.message_id
            if not self._channel_send(
                sender, out.recipient, frame, message_id, relayed, _DIRECT_ARRIVE, body
            ):
                self._push(timeout, _ATTEMPT_FAILED, sender, 0, (*token, Outcome.DIRECT_FAILED))
                return
            out.entry = self._engine.apply(out.entry, Outcome.DIRECT_SENT, now=now_ms)
            self._reschedule(sender, out, out.entry.next_attempt_at)
        else:  # Path.STORE (WAIT needs direct_possible=False, which the sim never passes)
            arrival = self._transmit(sender, STORE, frame, out.entry.message_id)
            if arrival is None:
                self._push(timeout, _ATTEMPT_FAILED, sender, 0, (*token, Outcome.DEPOSIT_FAILED))
                return
            deposit = (frame, out.entry.message_id, token, out.recipient)
            self._push(arrival, _DEPOSIT_ARRIVE, sender, out.recipient, deposit)

    def _on_attempt_failed(self, sender: int, _b: int, payload: Any) -> None:
        message_id, token, outcome = payload
        out = self._current(sender, (message_id, token))
        if out is None:
            return
        out.entry = self._engine.apply(out.entry, outcome, now=self._now_ms())
        self._reschedule(sender, out, out.entry.next_attempt_at)

    def _acknowledge(self, sender: int, message_id: str) -> None:
        out = self._outbox.get(sender, {}).get(message_id)
        if out is None:
            return
        try:
            out.entry = self._engine.apply(out.entry, Outcome.ACKNOWLEDGED, now=self._now_ms())
        except LocalProtocolError:  # pragma: no cover - an ack after expiry
            return
        out.record.state = out.entry.state.value
        if out.record.acknowledged_at is None:
            out.record.acknowledged_at = self.now
        del self._outbox[sender][message_id]

    # -- receiving ----------------------------------------------------------
    def _deliver(self, receiver: int, sender: int, data: bytes, *, path: str) -> str | None:
        """Open an envelope frame at ``receiver``; return the message id to acknowledge."""
        peer = self._peers[receiver]
        try:
            received = peer.open(
                data,
                now=self._now_ms(),
                from_device=None if path == "store" else self._peers[sender].device_key,
            )
        except OmegaError:  # pragma: no cover - the sim only sends valid envelopes
            return None
        content = received.content
        if content is not None and content.receipt is not None:
            for acknowledged in content.receipt.message_ids:
                self._acknowledge(receiver, acknowledged)
        elif content is not None:
            record = self._records[received.message_id]
            if record.delivered_at is None:
                record.delivered_at = self.now
                record.path = path
        return received.message_id

    def _on_direct_arrive(self, sender: int, receiver: int, payload: Any) -> None:
        frame, account, relayed = payload
        if not self._landed(sender, receiver, relayed):
            return
        path = "relay" if relayed else "direct"
        message_id = self._deliver(receiver, sender, frame, path=path)
        if message_id is None:
            return
        ack = SimPeer.ack(message_id, now=self._now_ms())
        # the Ack goes back on the same channel (relayed when the receiver is behind NAT)
        self._channel_send(receiver, sender, ack, account, relayed, _ACK_ARRIVE, (ack, relayed))

    def _on_ack_arrive(self, receiver: int, sender: int, payload: Any) -> None:
        ack, relayed = payload
        if self._landed(receiver, sender, relayed):
            self._acknowledge(sender, SimPeer.read_ack(ack))

    # -- the store ------------------------------------------------------------
    def _on_deposit_arrive(self, sender: int, recipient: int, payload: Any) -> None:
        frame, account, token, _ = payload
        if not self._arrived(sender, STORE):
            return
        stored_id = token[0] if token is not None else f"{account}/receipt"
        self._mailbox.setdefault(recipient, {}).setdefault(stored_id, (frame, account, sender))
        if token is not None:
            reply = self._network.transmit(STORE, sender, _CONTROL_FRAME, self._now)
            timeout = self._now + int(self.config.connect_timeout * _US)
            if reply is None:
                self._push(timeout, _ATTEMPT_FAILED, sender, 0, (*token, Outcome.DEPOSIT_FAILED))
            else:
                self._push(reply, _DEPOSIT_REPLY, sender, 0, token)
        if self._network.reachable(STORE, recipient, self._now):
            notified = self._network.transmit(STORE, recipient, _CONTROL_FRAME, self._now)
            if notified is not None:
                self._push(notified, _FETCH, recipient)

    def _on_deposit_reply(self, sender: int, _b: int, payload: Any) -> None:
        out = self._current(sender, payload)
        if out is None:
            return
        if not self._arrived(STORE, sender):  # the reply was cut off: the sender times out
            timeout = self._now + int(self.config.connect_timeout * _US)
            self._push(timeout, _ATTEMPT_FAILED, sender, 0, (*payload, Outcome.DEPOSIT_FAILED))
            return
        out.entry = self._engine.apply(out.entry, Outcome.DEPOSITED, now=self._now_ms())

    def _on_fetch(self, peer: int, _b: int, _payload: Any) -> None:
        if peer in self._fetching:
            self._fetching[peer] = True
            return
        if not self._mailbox.get(peer) or not self._arrived(peer, STORE):
            return
        arrival = self._network.transmit(peer, STORE, _CONTROL_FRAME, self._now)
        if arrival is not None:
            self._fetching[peer] = False
            self._push(arrival, _FETCH_ARRIVE, peer)

    def _fetch_done(self, peer: int) -> None:
        if self._fetching.pop(peer, False):
            self._on_fetch(peer, 0, None)

    def _on_fetch_arrive(self, peer: int, _b: int, _payload: Any) -> None:
        if not self._arrived(STORE, peer):
            self._fetch_done(peer)
            return
        items = list(self._mailbox.get(peer, {}).items())
        arrival: int | None = self._now
        for _, (frame, account, _) in items:
            arrival = self._transmit(STORE, peer, frame, account)
        if arrival is None:  # the last frame of the batch was lost: fetch again later
            self._fetch_done(peer)
            return
        self._push(arrival, _FETCH_REPLY, peer, 0, items)

    def _on_fetch_reply(self, peer: int, _b: int, payload: Any) -> None:
        items: list[tuple[str, tuple[bytes, str, int]]] = payload
        if not self._arrived(STORE, peer):
            self._fetch_done(peer)
            return
        done: list[str] = []
        for stored_id, (frame, account, sender) in items:
            message_id = self._deliver(peer, sender, frame, path="store")
            done.append(stored_id)
            if message_id is not None and account == message_id:
                self._send_receipt(peer, sender, message_id)
        arrival = self._network.transmit(peer, STORE, _CONTROL_FRAME, self._now)
        if arrival is not None:
            self._push(arrival, _DELETE_ARRIVE, peer, 0, done)
        self._fetch_done(peer)

    def _send_receipt(self, peer: int, sender: int, message_id: str) -> None:
        frame = self._peers[peer].receipt(
            message_id=message_id, recipient=self._peers[sender], now=self._now_ms()
        )
        relayed = sender in self._natted
        body = (frame, message_id, relayed)
        if self._channel_send(peer, sender, frame, message_id, relayed, _DIRECT_ARRIVE, body):
            return
        arrival = self._transmit(peer, STORE, frame, message_id)
        if arrival is not None:
            self._push(arrival, _DEPOSIT_ARRIVE, peer, sender, (frame, message_id, None, sender))

    def _on_delete_arrive(self, peer: int, _b: int, payload: Any) -> None:
        stored_ids: list[str] = payload
        mailbox = self._mailbox.get(peer, {})
        for stored_id in stored_ids:
            mailbox.pop(stored_id, None)
        if not mailbox:
            self._mailbox.pop(peer, None)

    # -- churn and partitions ---------------------------------------------------
    def _set_online(self, peer: int) -> None:
        online = bool(self._churn_up[peer]) and not self._offline_windows[peer]
        was_online = bool(self._network.online[peer])
        self._network.online[peer] = online
        if online and not was_online:
            self._on_fetch(peer, 0, None)
            now_ms = self._now_ms()
            for out in self._outbox.get(peer, {}).values():
                entry = out.entry
                if entry.state in _UNDELIVERED and entry.next_attempt_at < entry.expires_at:
                    self._reschedule(peer, out, max(now_ms, entry.next_attempt_at))

    def _on_availability(self, peer: int, change: int, _payload: Any) -> None:
        self._offline_windows[peer] += change
        self._set_online(peer)

    def _on_churn(self, peer: int, _b: int, _payload: Any) -> None:
        up = not self._churn_up[peer]
        self._churn_up[peer] = up
        self._set_online(peer)
        churn = self.config.churn
        mean = churn.mean_online if up else churn.mean_offline
        self._push(self._now + int(self._churn_rng.expovariate(1.0 / mean) * _US), _CHURN, peer)

    def _on_heal(self, index: int, _b: int, _payload: Any) -> None:
        partition = self.config.partitions[index]
        for peer in sorted(self._mailbox):
            if (peer in partition.peers) != partition.store:
                self._on_fetch(peer, 0, None)
