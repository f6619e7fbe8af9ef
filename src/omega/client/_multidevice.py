"""The multi-device part of the :class:`~omega.client.Client` API (docs/multi-device.md).

A mixin, so that the client module stays small: device listing, renaming,
revocation, link codes, linking a new device, synced settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from omega.client._core import system_wall_clock
from omega.client._devices import DeviceInfo, DeviceLink, RevocationHook, link_device
from omega.crypto.random import RandomSource, system_random
from omega.sync import DEFAULT_LINK_LIFETIME_MS, DeviceLinkCode, LinkedDevice, Value
from omega.transport.address import Address
from omega.transport.registry import TransportRegistry

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from omega.client._core import Core
    from omega.client._devices import DeviceManager
    from omega.client._sync import SyncService

__all__ = ["MultiDeviceMixin"]


class MultiDeviceMixin:
    """Our devices and what they share; mixed into :class:`~omega.client.Client`."""

    _core: Core
    _devices: DeviceManager
    _sync: SyncService
    _task_group: TaskGroup | None
    _addresses: tuple[Address, ...]
    _mailbox_urls: tuple[str, ...]
    _running: Callable[[], Core]

    def devices(self) -> list[DeviceInfo]:
        """Our devices (this one first): id, name, creation time, when last heard from."""
        return self._devices.devices()

    async def rename_device(self, device: str | bytes, name: str) -> DeviceInfo:
        """Rename one of our devices (by key, id or unique id prefix); signs a new list.

        Raises :class:`~omega.errors.ConfigurationError` for an unknown device
        or an invalid name.
        """
        return await self._devices.rename(device, name)

    async def revoke_device(self, device: str | bytes, *, reason: str = "") -> None:
        """Revoke one of our other devices for good.

        The new signed device list drops it; it is published, sent to our
        other devices and to connected contacts (others get it from the
        directory or at their next connection); our sessions with it are
        deleted and nothing queued for it is sent. It keeps what it already
        had and reads nothing new. Raises
        :class:`~omega.errors.ConfigurationError` for this device or an
        unknown one.
        """
        await self._devices.revoke(device, reason=reason)

    def on_device_revoked(self, hook: RevocationHook) -> RevocationHook:
        """Run ``hook(device_key)`` after each of our devices is revoked (e.g. to rotate
        group Sender Keys); returns it, so it works as a decorator."""
        self._devices.revocation_hooks.append(hook)
        return hook

    async def create_link_code(
        self, *, lifetime: float = DEFAULT_LINK_LIFETIME_MS / 1000
    ) -> DeviceLink:
        """A one-time code (``.code``; show it as text or a QR code) that links a new
        device to this identity within ``lifetime`` seconds; ``await link.wait()``
        returns the new device. The client must be running and listening."""
        core = self._running()
        assert self._task_group is not None
        return await self._devices.create_link(
            self._task_group,
            self._addresses,
            [a.with_peer(core.user_id) for a in self._addresses],
            self._mailbox_urls,
            lifetime_ms=int(lifetime * 1000),
        )

    @staticmethod
    async def link(
        code: str | DeviceLinkCode,
        *,
        device_name: str,
        transports: TransportRegistry | None = None,
        wall_clock: Callable[[], int] = system_wall_clock,
        rng: RandomSource = system_random,
    ) -> LinkedDevice:
        """Join the identity of a link code from a new device.

        Returns the :class:`~omega.sync.LinkedDevice`: its ``identity`` (build
        the new device's client with it, then call
        :meth:`add_device_addresses` with its ``addresses``). Raises
        :class:`~omega.errors.InvalidLinkCodeError`,
        :class:`~omega.errors.LinkCodeExpiredError` or
        :class:`~omega.errors.DeviceLinkError`.
        """
        if transports is None:
            from omega.client._client import standard_registry

            transports = standard_registry()
        return await link_device(
            code, device_name=device_name, registry=transports, now=wall_clock(), rng=rng
        )

    def add_device_addresses(self, addresses: Sequence[Address | str]) -> None:
        """Tell this client where our other devices can be reached (hints)."""
        core = self._core
        parsed = tuple(a if isinstance(a, Address) else Address.parse(a) for a in addresses)
        core.hints[core.user_id] = tuple(dict.fromkeys(core.addresses_hint(core.user_id) + parsed))

    async def settings(self) -> dict[str, Value]:
        """The settings shared by all our devices."""
        await self._sync.load()
        return self._sync.settings()

    async def set_setting(self, name: str, value: Value) -> None:
        """Set a setting shared by all our devices (name ``[a-z0-9][a-z0-9._-]{0,63}``;
        a str of at most 4 KiB, a bool or a number)."""
        await self._sync.set_setting(name, value)

    async def sync_now(self) -> int:
        """Ask our other devices for anything we miss; return how many requests were queued."""
        self._running()
        return await self._sync.request_catch_up()
