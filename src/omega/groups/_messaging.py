"""Group messaging of one device: its Sender Key, the others' keys, tied to the group log.

Sans-I/O: the caller carries distributions over pairwise sessions and
ciphertexts to every member device; this module decides what is allowed,
when to rekey, and encrypts and decrypts (docs/groups.md, "Messaging").
"""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["GroupSession", "Rekey"]


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
    and it drops the keys of users no longer members.
    """

    def __init__(self, log: GroupLog, device: LocalDevice, outbound: OutboundSenderKey) -> None:
        if outbound.group_id != log.group_id or outbound.device_key != device.device_key:
            raise ConfigurationError("the sender key is for another group or device")
        self._log = log
        self._device = device
        self._user_id = user_id_from_public_key(device.certificate.identity_key)
        self._outbound = outbound
        self._inbound: dict[bytes, tuple[str, InboundSenderKeys]] = {}
        self._key_epochs: dict[tuple[bytes, int], int] = {}
        self._epoch = log.state.epoch

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
        """This device's sender key (persist :meth:`OutboundSenderKey.to_bytes` after use)."""
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
                for entry in [e for e in self._key_epochs if e[0] == device_key]:
                    del self._key_epochs[entry]
        if state.epoch == self._epoch:
            return None
        self._epoch = state.epoch
        if not state.is_member(self._user_id):
            return None
        distribution = self._outbound.rotate(rng=rng)
        return Rekey(distribution=distribution, recipients=self._others())

    # -- storage ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialize to a ``GroupSessionState`` (secret: store it encrypted)."""
        senders = []
        for device_key, (user_id, keys) in sorted(self._inbound.items()):
            key_ids = [key_id for (dk, key_id) in self._key_epochs if dk == device_key]
            senders.append(
                GroupSenderKeys(
                    user_id=user_id,
                    keys=keys.to_bytes(),
                    key_ids=key_ids,
                    key_epochs=[self._key_epochs[(device_key, key_id)] for key_id in key_ids],
                )
            )
        return encode_message(
            GroupSessionState(
                version=GROUP_SESSION_VERSION,
                log=self._log.to_bytes(),
                outbound=self._outbound.to_bytes(),
                senders=senders,
                epoch=self._epoch,
            )
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, device: LocalDevice, *, config: GroupConfig | None = None
    ) -> GroupSession:
        """Load a session saved by :meth:`to_bytes` for ``device``.

        Raises :class:`~omega.errors.MessageDecodeError` for anything
        malformed or inconsistent.
        """
        try:
            state = decode_message(GroupSessionState, data, max_size=len(data))
            if state.version != GROUP_SESSION_VERSION:
                raise MessageDecodeError(f"unsupported group session version {state.version}")
            log, _ = GroupLog.from_batch(state.log, config=config)
            session = cls(log, device, OutboundSenderKey.from_bytes(state.outbound))
            for sender in state.senders:
                keys = InboundSenderKeys.from_bytes(sender.keys)
                if len(sender.key_ids) != len(sender.key_epochs):
                    raise MessageDecodeError("group session key epochs are inconsistent")
                session._inbound[keys.sender_device_key] = (sender.user_id, keys)
                for key_id, epoch in zip(sender.key_ids, sender.key_epochs, strict=True):
                    session._key_epochs[(keys.sender_device_key, key_id)] = epoch
        except (DecodeError, ConfigurationError) as exc:
            raise MessageDecodeError(f"invalid group session state: {exc}") from exc
        except OmegaError as exc:
            raise MessageDecodeError(f"invalid group session state: {exc.message}") from exc
        session._epoch = state.epoch
        return session

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
            self._key_epochs[(sender_device_key, info.key_id)] = self._epoch
            kept = set(self._inbound[sender_device_key][1].key_ids)
            for entry in [e for e in self._key_epochs if e[0] == sender_device_key]:
                if entry[1] not in kept:
                    del self._key_epochs[entry]
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
        epoch = self._key_epochs.get((sender_device_key, key_id))
        if epoch is not None and epoch < self._epoch and self._has_current_key(sender_device_key):
            raise StaleSenderKeyError(
                f"sender key {key_id} predates the group's last removal",
                details={"key_id": key_id},
            )
        return held[1].decrypt(data)

    def _has_current_key(self, device_key: bytes) -> bool:
        return any(
            epoch == self._epoch
            for (key_device, _), epoch in self._key_epochs.items()
            if key_device == device_key
        )

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
