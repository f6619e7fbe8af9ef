"""The store-and-forward server as a simulated node, and the Client's mailbox loop.

The store keeps the service's rules: deposits idempotent by (recipient,
message id), fetch everything waiting, delete what was fetched. The Client's
mailbox loop (``omega.client._background.mailbox_loop``) fetches when it
starts, then long-polls ``wait_for_messages`` with a timeout of
``mailbox_poll_interval``: a deposit wakes an online recipient at once (the
notification), and the poll's timeout makes it fetch again at the latest one
interval after its last fetch (a lost wake-up is recovered then). While the
store cannot be reached the loop retries after 1, 2, 4 ... seconds, at most
``mailbox_poll_interval``.
"""

from __future__ import annotations

from typing import Any

from omega.session.delivery import Outcome
from omega.sim._core import (
    ATTEMPT_FAILED,
    CONTROL_FRAME,
    DELETE_ARRIVE,
    DEPOSIT_ARRIVE,
    DEPOSIT_REPLY,
    DIRECT_ARRIVE,
    FETCH,
    FETCH_ARRIVE,
    FETCH_REPLY,
    US,
    Key,
    SimCore,
    framed,
)
from omega.sim._links import LinkMixin
from omega.sim._network import STORE

__all__ = ["StoreMixin"]

_Stored = tuple[bytes, "Key | None", int, bool]
"""A mailbox item: envelope frame, its record, its sender, whether to answer with a receipt."""


class StoreMixin(LinkMixin, SimCore):
    """The store node and each peer's mailbox loop."""

    def _init_store(self) -> None:
        self._mailbox: dict[int, dict[str, _Stored]] = {}
        self._fetching: dict[int, bool] = {}  # peer -> fetch again when done
        self._polls: set[int] = set()  # peers with a poll timeout scheduled
        self._last_fetch: dict[int, int] = {}
        self._outage_delay: dict[int, int] = {}
        self._poll_interval = int(self.config.mailbox_poll_interval * US)

    def _deposit(  # noqa: PLR0917
        self,
        sender: int,
        recipient: int,
        frame: bytes,
        key: Key | None,
        stored_id: str,
        token: tuple[Key, int] | None,
        needs_receipt: bool,
    ) -> bool:
        """Send ``frame`` to the store for ``recipient``; False if the store is unreachable."""
        arrival = self._transmit(sender, STORE, framed(len(frame)), key)
        if arrival is None:
            return False
        body = (frame, key, stored_id, token, needs_receipt)
        self._push(arrival, DEPOSIT_ARRIVE, sender, recipient, body)
        return True

    def _on_deposit_arrive(self, sender: int, recipient: int, payload: Any) -> None:
        frame, key, stored_id, token, needs_receipt = payload
        if not self._arrived(sender, STORE):
            return
        mailbox = self._mailbox.setdefault(recipient, {})
        mailbox.setdefault(stored_id, (frame, key, sender, needs_receipt))
        if token is not None:
            reply = self._network.transmit(STORE, sender, CONTROL_FRAME, self._now)
            if reply is None:
                timeout = self._now + self._connect_timeout
                self._push(timeout, ATTEMPT_FAILED, sender, 0, (*token, Outcome.DEPOSIT_FAILED))
            else:
                self._push(reply, DEPOSIT_REPLY, sender, 0, token)
        if self._network.online[recipient]:
            notified = None
            if self._arrived(STORE, recipient):
                notified = self._network.transmit(STORE, recipient, CONTROL_FRAME, self._now)
            if notified is not None:
                self._push(notified, FETCH, recipient)
            else:  # the wake-up was lost: the long poll's timeout fetches
                self._schedule_poll(recipient)

    def _schedule_poll(self, peer: int) -> None:
        if peer in self._polls:
            return
        last = self._last_fetch.get(peer, 0)
        interval = self._poll_interval
        ticks = max(1, -(-(self._now - last) // interval))
        self._polls.add(peer)
        self._push(last + ticks * interval, FETCH, peer, 1)

    def _on_fetch(self, peer: int, poll: int, _payload: Any) -> None:
        if poll:
            self._polls.discard(peer)
        if not self._network.online[peer]:
            return
        if peer in self._fetching:
            self._fetching[peer] = True
            return
        if not self._mailbox.get(peer):
            return
        if not self._arrived(peer, STORE):
            self._retry_after_outage(peer)
            return
        arrival = self._network.transmit(peer, STORE, CONTROL_FRAME, self._now)
        if arrival is None:
            self._schedule_poll(peer)
            return
        self._fetching[peer] = False
        self._push(arrival, FETCH_ARRIVE, peer)

    def _retry_after_outage(self, peer: int) -> None:
        """The store is cut off: the loop retries after 1, 2, 4 ... s (at most one interval)."""
        if peer in self._polls:
            return
        self._polls.add(peer)
        delay = min(2 * self._outage_delay.get(peer, US // 2), self._poll_interval)
        self._outage_delay[peer] = delay
        self._push(self._now + delay, FETCH, peer, 1)

    def _fetch_done(self, peer: int) -> None:
        self._last_fetch[peer] = self._now
        self._outage_delay.pop(peer, None)
        if self._fetching.pop(peer, False):
            self._on_fetch(peer, 0, None)
        elif self._mailbox.get(peer):
            self._schedule_poll(peer)

    def _on_fetch_arrive(self, peer: int, _b: int, _payload: Any) -> None:
        if not self._arrived(STORE, peer):
            self._fetch_done(peer)
            return
        items = list(self._mailbox.get(peer, {}).items())
        arrival: int | None = self._now
        for _, (frame, key, _, _) in items:
            arrival = self._transmit(STORE, peer, framed(len(frame)), key)
        if arrival is None:  # the last frame of the batch was lost: fetch again later
            self._fetch_done(peer)
            return
        self._push(arrival, FETCH_REPLY, peer, 0, items)

    def _on_fetch_reply(self, peer: int, _b: int, payload: Any) -> None:
        items: list[tuple[str, _Stored]] = payload
        if not self._arrived(STORE, peer):
            self._fetch_done(peer)
            return
        done: list[str] = []
        for stored_id, (frame, key, sender, needs_receipt) in items:
            message_id = self._deliver(peer, sender, frame, path="store")
            done.append(stored_id)
            if message_id is not None and needs_receipt:
                self._send_receipt(peer, sender, message_id, key)
        arrival = self._network.transmit(peer, STORE, CONTROL_FRAME, self._now)
        if arrival is not None:
            self._push(arrival, DELETE_ARRIVE, peer, 0, done)
        self._fetch_done(peer)

    def _send_receipt(self, peer: int, sender: int, message_id: str, key: Key | None) -> None:
        receipt_id, frame = self._peers[peer].receipt(
            message_id=message_id, recipient=self._peers[sender], now=self._now_ms()
        )
        relayed = sender in self._natted
        body = (frame, key, relayed)
        if self._channel_send(peer, sender, len(frame), key, relayed, DIRECT_ARRIVE, body):
            return
        self._deposit(peer, sender, frame, key, receipt_id, None, needs_receipt=False)

    def _on_delete_arrive(self, peer: int, _b: int, payload: Any) -> None:
        stored_ids: list[str] = payload
        mailbox = self._mailbox.get(peer, {})
        for stored_id in stored_ids:
            mailbox.pop(stored_id, None)
        if not mailbox:
            self._mailbox.pop(peer, None)

    def _on_heal(self, index: int, _b: int, _payload: Any) -> None:
        partition = self.config.partitions[index]
        for peer in sorted(self._mailbox):
            if (peer in partition.peers) != partition.store and peer not in self._polls:
                self._outage_retry_at_heal(peer, partition.start)

    def _outage_retry_at_heal(self, peer: int, outage_start: float) -> None:
        """The mailbox loop's next retry after an outage that began at ``outage_start``."""
        retry, delay = int(outage_start * US), US
        while retry + delay < self._now:
            retry += delay
            delay = min(2 * delay, self._poll_interval)
        self._polls.add(peer)
        self._push(retry + delay, FETCH, peer, 1)

    # -- set by the simulation ----------------------------------------------------
    _natted: frozenset[int]
