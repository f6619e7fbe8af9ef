"""The client's side of multi-device sync: sync documents, persisted, sent and applied.

Local changes (contacts, conversations, settings, history) become Yjs updates
of this device's :class:`~omega.sync.SyncReplica`, persisted in the key store
and queued in the outbox for our other devices as ``MessageContent.sync``, so
they travel over the pairwise sessions, directly or through the store, and
wait for offline devices like any message. Updates from our other devices are
validated, persisted and materialised into the message store. At start a
device asks the others for what it misses (state vectors), which is also how
a newly linked device receives the whole history.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from omega.client._core import Core, identity_key_of
from omega.client.events import Event, MessageDeleted, MessageEdited, MessageReceived, SyncApplied
from omega.crypto.random import random_bytes
from omega.errors import InvalidSyncUpdateError
from omega.protocol import (
    MessageContent,
    SignedDeviceList,
    SyncContent,
    SyncedMessage,
    decode_message,
    encode_message,
)
from omega.session.content import decode_content, searchable_text
from omega.storage.message_base import (
    ContactRecord,
    DeliveryState,
    Direction,
    MessageStoreTransaction,
    StoredMessage,
)
from omega.sync import (
    CONTACT_FIELDS,
    CONTACTS,
    CONVERSATIONS,
    HISTORY_PREFIX,
    SETTINGS,
    Change,
    Reassembler,
    SyncReplica,
    SyncSchemas,
    Value,
    check_sync_content,
    decode_state_vector,
    history_document,
    pack_sync,
)

__all__ = ["SyncService", "synced_message"]

logger = logging.getLogger("omega.client")

_INDEX = "sync/index"
_COMPACT_AFTER = 64
_BACKFILLED = "sync/backfilled"


def synced_message(message: StoredMessage) -> bytes:
    """The history-document value of a stored message (an encoded ``SyncedMessage``)."""
    return encode_message(
        SyncedMessage(
            sender_id=message.sender_id,
            sender_device_key=message.sender_device_key,
            outgoing=message.direction is Direction.OUTGOING,
            timestamp=message.timestamp,
            received_at=message.received_at or 0,
            content=b"" if message.deleted else message.content,
            edited_at=message.edited_at or 0,
            deleted=message.deleted,
            expires_at=message.expires_at or 0,
        )
    )


def _stored(conversation_id: str, message_id: str, value: bytes) -> StoredMessage:
    synced = decode_message(SyncedMessage, value)
    text = (
        ""
        if synced.deleted or not synced.content
        else searchable_text(decode_content(synced.content))
    )
    content = b"" if synced.deleted else synced.content
    reply_to = decode_content(content).reply_to if content else None
    return StoredMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_id=synced.sender_id,
        sender_device_key=synced.sender_device_key,
        direction=Direction.OUTGOING if synced.outgoing else Direction.INCOMING,
        timestamp=synced.timestamp,
        received_at=synced.received_at or None,
        content=content,
        text=text,
        state=DeliveryState.SENT if synced.outgoing else DeliveryState.DELIVERED,
        reply_to=reply_to,
        expires_at=synced.expires_at or None,
        edited_at=synced.edited_at or None,
        deleted=synced.deleted,
    )


class SyncService:
    """This device's sync documents and their exchange with our other devices."""

    def __init__(self, core: Core, *, schemas: SyncSchemas | None = None) -> None:
        self._core = core
        self.replica = SyncReplica(core.device_key, schemas=schemas)
        self.change_hooks: list[Callable[[list[Change]], Awaitable[None]]] = []
        """Run with every batch of remote changes once they are materialised: documents
        this module does not know (a ``groups`` document) are materialised there."""
        self._reassembler = Reassembler()
        self._counts: dict[str, int] = {}
        self._loaded = False
        self.device_list_handler: Callable[[SignedDeviceList, bytes], Awaitable[None]] | None = None
        """Called with an own device list a sync message carried (and its sender)."""
        self.last_seen: dict[bytes, int] = {}
        """When we last heard from each of our other devices, Unix milliseconds."""
        core.add_handler(MessageReceived, self._on_message_event)
        core.add_handler(MessageEdited, self._on_message_event)
        core.add_handler(MessageDeleted, self._on_deleted_event)

    # -- persistence ------------------------------------------------------------
    async def load(self) -> None:
        """Restore the documents from the key store (once); write the history not yet in
        them (at the first start with sync)."""
        if self._loaded:
            return
        self._loaded = True
        core = self._core
        async with core.keys.transaction() as tx:
            index = await tx.load_blob(_INDEX)
            self._counts = json.loads(index) if index else {}
            for name, count in self._counts.items():
                updates = [await tx.load_blob(f"sync/{name}/base")]
                updates += [await tx.load_blob(f"sync/{name}/{i}") for i in range(count)]
                self.replica.load(name, [update for update in updates if update])
            backfilled = await tx.load_blob(_BACKFILLED)
        if backfilled is None and core.own_other_devices():
            await self.backfill()

    async def _persist(self, updates: Mapping[str, bytes]) -> None:
        async with self._core.keys.transaction() as tx:
            for name, update in updates.items():
                count = self._counts.get(name, 0)
                if count >= _COMPACT_AFTER:
                    await tx.save_blob(f"sync/{name}/base", self.replica.snapshot(name))
                    for i in range(count):
                        await tx.delete_blob(f"sync/{name}/{i}")
                    count = 0
                else:
                    await tx.save_blob(f"sync/{name}/{count}", update)
                    count += 1
                self._counts[name] = count
            await tx.save_blob(_INDEX, json.dumps(self._counts, sort_keys=True).encode())

    async def backfill(self) -> int:
        """Put every stored message missing from (or changed since) the history documents
        there; return how many. A device alone does not keep its history in the sync
        documents (one commit less per message): this runs when a device is added, and
        at the first start of a device that has others."""
        core = self._core
        updates: dict[str, bytes] = {}
        written = 0
        async with core.db.transaction() as tx:
            conversations = await tx.conversations()
            for conversation in conversations:
                messages = await _all_messages(tx, conversation.conversation_id)
                document = history_document(conversation.conversation_id)
                known = self.replica.entries(document)
                fresh = {
                    m.message_id: value
                    for m in messages
                    if known.get(m.message_id) != (value := synced_message(m))
                }
                if fresh and (update := self.replica.set(document, fresh)) is not None:
                    updates[document] = update
                    written += len(fresh)
        if updates:
            async with core.keys.transaction() as tx:
                for document in updates:
                    await tx.save_blob(f"sync/{document}/base", self.replica.snapshot(document))
                    self._counts.setdefault(document, 0)
                await tx.save_blob(_INDEX, json.dumps(self._counts, sort_keys=True).encode())
        async with core.keys.transaction() as tx:
            await tx.save_blob(_BACKFILLED, b"1")
        # Not sent: our other devices ask (at their start, or when they see we hold more).
        return written

    # -- local changes ----------------------------------------------------------
    async def record(self, document: str, changes: Mapping[str, Value]) -> None:
        """Record local changes of ``document`` and send them to our other devices."""
        await self.load()
        update = self.replica.set(document, changes)
        if update is None:
            return
        await self._persist({document: update})
        await self.send({document: update})

    async def contact_changed(self, contact: ContactRecord) -> None:
        """Sync a contact's name, verification, blocking and receipt options."""
        fields: dict[str, Value] = {
            f"{contact.user_id}/{name}": getattr(contact, name)
            for name in CONTACT_FIELDS
            if name != "added_at"
        }
        if self.replica.get(CONTACTS, f"{contact.user_id}/added_at") is None:
            fields[f"{contact.user_id}/added_at"] = contact.added_at
        await self.record(CONTACTS, fields)

    async def conversation_changed(self, conversation_id: str, **fields: Value) -> None:
        """Sync conversation fields (``archived``, ``muted_until``, ``read_up_to``)."""
        await self.record(
            CONVERSATIONS, {f"{conversation_id}/{name}": value for name, value in fields.items()}
        )

    async def message_stored(self, message: StoredMessage) -> None:
        """Sync a message of the history (new, edited or deleted), if we have other devices."""
        if not self._core.own_other_devices():
            return
        document = history_document(message.conversation_id)
        await self.record(document, {message.message_id: synced_message(message)})

    async def _on_message_event(self, event: Event) -> None:
        if not isinstance(event, MessageReceived | MessageEdited):  # pragma: no cover
            return
        message = event.message
        known = self.replica.get(history_document(message.conversation_id), message.message_id)
        if known is None or event.__class__ is MessageEdited:
            await self.message_stored(message)

    async def _on_deleted_event(self, event: Event) -> None:
        if not isinstance(event, MessageDeleted) or not self._core.own_other_devices():
            return
        document = history_document(event.conversation_id)
        value = self.replica.get(document, event.message_id)
        if isinstance(value, bytes):
            synced = decode_message(SyncedMessage, value)
            if not synced.deleted:
                tombstone = dataclasses.replace(synced, content=b"", deleted=True)
                await self.record(document, {event.message_id: encode_message(tombstone)})

    # -- sending ------------------------------------------------------------------
    async def send(
        self,
        updates: Mapping[str, bytes],
        *,
        request: bool = False,
        device_list: SignedDeviceList | None = None,
        devices: Iterable[bytes] | None = None,
    ) -> int:
        """Queue sync messages to our other devices (or ``devices``); return how many."""
        core = self._core
        targets = list(devices) if devices is not None else core.own_other_devices()
        if not targets:
            return 0
        contents = pack_sync(
            updates,
            request=self.replica.state_vectors() if request else None,
            device_list=device_list,
            transfer_id=random_bytes(core.rng, 16),
        )
        for content in contents:
            await core.queue(core.user_id, MessageContent(sync=content), devices=targets)
        return len(contents)

    async def request_catch_up(self, devices: Iterable[bytes] | None = None) -> int:
        """Ask our other devices (or ``devices``) for everything we miss."""
        return await self.send({}, request=True, devices=devices)

    # -- receiving ----------------------------------------------------------------
    async def receive(
        self, sender_device_key: bytes, sender_id: str, content: SyncContent
    ) -> list[Event]:
        """Apply a sync message from one of our devices; return the events to report.

        Raises :class:`~omega.errors.InvalidSyncUpdateError` (nothing applied
        from the faulty update) or a :class:`~omega.errors.CryptoError` for a
        sender that is not one of our active devices.
        """
        core = self._core
        if sender_id != core.user_id:
            raise InvalidSyncUpdateError(
                "sync from another user", details={"reason": "not_our_device"}
            )
        check_sync_content(content)
        await self.load()
        self.last_seen[sender_device_key] = core.now()
        if content.device_list is not None and self.device_list_handler is not None:
            await self.device_list_handler(content.device_list, sender_device_key)
        updates = [(u.document, u.update) for u in content.updates]
        if content.chunk is not None:
            whole = self._reassembler.add(sender_device_key, content.chunk)
            if whole is not None:
                updates.append((whole.document, whole.update))
        changes: list[Change] = []
        applied: dict[str, bytes] = {}
        behind = False
        for document, update in updates:
            try:
                found = self.replica.apply(
                    document,
                    update,
                    sender=sender_device_key,
                    device_list=core.identity.device_list,
                )
            except InvalidSyncUpdateError as exc:
                if exc.details.get("reason") != "out_of_order":
                    raise
                behind = True
                continue
            changes += found
            applied[document] = update
        events: list[Event] = []
        if applied:
            await self._persist(applied)
            await self._materialise(changes)
            for hook in list(self.change_hooks):
                await hook(changes)
            events.append(SyncApplied(documents=tuple(sorted(applied)), changes=len(changes)))
        if behind:
            await self.request_catch_up([sender_device_key])
        if content.has_request:
            vectors = {item.document: item.state_vector for item in content.request}
            missing = self.replica.missing_all(vectors)
            if missing:
                await self.send(missing, devices=[sender_device_key])
            if self._holds_more(vectors):
                await self.request_catch_up([sender_device_key])
        return events

    def _holds_more(self, vectors: Mapping[str, bytes]) -> bool:
        """True when a requester's state vectors show updates we lack."""
        for document, vector in vectors.items():
            ours = decode_state_vector(self.replica.state_vector(document))
            theirs = decode_state_vector(vector)
            if any(clock > ours.get(client, 0) for client, clock in theirs.items()):
                return True
        return False

    def forget_device(self, device_key: bytes) -> None:
        """Drop what we hold from a revoked device (open chunked transfers)."""
        self._reassembler.forget(device_key)
        self.last_seen.pop(device_key, None)

    # -- materialising -------------------------------------------------------------
    async def _materialise(self, changes: list[Change]) -> None:
        contacts: dict[str, dict[str, Value]] = {}
        conversations: dict[str, dict[str, Value]] = {}
        history: list[Change] = []
        for change in changes:
            if change.value is None:
                continue
            if change.document == CONTACTS:
                user_id, _, name = change.key.rpartition("/")
                contacts.setdefault(user_id, {})[name] = change.value
            elif change.document == CONVERSATIONS:
                conversation_id, _, name = change.key.rpartition("/")
                conversations.setdefault(conversation_id, {})[name] = change.value
            elif change.document.startswith(HISTORY_PREFIX):
                history.append(change)
        async with self._core.db.transaction() as tx:
            for change in history:
                await _apply_history(tx, change)
            for user_id, fields in contacts.items():
                await self._apply_contact(tx, user_id, fields)
            for conversation_id, fields in conversations.items():
                await _apply_conversation(tx, conversation_id, fields)

    async def _apply_contact(
        self, tx: MessageStoreTransaction, user_id: str, fields: dict[str, Value]
    ) -> None:
        if user_id == self._core.user_id:
            return
        contact = await tx.get_contact(user_id)
        if contact is None:
            added_at = fields.get("added_at", self._core.now())
            contact = ContactRecord(
                user_id=user_id,
                display_name="",
                identity_key=identity_key_of(user_id),
                added_at=int(added_at) if isinstance(added_at, int | float) else 0,
            )
        changes = {
            name: value
            for name, value in fields.items()
            if name in CONTACT_FIELDS and name != "added_at"
        }
        await tx.put_contact(dataclasses.replace(contact, **changes))  # type: ignore[arg-type]

    # -- settings -----------------------------------------------------------------
    def settings(self) -> dict[str, Value]:
        """Every synced setting."""
        return self.replica.entries(SETTINGS)

    async def set_setting(self, name: str, value: Value) -> None:
        """Set a synced setting (name ``[a-z0-9][a-z0-9._-]{0,63}``; str, bool or number)."""
        await self.record(SETTINGS, {name: value})


async def _all_messages(tx: MessageStoreTransaction, conversation_id: str) -> list[StoredMessage]:
    messages: list[StoredMessage] = []
    before: int | None = None
    while True:
        page = await tx.messages(conversation_id, limit=1000, before=before)
        messages.extend(page)
        if len(page) < 1000:
            return messages
        before = page[-1].timestamp


async def _apply_history(tx: MessageStoreTransaction, change: Change) -> None:
    conversation_id = change.document[len(HISTORY_PREFIX) :]
    assert isinstance(change.value, bytes)
    incoming = _stored(conversation_id, change.key, change.value)
    existing = await tx.get_message(conversation_id, change.key)
    if existing is None:
        if not incoming.deleted:
            await tx.add_message(incoming)
        return
    if incoming.deleted and not existing.deleted:
        await tx.replace_message(dataclasses.replace(existing, content=b"", text="", deleted=True))
    elif (incoming.edited_at or 0) > (existing.edited_at or 0) and not existing.deleted:
        await tx.replace_message(
            dataclasses.replace(
                existing,
                content=incoming.content,
                text=incoming.text,
                edited_at=incoming.edited_at,
            )
        )


async def _apply_conversation(
    tx: MessageStoreTransaction, conversation_id: str, fields: dict[str, Value]
) -> None:
    conversation = await tx.get_conversation(conversation_id)
    if conversation is not None and ("archived" in fields or "muted_until" in fields):
        archived = fields.get("archived", conversation.archived)
        muted = fields.get("muted_until", conversation.muted_until)
        await tx.put_conversation(
            dataclasses.replace(
                conversation,
                archived=bool(archived),
                muted_until=int(muted) if isinstance(muted, int | float) and muted else None,
            )
        )
    read_up_to = fields.get("read_up_to")
    if isinstance(read_up_to, int | float):
        for message in await tx.messages(conversation_id, limit=1000):
            if (
                message.direction is Direction.INCOMING
                and message.state is DeliveryState.DELIVERED
                and message.timestamp <= read_up_to
            ):
                await tx.set_message_state(conversation_id, message.message_id, DeliveryState.READ)
