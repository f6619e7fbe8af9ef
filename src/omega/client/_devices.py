"""Our own devices: listing, renaming, revoking, linking a new one, merging device lists.

Every device of a user holds the identity key (the link transfers it, as
Signal does), so any device may sign the user's device list. Two devices that
change the list at the same time may sign the same sequence number; a device
that receives a list of its own user merges it with its own (devices listed by
either and revoked by neither; every revocation kept) and, when the merge is
new, signs it under the next sequence number. Lists converge.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from omega.client._core import Core
from omega.client._sync import SyncService
from omega.client.events import OwnDevicesChanged
from omega.crypto import (
    DeviceCertificateInfo,
    Identity,
    LocalDevice,
    VerifiedDeviceList,
    certify_device,
    device_id,
    sign_device_list,
    verify_device_certificate,
    verify_device_list,
)
from omega.crypto.random import random_bytes
from omega.errors import ConfigurationError, DeviceLinkError, OmegaError
from omega.protocol import DeviceRevocation, Frame, SignedDeviceList
from omega.sync import (
    DEFAULT_LINK_LIFETIME_MS,
    DeviceLinkCode,
    LinkedDevice,
    LinkOffer,
    LinkRequest,
)
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener
from omega.transport.registry import TransportRegistry

__all__ = ["DeviceInfo", "DeviceLink", "DeviceManager", "link_device"]

logger = logging.getLogger("omega.client")

_OWN_LIST = "devices/own_list"
_LINK_TIMEOUT = 30.0

RevocationHook = Callable[[bytes], Awaitable[None]]
"""Called with the key of each device we revoke, after the new list is adopted."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One of our devices, as :meth:`omega.client.Client.devices` lists it."""

    device_id: str
    """Short display id."""
    device_key: bytes
    """The device's Ed25519 key."""
    name: str
    """The name its certificate carries."""
    created_at: int
    """When it was certified, Unix milliseconds."""
    last_seen: int | None
    """When this device last heard from it (sync), Unix milliseconds; None if never."""
    this_device: bool
    """True for the device this client runs on."""


class DeviceManager:
    """Our devices and our device list, for one client."""

    def __init__(
        self,
        core: Core,
        sync: SyncService,
        *,
        registry: TransportRegistry,
        publish: Callable[[], Awaitable[None]],
    ) -> None:
        self._core = core
        self._sync = sync
        self._registry = registry
        self._publish = publish
        self.revocation_hooks: list[RevocationHook] = []
        """Run for each revoked device (group Sender Key rotation hooks in here)."""
        self.revoked_here = False
        """True once another device of ours revoked this one."""
        sync.device_list_handler = self.receive_own_list
        core.own_device_list_handler = self._from_frame

    # -- state ------------------------------------------------------------------
    async def load(self) -> None:
        """Adopt the newest own device list the key store holds (newer than the identity's)."""
        async with self._core.keys.transaction() as tx:
            stored = await tx.load_blob(_OWN_LIST)
        if stored is not None:
            await self.receive_own_list(stored, None, announce=False)

    def devices(self) -> list[DeviceInfo]:
        """Our listed devices, this one first."""
        core = self._core
        own = core.device_key
        infos = [
            DeviceInfo(
                device_id=info.device_id,
                device_key=info.device_key,
                name=info.device_name,
                created_at=info.created_at,
                last_seen=core.now()
                if info.device_key == own
                else self._sync.last_seen.get(info.device_key),
                this_device=info.device_key == own,
            )
            for info in core.identity.device_list.devices
        ]
        return sorted(infos, key=lambda info: (not info.this_device, info.created_at))

    def find(self, device: str | bytes) -> DeviceCertificateInfo:
        """The listed device named by its key, its id, or a unique id prefix (>= 4 chars)."""
        listed = self._core.identity.device_list.devices
        if isinstance(device, bytes):
            found = [info for info in listed if hmac.compare_digest(info.device_key, device)]
        else:
            text = device.strip().lower()
            found = [info for info in listed if len(text) >= 4 and info.device_id.startswith(text)]
        if len(found) != 1:
            raise ConfigurationError(f"no single listed device matches {device!r}")
        return found[0]

    # -- changes ------------------------------------------------------------------
    async def adopt(self, identity: Identity, *, announce: bool = True) -> None:
        """Make ``identity`` (a newer device list) ours: persist, publish, tell our devices
        and connected contacts, report what changed."""
        core = self._core
        previous = core.identity.device_list
        core.identity = identity
        current = identity.device_list
        async with core.keys.transaction() as tx:
            await tx.save_blob(_OWN_LIST, bytes(current.to_signed()))
        added = tuple(i.device_id for i in current.devices if not previous.is_active(i.device_key))
        removed_keys = [
            i.device_key for i in previous.devices if not current.is_active(i.device_key)
        ]
        for key in removed_keys:
            await self._forget(key)
        if added:
            await self._sync.backfill()  # the history the new device will ask for
        if added or removed_keys:
            await core.emit(
                OwnDevicesChanged(added=added, removed=tuple(device_id(k) for k in removed_keys))
            )
        if not announce:
            return
        await self._publish()
        signed = current.to_signed()
        await self._sync.send({}, device_list=signed)
        for connection in core.manager.connections:
            if not connection.closed.is_set():
                try:
                    await connection.send(Frame(device_list=signed))
                except OmegaError as exc:
                    logger.info("event=device_list_push_failed error=%s", exc.code)
        core.outbox_wakeup.set()

    async def _forget(self, device_key: bytes) -> None:
        """A device left our list: no session, nothing queued, nothing half-received."""
        core = self._core
        async with core.keys.transaction() as tx:
            await tx.delete_session(device_key)
        async with core.db.transaction() as tx:
            for entry in await tx.pending_outbox():
                if hmac.compare_digest(entry.recipient_device_key, device_key):
                    await tx.remove_outbox(entry.message_id, entry.recipient_device_key)
        self._sync.forget_device(device_key)
        for hook in list(self.revocation_hooks):
            try:
                await hook(device_key)
            except Exception:
                logger.exception("event=revocation_hook_failed hook=%r", hook)

    async def rename(self, device: str | bytes, name: str) -> DeviceInfo:
        """Give one of our devices a new name (a new certificate, a new device list)."""
        core = self._core
        identity = core.identity
        target = self.find(device)
        certificate = certify_device(
            identity.key_pair, target.device_key, name=name, created_at=target.created_at
        )
        devices = [
            certificate if info.device_key == target.device_key else info.to_signed()
            for info in identity.device_list.devices
        ]
        renamed = self._signed(identity, devices, _revocations(identity.device_list))
        if target.device_key == core.device_key:
            info = verify_device_certificate(certificate, identity_key=identity.identity_key)
            renamed = dataclasses.replace(
                renamed, device=LocalDevice(key_pair=identity.device.key_pair, certificate=info)
            )
        await self.adopt(renamed)
        return next(d for d in self.devices() if d.device_key == target.device_key)

    async def revoke(self, device: str | bytes, *, reason: str = "") -> None:
        """Revoke one of our other devices: it leaves the list for good, contacts stop
        delivering to it, our devices forget their sessions with it."""
        core = self._core
        target = self.find(device)
        revoked = core.identity.revoke_device(
            target.device_key, revoked_at=core.now(), reason=reason
        )
        await self.adopt(revoked)

    def _signed(
        self,
        identity: Identity,
        devices: Sequence[object],
        revocations: list[DeviceRevocation],
        *,
        sequence: int | None = None,
    ) -> Identity:
        signed = sign_device_list(
            identity.key_pair,
            sequence=sequence if sequence is not None else identity.device_list.sequence + 1,
            devices=devices,  # type: ignore[arg-type]
            revocations=revocations,
            issued_at=self._core.now(),
        )
        return dataclasses.replace(
            identity, device_list=verify_device_list(signed, user_id=identity.user_id)
        )

    async def _from_frame(self, signed: SignedDeviceList) -> bool:
        await self.receive_own_list(bytes(signed), None)
        return True

    async def receive_own_list(
        self, signed: SignedDeviceList | bytes, sender: bytes | None, *, announce: bool = True
    ) -> None:
        """Merge a device list of our own user (from one of our devices, or the key store)."""
        core = self._core
        try:
            remote = verify_device_list(signed, user_id=core.user_id)
        except OmegaError as exc:
            logger.warning("event=own_device_list_refused error=%s", exc.code)
            return
        local = core.identity.device_list
        if remote.is_revoked(core.device_key):
            if not self.revoked_here:
                self.revoked_here = True
                await core.emit(
                    OwnDevicesChanged(
                        added=(),
                        removed=(core.identity.device.device_id,),
                        this_device_revoked=True,
                    )
                )
            return
        merged = _merge(local, remote)
        if _same(merged, remote) and remote.sequence > local.sequence:
            await self.adopt(dataclasses.replace(core.identity, device_list=remote), announce=False)
        elif not _same(merged, local):
            certificates, revocations = merged
            sequence = max(local.sequence, remote.sequence) + 1
            identity = self._signed(core.identity, certificates, revocations, sequence=sequence)
            await self.adopt(identity, announce=announce)

    # -- linking ------------------------------------------------------------------
    async def create_link(
        self,
        task_group: TaskGroup,
        listen: Sequence[Address],
        reachable: Sequence[Address],
        mailboxes: Sequence[str],
        *,
        lifetime_ms: int = DEFAULT_LINK_LIFETIME_MS,
    ) -> DeviceLink:
        """Open a one-time link listener and return its :class:`DeviceLink`."""
        core = self._core
        targets = [_link_address(address, core) for address in listen]
        if not targets:
            raise ConfigurationError("linking a device needs a client that listens")
        link = DeviceLink(self)
        listeners: list[Listener] = []
        for address in targets:
            transport = self._registry.create_for(address)
            listener = await task_group.start(transport.listen, address, link._serve)
            listeners.append(listener)
        bound = tuple(a for listener in listeners for a in listener.addresses)
        link.offer = LinkOffer.create(
            core.identity,
            link_addresses=bound[:8],
            now=core.now(),
            rng=core.rng,
            lifetime_ms=lifetime_ms,
            addresses=tuple(reachable)[:8],
            mailboxes=tuple(mailboxes)[:8],
        )
        link._listeners = listeners
        task_group.start_soon(link._expire, lifetime_ms / 1000)
        return link


class DeviceLink:
    """A link code waiting for a new device (see :meth:`omega.client.Client.create_link_code`)."""

    def __init__(self, manager: DeviceManager) -> None:
        self._manager = manager
        self.offer: LinkOffer | None = None
        self._listeners: list[Listener] = []
        self._done = anyio.Event()
        self._busy = anyio.Lock()
        self.device: DeviceInfo | None = None
        """The new device, once linked."""

    @property
    def code(self) -> str:
        """The link code's text (show it, or its QR code, to the new device)."""
        assert self.offer is not None
        return self.offer.code.to_text()

    @property
    def verification_code(self) -> str | None:
        """The 6-digit code the new device shows too, once it said hello."""
        return self.offer.verification_code if self.offer is not None else None

    async def wait(self, timeout: float | None = None) -> DeviceInfo:
        """Wait until a device is linked; raise TimeoutError after ``timeout`` seconds and
        :class:`~omega.errors.LinkCodeExpiredError` when the code expired unused."""
        with anyio.fail_after(timeout):
            await self._done.wait()
        if self.device is None:
            from omega.errors import LinkCodeExpiredError

            raise LinkCodeExpiredError("the link code expired unused")
        return self.device

    async def aclose(self) -> None:
        """Stop waiting for a device (the code becomes useless)."""
        self._done.set()
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            await listener.aclose()

    async def _expire(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._done.wait()
        await self.aclose()

    async def _serve(self, connection: FrameConnection) -> None:
        offer = self.offer
        manager = self._manager
        if offer is None or self._done.is_set():
            return
        async with self._busy:  # one new device at a time
            try:
                with anyio.fail_after(_LINK_TIMEOUT):
                    hello = await connection.receive_frame()
                    await connection.send_frame(offer.receive_hello(hello, now=manager._core.now()))
                    identity = offer.receive_finished(await connection.receive_frame())
                    await manager.adopt(identity)
                    assert offer.device_key is not None
                    self.device = next(
                        d for d in manager.devices() if d.device_key == offer.device_key
                    )
                    await connection.send_frame(offer.linked_confirmation())
            except (OmegaError, TimeoutError) as exc:
                logger.warning("event=link_failed error=%s", getattr(exc, "code", "timeout"))
                return
        self._done.set()  # the expiry task closes the listeners


def _link_address(address: Address, core: Core) -> Address:
    if address.is_memory:
        return Address.parse(f"/memory/link-{random_bytes(core.rng, 8).hex()}")
    return dataclasses.replace(address.with_port(0), peer=None)


async def link_device(
    code: str | DeviceLinkCode,
    *,
    device_name: str,
    registry: TransportRegistry,
    now: int,
    rng: Callable[[int], bytes],
    timeout: float = _LINK_TIMEOUT,
) -> LinkedDevice:
    """Run the new device's side of a link: dial the code's addresses, exchange, return
    the identity it joins (raises the errors of :class:`~omega.sync.LinkRequest`, or
    :class:`~omega.errors.DeviceLinkError` when no address answers)."""
    parsed = code if isinstance(code, DeviceLinkCode) else DeviceLinkCode.parse(code)
    request = LinkRequest(parsed, device_name=device_name, now=now, rng=rng)
    failures: list[str] = []
    for address in parsed.addresses:
        if address.transport not in registry:
            continue
        try:
            with anyio.fail_after(timeout):
                transport = registry.create_for(address)
                connection = await transport.dial(address)
                async with connection:
                    await connection.send_frame(request.hello())
                    linked = request.receive_welcome(await connection.receive_frame())
                    await connection.send_frame(linked.finished)
                    request.receive_linked(await connection.receive_frame())
                    return linked
        except DeviceLinkError:
            raise
        except (OmegaError, TimeoutError) as exc:
            failures.append(f"{address}: {getattr(exc, 'message', 'timed out')}")
    raise DeviceLinkError(
        "no address of the link code answered: " + "; ".join(failures or ["none usable"])
    )


def _revocations(device_list: VerifiedDeviceList) -> list[DeviceRevocation]:
    return [
        DeviceRevocation(device_key=r.device_key, revoked_at=r.revoked_at, reason=r.reason)
        for r in device_list.revocations
    ]


_Merged = tuple[list[object], list[DeviceRevocation]]


def _merge(local: VerifiedDeviceList, remote: VerifiedDeviceList) -> _Merged:
    """Devices listed by either list and revoked by neither (the newer list's certificate
    wins for a device both list); every revocation of both."""
    newer, older = (remote, local) if remote.sequence > local.sequence else (local, remote)
    revocations = {r.device_key: r for r in older.revocations} | {
        r.device_key: r for r in newer.revocations
    }
    certificates: dict[bytes, DeviceCertificateInfo] = {}
    for info in [*older.devices, *newer.devices]:
        if info.device_key not in revocations:
            certificates[info.device_key] = info
    return (
        [info.to_signed() for info in certificates.values()],
        [
            DeviceRevocation(device_key=r.device_key, revoked_at=r.revoked_at, reason=r.reason)
            for r in revocations.values()
        ],
    )


def _same(merged: _Merged, device_list: VerifiedDeviceList) -> bool:
    certificates, revocations = merged
    return sorted(bytes(c) for c in certificates) == sorted(  # type: ignore[call-overload]
        bytes(info.to_signed()) for info in device_list.devices
    ) and {r.device_key for r in revocations} == set(device_list.revoked)
