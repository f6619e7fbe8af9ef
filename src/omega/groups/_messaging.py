"""Group messaging of one device: its Sender Key, the others' keys, tied to the group log.

Sans-I/O: the caller carries distributions over pairwise sessions and
ciphertexts to every member device; this module decides what is allowed,
when to rekey, and encrypts and decrypts (docs/groups.md, "Messaging").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from omega.crypto import InboundSenderKeys, LocalDevice, OutboundSenderKey, user_id_from_public_key
from omega.crypto.random import RandomSource, system_random
from omega.crypto.sender_keys import read_sender_key_distribution
from omega.errors import (
    ConfigurationError,
    DecodeError,
    GroupPermissionError,
    InvalidEnvelopeError,
    MessageDecodeError,
    OmegaError,
    StaleSenderKeyError,
    UnknownSenderKeyError,
)
from omega.groups._log import GroupLog
from omega.groups.config import GroupConfig
from omega.groups.events import GroupEvent
from omega.protocol import (
    GroupSenderKeys,
    GroupSessionState,
    SenderKeyHeader,
    SenderKeyMessage,
    decode_message,
    encode_message,
)

GROUP_SESSION_VERSION = 1
"""``GroupSessionState`` version of the whole session in one blob (``GroupSession.to_bytes``)."""

GROUP_RECORD_VERSION = 2
"""``GroupSessionState`` version of the group record alone (log and epoch; no keys)."""

__all__ = ["GroupSession", "GroupSessionChanges", "Rekey"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSessionChanges:
    """The parts of a :class:`GroupSession` to persist: what changed since the last save.

    Write them all in one transaction (docs/groups.md, "Storage").
    """

    record: bytes | None = None
    """The group record (``GroupSessionState`` version 2: log and epoch) when it changed."""
    outbound: bytes | None = None
    """This device's ``OutboundSenderKeyState`` when it changed (a send, a rotation)."""
    senders: Mapping[bytes, bytes] = field(default_factory=dict)
    """The ``GroupSenderKeys`` record of each remote device whose keys changed."""
    removed_senders: frozenset[bytes] = frozenset()
    """Remote devices whose records to delete (their user left the group)."""

    def __bool__(self) -> bool:
        return bool(self.record is not None or self.outbound is not None or self.senders) or bool(
            self.removed_senders
        )


@dataclass(frozen=True, slots=True)
class Rekey:
    """A new sender key distribution to send over pairwise sessions to ``recipients``' devices."""

    distribution: bytes
    """Encoded ``SenderKeyDistribution`` (secret: pairwise sessions only)."""
    recipients: frozenset[str]
    """User ids of the members (other than this user) who must get it."""


class GroupSession:
    """One device's messaging state in one group.

    Holds the group's :class:`GroupLog`, this device's
    :class:`~omega.crypto.OutboundSenderKey` and the
    :class:`~omega.crypto.InboundSenderKeys` of every other member device.
    Whenever the group's epoch increases (a removal or a leave) it rotates
    its own key and returns a :class:`Rekey` for the remaining members only,
    and it drops the keys of users no longer members. Persist it in parts:
    after each change, write what :meth:`take_changes` returns (docs/groups.md,
    "Storage").
    """

    def __init__(self, log: GroupLog, device: LocalDevice, outbound: OutboundSenderKey) -> None:
        if outbound.group_id != log.group_id or outbound.device_key != device.device_key:
            raise ConfigurationError("the sender key is for another group or device")
        self._log = log
        self._device = device
        self._user_id = user_id_from_public_key(device.certificate.identity_key)
        self._outbound = outbound
        self._inbound: dict[bytes, tuple[str, InboundSenderKeys]] = {}
        # The group epoch each held key of each sender device arrived in, by device, key id.
        self._key_epochs: dict[bytes, dict[int, int]] = {}
        self._epoch = log.state.epoch
        # What the store holds, to tell what changed (None: nothing saved in parts yet).
        self._saved_record: tuple[object, ...] | None = None
        self._saved_outbound: tuple[object, ...] | None = None
        self._changed_senders: set[bytes] = set()
        self._removed_senders: set[bytes] = set()

    @classmethod
    def start(
        cls, log: GroupLog, device: LocalDevice, *, rng: RandomSource = system_random
    ) -> GroupSession:
        """A session with a fresh sender key; send :meth:`rekey_all` to the other members."""
        outbound = OutboundSenderKey.generate(log.group_id, device_key=device.device_key, rng=rng)
        return cls(log, device, outbound)

    @property
    def log(self) -> GroupLog:
        """The group's operation log."""
        return self._log

    @property
    def outbound(self) -> OutboundSenderKey:
        """This device's sender key (a rotation through it shows in :meth:`take_changes`)."""
        return self._outbound

    def rekey_all(self) -> Rekey:
        """The current distribution, for every other member (a new member included)."""
        return Rekey(distribution=self._outbound.distribution(), recipients=self._others())

    def _others(self) -> frozenset[str]:
        return frozenset(self._log.state.members) - {self._user_id}

    # -- group changes ----------------------------------------------------------------

    def receive_operation(
        self, data: bytes, *, rng: RandomSource = system_random
    ) -> tuple[list[GroupEvent], Rekey | None]:
        """Feed a received ``SignedGroupOperation`` to the log; rekey if the epoch moved."""
        events = self._log.receive(data)
        return events, self._after_change(rng)

    def receive_operations(
        self, batch: bytes, *, rng: RandomSource = system_random
    ) -> tuple[list[GroupEvent], Rekey | None]:
        """Feed a ``GroupOperationBatch`` (catching up); rekey if the epoch moved."""
        events = self._log.receive_batch(batch)
        return events, self._after_change(rng)

    def after_local_change(self, *, rng: RandomSource = system_random) -> Rekey | None:
        """Call after a change made through :attr:`log`; the rekey to send, if one is due."""
        return self._after_change(rng)

    def _after_change(self, rng: RandomSource) -> Rekey | None:
        state = self._log.state
        for device_key, (user_id, _) in list(self._inbound.items()):
            if not state.is_member(user_id):
                del self._inbound[device_key]
                self._changed_senders.discard(device_key)
                self._removed_senders.add(device_key)
                self._key_epochs.pop(device_key, None)
        if state.epoch == self._epoch:
            return None
        self._epoch = state.epoch
        if not state.is_member(self._user_id):
            return None
        distribution = self._outbound.rotate(rng=rng)
        return Rekey(distribution=distribution, recipients=self._others())

    # -- storage ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole session as one ``GroupSessionState`` (version 1; secret: store it encrypted).

        The layout Omega stored before the split (and a handy snapshot):
        persisting it per message rewrites the whole log, so the client
        stores :meth:`take_changes` instead.
        """
        return encode_message(
            GroupSessionState(
                version=GROUP_SESSION_VERSION,
                log=self._log.to_bytes(),
                outbound=self._outbound.to_bytes(),
                senders=[self._sender_state(key) for key in sorted(self._inbound)],
                epoch=self._epoch,
            )
        )

    def _sender_state(self, device_key: bytes) -> GroupSenderKeys:
        user_id, keys = self._inbound[device_key]
        epochs = self._key_epochs.get(device_key, {})
        return GroupSenderKeys(
            user_id=user_id,
            keys=keys.to_bytes(),
            key_ids=list(epochs),
            key_epochs=list(epochs.values()),
        )

    def _record_mark(self) -> tuple[object, ...]:
        state = self._log.state
        return (state.operation_count, self._log.pending_count, state.heads, self._epoch)

    def _outbound_mark(self) -> tuple[object, ...]:
        outbound = self._outbound
        return (outbound.key_id, outbound.iteration, outbound.signature_key)

    def take_changes(self) -> GroupSessionChanges:
        """The parts changed since the last call (or since loading), encoded; then forget them.

        A new session, or one loaded from a version 1 blob, returns every
        part. The group record is returned only when the log or the epoch
        changed, the outbound key after a send or a rotation, a sender's
        record after a message or distribution from it. If the transaction
        writing them fails, load the session again (or :meth:`restore_sender`).
        """
        record_mark, outbound_mark = self._record_mark(), self._outbound_mark()
        record = outbound = None
        if record_mark != self._saved_record:
            record = encode_message(
                GroupSessionState(
                    version=GROUP_RECORD_VERSION, log=self._log.to_bytes(), epoch=self._epoch
                )
            )
        if outbound_mark != self._saved_outbound:
            outbound = self._outbound.to_bytes()
        changes = GroupSessionChanges(
            record=record,
            outbound=outbound,
            senders={
                key: encode_message(self._sender_state(key))
                for key in sorted(self._changed_senders)
            },
            removed_senders=frozenset(self._removed_senders),
        )
        self._saved_record, self._saved_outbound = record_mark, outbound_mark
        self._changed_senders.clear()
        self._removed_senders.clear()
        return changes

    @property
    def needs_record(self) -> bool:
        """True while the group record differs from the last one taken (or none was)."""
        return self._record_mark() != self._saved_record

    @classmethod
    def from_bytes(
        cls, data: bytes, device: LocalDevice, *, config: GroupConfig | None = None
    ) -> GroupSession:
        """Load a session saved by :meth:`to_bytes` for ``device``.

        Every part counts as changed (:meth:`take_changes` returns them all).
        Raises :class:`~omega.errors.MessageDecodeError` for anything
        malformed or inconsistent.
        """
        return cls.from_parts(data, None, {}, device, config=config)

    @classmethod
    def from_parts(
        cls,
        record: bytes,
        outbound: bytes | None,
        senders: Mapping[bytes, bytes],
        device: LocalDevice,
        *,
        config: GroupConfig | None = None,
    ) -> GroupSession:
        """Load a session from its stored parts (what :meth:`take_changes` returned over time).

        ``record`` may also be a whole version 1 blob (:meth:`to_bytes`, the
        layout before the split): ``outbound`` and ``senders`` are then
        ignored, and every part counts as changed (the next save converts
        it; stray sender records are marked for deletion). The log is
        verified again. Raises :class:`~omega.errors.MessageDecodeError`
        for anything malformed or inconsistent.
        """
        try:
            state = decode_message(GroupSessionState, record, max_size=len(record))
            legacy = state.version == GROUP_SESSION_VERSION
            if not legacy and state.version != GROUP_RECORD_VERSION:
                raise MessageDecodeError(f"unsupported group session version {state.version}")
            log, _ = GroupLog.from_batch(state.log, config=config)
            stored: list[tuple[bytes | None, GroupSenderKeys]]
            if legacy:
                outbound = state.outbound
                stored = [(None, sender) for sender in state.senders]
            elif outbound is None:
                raise MessageDecodeError("the group has no outbound sender key")
            else:
                stored = [
                    (key, decode_message(GroupSenderKeys, item)) for key, item in senders.items()
                ]
            session = cls(log, device, OutboundSenderKey.from_bytes(outbound))
            session._epoch = state.epoch
            for device_key, sender in stored:
                loaded = session._load_sender(sender)
                if device_key is not None and loaded != device_key:
                    raise MessageDecodeError("a sender record is stored under another device")
        except (DecodeError, ConfigurationError) as exc:
            raise MessageDecodeError(f"invalid group session state: {exc}") from exc
        except OmegaError as exc:
            raise MessageDecodeError(f"invalid group session state: {exc.message}") from exc
        if legacy:
            session._changed_senders = set(session._inbound)
            session._removed_senders = set(senders) - set(session._inbound)
        else:
            session._saved_record = session._record_mark()
            session._saved_outbound = session._outbound_mark()
        return session

    def _load_sender(self, sender: GroupSenderKeys) -> bytes:
        keys, epochs = self._read_sender(sender)
        device_key = keys.sender_device_key
        self._inbound[device_key] = (sender.user_id, keys)
        self._key_epochs[device_key] = epochs
        return device_key

    def _read_sender(self, sender: GroupSenderKeys) -> tuple[InboundSenderKeys, dict[int, int]]:
        keys = InboundSenderKeys.from_bytes(sender.keys)
        if keys.group_id != self._log.group_id:
            raise MessageDecodeError("a sender record is for another group")
        if len(sender.key_ids) != len(sender.key_epochs):
            raise MessageDecodeError("group session key epochs are inconsistent")
        return keys, dict(zip(sender.key_ids, sender.key_epochs, strict=True))

    def restore_sender(self, device_key: bytes, data: bytes | None) -> None:
        """Put back the stored record of one sender (after a failed transaction).

        ``data`` is what the store holds for ``device_key`` (``None``: no
        record, the device's keys are dropped). Raises
        :class:`~omega.errors.MessageDecodeError` for a damaged record, and
        nothing changes then.
        """
        restored = None
        if data is not None:
            try:
                sender = decode_message(GroupSenderKeys, data)
                keys, epochs = self._read_sender(sender)
            except (DecodeError, ConfigurationError) as exc:
                raise MessageDecodeError(f"invalid sender record: {exc}") from exc
            except OmegaError as exc:
                raise MessageDecodeError(f"invalid sender record: {exc.message}") from exc
            if keys.sender_device_key != device_key:
                raise MessageDecodeError("a sender record is stored under another device")
            restored = (sender.user_id, keys), epochs
        self._inbound.pop(device_key, None)
        self._key_epochs.pop(device_key, None)
        self._changed_senders.discard(device_key)
        if restored is not None:
            self._inbound[device_key], self._key_epochs[device_key] = restored

    # -- messages ---------------------------------------------------------------------

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one group message once, for every member device.

        Raises :class:`~omega.errors.GroupPermissionError` when this user is
        not a member or the permissions do not let it post.
        """
        state = self._log.state
        if not state.may_send(self._user_id):
            reason = "not a member" if not state.is_member(self._user_id) else "may not post"
            raise GroupPermissionError(
                f"cannot send to the group: {reason}", details={"reason": reason}
            )
        return self._outbound.encrypt(plaintext)

    def add_distribution(self, sender_id: str, sender_device_key: bytes, data: bytes) -> bool:
        """Take a distribution received over the pairwise session with ``sender_device_key``.

        Returns False for one already held. Raises
        :class:`~omega.errors.InvalidEnvelopeError` when the sender is not a
        member or the distribution is for another group, and what
        :func:`~omega.crypto.sender_keys.read_sender_key_distribution` raises.
        """
        self._check_sender(sender_id, posting=False)
        info = read_sender_key_distribution(data)
        if info.group_id != self._log.group_id:
            raise InvalidEnvelopeError(
                "the distribution is for another group", details={"reason": "group_id"}
            )
        held = self._inbound.get(sender_device_key)
        if held is None or held[0] != sender_id:
            keys = InboundSenderKeys.from_distribution(info, sender_device_key=sender_device_key)
            self._inbound[sender_device_key] = (sender_id, keys)
            added = True
        else:
            added = held[1].add_distribution(info)
        if added:
            self._changed_senders.add(sender_device_key)
            self._removed_senders.discard(sender_device_key)
            epochs = self._key_epochs.setdefault(sender_device_key, {})
            epochs[info.key_id] = self._epoch
            kept = set(self._inbound[sender_device_key][1].key_ids)
            for key_id in [key_id for key_id in epochs if key_id not in kept]:
                del epochs[key_id]
        return added

    def decrypt(self, sender_id: str, sender_device_key: bytes, data: bytes) -> bytes:
        """Verify and decrypt a group message from ``sender_device_key`` of ``sender_id``.

        The envelope's sender and device must already be authenticated by
        the caller. Raises :class:`~omega.errors.InvalidEnvelopeError` when
        the sender is not a member or may not post,
        :class:`~omega.errors.UnknownSenderKeyError` without its key,
        :class:`~omega.errors.StaleSenderKeyError` under a key its sender
        replaced after a removal, and what
        :meth:`~omega.crypto.InboundSenderKeys.decrypt` raises. Nothing
        changes on failure.
        """
        self._check_sender(sender_id, posting=True)
        held = self._inbound.get(sender_device_key)
        if held is None or held[0] != sender_id:
            raise UnknownSenderKeyError(
                "no sender key of this device in this group", details={"key_id": None}
            )
        key_id = _key_id(data)
        epoch = self._key_epochs.get(sender_device_key, {}).get(key_id)
        if epoch is not None and epoch < self._epoch and self._has_current_key(sender_device_key):
            raise StaleSenderKeyError(
                f"sender key {key_id} predates the group's last removal",
                details={"key_id": key_id},
            )
        plaintext = held[1].decrypt(data)
        self._changed_senders.add(sender_device_key)
        return plaintext

    def _has_current_key(self, device_key: bytes) -> bool:
        return self._epoch in self._key_epochs.get(device_key, {}).values()

    def _check_sender(self, sender_id: str, *, posting: bool) -> None:
        state = self._log.state
        if not state.is_member(sender_id):
            raise InvalidEnvelopeError(
                "the sender is not a member of the group", details={"reason": "not_member"}
            )
        if posting and not state.may_send(sender_id):
            raise InvalidEnvelopeError(
                "the sender may not post in the group", details={"reason": "may_not_post"}
            )


def _key_id(data: bytes) -> int:
    message = decode_message(SenderKeyMessage, data)
    return decode_message(SenderKeyHeader, message.header).key_id
