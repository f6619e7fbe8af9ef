"""The contacts part of the :class:`~omega.client.Client` API: add, list, update,
block, verify, and release messages held for a verified contact's new devices.

A mixin, so that the client module stays small.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omega.client._background import parse_contact
from omega.crypto import ContactUri, SafetyNumber
from omega.errors import ConfigurationError, CryptoError, UnknownContactError
from omega.storage.message_base import ContactRecord
from omega.transport.address import Address

if TYPE_CHECKING:
    from omega.client._core import Core
    from omega.client._sync import SyncService

__all__ = ["ContactsMixin"]


class ContactsMixin:
    """Contacts and their verification; mixed into :class:`~omega.client.Client`."""

    _core: Core
    _sync: SyncService

    async def add_contact(
        self,
        uri: str | ContactUri,
        *,
        display_name: str | None = None,
        addresses: Sequence[Address | str] = (),
    ) -> ContactRecord:
        """Add (or update) a contact from its ``omega://`` URI, QR text or user id.

        ``addresses`` are hints where the contact can be reached (kept for this
        session; discovery finds them otherwise). Raises
        :class:`~omega.errors.InvalidUriError` for a malformed URI and
        :class:`~omega.errors.ConfigurationError` for our own user id.
        """
        core = self._core
        parsed = uri if isinstance(uri, ContactUri) else parse_contact(uri)
        if parsed.user_id == core.user_id:
            raise ConfigurationError("you cannot add yourself as a contact")
        name = display_name if display_name is not None else parsed.display_name or ""
        if addresses:
            hints = tuple(a if isinstance(a, Address) else Address.parse(a) for a in addresses)
            core.hints[parsed.user_id] = tuple(
                dict.fromkeys(core.addresses_hint(parsed.user_id) + hints)
            )
        async with core.db.transaction() as tx:
            existing = await tx.get_contact(parsed.user_id)
            if existing is not None:
                contact = dataclasses.replace(existing, display_name=name or existing.display_name)
            else:
                contact = ContactRecord(
                    user_id=parsed.user_id,
                    display_name=name,
                    identity_key=parsed.identity_key,
                    added_at=core.now(),
                )
            await tx.put_contact(contact)
        await self._sync.contact_changed(contact)
        return contact

    async def contacts(self) -> list[ContactRecord]:
        """Every contact, by display name."""
        async with self._core.db.transaction() as tx:
            return await tx.contacts()

    async def contact(self, user_id: str) -> ContactRecord:
        """The contact ``user_id``; :class:`~omega.errors.UnknownContactError` if there is none."""
        async with self._core.db.transaction() as tx:
            contact = await tx.get_contact(user_id.lower())
        if contact is None:
            raise UnknownContactError(f"{user_id} is not a contact", details={"user_id": user_id})
        return contact

    async def update_contact(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        blocked: bool | None = None,
        verified: bool | None = None,
        read_receipts: bool | None = None,
        typing_notifications: bool | None = None,
    ) -> ContactRecord:
        """Change a contact's name, blocked or verified state, or receipt options."""
        changes = {
            name: value
            for name, value in (
                ("display_name", display_name),
                ("blocked", blocked),
                ("verified", verified),
                ("read_receipts", read_receipts),
                ("typing_notifications", typing_notifications),
            )
            if value is not None
        }
        async with self._core.db.transaction() as tx:
            contact = await tx.get_contact(user_id.lower())
            if contact is None:
                raise UnknownContactError(
                    f"{user_id} is not a contact", details={"user_id": user_id}
                )
            updated = dataclasses.replace(contact, **changes)  # type: ignore[arg-type]
            await tx.put_contact(updated)
        await self._sync.contact_changed(updated)
        return updated

    async def block(self, user_id: str) -> ContactRecord:
        """Block a contact: their messages are dropped, nothing is sent to them."""
        return await self.update_contact(user_id, blocked=True)

    async def unblock(self, user_id: str) -> ContactRecord:
        """Unblock a contact."""
        return await self.update_contact(user_id, blocked=False)

    def safety_number(self, user_id: str) -> SafetyNumber:
        """The safety number of our conversation with ``user_id``; compare it in person."""
        return SafetyNumber.from_user_ids(self._core.user_id, user_id)

    async def verify_contact(
        self, user_id: str, *, scanned_qr: bytes | None = None
    ) -> ContactRecord:
        """Mark a contact verified after comparing safety numbers.

        With ``scanned_qr`` (the contact's safety-number QR payload), the
        payload is checked first; a mismatch raises
        :class:`~omega.errors.CryptoError` and leaves the contact unverified.
        """
        await self.contact(user_id)
        if scanned_qr is not None and not self.safety_number(user_id).verify_scanned(scanned_qr):
            raise CryptoError("the scanned safety number does not match: do not trust this contact")
        return await self.update_contact(user_id, verified=True)

    async def accept_devices(self, user_id: str) -> ContactRecord:
        """Release messages held for a verified contact's newly added devices."""
        core = self._core
        async with core.db.transaction() as tx:
            contact = await tx.get_contact(user_id.lower())
            if contact is None:
                raise UnknownContactError(
                    f"{user_id} is not a contact", details={"user_id": user_id}
                )
            held = contact.held_devices or b""
            contact = dataclasses.replace(contact, held_devices=None)
            await tx.put_contact(contact)
            for entry in await tx.pending_outbox():
                if any(
                    hmac.compare_digest(held[i : i + 32], entry.recipient_device_key)
                    for i in range(0, len(held), 32)
                ):
                    await tx.update_outbox(dataclasses.replace(entry, next_attempt_at=core.now()))
        core.outbox_wakeup.set()
        return contact
