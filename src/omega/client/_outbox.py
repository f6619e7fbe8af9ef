"""The outbox driver: encrypts each entry for its device and delivers it.

Carries out what :class:`omega.session.delivery.DeliveryEngine` decides:
entries due now are taken oldest first, one device at a time in order (a
device's ratchet messages keep their order), up to
``max_parallel_devices`` devices at once.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Sequence

import anyio
from anyio.abc import TaskGroup

from omega.client._core import Core, identity_key_of
from omega.client._group_parts import is_group_entry, readdress
from omega.client._links import Links
from omega.client._sessions import load_sessions, save_sessions
from omega.client.events import DeliveryStateChanged
from omega.crypto import VerifiedDeviceList
from omega.crypto.x3dh import MessageKind, VerifiedPrekeyBundle, encrypt_message, initiate_session
from omega.errors import OmegaError, RequestRejectedError
from omega.mailbox import REVOKED_DEVICE
from omega.protocol import EncryptionKind, Frame, KeyRequest, encode_message
from omega.session.content import EPHEMERAL_KINDS, content_kind, decode_content
from omega.session.delivery import Outcome, Path
from omega.session.envelope import seal_envelope
from omega.storage.message_base import (
    DeliveryState,
    Direction,
    MessageStoreTransaction,
    OutboxEntry,
)

__all__ = ["Outbox"]

logger = logging.getLogger("omega.client")

_TICK = 0.5
_FINAL = (DeliveryState.DELIVERED, DeliveryState.READ, DeliveryState.FAILED)
_RANK = {
    DeliveryState.PENDING: 0,
    DeliveryState.SENT: 1,
    DeliveryState.DELIVERED: 2,
    DeliveryState.READ: 3,
    DeliveryState.FAILED: 4,
}


class Outbox:
    """Delivers outbox entries; reports delivery states as events."""

    def __init__(self, core: Core, links: Links) -> None:
        self._core = core
        self._links = links
        self._busy = core.outbox_busy
        self._limiter = anyio.CapacityLimiter(core.config.max_parallel_devices)
        self.bundle_waiters: dict[bytes, list[tuple[anyio.Event, list[VerifiedPrekeyBundle]]]] = {}

    async def run(self, task_group: TaskGroup) -> None:
        """Deliver until cancelled."""
        core = self._core
        while True:
            core.outbox_wakeup = anyio.Event()
            try:
                async with core.db.transaction() as tx:
                    due = await tx.due_outbox(core.now(), limit=500)
            except OmegaError as exc:  # pragma: no cover - a failing disk
                logger.error("event=outbox_read_failed error=%s", exc.code)
                due = []
            by_device: dict[bytes, list[OutboxEntry]] = {}
            for entry in due:
                by_device.setdefault(entry.recipient_device_key, []).append(entry)
            for device_key, entries in by_device.items():
                if device_key not in self._busy:
                    self._busy.add(device_key)
                    task_group.start_soon(self._deliver_device, device_key, entries)
            with anyio.move_on_after(_TICK):
                await core.outbox_wakeup.wait()

    async def _deliver_device(self, device_key: bytes, entries: Sequence[OutboxEntry]) -> None:
        try:
            async with self._limiter:
                await self._deliver_batch(list(entries))
        except OmegaError as exc:
            logger.warning(
                "event=delivery_error device=%s error=%s reason=%s",
                device_key.hex()[:16],
                exc.code,
                exc.message,
            )
        finally:
            self._busy.discard(device_key)
            self._core.outbox_wakeup.set()  # entries may have become due meanwhile

    def _owner(self, entry: OutboxEntry) -> str:
        """The user whose device the entry goes to."""
        if any(
            hmac.compare_digest(entry.recipient_device_key, key)
            for key in self._core.own_other_devices()
        ):
            return self._core.user_id
        return entry.recipient_id

    async def _deliver_batch(self, entries: list[OutboxEntry]) -> None:
        """Deliver due entries of ONE device, in order, with one key-store and one
        message-store transaction for the whole batch (each commit is a disk sync)."""
        core = self._core
        now = core.now()
        ready: list[OutboxEntry] = []
        for entry in entries:
            expired = core.engine.expire_if_due(entry, now=now)
            if expired is not None:
                await self._record_many([expired])
            elif hmac.compare_digest(
                entry.recipient_device_key, identity_key_of(entry.recipient_id)
            ):
                await self._fan_out(entry)
            elif await self._held(entry, self._owner(entry)):
                await self._save(dataclasses.replace(entry, next_attempt_at=entry.expires_at))
            else:
                ready.append(entry)
        if not ready:
            return
        owner = self._owner(ready[0])
        sealed = await self._encrypt_many(ready, owner)
        if sealed is None:
            await self._record_many(
                [core.engine.apply(entry, Outcome.NOT_READY, now=core.now()) for entry in ready]
            )
            return
        results: list[OutboxEntry] = []
        dropped: list[OutboxEntry] = []
        revoked = False
        for entry in sealed:
            # once the store refused the device as revoked, its other entries fail too
            outcome = Outcome.REJECTED if revoked else await self._send_one(entry, owner)
            revoked = outcome is Outcome.REJECTED
            if entry.ephemeral and outcome is not Outcome.DIRECT_SENT:
                dropped.append(entry)
                continue
            updated = core.engine.apply(entry, outcome, now=core.now())
            if outcome is Outcome.DEPOSITED and self._is_receipt(entry):
                dropped.append(updated)
            else:
                results.append(updated)
        await self._record_many(results, dropped=dropped)

    async def _send_one(self, entry: OutboxEntry, owner: str) -> Outcome:
        core = self._core
        connection = self._links.connected(owner, entry.recipient_device_key)
        direct_possible = connection is not None or bool(
            await self._links.addresses(owner, entry.recipient_device_key)
        )
        path = core.engine.choose_path(
            entry,
            direct_possible=direct_possible,
            store_possible=core.mailbox is not None and not entry.ephemeral,
        )
        if path is Path.DIRECT:
            return await self._send_direct(entry, owner)
        if path is Path.STORE:
            return await self._deposit(entry, owner)
        return Outcome.NOT_READY

    async def _held(self, entry: OutboxEntry, owner: str) -> bool:
        if owner == self._core.user_id:
            return False
        async with self._core.db.transaction() as tx:
            contact = await tx.get_contact(owner)
        held = contact.held_devices if contact is not None else None
        if not held:
            return False
        return any(
            hmac.compare_digest(held[i : i + 32], entry.recipient_device_key)
            for i in range(0, len(held), 32)
        )

    @staticmethod
    def _is_receipt(entry: OutboxEntry) -> bool:
        try:
            return content_kind(decode_content(entry.content)) == "receipt"
        except OmegaError:  # pragma: no cover - we encoded it ourselves
            return False

    async def _fan_out(self, placeholder: OutboxEntry) -> None:
        core = self._core
        user_id = placeholder.recipient_id
        device_list = await core.device_list(user_id)
        if device_list is None:
            device_list = await self._device_list_from_peer(user_id)
        if device_list is None:
            await self._save(core.engine.apply(placeholder, Outcome.NOT_READY, now=core.now()))
            return
        now = core.now()
        async with core.db.transaction() as tx:
            for info in device_list.devices:
                await tx.add_outbox(
                    dataclasses.replace(
                        placeholder,
                        recipient_device_key=info.device_key,
                        attempts=0,
                        next_attempt_at=now,
                        ciphertext=(  # a group message: the same ciphertext for every device
                            readdress(placeholder.ciphertext, info.device_key)
                            if placeholder.ciphertext is not None
                            else None
                        ),
                    )
                )
            await tx.remove_outbox(placeholder.message_id, placeholder.recipient_device_key)
        core.outbox_wakeup.set()

    async def _device_list_from_peer(self, user_id: str) -> VerifiedDeviceList | None:
        """Ask a directly reachable device of ``user_id`` for its user's device list."""
        core = self._core
        arrived = core.device_list_arrived.setdefault(user_id, anyio.Event())
        connection = await self._links.connect(user_id, None)
        if connection is None:
            return None
        request = Frame(key_request=KeyRequest(device_list=True))
        if await self._links.send(connection, request):
            with anyio.move_on_after(core.config.key_request_timeout):
                await arrived.wait()
        return await core.device_list(user_id)

    async def _encrypt_many(
        self, entries: list[OutboxEntry], owner: str
    ) -> list[OutboxEntry] | None:
        """Encrypt the entries of one device that lack a ciphertext, in order, in one
        key-store transaction; None when no session can start yet."""
        core = self._core
        device_key = entries[0].recipient_device_key
        if all(entry.ciphertext is not None for entry in entries):
            return entries
        async with core.keys.transaction() as tx:
            has_session = await tx.load_session(device_key) is not None  # not parsed here
        bundle = None if has_session else await self._bundle(owner, device_key)
        if not has_session and bundle is None:
            return None
        sealed: list[OutboxEntry] = []
        async with core.keys.transaction() as tx:
            sessions = await load_sessions(tx, device_key)
            for entry in entries:
                if entry.ciphertext is not None:
                    sealed.append(entry)
                    continue
                if sessions:
                    encrypted = encrypt_message(sessions[0], entry.content, rng=core.rng)
                    kind, data = encrypted.kind, encrypted.data
                elif bundle is not None:
                    session, data = initiate_session(
                        core.identity.device, bundle, entry.content, user_id=owner, rng=core.rng
                    )
                    sessions = [session]
                    kind = MessageKind.PREKEY
                else:  # pragma: no cover - the session vanished between two transactions
                    return None
                sealed.append(self._seal(entry, kind, data))
            await save_sessions(tx, device_key, sessions)
        # The sessions were saved first; ciphertexts are persisted with the outcome
        # of the first attempt. A crash in between only makes the next attempt
        # encrypt again under the next message keys, which the receiver accepts.
        return sealed

    def _seal(self, entry: OutboxEntry, kind: MessageKind, data: bytes) -> OutboxEntry:
        core = self._core
        envelope = seal_envelope(
            core.identity.device,
            message_id=entry.message_id,
            sender_id=core.user_id,
            recipient_id=entry.recipient_id,
            recipient_device_key=entry.recipient_device_key,
            timestamp=entry.created_at,
            encryption=(
                EncryptionKind.PREKEY if kind is MessageKind.PREKEY else EncryptionKind.RATCHET
            ),
            encrypted_content=data,
        )
        return dataclasses.replace(entry, ciphertext=encode_message(Frame(message=envelope)))

    async def _bundle(self, owner: str, device_key: bytes) -> VerifiedPrekeyBundle | None:
        core = self._core
        if core.key_directory is not None:
            try:
                bundle = await core.key_directory.claim_prekey_bundle(owner, device_key)
            except OmegaError as exc:
                logger.info("event=claim_failed user=%s error=%s", owner, exc.code)
                bundle = None
            if bundle is not None:
                return bundle
        connection = await self._links.connect(owner, device_key)
        if connection is None:
            return None
        done = anyio.Event()
        slot: list[VerifiedPrekeyBundle] = []
        self.bundle_waiters.setdefault(device_key, []).append((done, slot))
        try:
            request = Frame(key_request=KeyRequest(prekey_bundle=True, device_list=True))
            if not await self._links.send(connection, request):
                return None
            with anyio.move_on_after(core.config.key_request_timeout):
                await done.wait()
        finally:
            waiters = self.bundle_waiters.get(device_key, [])
            if (done, slot) in waiters:
                waiters.remove((done, slot))
            if not waiters:
                self.bundle_waiters.pop(device_key, None)
        return slot[0] if slot else None

    def offer_bundle(self, device_key: bytes, bundle: VerifiedPrekeyBundle) -> bool:
        """Hand a bundle a peer sent to the task waiting for it; False if none waits."""
        waiters = self.bundle_waiters.pop(device_key, [])
        if not waiters:
            return False
        done, slot = waiters.pop(0)
        slot.append(bundle)
        done.set()
        if waiters:
            self.bundle_waiters[device_key] = waiters
        return True

    async def _send_direct(self, entry: OutboxEntry, owner: str) -> Outcome:
        connection = await self._links.connect(owner, entry.recipient_device_key)
        if connection is None:
            return Outcome.DIRECT_FAILED
        assert entry.ciphertext is not None
        try:
            await connection.send_encoded(entry.ciphertext)
        except OmegaError as exc:
            logger.info("event=send_failed message=%s error=%s", entry.message_id, exc.code)
            return Outcome.DIRECT_FAILED
        return Outcome.DIRECT_SENT

    async def _deposit(self, entry: OutboxEntry, owner: str) -> Outcome:
        mailbox = self._core.mailbox
        assert mailbox is not None
        assert entry.ciphertext is not None
        ttl = max(1, (entry.expires_at - self._core.now()) // 1000)
        try:
            await mailbox.deposit(
                entry.recipient_device_key, entry.message_id, entry.ciphertext, ttl_seconds=ttl
            )
        except RequestRejectedError as exc:
            if exc.reason != REVOKED_DEVICE:
                logger.info("event=deposit_failed message=%s error=%s", entry.message_id, exc.code)
                return Outcome.DEPOSIT_FAILED
            await self._revoked(entry, owner)
            return Outcome.REJECTED
        except OmegaError as exc:
            logger.info("event=deposit_failed message=%s error=%s", entry.message_id, exc.code)
            return Outcome.DEPOSIT_FAILED
        return Outcome.DEPOSITED

    async def _revoked(self, entry: OutboxEntry, owner: str) -> None:
        """The store refused ``entry``'s device as revoked: learn the owner's new device list.

        Accepting it drops every entry queued for the device (the caller's
        REJECTED then finds nothing to record); if the list cannot be had, the
        entry fails for that device alone, never retried against a closed mailbox.
        """
        logger.info(
            "event=deposit_refused_revoked message=%s device=%s",
            entry.message_id,
            entry.recipient_device_key.hex()[:16],
        )
        if owner != self._core.user_id:  # our own list reaches us through our devices
            await self._core.device_list(owner, refresh=True)

    async def _save(self, entry: OutboxEntry) -> None:
        async with self._core.db.transaction() as tx:
            await tx.update_outbox(entry)

    async def _drop(self, entry: OutboxEntry) -> None:
        async with self._core.db.transaction() as tx:
            await tx.remove_outbox(entry.message_id, entry.recipient_device_key)

    async def _record(self, entry: OutboxEntry) -> None:
        """Persist ``entry`` and move its message's aggregated state forward."""
        await self._record_many([entry])

    async def _record_many(
        self, entries: Sequence[OutboxEntry], *, dropped: Sequence[OutboxEntry] = ()
    ) -> None:
        """Persist ``entries`` (and remove ``dropped``) in one transaction; report states."""
        events: list[DeliveryStateChanged] = []
        async with self._core.db.transaction() as tx:
            for entry in dropped:
                await tx.remove_outbox(entry.message_id, entry.recipient_device_key)
            for entry in entries:
                new_state = await self._persist(tx, entry)
                if new_state is not None:
                    events.append(
                        DeliveryStateChanged(
                            conversation_id=entry.recipient_id,
                            message_id=entry.message_id,
                            state=new_state,
                        )
                    )
        for event in events:
            await self._core.emit(event)

    async def _persist(
        self, tx: MessageStoreTransaction, entry: OutboxEntry
    ) -> DeliveryState | None:
        """Write ``entry``; return its message's new aggregated state, if it moved."""
        current = await tx.outbox_entry(entry.message_id, entry.recipient_device_key)
        if current is None or _RANK[current.state] > _RANK[entry.state]:
            return None  # acknowledged (or failed) while this attempt was under way
        if entry.state in _FINAL:
            await tx.remove_outbox(entry.message_id, entry.recipient_device_key)
        else:
            await tx.update_outbox(entry)
        message = await tx.get_message(entry.recipient_id, entry.message_id)
        if message is None or message.direction is not Direction.OUTGOING:
            return None
        target = entry.state
        if self._owner(entry) == self._core.user_id and target in _FINAL:
            target = DeliveryState.SENT  # our own devices do not make it "delivered"
        if target is DeliveryState.FAILED:
            siblings = await tx.outbox_for_message(entry.message_id)
            if siblings or message.state is not DeliveryState.PENDING:
                target = DeliveryState.PENDING  # others may still succeed
        if target is not DeliveryState.PENDING and await tx.set_message_state(
            entry.recipient_id, entry.message_id, target
        ):
            return target
        return None

    async def acknowledged(self, device_key: bytes, message_ids: Sequence[str]) -> None:
        """``device_key`` acknowledged ``message_ids`` (Ack frame or delivery receipt)."""
        core = self._core
        events: list[DeliveryStateChanged] = []
        async with core.db.transaction() as tx:
            for message_id in message_ids:
                entry = await tx.outbox_entry(message_id, device_key)
                if entry is None or entry.state in _FINAL:
                    continue
                acknowledged = core.engine.apply(entry, Outcome.ACKNOWLEDGED, now=core.now())
                state = await self._persist(tx, acknowledged)
                if state is not None:
                    events.append(
                        DeliveryStateChanged(
                            conversation_id=entry.recipient_id, message_id=message_id, state=state
                        )
                    )
        for event in events:
            await core.emit(event)

    async def rejected(self, device_key: bytes, message_id: str, reason: str) -> None:
        """``device_key`` refused ``message_id`` for good: that entry fails."""
        async with self._core.db.transaction() as tx:
            entry = await tx.outbox_entry(message_id, device_key)
        if entry is not None and entry.state not in _FINAL:
            logger.warning("event=rejected message=%s reason=%s", message_id, reason[:200])
            await self._record(
                self._core.engine.apply(entry, Outcome.REJECTED, now=self._core.now())
            )

    async def peer_connected(self, user_id: str, device_key: bytes) -> None:
        """Make undelivered entries to that device due now (it is reachable directly)."""
        core = self._core
        async with core.db.transaction() as tx:
            pending = [
                entry
                for entry in await tx.pending_outbox()
                if hmac.compare_digest(entry.recipient_device_key, device_key)
                or (
                    entry.recipient_id == user_id
                    and hmac.compare_digest(entry.recipient_device_key, identity_key_of(user_id))
                )
            ]
            for entry in pending:
                await tx.update_outbox(core.engine.peer_connected(entry, now=core.now()))
        if pending:
            core.outbox_wakeup.set()

    async def awaits_any(self, device_key: bytes, message_ids: Sequence[str]) -> bool:
        """True when one of ``message_ids`` still waits for ``device_key`` to acknowledge it."""
        async with self._core.db.transaction() as tx:
            for message_id in message_ids:
                entry = await tx.outbox_entry(message_id, device_key)
                if entry is not None and entry.state not in _FINAL:
                    return True
        return False

    async def resend_to(self, device_key: bytes) -> int:
        """Re-encrypt every undelivered entry to ``device_key`` (after a session reset)."""
        core = self._core
        count = 0
        async with core.db.transaction() as tx:
            for entry in await tx.pending_outbox():
                if hmac.compare_digest(entry.recipient_device_key, device_key):
                    # A group ciphertext does not depend on the pairwise session: kept.
                    ciphertext = entry.ciphertext if is_group_entry(entry) else None
                    await tx.update_outbox(
                        dataclasses.replace(
                            entry, ciphertext=ciphertext, attempts=0, next_attempt_at=core.now()
                        )
                    )
                    count += 1
        core.outbox_wakeup.set()
        return count

    def is_ephemeral_content(self, content: bytes) -> bool:
        """True for contents never retried (typing notifications)."""
        return content_kind(decode_content(content)) in EPHEMERAL_KINDS
