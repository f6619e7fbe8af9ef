"""The discrete-event simulator: the delivery loop of every peer, churn, partitions.

Events are tuples ``(time µs, sequence, kind, a, b, payload)`` in a heap;
the sequence number breaks ties in the order events were scheduled, so a
run is a pure function of its configuration and seed. Each peer's outbox
entries go through the real :class:`~omega.session.delivery.DeliveryEngine`
(paths, retries, backoff, ack timeouts); each envelope is built, sent,
decrypted and acknowledged by the real crypto and wire code
(:class:`~omega.sim._peer.SimPeer`). Links and their handshakes live in
:mod:`omega.sim._links`, the store in :mod:`omega.sim._store`, groups in
:mod:`omega.sim._grouptraffic`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from omega.errors import LocalProtocolError, OmegaError, UnknownSenderKeyError
from omega.protocol import encode_message
from omega.session.delivery import Outcome, Path
from omega.sim._core import (
    ACK_ARRIVE,
    ATTEMPT,
    ATTEMPT_FAILED,
    AVAILABILITY,
    BUNDLE_REPLY,
    BUNDLE_REQUEST,
    CHURN,
    CONTROL_FRAME,
    DELETE_ARRIVE,
    DEPOSIT_ARRIVE,
    DEPOSIT_REPLY,
    DIRECT_ARRIVE,
    EPOCH_MS,
    FETCH,
    FETCH_ARRIVE,
    FETCH_REPLY,
    GROUP_OPERATION,
    GROUP_REMOVE,
    GROUP_SEND,
    HANDSHAKE,
    HANDSHAKE_FAILED,
    HEAL,
    RELAY_FORWARD,
    SEND,
    UNDELIVERED,
    US,
    WORKLOAD,
    Key,
    Outgoing,
    framed,
)
from omega.sim._grouptraffic import GroupMixin
from omega.sim._network import RELAY, STORE
from omega.sim._peer import SimPeer
from omega.sim._results import MessageRecord, SimResult
from omega.sim._workload import Workload
from omega.sim.config import SimConfig
from omega.storage.message_base import OutboxEntry

__all__ = ["EPOCH_MS", "Simulation"]


class Simulation(GroupMixin):
    """One run of a :class:`~omega.sim.config.SimConfig`. Call :meth:`run` once."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        seed = config.seed
        self._workload = Workload(
            config,
            random.Random(f"omega-sim/{seed}/workload"),  # noqa: S311
        )
        self._churn_up = bytearray([1]) * config.peers
        self._offline_windows = [0] * config.peers
        self._churn_rng = random.Random(f"omega-sim/{seed}/churn")  # noqa: S311
        nat_rng = random.Random(f"omega-sim/{seed}/nat")  # noqa: S311
        self._natted = frozenset(
            peer for peer in range(config.peers) if nat_rng.random() < config.nat_fraction
        )
        self._bundle_size = 0
        self._init_links()
        self._init_store()
        self._handlers: dict[int, Callable[[int, int, Any], None]] = {
            SEND: self._on_send,
            ATTEMPT: self._on_attempt,
            ATTEMPT_FAILED: self._on_attempt_failed,
            DIRECT_ARRIVE: self._on_direct_arrive,
            ACK_ARRIVE: self._on_ack_arrive,
            DEPOSIT_ARRIVE: self._on_deposit_arrive,
            DEPOSIT_REPLY: self._on_deposit_reply,
            FETCH: self._on_fetch,
            FETCH_ARRIVE: self._on_fetch_arrive,
            FETCH_REPLY: self._on_fetch_reply,
            DELETE_ARRIVE: self._on_delete_arrive,
            AVAILABILITY: self._on_availability,
            CHURN: self._on_churn,
            HEAL: self._on_heal,
            WORKLOAD: self._on_workload,
            RELAY_FORWARD: self._on_relay_forward,
            HANDSHAKE: self._on_handshake,
            HANDSHAKE_FAILED: self._on_handshake_failed,
            BUNDLE_REQUEST: self._on_bundle_request,
            BUNDLE_REPLY: self._on_bundle_reply,
            GROUP_SEND: self._on_group_send,
            GROUP_REMOVE: self._on_group_remove,
            GROUP_OPERATION: self._on_group_operation,
        }
        self._schedule_initial()

    def _schedule_initial(self) -> None:
        config = self.config
        for window in config.offline:
            self._push(int(window.start * US), AVAILABILITY, window.peer, 1)
            self._push(int(window.end * US), AVAILABILITY, window.peer, -1)
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
                self._push(int(rng.expovariate(1.0 / mean) * US), CHURN, peer)
        for index, partition in enumerate(config.partitions):
            self._push(int(partition.end * US), HEAL, index)
        for send in config.workload.sends:
            self._push(int(send.time * US), SEND, send.sender, send.recipient, send.size)
        for stream in range(self._workload.streams):
            first = self._workload.first_arrival(stream)
            if first is not None:
                self._push(first, WORKLOAD, stream)
        self._init_groups()

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        """Run to the end (``duration + drain``) or until nothing is left to happen.

        ``progress``, if given, is called with the fraction of virtual time
        done, every few thousand events and once at the end.
        """
        from heapq import heappop

        heap, handlers, end = self._heap, self._handlers, self._end
        events = 0
        while heap:
            time, _, kind, a, b, payload = heappop(heap)
            self._now = time
            handlers[kind](a, b, payload)
            events += 1
            if progress is not None and not events % 5000:
                progress(min(1.0, time / end) if end else 1.0)
        if progress is not None:
            progress(1.0)
        result = self._result
        result.events = events
        result.virtual_seconds = self._now / US
        result.peers_materialised = len(self._peers)
        result.records = list(self._records.values())
        for outbox in self._outbox.values():
            for out in outbox.values():
                out.record.state = out.entry.state.value
        return result

    # -- sending ------------------------------------------------------------
    def _on_workload(self, stream: int, _b: int, _payload: Any) -> None:
        send = self._workload.next_send(stream, self._now)
        if send is None:
            return
        sender, recipient, size, next_time = send
        self._on_send(sender, recipient, size)
        if next_time is not None:
            self._push(next_time, WORKLOAD, stream)

    def _on_send(self, sender: int, recipient: int, size: Any) -> None:
        peer, target = self._peer(sender), self._peer(recipient)
        message_id = peer.new_message_id()
        content = SimPeer.text_content(
            size, message_id=message_id, timestamp=self._now_ms(), conversation_id=target.user_id
        )
        self._enqueue(sender, recipient, message_id, content, "message")

    def _enqueue(  # noqa: PLR0917
        self,
        sender: int,
        recipient: int,
        message_id: str,
        content: bytes,
        kind: str,
        group_id: str = "",
        frame: bytes | None = None,
    ) -> None:
        target = self._peer(recipient)
        now_ms = self._now_ms()
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
            message_id=message_id,
            sender=sender,
            recipient=recipient,
            sent_at=self.now,
            kind=kind,
            group_id=group_id,
        )
        key = (message_id, recipient)
        self._records[key] = record
        out = Outgoing(entry, record, recipient, frame=frame)
        self._outbox.setdefault(sender, {})[key] = out
        self._push(self._now, ATTEMPT, sender, 0, (key, 0))

    def _reschedule(self, sender: int, out: Outgoing, at_ms: int) -> None:
        out.token += 1
        at = max(self._now, (at_ms - EPOCH_MS) * 1000)
        self._push(at, ATTEMPT, sender, 0, ((out.entry.message_id, out.recipient), out.token))

    def _current(self, sender: int, payload: Any) -> Outgoing | None:
        key, token = payload
        outbox = self._outbox.get(sender)
        out = outbox.get(key) if outbox is not None else None
        if out is None or out.token != token or out.entry.state not in UNDELIVERED:
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
        key = payload[0]
        if out.frame is None:
            peer, target = self._peer(sender), self._peer(out.recipient)
            if not out.bundle and self.config.prekey_fetch and not peer.has_session(target):
                self._fetch_bundle(sender, out, key, path)
                return
            out.frame = peer.seal(
                message_id=out.entry.message_id,
                recipient=target,
                content=out.entry.content,
                timestamp=out.entry.created_at,
            )
        frame = out.frame
        out.record.attempts += 1
        out.token += 1
        token = (key, out.token)
        timeout = self._now + self._connect_timeout
        if path is Path.DIRECT:
            relayed = out.recipient in self._natted
            body = (frame, key, relayed)
            if not self._channel_send(
                sender, out.recipient, len(frame), key, relayed, DIRECT_ARRIVE, body, attempt=key
            ):
                self._push(timeout, ATTEMPT_FAILED, sender, 0, (*token, Outcome.DIRECT_FAILED))
                return
            out.entry = self._engine.apply(out.entry, Outcome.DIRECT_SENT, now=now_ms)
            self._reschedule(sender, out, out.entry.next_attempt_at)
        elif not self._deposit(
            sender, out.recipient, frame, key, out.entry.message_id, token, needs_receipt=True
        ):  # Path.STORE (WAIT needs direct_possible=False, which the sim never passes)
            self._push(timeout, ATTEMPT_FAILED, sender, 0, (*token, Outcome.DEPOSIT_FAILED))

    def _on_attempt_failed(self, sender: int, _b: int, payload: Any) -> None:
        key, token, outcome = payload
        out = self._current(sender, (key, token))
        if out is None:
            return
        out.entry = self._engine.apply(out.entry, outcome, now=self._now_ms())
        self._reschedule(sender, out, out.entry.next_attempt_at)

    def _on_deposit_reply(self, sender: int, _b: int, payload: Any) -> None:
        out = self._current(sender, payload)
        if out is None:
            return
        if not self._arrived(STORE, sender):  # the reply was cut off: the sender times out
            timeout = self._now + self._connect_timeout
            self._push(timeout, ATTEMPT_FAILED, sender, 0, (*payload, Outcome.DEPOSIT_FAILED))
            return
        out.entry = self._engine.apply(out.entry, Outcome.DEPOSITED, now=self._now_ms())

    # -- first contact: the prekey bundle -------------------------------------------
    def _fetch_bundle(self, sender: int, out: Outgoing, key: Key, path: Path) -> None:
        """Claim the recipient's bundle from the store (the key directory), else ask the peer."""
        out.token += 1
        token = (key, out.token)
        if not self._bundle_size:
            self._bundle_size = framed(len(encode_message(self._peer(out.recipient).bundle())))
        if self.config.store and self._arrived(sender, STORE):
            arrival = self._transmit(sender, STORE, CONTROL_FRAME, key)
            if arrival is not None:
                self._push(arrival, BUNDLE_REQUEST, sender, STORE, token)
                return  # a loss on the way schedules the failure (_bundle_lost)
        elif path is Path.DIRECT or not self.config.store:
            relayed = out.recipient in self._natted
            self._channel_send(
                sender, out.recipient, CONTROL_FRAME, key, relayed, BUNDLE_REQUEST, token
            )
        self._bundle_lost(sender, token)

    def _bundle_lost(self, sender: int, token: tuple[Key, int]) -> None:
        """No bundle by ``connect_timeout``: the attempt failed (Outcome.NOT_READY, backoff)."""
        failed = (*token, Outcome.NOT_READY)
        self._push(self._now + self._connect_timeout, ATTEMPT_FAILED, sender, 0, failed)

    def _on_bundle_request(self, sender: int, server: int, payload: Any) -> None:
        key = payload[0]
        if server == STORE:
            arrival = None
            if self._arrived(sender, STORE):
                arrival = self._transmit(STORE, sender, self._bundle_size, key)
            if arrival is None:
                self._bundle_lost(sender, payload)
            else:
                self._push(arrival, BUNDLE_REPLY, STORE, sender, payload)
            return
        relayed = server in self._natted  # the channel the sender dialled
        if self._landed(sender, server, relayed):  # the peer answers with its bundle
            size = self._bundle_size
            self._channel_send(server, sender, size, key, relayed, BUNDLE_REPLY, payload)

    def _on_bundle_reply(self, src: int, sender: int, payload: Any) -> None:
        if src == STORE:
            if not self._arrived(STORE, sender):
                self._bundle_lost(sender, payload)
                return
        elif not self._arrived(RELAY if src in self._natted else src, sender):
            return
        out = self._current(sender, payload)
        if out is None:
            return
        out.bundle = True
        out.token += 1
        self._push(self._now, ATTEMPT, sender, 0, (payload[0], out.token))

    # -- acknowledgements ----------------------------------------------------------
    def _acknowledge(self, sender: int, key: Key) -> None:
        outbox = self._outbox.get(sender)
        out = outbox.get(key) if outbox is not None else None
        if out is None:
            return
        try:
            out.entry = self._engine.apply(out.entry, Outcome.ACKNOWLEDGED, now=self._now_ms())
        except LocalProtocolError:  # pragma: no cover - an ack after expiry
            return
        out.record.state = out.entry.state.value
        if out.record.acknowledged_at is None:
            out.record.acknowledged_at = self.now
        del self._outbox[sender][key]

    def _peer_connected(self, peer: int, other: int, in_flight: set[Key]) -> None:
        """The Client's ``peer_connected``: ``peer``'s undelivered entries to ``other`` due now."""
        outbox = self._outbox.get(peer)
        if not outbox:
            return
        now_ms = self._now_ms()
        for key, out in list(outbox.items()):
            if out.recipient != other or key in in_flight or out.entry.state not in UNDELIVERED:
                continue
            out.entry = self._engine.peer_connected(out.entry, now=now_ms)
            self._reschedule(peer, out, out.entry.next_attempt_at)

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
        except UnknownSenderKeyError as error:
            return self._group_message_early(receiver, sender, data, path, error)
        except OmegaError as error:
            return self._refused(receiver, sender, data, error)
        content = received.content
        if content is not None and content.receipt is not None:
            for acknowledged in content.receipt.message_ids:
                self._acknowledge(receiver, (acknowledged, sender))
        elif content is not None:
            record = self._records.get((received.message_id, receiver))
            if record is not None and record.delivered_at is None:
                record.delivered_at = self.now
                record.path = path
                if content.sender_key_distribution is not None:
                    self._distribution_arrived(receiver, sender, content, path)
                elif record.group_id:
                    self._group_read(receiver, record.group_id, record.sent_at)
        return received.message_id

    def _on_direct_arrive(self, sender: int, receiver: int, payload: Any) -> None:
        frame, key, relayed = payload
        if not self._landed(sender, receiver, relayed):
            return
        path = "relay" if relayed else "direct"
        message_id = self._deliver(receiver, sender, frame, path=path)
        if message_id is None:
            return
        ack = SimPeer.ack(message_id, now=self._now_ms())
        # the Ack goes back on the same channel (relayed when the receiver is behind NAT)
        body = (ack, relayed)
        self._channel_send(receiver, sender, len(ack), key, relayed, ACK_ARRIVE, body)

    def _on_ack_arrive(self, receiver: int, sender: int, payload: Any) -> None:
        ack, relayed = payload
        if self._landed(receiver, sender, relayed):
            self._acknowledge(sender, (SimPeer.read_ack(ack), receiver))

    # -- churn ---------------------------------------------------------------------
    def _set_online(self, peer: int) -> None:
        online = bool(self._churn_up[peer]) and not self._offline_windows[peer]
        was_online = bool(self._network.online[peer])
        self._network.online[peer] = online
        if not online and was_online:
            self._drop_links(peer)
        if online and not was_online:
            self._on_fetch(peer, 0, None)
            now_ms = self._now_ms()
            for out in self._outbox.get(peer, {}).values():
                entry = out.entry
                if entry.state in UNDELIVERED and entry.next_attempt_at < entry.expires_at:
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
        self._push(self._now + int(self._churn_rng.expovariate(1.0 / mean) * US), CHURN, peer)
