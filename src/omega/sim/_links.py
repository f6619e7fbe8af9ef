"""Secure channels between simulated peers: the Noise XX handshake's cost, links, the relay.

A link between two peers is established the first time one sends the other
a frame: the three Noise XX handshake messages cross the network (their
sizes are those of a real handshake between two Omega devices, measured
once), then each side sends its signed device list and the Client's
``peer_connected`` rule makes its undelivered entries to the other due now.
Frames queued while the handshake runs leave when it completes (the
initiator's after message 2 arrives, the responder's after message 3). A
handshake message lost or cut off fails the handshake ``connect_timeout``
after it began; its queued frames are dropped (the senders retry). A
link closes when either peer goes offline, or when a send finds the other
side unreachable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from omega.crypto import Identity
from omega.protocol import Frame, encode_message
from omega.sim._core import (
    EPOCH_MS,
    HANDSHAKE,
    HANDSHAKE_FAILED,
    RECORD_OVERHEAD,
    RELAY_FORWARD,
    Key,
    SimCore,
    framed,
)
from omega.sim._network import RELAY
from omega.testing.random import SeededRandom
from omega.transport.noise import NoiseCredentials, NoiseHandshake, Role

__all__ = ["LinkMixin", "handshake_sizes"]


@functools.cache
def handshake_sizes() -> tuple[int, int, int, int]:
    """Wire bytes of Noise XX messages 1, 2, 3 and of a device list frame (real, measured once)."""
    rng = SeededRandom(b"omega-sim/handshake-sizes")
    first = Identity.create(device_name="a", created_at=EPOCH_MS, rng=rng)
    second = Identity.create(device_name="b", created_at=EPOCH_MS, rng=rng)
    initiator = NoiseHandshake(
        Role.INITIATOR, NoiseCredentials.from_identity(first, rng=rng), rng=rng
    )
    responder = NoiseHandshake(
        Role.RESPONDER, NoiseCredentials.from_identity(second, rng=rng), rng=rng
    )
    initiator.start()
    (message_1,) = initiator.messages_to_send()
    responder.receive_message(message_1)
    (message_2,) = responder.messages_to_send()
    initiator.receive_message(message_2)
    (message_3,) = initiator.messages_to_send()
    device_list = encode_message(Frame(device_list=first.device_list.to_signed()))
    return (
        framed(len(message_1)),
        framed(len(message_2)),
        framed(len(message_3)),
        framed(len(device_list) + RECORD_OVERHEAD),
    )


@dataclass(slots=True, eq=False)
class _Handshake:
    initiator: int
    responder: int
    relayed: bool
    started: int
    key: Key | None
    """The record the handshake's bytes are counted in (the frame that opened the link)."""
    queue: list[tuple[int, int, int, Key | None, int, Any]] = field(default_factory=list)
    in_flight: set[Key] = field(default_factory=set)
    """Entries whose attempt waits in ``queue`` (``peer_connected`` leaves them alone)."""


class LinkMixin(SimCore):
    """Links, handshakes and the relay hop."""

    def _init_links(self) -> None:
        self._links: set[tuple[int, int]] = set()
        self._peer_links: dict[int, set[int]] = {}
        self._handshakes: dict[tuple[int, int], _Handshake] = {}
        self._handshake_sizes = handshake_sizes() if self._secure else (0, 0, 0, 0)

    def _channel_open(self, src: int, dst: int, relayed: bool) -> bool:
        if relayed:
            return self.config.relay and self._arrived(src, RELAY) and self._arrived(RELAY, dst)
        return self._arrived(src, dst)

    def _landed(self, src: int, dst: int, relayed: bool) -> bool:
        return self._arrived(RELAY, dst) if relayed else self._arrived(src, dst)

    def _channel_send(  # noqa: PLR0917 - a hot internal helper
        self,
        src: int,
        dst: int,
        size: int,
        key: Key | None,
        relayed: bool,
        kind: int,
        body: Any,
        attempt: Key | None = None,
    ) -> bool:
        """Send a frame of ``size`` bytes on the secure channel ``src`` -> ``dst``.

        Through the relay if ``relayed``; the event ``kind`` with ``body``
        fires on arrival. Opens the link first when there is none. False:
        the other side cannot be reached now.
        """
        if not self._channel_open(src, dst, relayed):
            self._drop_link(src, dst)
            return False
        pair = (src, dst) if src < dst else (dst, src)
        if not self._secure or pair in self._links:
            self._send_record(src, dst, size, key, relayed, kind, body)
            return True
        handshake = self._handshakes.get(pair)
        if handshake is None:
            handshake = _Handshake(src, dst, relayed, self._now, key)
            self._handshakes[pair] = handshake
            self._handshake_message(handshake, 1)
        handshake.queue.append((src, dst, size, key, kind, body))
        if attempt is not None:
            handshake.in_flight.add(attempt)
        return True

    def _send_record(  # noqa: PLR0917
        self, src: int, dst: int, size: int, key: Key | None, relayed: bool, kind: int, body: Any
    ) -> None:
        wire = framed(size + RECORD_OVERHEAD) if self._secure else framed(size)
        self._hop(src, dst, wire, key, relayed, kind, body)

    def _hop(  # noqa: PLR0917
        self, src: int, dst: int, wire: int, key: Key | None, relayed: bool, kind: int, body: Any
    ) -> None:
        arrival = self._transmit(src, RELAY if relayed else dst, wire, key)
        if arrival is not None:
            if relayed:
                self._push(arrival, RELAY_FORWARD, src, dst, (wire, key, kind, body))
            elif kind >= 0:  # kind -1: a frame nobody acts on (the device list)
                self._push(arrival, kind, src, dst, body)
        elif kind == HANDSHAKE:
            self._handshake_lost(body[0])

    def _on_relay_forward(self, src: int, dst: int, payload: Any) -> None:
        wire, key, kind, body = payload
        arrival = self._transmit(RELAY, dst, wire, key) if self._arrived(src, RELAY) else None
        if arrival is not None and kind >= 0:
            self._push(arrival, kind, src, dst, body)
        elif arrival is None and kind == HANDSHAKE:
            self._handshake_lost(body[0])

    # -- the handshake ----------------------------------------------------------
    def _handshake_message(self, handshake: _Handshake, step: int) -> None:
        src, dst = handshake.initiator, handshake.responder
        if step == 2:
            src, dst = dst, src
        wire = self._handshake_sizes[step - 1]
        self._hop(src, dst, wire, handshake.key, handshake.relayed, HANDSHAKE, (handshake, step))

    def _on_handshake(self, src: int, dst: int, payload: Any) -> None:
        handshake, step = payload
        initiator, responder = handshake.initiator, handshake.responder
        pair = (initiator, responder) if initiator < responder else (responder, initiator)
        if step < 3 and self._handshakes.get(pair) is not handshake:
            return  # failed meanwhile
        if not self._landed(src, dst, handshake.relayed):
            self._handshake_lost(handshake)
            return
        if step == 1:
            self._handshake_message(handshake, 2)
            return
        if step == 2:
            del self._handshakes[pair]
            self._links.add(pair)
            self._peer_links.setdefault(initiator, set()).add(responder)
            self._peer_links.setdefault(responder, set()).add(initiator)
            self._connection(initiator, responder, handshake.relayed, handshake.started)
            self._handshake_message(handshake, 3)
            self._flush(handshake, initiator)
            return
        self._flush(handshake, responder)

    def _flush(self, handshake: _Handshake, side: int) -> None:
        """``side`` is connected: its device list, its queued frames, then ``peer_connected``."""
        other = handshake.responder if side == handshake.initiator else handshake.initiator
        relayed = handshake.relayed
        self._hop(side, other, self._handshake_sizes[3], handshake.key, relayed, -1, None)
        for src, dst, size, key, kind, body in handshake.queue:
            if src == side:
                self._send_record(src, dst, size, key, relayed, kind, body)
        self._peer_connected(side, other, handshake.in_flight)

    def _handshake_lost(self, handshake: _Handshake) -> None:
        """A handshake message was lost or cut off: the dialler gives up at its timeout."""
        at = max(self._now, handshake.started + self._connect_timeout)
        self._push(at, HANDSHAKE_FAILED, 0, 0, handshake)

    def _on_handshake_failed(self, _a: int, _b: int, payload: Any) -> None:
        handshake: _Handshake = payload
        initiator, responder = handshake.initiator, handshake.responder
        pair = (initiator, responder) if initiator < responder else (responder, initiator)
        if self._handshakes.get(pair) is handshake:
            del self._handshakes[pair]
            self._result.handshake_failures += 1

    def _drop_link(self, a: int, b: int) -> None:
        pair = (a, b) if a < b else (b, a)
        if pair in self._links:
            self._links.discard(pair)
            self._peer_links[a].discard(b)
            self._peer_links[b].discard(a)

    def _drop_links(self, peer: int) -> None:
        """``peer`` went offline: every link of it closes."""
        for other in self._peer_links.pop(peer, set()):
            self._links.discard((peer, other) if peer < other else (other, peer))
            self._peer_links[other].discard(peer)
