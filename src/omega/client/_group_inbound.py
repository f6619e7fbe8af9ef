"""Receiving for groups: sender-key envelopes, and what members send over pairwise sessions.

The inbound path (:mod:`omega.client._inbound`) hands over:

* a ``SENDER_KEY`` envelope to :meth:`GroupInbound.decrypt`, inside the
  key-store transaction that also commits the plaintext to the inbox (it
  writes the sender's record alone, see :mod:`omega.client._group_store`);
* every applied inbox entry that belongs to a group (its conversation is a
  group id, or its kind is one of
  :data:`~omega.client._groups.GROUP_CONTENT_KINDS`) to
  :meth:`GroupInbound.apply`.

Every group change is applied before the message is marked seen, and
applying twice changes nothing (operations are deduplicated by id,
distributions by key id), so a crash in between loses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Sequence

import anyio

from omega.client._group_events import (
    GroupJoined,
    GroupMentioned,
    GroupMessageReceived,
    GroupOperationRefused,
)
from omega.client._group_parts import chunked_updates, client_events, is_group_id
from omega.client._group_store import write_changes
from omega.client._groups import GROUP_CONTENT_KINDS, Groups
from omega.client._records import received_record
from omega.client.events import Event, MessageDeleted, MessageEdited, ReactionReceived
from omega.crypto.sender_keys import read_sender_key_distribution
from omega.errors import (
    CryptoError,
    InvalidEnvelopeError,
    InvalidGroupOperationError,
    OmegaError,
    StaleSenderKeyError,
    UnknownSenderKeyError,
)
from omega.groups import GroupLog, GroupSession, OperationRefused
from omega.groups.events import GroupEvent as LogEvent
from omega.protocol import (
    GroupSyncRequest,
    GroupUpdate,
    Message,
    MessageContent,
    encode_message,
)
from omega.session.content import content_kind, decode_content
from omega.session.envelope import EnvelopeInfo, check_binding
from omega.storage.base import InboxEntry, KeyStoreTransaction
from omega.storage.message_base import StoredMessage

__all__ = ["GroupInbound"]

logger = logging.getLogger("omega.client")

_STORED_KINDS = frozenset({"text", "media", "location", "contact", "sticker", "reaction"})
_MAX_HELD_GROUPS = 64
_MAX_HELD_PER_GROUP = 512
_MAX_CANDIDATES = 16
_MAX_CANDIDATE_OPERATIONS = 4096  # bounds the memory of logs not (yet) listing us: ~1.5 MB each
_RETRY_FOR_MS = 5 * 60_000
_ASK_AFTER_MS = 30_000
_SYNC_INTERVAL_MS = 5_000


class GroupInbound:
    """What a client does with group traffic it receives."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups
        self.core = groups.core
        # Distributions that arrived before the log that makes their sender a member.
        self._held: OrderedDict[str, list[tuple[str, bytes, bytes]]] = OrderedDict()
        # Logs of groups that do not (yet) list us: an invitation arriving in chunks.
        self._candidates: OrderedDict[str, GroupLog] = OrderedDict()
        self._retries: OrderedDict[tuple[bytes, str], int] = OrderedDict()
        self._asked: dict[tuple[str, bytes], int] = {}

    # -- sender-key envelopes -------------------------------------------------------
    async def decrypt(self, tx: KeyStoreTransaction, info: EnvelopeInfo, message: Message) -> bytes:
        """Decrypt a group message inside the inbox transaction ``tx``; save the advanced keys.

        Raises :class:`~omega.errors.UnknownSenderKeyError` for a group or a
        sender key we do not hold (yet), :class:`~omega.errors.StaleSenderKeyError`,
        :class:`~omega.errors.InvalidEnvelopeError` for a non-member or a
        member who may not post, and what decryption raises; nothing changes then.
        """
        group_id = info.recipient_id
        groups = self.groups
        session = None
        if is_group_id(group_id):
            await groups.settle(tx, group_id)
            session = groups.sessions.get(group_id) or await groups.reload(tx, group_id)
        if session is None:
            raise UnknownSenderKeyError(
                "a message for a group we are not in (yet)", details={"key_id": None}
            )
        device_key = info.sender_device_key
        try:
            plaintext = session.decrypt(info.sender_id, device_key, message.encrypted_content)
            check_binding(info, decode_content(plaintext))
        except CryptoError as exc:
            # Forged or damaged: refused, never a reason to reset the pairwise session.
            await self._undo(tx, group_id, session, device_key)
            raise InvalidEnvelopeError(
                f"group message refused: {exc.message}", details={"reason": "group_decryption"}
            ) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._undo(tx, group_id, session, device_key)
            raise
        changes = session.take_changes()
        # Until this transaction is known to have committed (GroupInbound.committed).
        groups.unconfirmed.wrote(group_id, (device_key, info.message_id), changes)
        await write_changes(tx, group_id, changes)
        return plaintext

    def committed(self, info: EnvelopeInfo) -> None:
        """The transaction that decrypted the group message ``info`` committed: its writes
        are in the store, nothing to compare at the next use of the group."""
        self.groups.unconfirmed.committed(
            info.recipient_id, (info.sender_device_key, info.message_id)
        )

    async def _undo(
        self, tx: KeyStoreTransaction, group_id: str, session: GroupSession, device_key: bytes
    ) -> None:
        """A decryption failed after it may have advanced the sender's chain in memory:
        read that sender's record back (the whole session while not stored in parts)."""
        if session.needs_record:
            await self.groups.reload(tx, group_id)
            return
        try:
            session.restore_sender(device_key, await tx.load_group_sender(group_id, device_key))
        except OmegaError:
            await self.groups.reload(tx, group_id)

    async def undecryptable(self, info: EnvelopeInfo, exc: UnknownSenderKeyError) -> bool:
        """A group message we hold no key for: True to leave it unacknowledged (retried).

        Its distribution may still be on the way (another path, or the log
        that makes the sender a member): the sender's outbox or the store
        delivers it again. Five minutes after it first arrived, or at once for a
        stale key, it is refused. From 30 s on, the sender is asked (at most
        every 5 s) for its current sender key: that opens its next messages.
        """
        if isinstance(exc, StaleSenderKeyError):
            return False
        key = (info.sender_device_key, info.message_id)
        now = self.core.now()
        first = self._retries.pop(key, now)
        if now - first > _RETRY_FOR_MS:
            return False
        self._retries[key] = first
        while len(self._retries) > 4096:
            self._retries.popitem(last=False)
        if (
            now - first >= _ASK_AFTER_MS
            and is_group_id(info.recipient_id)
            and info.recipient_id in self.groups.sessions
        ):
            # The distribution looks lost. A fresh one starts at the sender's next message
            # (a chain never rewinds): this one stays unreadable, the next ones will not.
            await self._ask(info.recipient_id, info.sender_id, info.sender_device_key, key=True)
        return True

    async def _ask(self, group_id: str, user_id: str, device_key: bytes, *, key: bool) -> None:
        now = self.core.now()
        last = self._asked.get((group_id, device_key))
        if last is not None and now - last < _SYNC_INTERVAL_MS:
            return
        self._asked[(group_id, device_key)] = now
        if len(self._asked) > 4096:
            self._asked.clear()
        await self.groups.request_sync(group_id, user_id, device_key, sender_key=key)

    # -- applying -------------------------------------------------------------------
    def handles(self, wrapper: Message, content: MessageContent) -> bool:
        """True when the entry is group traffic (pairwise group kinds, or a group message)."""
        return content_kind(content) in GROUP_CONTENT_KINDS or is_group_id(wrapper.recipient_id)

    async def apply(
        self, entry: InboxEntry, wrapper: Message, content: MessageContent
    ) -> list[Event]:
        """Apply one group inbox entry; return the events to report."""
        core = self.core
        sender_id = wrapper.sender_id.lower()
        kind = content_kind(content)
        if is_group_id(wrapper.recipient_id):  # its decryption committed: the entry is here
            message = (entry.sender_device_key, wrapper.message_id)
            self.groups.unconfirmed.committed(wrapper.recipient_id, message)
        events: list[Event] = []
        try:
            if kind == "group_update":
                assert content.group_update is not None
                events = await self._update(
                    sender_id, entry.sender_device_key, content.group_update
                )
            elif kind == "sender_key_distribution":
                assert content.sender_key_distribution is not None
                data = encode_message(content.sender_key_distribution)
                events = await self._distribution(sender_id, entry.sender_device_key, data)
            elif kind == "group_sync":
                assert content.group_sync is not None
                await self._sync(sender_id, entry.sender_device_key, content.group_sync)
        except OmegaError as exc:
            group_id = _group_of(content) or wrapper.recipient_id
            events = [
                GroupOperationRefused(
                    group_id=group_id, sender_id=sender_id, code=exc.code, reason=exc.message
                )
            ]
        if kind in ("group_update", "sender_key_distribution", "group_sync"):
            async with core.db.transaction() as tx:
                if not await tx.mark_seen(entry.sender_device_key, wrapper.message_id, core.now()):
                    return []
            return events
        return await self._message(entry, wrapper, content)

    # -- operations -----------------------------------------------------------------
    async def _update(self, sender_id: str, device_key: bytes, update: GroupUpdate) -> list[Event]:
        group_id = update.group_id
        if not is_group_id(group_id):
            raise InvalidGroupOperationError(
                "malformed group id in an update", details={"reason": "group_id"}
            )
        batch = update.operations
        await self.groups.ensure_loaded(group_id)
        if group_id not in self.groups.sessions:
            return await self._invitation(sender_id, group_id, batch)
        async with self.groups.changing(group_id) as (_, session):
            before = session.log.state
            log_events, rekey = session.receive_operations(batch, rng=self.core.rng)
            after = session.log.state
            missing = session.log.pending_count > 0 or any(
                head not in session.log for head in update.heads
            )
        events: list[Event] = _refusals(group_id, sender_id, log_events)
        added = sorted(set(after.members) - set(before.members) - {self.core.user_id})
        if added:
            await self.groups.ensure_contacts(added)
        if after.is_member(self.core.user_id):
            distribution = session.outbound.distribution()
            await self.groups.send_distribution(session, added, distribution)
            if rekey is not None:
                await self.groups.send_distribution(
                    session, sorted(rekey.recipients), rekey.distribution
                )
        events += client_events(group_id, before, after, log_events)
        if missing:
            await self._ask(group_id, sender_id, device_key, key=False)
        events += await self._release_held(group_id)
        return events

    async def _invitation(self, sender_id: str, group_id: str, batch: bytes) -> list[Event]:
        """Operations of a group we are not in: an invitation (maybe in several chunks)."""
        core = self.core
        candidate = self._candidates.pop(group_id, None)
        if candidate is None:
            candidate, log_events = GroupLog.from_batch(batch, config=self.groups.config)
            if candidate.group_id != group_id:
                raise InvalidGroupOperationError(
                    "the log is for another group", details={"reason": "group_id"}
                )
        else:
            log_events = candidate.receive_batch(batch)
        state = candidate.state
        if not (state.is_member(core.user_id) and state.is_member(sender_id)):
            if state.operation_count + candidate.pending_count > _MAX_CANDIDATE_OPERATIONS:
                raise InvalidGroupOperationError(
                    "an invitation that never lists us grows too long",
                    details={"reason": "capacity"},
                )
            self._candidates[group_id] = candidate
            while len(self._candidates) > _MAX_CANDIDATES:
                self._candidates.popitem(last=False)
            return _refusals(group_id, sender_id, log_events)
        session = GroupSession.start(candidate, core.identity.device, rng=core.rng)
        async with core.keys.transaction() as tx:
            await write_changes(tx, group_id, session.take_changes())
        self.groups.sessions[group_id] = session
        others = sorted(set(state.members) - {core.user_id})
        await self.groups.ensure_contacts(others)
        await self.groups.send_distribution(session, others, session.outbound.distribution())
        events: list[Event] = _refusals(group_id, sender_id, log_events)
        events.append(GroupJoined(group_id=group_id, state=state, invited_by=sender_id))
        return events + await self._release_held(group_id)

    async def _sync(self, sender_id: str, device_key: bytes, request: GroupSyncRequest) -> None:
        session = self.groups.sessions.get(request.group_id)
        if session is None or not session.log.state.is_member(sender_id):
            logger.info("event=group_sync_ignored group=%s", request.group_id[:16])
            return
        log = session.log
        for update in chunked_updates(log, log.export(since=request.heads)):
            await self.groups.send_pairwise(
                [sender_id], MessageContent(group_update=update), devices=[device_key]
            )
        if request.sender_key and log.state.is_member(self.core.user_id):
            await self.groups.send_distribution(
                session, [sender_id], session.outbound.distribution(), devices=[device_key]
            )

    # -- sender keys ------------------------------------------------------------------
    async def _distribution(self, sender_id: str, device_key: bytes, data: bytes) -> list[Event]:
        info = read_sender_key_distribution(data)
        group_id = info.group_id
        session = self.groups.sessions.get(group_id)
        if session is None or not session.log.state.is_member(sender_id):
            held = self._held.setdefault(group_id, [])
            if len(held) < _MAX_HELD_PER_GROUP:
                held.append((sender_id, device_key, data))
            self._held.move_to_end(group_id)
            while len(self._held) > _MAX_HELD_GROUPS:
                self._held.popitem(last=False)
            return []
        async with self.groups.changing(group_id) as (_, session):
            session.add_distribution(sender_id, device_key, data)
        return []

    async def _release_held(self, group_id: str) -> list[Event]:
        """Apply distributions held for ``group_id`` whose sender is now a member."""
        held = self._held.pop(group_id, [])
        session = self.groups.sessions.get(group_id)
        if not held or session is None:
            return []
        events: list[Event] = []
        waiting: list[tuple[str, bytes, bytes]] = []
        for sender_id, device_key, data in held:
            if not session.log.state.is_member(sender_id):
                waiting.append((sender_id, device_key, data))
                continue
            try:
                async with self.groups.changing(group_id) as (_, session):
                    session.add_distribution(sender_id, device_key, data)
            except OmegaError as exc:
                events.append(
                    GroupOperationRefused(
                        group_id=group_id, sender_id=sender_id, code=exc.code, reason=exc.message
                    )
                )
        if waiting:
            self._held[group_id] = waiting
        return events

    # -- group messages -----------------------------------------------------------------
    async def _message(
        self, entry: InboxEntry, wrapper: Message, content: MessageContent
    ) -> list[Event]:
        core = self.core
        group_id = wrapper.recipient_id
        sender_id = wrapper.sender_id.lower()
        kind = content_kind(content)
        stored = _stored(entry, wrapper, content, core.user_id) if kind in _STORED_KINDS else None
        async with core.db.transaction() as tx:
            if not await tx.mark_seen(entry.sender_device_key, wrapper.message_id, core.now()):
                return []
            if stored is not None and not await tx.add_message(stored):
                return []
        if kind == "reaction":
            assert content.reaction is not None
            return [
                ReactionReceived(
                    conversation_id=group_id,
                    target_message_id=content.reaction.target_message_id,
                    sender_id=sender_id,
                    emoji=content.reaction.emoji,
                )
            ]
        if stored is not None:
            events: list[Event] = [
                GroupMessageReceived(group_id=group_id, message=stored, content=content)
            ]
            if core.user_id in content.mentions and sender_id != core.user_id:
                events.append(
                    GroupMentioned(group_id=group_id, message=stored, sender_id=sender_id)
                )
            return events
        if kind in ("edit", "delete"):
            return await self._change(wrapper, content, group_id, sender_id)
        logger.info("event=ignored kind=%s group=%s", kind or "empty", group_id[:16])
        return []

    async def _change(
        self, wrapper: Message, content: MessageContent, group_id: str, sender_id: str
    ) -> list[Event]:
        core = self.core
        session = self.groups.sessions.get(group_id)
        may_moderate = session is not None and session.log.state.may_delete_for_everyone(sender_id)
        change = content.edit if content.edit is not None else content.delete
        assert change is not None
        async with core.db.transaction() as tx:
            target = await tx.get_message(group_id, change.target_message_id)
            if target is None or target.deleted:
                return []
            own = target.sender_id == sender_id
            if content.edit is not None:
                if not own or content.edit.text is None:
                    raise InvalidEnvelopeError(
                        "only the author edits a message", details={"reason": "not_author"}
                    )
                updated = dataclasses.replace(
                    target,
                    content=encode_message(
                        MessageContent(text=content.edit.text, reply_to=target.reply_to)
                    ),
                    text=content.edit.text.text,
                    edited_at=wrapper.timestamp,
                )
                await tx.replace_message(updated)
                return [MessageEdited(message=updated)]
            if not (own or may_moderate):
                raise InvalidEnvelopeError(
                    "the sender may not delete others' messages", details={"reason": "not_allowed"}
                )
            await tx.replace_message(
                dataclasses.replace(target, content=b"", text="", deleted=True)
            )
        return [
            MessageDeleted(
                conversation_id=group_id,
                message_id=target.message_id,
                for_everyone=True,
                deleted_by=sender_id,
            )
        ]


def _refusals(group_id: str, sender_id: str, log_events: Sequence[LogEvent]) -> list[Event]:
    return [
        GroupOperationRefused(
            group_id=group_id, sender_id=sender_id, code=event.code, reason=event.reason
        )
        for event in log_events
        if isinstance(event, OperationRefused)
    ]


def _group_of(content: MessageContent) -> str:
    for part in (content.group_update, content.group_sync, content.sender_key_distribution):
        if part is not None:
            return str(part.group_id)
    return ""


def _stored(
    entry: InboxEntry, wrapper: Message, content: MessageContent, user_id: str
) -> StoredMessage:
    return received_record(
        entry, wrapper, content, user_id=user_id, conversation_id=wrapper.recipient_id
    )
