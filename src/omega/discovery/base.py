"""The discovery interfaces: a :class:`Resolver` finds peers, a :class:`Publisher` announces us.

A client knows a contact by user id only. To reach them it asks a resolver
for the user's signed device list (which devices exist), then for each
device's signed peer record (where the device can be reached now: direct
addresses, relays, mailboxes). Implementations: the DHT
(:class:`omega.discovery.DhtNode`), a static table
(:class:`omega.discovery.StaticResolver`, for tests and closed deployments)
and a chain of resolvers (:class:`omega.discovery.ChainResolver`).

Every record a resolver returns has been verified: signatures, owner,
expiry. Resolvers never raise for what they could not find or could not
verify: they log it and return ``None``. They raise only for a caller's
mistake (:class:`~omega.errors.ConfigurationError` for an invalid user id or
device key, :class:`~omega.errors.LocalProtocolError` on a closed resolver).
Publishers raise :class:`~omega.errors.DiscoveryError` when the record could
not be stored anywhere, and :class:`~omega.errors.CertificateError` (or a
subclass) for a record they refuse.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio

from omega.crypto.devices import DeviceCertificateInfo, VerifiedDeviceList, device_id
from omega.protocol import SignedDeviceList, SignedPeerRecord
from omega.transport.address import Address
from omega.transport.clock import Clock

__all__ = ["PeerRecordInfo", "Publisher", "Resolver", "WallClock", "unix_ms"]


class WallClock:
    """A :class:`~omega.transport.clock.Clock` counting seconds since the Unix epoch.

    Records expire at wall-clock times, so every discovery component reads
    time from a clock whose :meth:`now` is Unix time in seconds: this one in
    production, :class:`omega.testing.clock.ManualClock` started at a Unix
    time in tests.
    """

    def now(self) -> float:
        """Seconds since 1970-01-01T00:00:00Z."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the wall clock reads ``deadline``."""
        await anyio.sleep(max(0.0, deadline - time.time()))


def unix_ms(clock: Clock) -> int:
    """The time of a wall clock (see :class:`WallClock`) in Unix milliseconds."""
    return int(clock.now() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRecordInfo:
    """A verified peer record: where one device of a user can be reached now."""

    user_id: str
    """Canonical user id of the device's owner (from the device certificate's identity key)."""
    device_key: bytes
    """The device's 32-byte Ed25519 public key."""
    addresses: tuple[Address, ...]
    """Direct transport addresses of the device, in the order the device prefers them."""
    relays: tuple[Address, ...]
    """Relay addresses that reach the device."""
    mailboxes: tuple[str, ...]
    """Base URLs (``https://...`` or ``http://...``) of the device's store-and-forward servers."""
    sequence: int
    """Version of the record: a newer record has a higher sequence."""
    expires_at: int
    """When the record becomes void, Unix milliseconds."""
    certificate: DeviceCertificateInfo | None = field(default=None, repr=False, compare=False)
    """The identity's verified certificate for the device (set by the verifier)."""
    signed: SignedPeerRecord | None = field(default=None, repr=False, compare=False)
    """The signed record exactly as verified (set by the verifier), to pass on or re-publish."""

    @property
    def device_id(self) -> str:
        """Short display id of the device."""
        return device_id(self.device_key)


class Resolver(ABC):
    """Finds a user's device list and a device's peer record; every answer is verified."""

    @abstractmethod
    async def resolve_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """Return the newest valid signed device list of ``user_id``, or ``None``.

        Raises :class:`~omega.errors.InvalidUserIdError` for an invalid user id.
        """

    @abstractmethod
    async def resolve_peer(self, device_key: bytes, *, user_id: str) -> PeerRecordInfo | None:
        """Return the newest valid, unexpired peer record of ``device_key``, or ``None``.

        The record must verify and belong to ``user_id`` (its certificate is
        signed by that user's identity key). Whether the device is still in
        the user's device list is for the caller to check against the list
        it holds. Raises :class:`~omega.errors.InvalidUserIdError` for an
        invalid user id and :class:`~omega.errors.InvalidKeyError` for an
        invalid device key.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the resolver holds; it answers nothing afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class Publisher(ABC):
    """Announces our own signed device list and peer records."""

    @abstractmethod
    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """Publish a signed device list (verified first; refused if invalid or older)."""

    @abstractmethod
    async def publish_peer_record(self, signed: SignedPeerRecord) -> None:
        """Publish a signed peer record (verified first; refused if invalid, expired or older)."""
