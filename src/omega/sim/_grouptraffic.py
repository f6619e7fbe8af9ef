"""Group traffic: the real ``omega.groups`` engine driven over the simulated network.

Each group is a real :class:`~omega.groups.GroupLog` (signed membership
operations) and one real :class:`~omega.groups.GroupSession` per member
device. Groups exist from time 0: the owner creates the log and adds the
members; every member loads the owner's log (the invitation is not
simulated) and starts a sender key, whose distribution it sends to every
other member over their pairwise Double Ratchet sessions (real outbox
entries: X3DH on first contact, retries, the store). A group message is
encrypted once with the sender's key and the same ``SenderKeyMessage``
goes, in one envelope per device, to every member the sender's own log
lists, each copy through the delivery engine like a 1:1 message. A copy
that arrives before its sender key waits at the receiver and opens when the
distribution arrives.

A removal: the owner signs the operation, rotates its key and sends the new
distribution to the remaining members only; the operation travels to every
member of the owner's view (modelled as a frame of the operation's size plus
an envelope's overhead, retried with backoff until it arrives), and each
remaining member, on applying it, rotates and redistributes too. After each
group message the simulator hands its ciphertext to every removed member's
session, as an eavesdropper would (no traffic): ``SimResult.removed_reads``
counts the messages sent after a removal that the removed member could open.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from omega.errors import MessageDecodeError, OmegaError, UnknownSenderKeyError
from omega.groups import GroupLog, GroupSession
from omega.protocol import Frame, MessageContent, decode_message, encode_message
from omega.sim._core import (
    GROUP_OPERATION,
    GROUP_REMOVE,
    GROUP_SEND,
    RECORD_OVERHEAD,
    US,
    SimCore,
    framed,
)
from omega.sim._peer import SimPeer
from omega.sim._store import StoreMixin
from omega.sim.config import GroupSpec

__all__ = ["GroupMixin"]

ENVELOPE_OVERHEAD = 200
"""Bytes an envelope and the ratchet add around a group operation (about; the
Client's ``GroupUpdate`` content that carries operations is not on main yet)."""
_MAX_EARLY = 1000
"""Group messages a device keeps while their sender key has not arrived."""
_MAX_OPERATION_BACKOFF = 300 * US


@dataclass(slots=True)
class _Group:
    index: int
    group_id: str
    members: list[int]
    """Current members in the owner's view, owner first."""
    rate: float
    removed: dict[int, int] = field(default_factory=dict)
    """Removed peer -> virtual time (µs) of its removal."""


class GroupMixin(StoreMixin, SimCore):
    """Groups, their messages, distributions and removals."""

    def _init_groups(self) -> None:
        self._groups: list[_Group] = []
        self._group_by_id: dict[str, _Group] = {}
        self._early: dict[int, list[tuple[int, bytes, str]]] = {}
        workload = self.config.workload.groups
        if not workload.total:
            return
        rng = random.Random(f"omega-sim/{self.config.seed}/groups")  # noqa: S311
        self._group_rng = rng
        specs = list(workload.groups)
        for _ in range(workload.count):
            size = rng.randint(workload.min_size, workload.max_size)
            specs.append(GroupSpec(members=tuple(rng.sample(range(self.config.peers), size))))
        duration = int(self.config.duration * US)
        for index, spec in enumerate(specs):
            random_group = index >= len(workload.groups)
            rate = workload.rate if random_group else spec.rate
            self._create_group(index, spec.members, rate)
            if rate > 0:
                first = max(1, int(rng.expovariate(rate) * US))
                if first < duration:
                    self._push(first, GROUP_SEND, index, -1, workload.message_size)
            if random_group and rng.random() < workload.removal_fraction:
                member = rng.choice(spec.members[1:])
                self._push(int(rng.uniform(0, duration)), GROUP_REMOVE, index, member)
        for send in workload.sends:
            self._push(int(send.time * US), GROUP_SEND, send.group, send.sender, send.size)
        for removal in workload.removals:
            self._push(int(removal.time * US), GROUP_REMOVE, removal.group, removal.member)

    def _create_group(self, index: int, members: tuple[int, ...] | list[int], rate: float) -> None:
        now_ms = self._now_ms()
        owner = self._peer(members[0])
        log, _ = GroupLog.create(
            owner.identity.device, name=f"sim group {index}", now=now_ms, rng=owner.rng
        )
        for member in members[1:]:
            log.add_member(owner.identity.device, self._peer(member).user_id, now=now_ms)
        batch = log.export()
        group_id = log.group_id
        for member in members:
            peer = self._peer(member)
            member_log = log if member == members[0] else GroupLog.from_batch(batch)[0]
            peer.groups[group_id] = GroupSession.start(
                member_log, peer.identity.device, rng=peer.rng
            )
        for member in members:
            rekey = self._peers[member].groups[group_id].rekey_all()
            self._distribute(member, group_id, rekey.distribution, rekey.recipients)
        group = _Group(index, group_id, list(members), rate)
        self._groups.append(group)
        self._group_by_id[group_id] = group
        self._result.groups.append(group_id)

    def _distribute(
        self, sender: int, group_id: str, distribution: bytes, recipients: frozenset[str]
    ) -> None:
        """Send a sender key distribution over the pairwise sessions to ``recipients``."""
        peer = self._peers[sender]
        for recipient in sorted(self._user_peer[user] for user in recipients):
            message_id = peer.new_message_id()
            content = SimPeer.distribution_content(
                distribution,
                message_id=message_id,
                timestamp=self._now_ms(),
                conversation_id=self._peers[recipient].user_id,
            )
            self._enqueue(sender, recipient, message_id, content, "sender_key", group_id)

    # -- messages ---------------------------------------------------------------------
    def _on_group_send(self, index: int, sender: int, size: Any) -> None:
        group = self._groups[index]
        if sender < 0:  # the group's Poisson stream: next arrival, random current member
            rng = self._group_rng
            sender = group.members[rng.randrange(len(group.members))]
            following = self._now + max(1, int(rng.expovariate(group.rate) * US))
            if following < int(self.config.duration * US):
                self._push(following, GROUP_SEND, index, -1, size)
        peer = self._peer(sender)
        session = peer.groups.get(group.group_id)
        if session is None or not session.log.state.is_member(peer.user_id):
            return  # removed, and it knows it
        recipients = sorted(
            self._user_peer[user] for user in session.log.state.members if user != peer.user_id
        )
        message_id = peer.new_message_id()
        content = SimPeer.text_content(
            size, message_id=message_id, timestamp=self._now_ms(), conversation_id=group.group_id
        )
        ciphertext, frames = peer.seal_group(
            message_id=message_id,
            group_id=group.group_id,
            content=content,
            timestamp=self._now_ms(),
            recipients=[self._peers[recipient] for recipient in recipients],
        )
        for recipient, frame in zip(recipients, frames, strict=True):
            self._enqueue(sender, recipient, message_id, content, "group", group.group_id, frame)
        self._eavesdrop(group, peer, recipients, ciphertext)

    def _eavesdrop(
        self, group: _Group, sender: SimPeer, recipients: list[int], data: bytes
    ) -> None:
        """Hand the ciphertext to each removed member the sender no longer sends to."""
        for removed in sorted(group.removed):
            if removed in recipients:
                continue  # a real copy goes to it: counted when it opens it
            self._result.removed_checks += 1
            session = self._peers[removed].groups[group.group_id]
            try:
                session.decrypt(sender.user_id, sender.device_key, data)
            except OmegaError:
                continue
            self._result.removed_reads += 1

    def _group_read(self, receiver: int, group_id: str, sent_at: float) -> None:
        """``receiver`` opened a group message: count it if sent after its removal."""
        removed_at = self._group_by_id[group_id].removed.get(receiver)
        if removed_at is not None and sent_at * US >= removed_at:
            self._result.removed_checks += 1
            self._result.removed_reads += 1

    def _group_message_early(
        self, receiver: int, sender: int, data: bytes, path: str, _error: UnknownSenderKeyError
    ) -> str | None:
        """A group message before its sender key: keep it (bounded) and acknowledge it."""
        early = self._early.setdefault(receiver, [])
        if len(early) < _MAX_EARLY:
            early.append((sender, data, path))
        return _message_id(data)

    def _refused(self, receiver: int, sender: int, data: bytes, error: OmegaError) -> str | None:
        """A refused envelope (a stale sender key, a non-member): acknowledged, not delivered."""
        del receiver, sender, error
        self._result.refused += 1
        return _message_id(data)

    def _distribution_arrived(
        self, receiver: int, sender: int, content: MessageContent, path: str
    ) -> None:
        distribution = content.sender_key_distribution
        assert distribution is not None
        peer, origin = self._peers[receiver], self._peers[sender]
        session = peer.groups.get(distribution.group_id)
        if session is None:
            return
        try:
            session.add_distribution(
                origin.user_id, origin.device_key, encode_message(distribution)
            )
        except OmegaError:
            self._result.refused += 1
            return
        early = self._early.get(receiver)
        if early:
            waiting = [item for item in early if item[0] == sender]
            self._early[receiver] = [item for item in early if item[0] != sender]
            for _, data, first_path in waiting:
                self._deliver(receiver, sender, data, path=first_path)
        del path

    # -- membership churn ---------------------------------------------------------
    def _on_group_remove(self, index: int, member: int, _payload: Any) -> None:
        group = self._groups[index]
        if member not in group.members[1:]:
            return
        owner = self._peers[group.members[0]]
        session = owner.groups[group.group_id]
        operation = session.log.remove_member(
            owner.identity.device, self._peers[member].user_id, now=self._now_ms()
        )
        rekey = session.after_local_change(rng=owner.rng)
        others = group.members[1:]
        group.members.remove(member)
        group.removed[member] = self._now
        if rekey is not None:
            self._distribute(group.members[0], group.group_id, rekey.distribution, rekey.recipients)
        for other in others:
            self._push(self._now, GROUP_OPERATION, group.members[0], other, (index, operation, 0))

    def _on_group_operation(self, owner: int, member: int, payload: Any) -> None:
        index, operation, tries = payload
        if tries >= 0:  # send (again)
            size = framed(len(operation) + ENVELOPE_OVERHEAD + RECORD_OVERHEAD)
            arrival = self._transmit(owner, member, size, None)
            if arrival is not None:
                self._push(arrival, GROUP_OPERATION, owner, member, (index, operation, -1 - tries))
            else:
                self._retry_operation(owner, member, index, operation, tries + 1)
            return
        if not self._arrived(owner, member):
            self._retry_operation(owner, member, index, operation, -tries)
            return
        group = self._groups[index]
        peer = self._peers[member]
        session = peer.groups[group.group_id]
        try:
            _, rekey = session.receive_operation(operation, rng=peer.rng)
        except OmegaError:  # pragma: no cover - the owner's operation is valid
            self._result.refused += 1
            return
        if rekey is not None:
            self._distribute(member, group.group_id, rekey.distribution, rekey.recipients)

    def _retry_operation(
        self, owner: int, member: int, index: int, operation: bytes, tries: int
    ) -> None:
        delay = min(_MAX_OPERATION_BACKOFF, US << min(tries, 20))
        self._push(self._now + delay, GROUP_OPERATION, owner, member, (index, operation, tries))


def _message_id(data: bytes) -> str | None:
    try:
        envelope = decode_message(Frame, data).message
    except MessageDecodeError:  # pragma: no cover - the sim sends valid frames
        return None
    return envelope.message_id if envelope is not None else None
