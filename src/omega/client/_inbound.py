"""The inbound path: frames from connections and the store, envelopes, contents.

An envelope is verified (signature, recipient, sender's device), decrypted,
and its plaintext committed to the key store's inbox in the same transaction
that saves the advanced ratchet state; only then is it acknowledged. The
inbox is then applied to the message store (history, edits, deletes,
receipts) and reported as events. A crash anywhere in between loses nothing:
the inbox is applied again at start, and applying is idempotent (dedupe by
sending device and message id).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hmac
import logging
from collections.abc import Awaitable, Callable

import betterproto2

from omega.client._core import Core, identity_key_of
from omega.client._group_inbound import GroupInbound
from omega.client._links import Links
from omega.client._outbox import Outbox
from omega.client._records import received_record
from omega.client._resets import Resets
from omega.client._sessions import load_sessions, save_sessions
from omega.client.events import (
    DeliveryStateChanged,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageRefused,
    ReactionReceived,
    TypingChanged,
)
from omega.crypto import PrekeyStore, accept_session
from omega.crypto.identity import user_id_from_public_key
from omega.crypto.x3dh import verify_prekey_bundle
from omega.errors import (
    CryptoError,
    DuplicateMessageError,
    InvalidEnvelopeError,
    OmegaError,
    RemoteProtocolError,
    StorageError,
    TooManySkippedMessagesError,
    UnknownPrekeyError,
    UnknownSenderKeyError,
)
from omega.mailbox.base import StoredEnvelope
from omega.protocol import (
    Ack,
    AckStatus,
    DeviceCertificate,
    EncryptionKind,
    Frame,
    KeyRequest,
    Message,
    MessageContent,
    PrekeyMessage,
    ReceiptContent,
    ReceiptType,
    SessionResetRequest,
    SignedSessionResetRequest,
    SyncContent,
    decode_message,
    encode_message,
)
from omega.session.content import content_kind, decode_content
from omega.session.envelope import EnvelopeInfo, check_binding, verify_envelope
from omega.session.sessions import decrypt_with_any, session_for_prekey
from omega.storage.base import InboxEntry
from omega.storage.message_base import ContactRecord, DeliveryState, Direction, StoredMessage
from omega.transport.manager import PeerConnection

__all__ = ["Inbound", "Receipt"]

logger = logging.getLogger("omega.client")

_STORED_KINDS = frozenset({"text", "media", "location", "contact", "sticker", "reaction"})
_RESET_CAUSES = (CryptoError, UnknownPrekeyError, TooManySkippedMessagesError)
_OFFER_INTERVAL_MS = 60_000


class Receipt(enum.Enum):
    """What becomes of an envelope, and so whether it is acknowledged."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    RESET_REQUESTED = "reset_requested"
    RETRY = "retry"
    """A local failure (disk): keep it in the store, do not acknowledge."""


class _NoSessionError(RemoteProtocolError):
    code = "no_session"


class Inbound:
    """Receives frames and envelopes for one client."""

    def __init__(self, core: Core, links: Links, outbox: Outbox) -> None:
        self._core = core
        self._links = links
        self._outbox = outbox
        self._resets = Resets(core, links, outbox)
        self._offered: dict[bytes, int] = {}
        self._handed_out: set[int] = set()  # one-time prekey ids already offered
        self._applied: list[str] = []  # inbox entries applied, removed with the next commit
        self.sync_handler: Callable[[bytes, str, SyncContent], Awaitable[list[Event]]] | None = None
        """Applies sync messages from our own devices (omega.client._sync)."""
        self.groups: GroupInbound | None = None
        """Group traffic goes there (set by the client)."""

    # -- connections ----------------------------------------------------
    async def on_connected(self, connection: PeerConnection) -> None:
        """Introduce ourselves and flush what waits for that device."""
        await self._links.send(
            connection, Frame(device_list=self._core.identity.device_list.to_signed())
        )
        peer = connection.peer
        await self._outbox.peer_connected(peer.user_id, peer.device_key)

    async def on_frame(self, connection: PeerConnection, frame: Frame) -> None:
        """Handle one frame from an authenticated connection."""
        peer = connection.peer
        kind, body = betterproto2.which_one_of(frame, "body")
        if kind == "message" and isinstance(body, Message):

            async def acknowledge(status: AckStatus = AckStatus.DELIVERED) -> None:
                ack = Ack(message_id=body.message_id, timestamp=self._core.now(), status=status)
                await self._links.send(connection, Frame(ack=ack))

            # A fresh message is acknowledged as soon as it is committed, before the
            # application hears of it (it may close the client from its handler).
            outcome = await self.receive_envelope(
                body, connection=connection, on_committed=lambda _entry: acknowledge()
            )
            if outcome is Receipt.DUPLICATE:
                await acknowledge()
            elif outcome is Receipt.REFUSED:
                await acknowledge(AckStatus.REJECTED)
        elif kind == "ack" and isinstance(body, Ack):
            if body.status == AckStatus.REJECTED:
                await self._outbox.rejected(peer.device_key, body.message_id, body.reason)
            else:
                await self._outbox.acknowledged(peer.device_key, [body.message_id])
        elif kind == "key_request" and isinstance(body, KeyRequest):
            await self._answer_key_request(connection, body)
        elif kind == "prekey_bundle":
            assert frame.prekey_bundle is not None
            bundle = verify_prekey_bundle(frame.prekey_bundle, user_id=peer.user_id)
            if hmac.compare_digest(bundle.device_key, peer.device_key):
                self._outbox.offer_bundle(peer.device_key, bundle)
        elif kind == "device_list" and frame.device_list is not None:
            await self._core.accept_device_list(peer.user_id, frame.device_list)
        elif kind == "session_reset" and isinstance(body, SignedSessionResetRequest):
            await self._resets.handle(body, expected_user_id=peer.user_id)
        else:
            logger.info("event=frame_ignored kind=%s peer=%s", kind or "empty", peer.device_id)

    async def _answer_key_request(self, connection: PeerConnection, request: KeyRequest) -> None:
        core = self._core
        device = core.identity.device
        if request.device_list:
            await self._links.send(
                connection, Frame(device_list=core.identity.device_list.to_signed())
            )
        if not request.prekey_bundle:
            return
        peer_key = connection.peer.device_key
        now = core.now()
        last = self._offered.get(peer_key)
        async with core.keys.transaction() as tx:
            state = await tx.load_prekeys()
            if state is None:  # pragma: no cover - the client creates them at start
                return
            prekeys = PrekeyStore.from_bytes(state)
            one_time = None
            if last is None or now - last >= _OFFER_INTERVAL_MS:
                # Each one-time prekey is offered to one requester only (X3DH refuses a
                # second use); when every key in the pool was offered, the bundle has
                # none and the session relies on the signed prekey alone.
                pool_ids = {k.prekey_id for k in prekeys.one_time_prekeys}
                self._handed_out &= pool_ids  # consumed keys leave the pool: forget them
                fresh = [k for k in prekeys.one_time_prekeys if k.prekey_id not in self._handed_out]
                if fresh:
                    one_time = fresh[0].prekey_id
                    self._handed_out.add(one_time)
                self._offered[peer_key] = now
            bundle = prekeys.build_bundle(device.certificate, one_time_prekey_id=one_time)
        await self._links.send(connection, Frame(prekey_bundle=bundle))

    # -- the store --------------------------------------------------------
    async def receive_stored(self, stored: StoredEnvelope) -> bool:
        """Handle one envelope fetched from the store; True when it may be deleted there."""
        try:
            frame = decode_message(Frame, stored.payload)
        except OmegaError as exc:
            await self._refused(exc, None, stored.message_id)
            return True
        kind, body = betterproto2.which_one_of(frame, "body")
        if kind == "message" and isinstance(body, Message):
            committed: list[InboxEntry] = []

            async def remember(entry: InboxEntry) -> None:
                committed.append(entry)

            outcome = await self.receive_envelope(body, connection=None, on_committed=remember)
            if (
                outcome is Receipt.ACCEPTED
                and body.sender_id.lower() != self._core.user_id
                and not any(_is_receipt(entry) for entry in committed)
            ):
                # Not for a receipt: that would be answered in turn, forever.
                await self._send_delivery_receipt(body)
            return outcome is not Receipt.RETRY
        if kind == "session_reset" and isinstance(body, SignedSessionResetRequest):
            try:
                request = decode_message(SessionResetRequest, body.request)
                certificate = request.device_certificate
                if certificate is None:
                    raise RemoteProtocolError("reset request without a certificate")
                claimed = decode_message(DeviceCertificate, certificate.certificate)
                user_id = user_id_from_public_key(claimed.identity_key)
                await self._resets.handle(body, expected_user_id=user_id)
            except OmegaError as exc:
                await self._refused(exc, None, stored.message_id)
            return True
        await self._refused(
            RemoteProtocolError(f"unexpected {kind or 'empty'} frame in the store"),
            None,
            stored.message_id,
        )
        return True

    async def _send_delivery_receipt(self, message: Message) -> None:
        content = MessageContent()
        content.receipt = _receipt(ReceiptType.DELIVERED, [message.message_id], self._core.now())
        await self._core.queue(
            message.sender_id.lower(), content, devices=[message.sender_device_key]
        )

    # -- envelopes --------------------------------------------------------
    async def receive_envelope(
        self,
        message: Message,
        *,
        connection: PeerConnection | None,
        on_committed: Callable[[InboxEntry], Awaitable[None]] | None = None,
    ) -> Receipt:
        """Verify, decrypt and commit one envelope to the inbox, then apply it.

        ``on_committed`` runs with the inbox entry once a fresh message is durably there and
        before it is applied and reported (the direct path acknowledges there).
        """
        core = self._core
        try:
            info = verify_envelope(message, local_device_key=core.device_key)
            if connection is not None and not (
                hmac.compare_digest(connection.peer.device_key, info.sender_device_key)
                and connection.peer.user_id == info.sender_id
            ):
                raise InvalidEnvelopeError(
                    "the envelope's sender is not the connected peer",
                    details={"reason": "not_the_peer"},
                )
            contact = await self._sender_contact(info)
        except OmegaError as exc:
            await self._refused(exc, message.sender_id, message.message_id)
            return Receipt.REFUSED
        if contact is not None and contact.blocked:
            await self._refused(
                RemoteProtocolError("the sender is blocked"), info.sender_id, info.message_id
            )
            return Receipt.DUPLICATE  # acknowledged, so the sender stops; nothing stored
        try:
            fresh = await self._decrypt(info, message)
        except DuplicateMessageError:
            return Receipt.DUPLICATE
        except (_NoSessionError, *_RESET_CAUSES) as exc:
            if not await self._known_device(info):
                await self._refused(exc, info.sender_id, info.message_id)
                return Receipt.REFUSED
            await self._resets.request(info, connection, exc)
            return Receipt.RESET_REQUESTED
        except UnknownSenderKeyError as exc:
            if self.groups is not None and await self.groups.undecryptable(info, exc):
                return Receipt.RETRY  # its sender key may still be on the way
            await self._refused(exc, info.sender_id, info.message_id)
            return Receipt.REFUSED
        except StorageError as exc:
            logger.error("event=inbox_write_failed error=%s", exc.code)
            if self.groups is not None:
                with contextlib.suppress(StorageError):  # read again at the next use
                    await self.groups.groups.reload_dirty()
            return Receipt.RETRY
        except OmegaError as exc:
            await self._refused(exc, info.sender_id, info.message_id)
            return Receipt.REFUSED
        if fresh is None:
            return Receipt.DUPLICATE
        if on_committed is not None:
            await on_committed(fresh)
        await self._apply_and_remove(fresh, defer_removal=True)
        return Receipt.ACCEPTED

    async def _known_device(self, info: EnvelopeInfo) -> bool:
        """True when the sender's signed device list lists the sending device.

        Only then is a session reset requested: an envelope from a device we
        cannot tie to its claimed user is refused instead of answered.
        """
        device_list = await self._core.device_list(info.sender_id)
        return device_list is not None and device_list.is_active(info.sender_device_key)

    async def _sender_contact(self, info: EnvelopeInfo) -> ContactRecord | None:
        """The sender's contact record, creating it for a stranger when allowed."""
        core = self._core
        if info.sender_id == core.user_id:
            if not core.identity.device_list.is_active(info.sender_device_key):
                raise InvalidEnvelopeError(
                    "from a device that is not ours", details={"reason": "unknown_device"}
                )
            return None
        async with core.db.transaction() as tx:
            contact = await tx.get_contact(info.sender_id)
            if contact is None:
                if not core.config.accept_unknown_senders:
                    raise InvalidEnvelopeError(
                        "the sender is not a contact", details={"reason": "unknown_sender"}
                    )
                contact = ContactRecord(
                    user_id=info.sender_id,
                    display_name="",
                    identity_key=identity_key_of(info.sender_id),
                    added_at=core.now(),
                )
                await tx.put_contact(contact)
        if contact.device_list is not None:
            device_list = core.verified_list(contact)
            if device_list is not None and device_list.is_revoked(info.sender_device_key):
                raise InvalidEnvelopeError(
                    "from a revoked device", details={"reason": "revoked_device"}
                )
        return contact

    async def _decrypt(self, info: EnvelopeInfo, message: Message) -> InboxEntry | None:
        """Decrypt into the inbox; the entry, or None when it was in the inbox already."""
        core = self._core
        device_key = info.sender_device_key
        applied = self._applied[:]
        async with core.keys.transaction() as tx:
            if applied:
                # Entries already applied to the history leave the inbox with this commit
                # (one disk sync less per message; re-applying one is a no-op anyway).
                await tx.remove_from_inbox(applied)
            sessions = await load_sessions(tx, device_key)
            existing = (
                session_for_prekey(sessions, message.encrypted_content)
                if info.encryption is EncryptionKind.PREKEY
                else None
            )
            if existing is not None:
                # The initiator repeats its prekey message until it hears from us:
                # the session exists, so the prekey store is not even loaded.
                inner = decode_message(PrekeyMessage, message.encrypted_content)
                plaintext = existing.decrypt(inner.message)
                sessions = [existing, *(s for s in sessions if s is not existing)]
            elif info.encryption is EncryptionKind.PREKEY:
                prekey_state = await tx.load_prekeys()
                if prekey_state is None:  # pragma: no cover - created at start
                    raise _NoSessionError("no prekeys")
                prekeys = PrekeyStore.from_bytes(prekey_state)
                accepted = accept_session(
                    core.identity.device,
                    prekeys,
                    message.encrypted_content,
                    now=core.now(),
                    expected_user_id=info.sender_id,
                )
                if not hmac.compare_digest(accepted.remote_certificate.device_key, device_key):
                    raise InvalidEnvelopeError(
                        "prekey message of another device", details={"reason": "device_mismatch"}
                    )
                plaintext = accepted.plaintext
                sessions = [accepted.session, *sessions]
                await tx.save_prekeys(prekeys.to_bytes())
            elif info.encryption is EncryptionKind.RATCHET:
                if not sessions:
                    raise _NoSessionError("no session with the sending device")
                if sessions[0].remote_user_id != info.sender_id:
                    raise InvalidEnvelopeError(
                        "session belongs to another user", details={"reason": "user_mismatch"}
                    )
                sessions, plaintext = decrypt_with_any(sessions, message.encrypted_content)
            elif self.groups is not None:
                plaintext = await self.groups.decrypt(tx, info, message)
            else:  # pragma: no cover - the client always sets the group handler
                raise RemoteProtocolError("group messages need a group handler")
            # The content repeats the routing fields; refuse it (rolling the session
            # back) if the clear ones were changed on the way.
            check_binding(info, decode_content(plaintext))
            await save_sessions(tx, device_key, sessions)
            wrapper = dataclasses.replace(message, encrypted_content=plaintext)
            entry = InboxEntry(
                message_id=message.message_id,
                sender_device_key=device_key,
                plaintext=encode_message(wrapper),
                received_at=core.now(),
            )
            added = await tx.add_to_inbox(entry)
        if info.encryption is EncryptionKind.SENDER_KEY and self.groups is not None:
            self.groups.committed(info)  # committed: no read-back at the group's next message
        del self._applied[: len(applied)]
        return entry if added else None

    async def _refused(
        self, exc: OmegaError, sender_id: str | None, message_id: str | None
    ) -> None:
        logger.warning(
            "event=refused sender=%s message=%s error=%s reason=%s",
            sender_id,
            message_id,
            exc.code,
            exc.message,
        )
        await self._core.emit(
            MessageRefused(
                code=exc.code,
                reason=exc.message,
                sender_id=sender_id,
                message_id=message_id,
            )
        )

    # -- the inbox ----------------------------------------------------------
    async def drain_inbox(self) -> None:
        """Apply every decrypted message waiting in the key store's inbox."""
        core = self._core
        while True:
            async with core.keys.transaction() as tx:
                entries = await tx.inbox(100)
            if not entries:
                return
            for entry in entries:
                await self._apply_and_remove(entry)

    async def _apply_and_remove(self, entry: InboxEntry, *, defer_removal: bool = False) -> None:
        """Apply one inbox entry to the history, then take it out of the inbox
        (now, or with the next decryption's commit when ``defer_removal``)."""
        try:
            events = await self._apply(entry)
        except OmegaError as exc:
            await self._refused(exc, None, entry.message_id)
            events = []
        if defer_removal and len(self._applied) < 256:
            self._applied.append(entry.message_id)
        else:
            async with self._core.keys.transaction() as tx:
                await tx.remove_from_inbox([entry.message_id])
        for event in events:
            await self._core.emit(event)

    async def _apply(self, entry: InboxEntry) -> list[Event]:
        core = self._core
        wrapper = decode_message(Message, entry.plaintext)
        content = decode_content(wrapper.encrypted_content)
        sender_id = wrapper.sender_id.lower()
        own = sender_id == core.user_id
        conversation = wrapper.recipient_id if own else sender_id
        if self.groups is not None and self.groups.handles(wrapper, content):
            return await self.groups.apply(entry, wrapper, content)
        kind = content_kind(content)
        now = core.now()
        stored = self._stored_message(entry, wrapper, content) if kind in _STORED_KINDS else None
        async with core.db.transaction() as tx:
            if not await tx.mark_seen(entry.sender_device_key, wrapper.message_id, now):
                return []
            if stored is not None and not await tx.add_message(stored):
                return []
        if kind == "sync" and self.sync_handler is not None:
            assert content.sync is not None
            return await self.sync_handler(entry.sender_device_key, sender_id, content.sync)
        if kind == "typing":
            typing = content.typing
            assert typing is not None
            return [] if own else [TypingChanged(user_id=sender_id, typing=typing.typing)]
        if kind == "receipt":
            return [] if own else await self._apply_receipt(entry, content, conversation)
        if kind in ("edit", "delete"):
            return await self._apply_change(wrapper, content, conversation, sender_id)
        if kind == "reaction":
            reaction = content.reaction
            assert reaction is not None
            return [
                ReactionReceived(
                    conversation_id=conversation,
                    target_message_id=reaction.target_message_id,
                    sender_id=sender_id,
                    emoji=reaction.emoji,
                )
            ]
        if stored is None:  # pragma: no cover - every kind is handled above
            logger.info("event=ignored kind=%s sender=%s", kind or "empty", sender_id)
            return []
        return [MessageReceived(message=stored, content=content)]

    def _stored_message(
        self, entry: InboxEntry, wrapper: Message, content: MessageContent
    ) -> StoredMessage:
        """The history record of a received message of a stored kind."""
        own = wrapper.sender_id.lower() == self._core.user_id
        return received_record(
            entry,
            wrapper,
            content,
            user_id=self._core.user_id,
            conversation_id=wrapper.recipient_id if own else wrapper.sender_id.lower(),
        )

    async def _apply_receipt(
        self, entry: InboxEntry, content: MessageContent, conversation: str
    ) -> list[Event]:
        receipt = content.receipt
        assert receipt is not None
        await self._outbox.acknowledged(entry.sender_device_key, receipt.message_ids)
        if receipt.type != ReceiptType.READ:
            return []
        events: list[Event] = []
        async with self._core.db.transaction() as tx:
            for message_id in receipt.message_ids:
                message = await tx.get_message(conversation, message_id)
                if message is None or message.direction is not Direction.OUTGOING:
                    continue
                if await tx.set_message_state(conversation, message_id, DeliveryState.READ):
                    events.append(
                        DeliveryStateChanged(
                            conversation_id=conversation,
                            message_id=message_id,
                            state=DeliveryState.READ,
                        )
                    )
        return events

    async def _apply_change(
        self, wrapper: Message, content: MessageContent, conversation: str, sender_id: str
    ) -> list[Event]:
        kind = content_kind(content)
        change = content.edit if kind == "edit" else content.delete
        assert change is not None
        async with self._core.db.transaction() as tx:
            target = await tx.get_message(conversation, change.target_message_id)
            if target is None or target.sender_id != sender_id or target.deleted:
                logger.info(
                    "event=change_ignored kind=%s target=%s", kind, change.target_message_id
                )
                return []
            if kind == "edit":
                assert content.edit is not None
                assert content.edit.text is not None
                new_content = MessageContent(text=content.edit.text, reply_to=target.reply_to)
                updated = dataclasses.replace(
                    target,
                    content=encode_message(new_content),
                    text=content.edit.text.text,
                    edited_at=wrapper.timestamp,
                )
                await tx.replace_message(updated)
                return [MessageEdited(message=updated)]
            tombstone = dataclasses.replace(target, content=b"", text="", deleted=True)
            await tx.replace_message(tombstone)
        return [
            MessageDeleted(
                conversation_id=conversation,
                message_id=target.message_id,
                for_everyone=True,
                deleted_by=sender_id,
            )
        ]


def _is_receipt(entry: InboxEntry) -> bool:
    """True when the decrypted content of ``entry`` is a receipt."""
    content = decode_message(Message, entry.plaintext).encrypted_content
    return content_kind(decode_content(content)) == "receipt"


def _receipt(kind: ReceiptType, message_ids: list[str], now: int) -> ReceiptContent:
    return ReceiptContent(type=kind, message_ids=message_ids, timestamp=now)
