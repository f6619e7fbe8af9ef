"""Groups in the client: state, local changes, and what they send (docs/groups.md).

:class:`Groups` holds this device's :class:`~omega.groups.GroupSession` of
every group, persisted in parts in the key store (:mod:`omega.client._group_store`:
the group record, our outbound key, one record per sending device; each
written only when it changed) and changed only inside a key-store
transaction, so two changes never interleave and a failed one leaves the
stored state as it was (the cached session is then read back from the store).

What travels where:

* group operations (``GroupUpdate``), catch-up requests (``GroupSyncRequest``)
  and sender key distributions go to each member over the pairwise sessions
  (``Core.queue``: every device of the member, and our other devices);
* a group message is encrypted once under our sender key and the same
  ciphertext goes to every member device, in one outbox entry per device
  whose envelope says ``recipient_id = group id`` and
  ``encryption = ENCRYPTION_KIND_SENDER_KEY``.

Receiving lives in :mod:`omega.client._group_inbound`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import anyio

from omega.client._core import Core, identity_key_of
from omega.client._group_events import (
    GroupCreated,
)
from omega.client._group_parts import chunked_updates, client_events
from omega.client._group_store import Unconfirmed, load_session, write_changes
from omega.client._records import outgoing_record
from omega.client.events import ContactDevicesChanged, OwnDevicesChanged
from omega.errors import (
    ConfigurationError,
    GroupPermissionError,
    OmegaError,
    UnknownContactError,
    UnknownGroupError,
)
from omega.groups import (
    GroupConfig,
    GroupLog,
    GroupSession,
    GroupState,
    OperationAccepted,
    OperationKind,
    Permissions,
    verify_operation,
)
from omega.groups.events import GroupEvent as LogEvent
from omega.protocol import (
    EncryptionKind,
    Frame,
    GroupOperationBatch,
    GroupSyncRequest,
    MemberRole,
    MessageContent,
    SenderKeyDistribution,
    SignedGroupOperation,
    decode_message,
    encode_message,
)
from omega.session.content import content_kind, encode_content
from omega.session.envelope import bind_content, seal_envelope
from omega.storage.base import KeyStoreTransaction
from omega.storage.message_base import (
    ContactRecord,
    DeliveryState,
    OutboxEntry,
    StoredMessage,
)

__all__ = ["GROUP_CONTENT_KINDS", "Groups"]

logger = logging.getLogger("omega.client")

GROUP_CONTENT_KINDS = frozenset({"group_update", "group_sync", "sender_key_distribution"})
"""Content kinds that travel over pairwise sessions on behalf of a group."""

_NOT_IN_GROUPS = frozenset({"typing", "receipt", *GROUP_CONTENT_KINDS})


class Groups:
    """This device's groups: sessions, local changes, sending."""

    def __init__(self, core: Core, *, config: GroupConfig | None = None) -> None:
        self.core = core
        self.config = config or GroupConfig()
        self.sessions: dict[str, GroupSession] = {}
        self.unconfirmed = Unconfirmed()
        """Parts written by received messages in transactions not yet known to have
        committed (see :meth:`settle`)."""
        core.add_handler(ContactDevicesChanged, self._devices_changed)  # type: ignore[arg-type]
        core.add_handler(OwnDevicesChanged, self._own_devices_changed)  # type: ignore[arg-type]

    # -- state ----------------------------------------------------------------------
    async def load(self) -> None:
        """Load every stored group session (at start). A damaged one is logged and skipped."""
        async with self.core.keys.transaction() as tx:
            for group_id in await tx.group_state_ids():
                await self.reload(tx, group_id)

    async def reload(self, tx: KeyStoreTransaction, group_id: str) -> GroupSession | None:
        """Read ``group_id``'s session back from the store (after a failed change)."""
        self.sessions.pop(group_id, None)
        try:
            session = await load_session(tx, group_id, self.core.identity.device, self.config)
        except OmegaError as exc:
            logger.error("event=group_state_unreadable group=%s error=%s", group_id, exc.code)
            return None
        if session is not None:
            self.sessions[group_id] = session
        return session

    async def settle(self, tx: KeyStoreTransaction, group_id: str) -> None:
        """Make the cached session of ``group_id`` match the store again if a received
        message's transaction did not commit (see ``_group_store.Unconfirmed``)."""
        if self.unconfirmed and not await self.unconfirmed.settle(
            tx, group_id, self.sessions.get(group_id)
        ):
            await self.reload(tx, group_id)

    async def reload_dirty(self) -> None:
        """A key-store commit failed: put the sessions it may have changed back as stored."""
        async with self.core.keys.transaction() as tx:
            for group_id in self.unconfirmed.group_ids():
                await self.settle(tx, group_id)

    async def ensure_loaded(self, group_id: str) -> None:
        """Reload ``group_id`` if the cache lost it (after :meth:`forget_uncommitted`)."""
        if group_id not in self.sessions:
            async with self.core.keys.transaction() as tx:
                await self.reload(tx, group_id)

    def require(self, group_id: str) -> GroupSession:
        """The session of ``group_id``; :class:`~omega.errors.UnknownGroupError` otherwise."""
        session = self.sessions.get(group_id.lower())
        if session is None:
            raise UnknownGroupError(f"no group {group_id}", details={"group_id": group_id})
        return session

    def state(self, group_id: str) -> GroupState:
        """The resolved state of ``group_id``."""
        return self.require(group_id).log.state

    @asynccontextmanager
    async def changing(
        self, group_id: str
    ) -> AsyncIterator[tuple[KeyStoreTransaction, GroupSession]]:
        """A key-store transaction and the session to change; saved on success.

        On failure the session is read back from the store: the cached one
        may hold the half-made change.
        """
        await self.ensure_loaded(group_id)
        try:
            async with self.core.keys.transaction() as tx:
                await self.settle(tx, group_id)
                session = self.require(group_id)
                yield tx, session
                await write_changes(tx, group_id, session.take_changes())
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with self.core.keys.transaction() as tx:
                    await self.reload(tx, group_id)
            raise

    # -- creating ---------------------------------------------------------------------
    async def create(
        self,
        name: str,
        members: Sequence[str],
        *,
        permissions: Permissions | None = None,
        avatar_hash: bytes = b"",
    ) -> GroupState:
        """Create a group with ``members`` (contacts); send them the log and our sender key."""
        core = self.core
        invited = list(dict.fromkeys(member.lower() for member in members))
        if core.user_id in invited:
            raise ConfigurationError("the creator is a member already; do not list yourself")
        if len(invited) + 1 > self.config.max_members:
            raise GroupPermissionError(
                f"a group holds at most {self.config.max_members} members",
                details={"reason": "the group is full"},
            )
        await self._require_contacts(invited)
        now = core.now()
        log, _ = GroupLog.create(
            core.identity.device,
            name=name,
            now=now,
            permissions=permissions,
            avatar_hash=avatar_hash,
            config=self.config,
            rng=core.rng,
        )
        for user_id in invited:
            log.add_member(core.identity.device, user_id, now=now)
        session = GroupSession.start(log, core.identity.device, rng=core.rng)
        async with core.keys.transaction() as tx:
            await write_changes(tx, log.group_id, session.take_changes())
        self.sessions[log.group_id] = session
        await core.emit(GroupCreated(group_id=log.group_id, state=log.state))
        await self.send_log(session, invited)
        await self.send_distribution(session, invited, session.outbound.distribution())
        return log.state

    async def _require_contacts(self, user_ids: Iterable[str]) -> None:
        async with self.core.db.transaction() as tx:
            for user_id in user_ids:
                contact = await tx.get_contact(user_id)
                if contact is None or contact.blocked:
                    raise UnknownContactError(
                        f"{user_id} is not a contact (or is blocked)", details={"user_id": user_id}
                    )

    async def ensure_contacts(self, user_ids: Iterable[str]) -> None:
        """Make every member a contact (unverified) so pairwise sessions can reach them."""
        core = self.core
        async with core.db.transaction() as tx:
            for user_id in user_ids:
                if user_id == core.user_id or await tx.get_contact(user_id) is not None:
                    continue
                await tx.put_contact(
                    ContactRecord(
                        user_id=user_id,
                        display_name="",
                        identity_key=identity_key_of(user_id),
                        added_at=core.now(),
                    )
                )

    # -- local changes ----------------------------------------------------------------
    async def change(self, group_id: str, kind: OperationKind, **arguments: object) -> GroupState:
        """Make one change (an operation of ``kind``) and send it to every member."""
        core = self.core
        device = core.identity.device
        now = core.now()
        group_id = group_id.lower()
        target = str(arguments.get("user_id", "")).lower()
        if kind is OperationKind.ADD_MEMBER:
            await self._require_contacts([target])
        async with self.changing(group_id) as (_, session):
            log = session.log
            before = log.state
            if kind is OperationKind.ADD_MEMBER:
                operation = log.add_member(device, target, now=now)
            elif kind is OperationKind.REMOVE_MEMBER:
                operation = log.remove_member(device, target, now=now)
            elif kind is OperationKind.LEAVE:
                operation = log.leave(device, now=now)
            elif kind is OperationKind.SET_ROLE:
                role = arguments["role"]
                assert isinstance(role, MemberRole)
                operation = log.set_role(device, target, role, now=now)
            elif kind is OperationKind.RENAME:
                operation = log.rename(device, str(arguments["name"]), now=now)
            elif kind is OperationKind.SET_AVATAR:
                avatar = arguments["avatar_hash"]
                assert isinstance(avatar, bytes)
                operation = log.set_avatar(device, avatar, now=now)
            else:
                permissions = arguments["permissions"]
                assert isinstance(permissions, Permissions)
                operation = log.set_permissions(device, permissions, now=now)
            rekey = session.after_local_change(rng=core.rng)
            after = log.state
        # Everyone who was or is a member hears of it: a removed member learns it was removed.
        recipients = (set(before.members) | set(after.members)) - {core.user_id}
        added = set(after.members) - set(before.members)
        signed = decode_message(SignedGroupOperation, operation, max_size=len(operation))
        batch = encode_message(GroupOperationBatch(operations=[signed]))
        for update in chunked_updates(log, batch):
            await self.send_pairwise(
                sorted(recipients - added), MessageContent(group_update=update)
            )
        if added:
            await self.ensure_contacts(added)
            await self.send_log(session, sorted(added))
            await self.send_distribution(session, sorted(added), session.outbound.distribution())
        if rekey is not None:
            await self.send_distribution(session, sorted(rekey.recipients), rekey.distribution)
        accepted = [OperationAccepted(operation=verify_operation(operation))]
        await self.report(group_id, before, after, accepted)
        return after

    # -- devices ----------------------------------------------------------------------
    async def rotate_sender_keys(self, group_ids: Iterable[str] | None = None) -> int:
        """Rotate our sender key in these groups (all we are a member of by default) and
        send the new distribution to every member device; returns how many rotated.

        The hook for device changes: after a device (ours or a member's) is
        revoked, what we send next is under a key it never got. Messages in
        flight under the previous key still open for the others.
        """
        rotated = 0
        for group_id in list(group_ids if group_ids is not None else self.sessions):
            session = self.sessions.get(group_id)
            if session is None or not session.log.state.is_member(self.core.user_id):
                continue
            async with self.changing(group_id) as (_, session):
                distribution = session.outbound.rotate(rng=self.core.rng)
            others = sorted(set(session.log.state.members) - {self.core.user_id})
            await self.send_distribution(session, others, distribution)
            for device_key in self.core.own_other_devices():
                await self.send_distribution(
                    session, [self.core.user_id], distribution, devices=[device_key]
                )
            rotated += 1
        return rotated

    async def _devices_changed(self, event: ContactDevicesChanged) -> None:
        """A member's device list changed: where a device left, rotate (the new key
        reaches every device still listed); where one joined, send it our current key."""
        shared = self._shared_with(event.user_id)
        if not shared:
            return
        if event.removed:
            await self.rotate_sender_keys(shared)
            return
        device_list = await self.core.cached_device_list(event.user_id)
        added = set(event.added)
        keys = [
            info.device_key
            for info in (device_list.devices if device_list is not None else ())
            if info.device_id in added
        ]
        for group_id in shared if keys else ():
            session = self.sessions[group_id]
            await self.send_distribution(
                session, [event.user_id], session.outbound.distribution(), devices=keys
            )

    async def _own_devices_changed(self, event: OwnDevicesChanged) -> None:
        """One of our devices was revoked: rotate everywhere. One was linked: send it
        each group's log (it joins like an invited member) and our current key."""
        if event.this_device_revoked:
            return
        mine = self._shared_with(self.core.user_id)
        if not mine:
            return
        if event.removed:
            await self.rotate_sender_keys(mine)
        added = set(event.added)
        keys = [
            info.device_key
            for info in self.core.identity.device_list.devices
            if info.device_id in added
        ]
        if not keys:
            return
        me = [self.core.user_id]
        for group_id in mine:
            session = self.sessions[group_id]
            for update in chunked_updates(session.log, session.log.export()):
                await self.send_pairwise(me, MessageContent(group_update=update), devices=keys)
            if not event.removed:  # a rotation already sent the new key to every device
                await self.send_distribution(
                    session, me, session.outbound.distribution(), devices=keys
                )

    def _shared_with(self, user_id: str) -> list[str]:
        """Groups where both ``user_id`` and we are members."""
        return [
            group_id
            for group_id, session in self.sessions.items()
            if session.log.state.is_member(user_id)
            and session.log.state.is_member(self.core.user_id)
        ]

    # -- sending ----------------------------------------------------------------------
    async def send_pairwise(
        self, user_ids: Sequence[str], content: MessageContent, *, devices: Sequence[bytes] = ()
    ) -> None:
        """Queue ``content`` for each user (all their devices, or ``devices``) pairwise."""
        for user_id in user_ids:
            if user_id == self.core.user_id and not devices:
                continue
            await self.core.queue(user_id, content, devices=list(devices) or None)

    async def send_log(self, session: GroupSession, user_ids: Sequence[str]) -> None:
        """Send the whole log (a new member's invitation) to ``user_ids``."""
        log = session.log
        for update in chunked_updates(log, log.export()):
            await self.send_pairwise(user_ids, MessageContent(group_update=update))

    async def send_distribution(
        self,
        session: GroupSession,
        user_ids: Sequence[str],
        distribution: bytes,
        *,
        devices: Sequence[bytes] = (),
    ) -> None:
        """Send our sender key ``distribution`` to ``user_ids`` over pairwise sessions."""
        if not user_ids:
            return
        content = MessageContent(
            sender_key_distribution=decode_message(SenderKeyDistribution, distribution)
        )
        await self.send_pairwise(user_ids, content, devices=devices)

    async def request_sync(
        self, group_id: str, user_id: str, device_key: bytes, *, sender_key: bool = False
    ) -> None:
        """Ask one member device for the operations we miss (and its sender key)."""
        session = self.sessions.get(group_id)
        heads = list(session.log.state.heads) if session is not None else []
        request = GroupSyncRequest(group_id=group_id, heads=heads, sender_key=sender_key)
        await self.send_pairwise(
            [user_id], MessageContent(group_sync=request), devices=[device_key]
        )

    async def send_message(
        self,
        group_id: str,
        content: MessageContent,
        *,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        ttl_seconds: int | None = None,
    ) -> StoredMessage | None:
        """Encrypt ``content`` once and queue it for every member device.

        Returns the history record (None for an edit or a delete, which change an
        existing message).
        """
        core = self.core
        group_id = group_id.lower()
        content = dataclasses.replace(content)
        if reply_to is not None:
            content.reply_to = reply_to
        if mentions:
            content.mentions = list(mentions)
        if ttl_seconds is not None:
            content.ttl_seconds = ttl_seconds
        kind = content_kind(content)
        if kind in _NOT_IN_GROUPS:
            raise ConfigurationError(f"{kind or 'empty'} content cannot be sent to a group")
        history_data = encode_content(content)
        message_id = core.new_message_id()
        now = core.now()
        data = encode_content(
            bind_content(content, message_id=message_id, timestamp=now, conversation_id=group_id)
        )
        async with self.changing(group_id) as (_, session):
            ciphertext = session.encrypt(data)
            members = [user_id for user_id in session.log.state.members if user_id != core.user_id]
        history: StoredMessage | None = None
        if kind not in ("edit", "delete"):
            # Encrypted and in the persistent outbox; per-device delivery is tracked
            # there and not aggregated into the message state (docs/groups.md).
            history = outgoing_record(
                content,
                history_data,
                message_id=message_id,
                conversation_id=group_id,
                user_id=core.user_id,
                device_key=core.device_key,
                now=now,
                state=DeliveryState.SENT,
                ttl_seconds=ttl_seconds,
            )
        await self._queue_group(
            group_id,
            members=members,
            message_id=message_id,
            data=data,
            ciphertext=ciphertext,
            now=now,
            history=history,
        )
        return history

    async def _queue_group(
        self,
        group_id: str,
        *,
        members: Sequence[str],
        message_id: str,
        data: bytes,
        ciphertext: bytes,
        now: int,
        history: StoredMessage | None,
    ) -> None:
        core = self.core
        targets: list[tuple[str, bytes]] = []
        for user_id in members:
            device_list = await core.cached_device_list(user_id)
            keys = (
                [info.device_key for info in device_list.devices]
                if device_list is not None
                else [identity_key_of(user_id)]  # a placeholder the outbox fans out
            )
            targets += [(user_id, key) for key in keys]
        targets += [(core.user_id, key) for key in core.own_other_devices()]
        expires_at = core.engine.expires_at(now)
        async with core.db.transaction() as tx:
            if history is not None:
                await tx.add_message(history)
            for owner, device_key in dict.fromkeys(targets):
                await tx.add_outbox(
                    OutboxEntry(
                        message_id=message_id,
                        recipient_id=owner,
                        recipient_device_key=device_key,
                        content=data,
                        ciphertext=self.envelope(group_id, message_id, device_key, now, ciphertext),
                        created_at=now,
                        next_attempt_at=now,
                        expires_at=expires_at,
                    )
                )
        core.outbox_wakeup.set()

    def envelope(
        self, group_id: str, message_id: str, device_key: bytes, now: int, ciphertext: bytes
    ) -> bytes:
        """The encoded frame carrying one group ciphertext to one member device."""
        core = self.core
        envelope = seal_envelope(
            core.identity.device,
            message_id=message_id,
            sender_id=core.user_id,
            recipient_id=group_id,
            recipient_device_key=device_key,
            timestamp=now,
            encryption=EncryptionKind.SENDER_KEY,
            encrypted_content=ciphertext,
        )
        return encode_message(Frame(message=envelope))

    # -- events -----------------------------------------------------------------------
    async def report(
        self,
        group_id: str,
        before: GroupState,
        after: GroupState,
        log_events: Sequence[LogEvent],
    ) -> None:
        """Emit the client events of a change from ``before`` to ``after``."""
        for event in client_events(group_id, before, after, log_events):
            await self.core.emit(event)
