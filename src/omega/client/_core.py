"""State shared by the client's parts: identity, stores, connections, events, time."""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from omega.client.config import ClientConfig
from omega.client.events import ContactDevicesChanged, Event
from omega.crypto import Identity, VerifiedDeviceList, verify_device_list
from omega.crypto.identity import public_key_from_user_id
from omega.crypto.random import RandomSource, random_bytes
from omega.discovery.base import Resolver
from omega.errors import OmegaError, StaleDeviceListError
from omega.mailbox.base import KeyDirectory, Mailbox
from omega.protocol import MessageContent, SignedDeviceList
from omega.session.content import encode_content
from omega.session.delivery import DeliveryEngine
from omega.session.envelope import bind_content
from omega.storage.base import KeyStore
from omega.storage.message_base import ContactRecord, MessageStore, OutboxEntry, StoredMessage
from omega.transport.address import Address
from omega.transport.manager import ConnectionManager

__all__ = ["Core", "EventHandler", "system_wall_clock"]

logger = logging.getLogger("omega.client")

EventHandler = Callable[[Event], object]


def system_wall_clock() -> int:
    """The system's wall clock, Unix milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Subscriber:
    send: MemoryObjectSendStream[Event]


class Core:
    """What the outbox, the inbound path and the public API share."""

    def __init__(
        self,
        *,
        identity: Identity,
        key_store: KeyStore,
        message_store: MessageStore,
        manager: ConnectionManager,
        config: ClientConfig,
        resolver: Resolver | None,
        mailbox: Mailbox | None,
        key_directory: KeyDirectory | None,
        wall_clock: Callable[[], int],
        rng: RandomSource,
    ) -> None:
        self.identity = identity
        self.keys = key_store
        self.db = message_store
        self.manager = manager
        self.config = config
        self.resolver = resolver
        self.mailbox = mailbox
        self.key_directory = key_directory
        self.wall_clock = wall_clock
        self.rng = rng
        self.engine = DeliveryEngine(config.delivery, rng=rng)
        self.hints: dict[str, tuple[Address, ...]] = {}
        self.device_list_arrived: dict[str, anyio.Event] = {}
        self._verified_lists: dict[str, VerifiedDeviceList] = {}
        self.outbox_wakeup = anyio.Event()
        self.outbox_busy: set[bytes] = set()
        """Devices the outbox is delivering to right now; it rescans when each is done."""
        self._subscribers: list[_Subscriber] = []
        self._handlers: list[tuple[type[Event], EventHandler]] = []
        self.own_device_list_handler: Callable[[SignedDeviceList], Awaitable[bool]] | None = None
        """Takes device lists of our own user (multi-device, omega.client._devices)."""

    # -- identity -------------------------------------------------------
    @property
    def user_id(self) -> str:
        """Our user id."""
        return self.identity.user_id

    @property
    def device_key(self) -> bytes:
        """This device's key."""
        return self.identity.device.device_key

    def now(self) -> int:
        """Wall-clock time, Unix milliseconds."""
        return self.wall_clock()

    def new_message_id(self) -> str:
        """A random (version 4) UUID from the injected RNG."""
        return str(uuid.UUID(bytes=random_bytes(self.rng, 16), version=4))

    def own_other_devices(self) -> list[bytes]:
        """Keys of our other active devices (they get a copy of what we send)."""
        return [
            info.device_key
            for info in self.identity.device_list.devices
            if not hmac.compare_digest(info.device_key, self.device_key)
        ]

    # -- events ---------------------------------------------------------
    def subscribe(self, buffer: int) -> anyio.abc.ObjectReceiveStream[Event]:
        """A new stream of every event from now on (``buffer`` events are kept)."""
        send, receive = anyio.create_memory_object_stream[Event](buffer)
        self._subscribers.append(_Subscriber(send))
        return receive

    def add_handler(self, event_type: type[Event], handler: EventHandler) -> None:
        """Call ``handler`` for every event of ``event_type`` (or a subclass)."""
        self._handlers.append((event_type, handler))

    def remove_handler(self, event_type: type[Event], handler: EventHandler) -> bool:
        """Remove the earliest registration of ``handler`` for ``event_type``."""
        for index, (registered_type, registered) in enumerate(self._handlers):
            if registered_type is event_type and registered == handler:
                del self._handlers[index]
                return True
        return False

    async def emit(self, event: Event) -> None:
        """Report ``event`` to every subscriber and handler.

        A slow subscriber whose buffer is full loses the event (with a log
        line) rather than stalling the client; a handler that raises is
        logged and does not stop the client.
        """
        for subscriber in list(self._subscribers):
            try:
                subscriber.send.send_nowait(event)
            except anyio.WouldBlock:
                logger.warning("event=subscriber_full dropped=%s", type(event).__name__)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                subscriber.send.close()
                self._subscribers.remove(subscriber)
        for event_type, handler in list(self._handlers):
            if isinstance(event, event_type):
                try:
                    result = handler(event)
                    if hasattr(result, "__await__"):
                        await result
                except Exception:
                    logger.exception("event=handler_failed handler=%r", handler)

    def close_subscribers(self) -> None:
        """End every event stream."""
        for subscriber in self._subscribers:
            subscriber.send.close()
        self._subscribers.clear()

    # -- device lists ---------------------------------------------------
    async def device_list(
        self, user_id: str, *, refresh: bool = False
    ) -> VerifiedDeviceList | None:
        """The freshest verified device list we can find for ``user_id``.

        The cached one in the contact record, then the resolver, then the key
        directory (asked anyway with ``refresh``, e.g. once the store refused
        a deposit for a revoked device); a newer list found is accepted (and
        recorded) only when it verifies against the cached one.
        """
        if user_id == self.user_id:
            return self.identity.device_list
        async with self.db.transaction() as tx:
            contact = await tx.get_contact(user_id)
        cached = self.verified_list(contact)
        found: list[VerifiedDeviceList] = []
        if self.resolver is not None:
            try:
                resolved = await self.resolver.resolve_device_list(user_id)
            except OmegaError as exc:
                logger.info("event=resolve_failed user=%s error=%s", user_id, exc.code)
                resolved = None
            if resolved is not None:
                found.append(resolved)
        if self.key_directory is not None and (cached is None or not found or refresh):
            try:
                published = await self.key_directory.fetch_device_list(user_id)
            except OmegaError as exc:
                logger.info("event=directory_failed user=%s error=%s", user_id, exc.code)
                published = None
            if published is not None:
                found.append(published)
        for candidate in found:
            await self.accept_device_list(user_id, candidate.to_signed())
        async with self.db.transaction() as tx:
            return self.verified_list(await tx.get_contact(user_id))

    def verified_list(self, contact: ContactRecord | None) -> VerifiedDeviceList | None:
        """The device list a contact record holds, verified once and then remembered."""
        if contact is None or contact.device_list is None:
            return None
        remembered = self._verified_lists.get(contact.user_id)
        if (
            remembered is not None
            and remembered.sequence == contact.device_list_sequence
            and bytes(remembered.to_signed()) == contact.device_list
        ):
            return remembered
        verified = _cached_list(contact)
        if verified is not None:
            self._verified_lists[contact.user_id] = verified
        return verified

    async def cached_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """The device list we hold for ``user_id`` (ours for ourselves), without the network."""
        if user_id == self.user_id:
            return self.identity.device_list
        async with self.db.transaction() as tx:
            return self.verified_list(await tx.get_contact(user_id))

    async def accept_device_list(self, user_id: str, signed: SignedDeviceList) -> bool:
        """Record ``signed`` as ``user_id``'s device list if it verifies and is newer.

        Returns True when it was recorded. Reports
        :class:`~omega.client.events.ContactDevicesChanged` when devices
        changed; when the contact is verified and devices were added, those
        devices are held until the user accepts them.
        """
        if user_id == self.user_id:
            handler = self.own_device_list_handler
            return await handler(signed) if handler is not None else False
        event: ContactDevicesChanged | None = None
        async with self.db.transaction() as tx:
            contact = await tx.get_contact(user_id)
            if contact is None:
                return False
            previous = self.verified_list(contact)
            try:
                verified = verify_device_list(signed, user_id=user_id, previous=previous)
            except StaleDeviceListError:
                return False
            except OmegaError as exc:
                logger.warning("event=device_list_refused user=%s error=%s", user_id, exc.code)
                return False
            if previous is not None:
                old = {info.device_key: info.device_id for info in previous.devices}
                new = {info.device_key: info.device_id for info in verified.devices}
                added = tuple(new[key] for key in new if key not in old)
                removed = tuple(old[key] for key in old if key not in new)
                if added or removed:
                    held = contact.verified and bool(added)
                    event = ContactDevicesChanged(
                        user_id=user_id, added=added, removed=removed, held=held
                    )
            await tx.put_contact(
                _replace_contact(
                    contact,
                    device_list=bytes(verified.to_signed()),
                    device_list_sequence=verified.sequence,
                    held_devices=_held(contact, previous, verified),
                )
            )
            if previous is not None:  # nothing queued for a device that left stays queued
                for entry in await tx.pending_outbox():
                    key = entry.recipient_device_key
                    if previous.is_active(key) and not verified.is_active(key):
                        await tx.remove_outbox(entry.message_id, key)
        if event is not None:
            await self.emit(event)
        arrived = self.device_list_arrived.pop(user_id, None)
        if arrived is not None:
            arrived.set()
        self.outbox_wakeup.set()
        return True

    async def queue(
        self,
        recipient_id: str,
        content: MessageContent,
        *,
        devices: Sequence[bytes] | None = None,
        history: StoredMessage | None = None,
        ephemeral: bool = False,
        message_id: str | None = None,
        now: int | None = None,
    ) -> str:
        """Put ``content`` for ``recipient_id`` in the outbox (with ``history``, atomically).

        ``devices`` defaults to every device of the recipient (one placeholder
        entry fanned out once the device list is known) plus our own other
        devices. Returns the message id. The outbox is persistent when this
        returns.
        """
        message_id = message_id or self.new_message_id()
        now = self.now() if now is None else now
        data = encode_content(
            bind_content(
                content, message_id=message_id, timestamp=now, conversation_id=recipient_id
            )
        )
        if devices is None:
            device_list = await self.cached_device_list(recipient_id)
            targets = (
                [info.device_key for info in device_list.devices]
                if device_list is not None
                else [identity_key_of(recipient_id)]
            )
            if not ephemeral:
                targets += self.own_other_devices()
        else:
            targets = list(devices)
        expires_at = self.engine.expires_at(now)
        async with self.db.transaction() as tx:
            if history is not None:
                await tx.add_message(history)
            targets = list(dict.fromkeys(targets))
            for device_key in targets:
                await tx.add_outbox(
                    OutboxEntry(
                        message_id=message_id,
                        recipient_id=recipient_id,
                        recipient_device_key=device_key,
                        content=data,
                        created_at=now,
                        next_attempt_at=now,
                        expires_at=expires_at,
                        ephemeral=ephemeral,
                    )
                )
        if any(device_key not in self.outbox_busy for device_key in targets):
            self.outbox_wakeup.set()  # else the busy device's batch rescans when it is done
        return message_id

    def addresses_hint(self, user_id: str) -> tuple[Address, ...]:
        """Addresses the application told us for ``user_id``."""
        return self.hints.get(user_id, ())


def _cached_list(contact: ContactRecord | None) -> VerifiedDeviceList | None:
    if contact is None or contact.device_list is None:
        return None
    try:
        return verify_device_list(contact.device_list, user_id=contact.user_id)
    except OmegaError:  # pragma: no cover - we only store lists that verified
        return None


def _held(
    contact: ContactRecord, previous: VerifiedDeviceList | None, new: VerifiedDeviceList
) -> bytes | None:
    """Device keys (concatenated) held until the user accepts them, or None."""
    held = {
        contact.held_devices[i : i + 32]
        for i in range(0, len(contact.held_devices or b""), 32)
        if contact.held_devices
    }
    if previous is not None and contact.verified:
        held |= {info.device_key for info in new.devices if not previous.is_active(info.device_key)}
    held = {key for key in held if new.is_active(key)}
    return b"".join(sorted(held)) or None


def _replace_contact(contact: ContactRecord, **changes: object) -> ContactRecord:
    return dataclasses.replace(contact, **changes)  # type: ignore[arg-type]


def identity_key_of(user_id: str) -> bytes:
    """The identity key ``user_id`` encodes."""
    return public_key_from_user_id(user_id)
