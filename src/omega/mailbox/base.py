"""What a client sees of a store server: a :class:`Mailbox` and a :class:`KeyDirectory`.

A store server keeps ciphertext for devices that are offline
(store-and-forward) and publishes the keys others need to start sessions
with them. Implementations: :class:`omega.mailbox.memory.MemoryStoreServer`
(in process), :class:`omega.mailbox.http.StoreClient` (over HTTP) and
:class:`omega.mailbox.grpc.GrpcStoreClient` (over gRPC); all
pass :func:`omega.testing.mailbox.check_mailbox` and
:func:`omega.testing.mailbox.check_key_directory`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from omega.crypto import LocalDevice, VerifiedDeviceList
from omega.crypto.x3dh import VerifiedPrekeyBundle
from omega.protocol import OneTimePrekey, SignedDeviceList, SignedPrekey

__all__ = ["KeyDirectory", "Mailbox", "StoredEnvelope"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEnvelope:
    """One message waiting in a mailbox."""

    message_id: str
    """The depositor's id for the message (deposits are idempotent by it)."""
    payload: bytes
    """Opaque to the server (the client stores an encoded ``omega.protocol.Frame``)."""
    deposited_at: int
    """When the server stored it, Unix milliseconds."""
    expires_at: int
    """When the server drops it unless acknowledged first, Unix milliseconds."""


class _AsyncClosing:
    """``async with`` support on top of ``aclose()``."""

    async def aclose(self) -> None:
        """Release the connection to the server; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class Mailbox(_AsyncClosing, ABC):
    """The mailboxes of one store server, as a client sees them.

    Anyone may deposit for a device; only the holder of the device's key may
    fetch or acknowledge (each call signs a fresh server challenge with
    ``device.key_pair``). A revoked device's mailbox is closed: every call for
    it raises :class:`~omega.errors.RequestRejectedError` with reason
    ``revoked_device``. Delivery is at least once: a message stays until
    its recipient acknowledges it or it expires.
    """

    @abstractmethod
    async def deposit(
        self,
        recipient_device_key: bytes,
        message_id: str,
        payload: bytes,
        *,
        ttl_seconds: int | None = None,
    ) -> bool:
        """Leave ``payload`` for a device; True if stored now, False if it was there already.

        ``ttl_seconds`` asks for a shorter (or longer, up to the server's cap)
        lifetime than the server's default. Raises
        :class:`~omega.errors.QuotaExceededError`,
        :class:`~omega.errors.RateLimitedError`,
        :class:`~omega.errors.RequestRejectedError` (reason
        ``revoked_device`` when the device's user published a list revoking
        it: refused for good) or
        :class:`~omega.errors.ServerUnavailableError`.
        """

    @abstractmethod
    async def fetch(self, device: LocalDevice, *, limit: int = 100) -> list[StoredEnvelope]:
        """The messages waiting for ``device``, oldest first, at most ``limit`` of them."""

    @abstractmethod
    async def acknowledge(self, device: LocalDevice, message_ids: Sequence[str]) -> int:
        """Delete delivered messages; returns how many were deleted (unknown ids are skipped)."""

    @abstractmethod
    async def wait_for_messages(self, device: LocalDevice, *, timeout: float) -> bool:
        """True as soon as a message waits for ``device`` (maybe at once), False on timeout."""


class KeyDirectory(_AsyncClosing, ABC):
    """The key directory of one store server: device lists and prekey bundles."""

    @abstractmethod
    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """Publish a user's signed device list (the server verifies it, and refuses rollbacks)."""

    @abstractmethod
    async def fetch_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """The user's current device list, verified by the client too; None if unknown."""

    @abstractmethod
    async def publish_prekeys(
        self,
        device: LocalDevice,
        *,
        signed_prekey: SignedPrekey,
        one_time_prekeys: Sequence[OneTimePrekey],
    ) -> int:
        """Publish ``device``'s signed prekey and add one-time prekeys; returns the pool size."""

    @abstractmethod
    async def claim_prekey_bundle(
        self, user_id: str, device_key: bytes
    ) -> VerifiedPrekeyBundle | None:
        """A verified bundle of one device, with a one-time prekey no one else gets, if any left.

        None when the device has published no prekeys (or was revoked).
        """

    @abstractmethod
    async def one_time_prekey_count(self, device: LocalDevice) -> int:
        """How many of ``device``'s one-time prekeys the server still holds."""
