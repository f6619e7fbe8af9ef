"""Where a store server keeps its state: the :class:`StoreBackend` interface.

The service layer (:class:`omega.mailbox.service.StoreService`) holds every
rule (auth, quotas, TTLs, signatures); a backend only stores and answers,
atomically where it says so. Implementations: :class:`MemoryBackend`
(:mod:`omega.mailbox.memory`), and SQLite, PostgreSQL and sharded backends in
:mod:`omega.server.store`. Each passes
:func:`omega.testing.mailbox.check_store_backend`.

A :class:`Notifier` tells waiting clients that something arrived: in one
process through memory, across processes through Redis pub/sub.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = [
    "DepositOutcome",
    "Listener",
    "Notifier",
    "PrekeyRecord",
    "StoreBackend",
    "StoredMessage",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """One message as a backend keeps it."""

    recipient_hash: str
    """Mailbox address: :func:`omega.mailbox.recipient_hash` of the device key."""
    message_id: str
    """Depositor's id; unique per recipient."""
    payload: bytes
    """Opaque ciphertext."""
    deposited_at: int
    """Unix milliseconds."""
    expires_at: int
    """Unix milliseconds."""


class DepositOutcome(enum.Enum):
    """What :meth:`StoreBackend.insert_message` did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    MAILBOX_FULL = "mailbox_full"
    REVOKED = "revoked"
    """The recipient device was revoked (:meth:`StoreBackend.revoke_device`); nothing stored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrekeyRecord:
    """What :meth:`StoreBackend.claim_prekeys` hands out for one device."""

    user_id: str
    """The user the device belongs to (checked on upload)."""
    certificate: bytes
    """Encoded ``SignedDeviceCertificate``."""
    signed_prekey: bytes
    """Encoded ``SignedPrekey``."""
    one_time_prekey: tuple[int, bytes] | None
    """``(prekey_id, public_key)``, removed from the pool by this claim; None if none left."""


class StoreBackend(ABC):
    """Durable state of a store server; any method may raise :class:`~omega.errors.StorageError`."""

    @abstractmethod
    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        """Store ``message`` unless its recipient is revoked, (recipient, message_id)
        exists or the mailbox is full (checked in that order).

        Atomic: the revocation check, the duplicate check, the quota check
        (``max_messages`` messages and ``max_bytes`` payload bytes after the
        insert, counting unexpired and expired-but-unpurged messages) and the
        insert happen as one, so no message lands in a mailbox revoked meanwhile.
        """

    @abstractmethod
    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        """Unexpired messages (``expires_at > now``) of a mailbox, in deposit order."""

    @abstractmethod
    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        """Delete the named messages of one mailbox; returns how many existed."""

    @abstractmethod
    async def purge_expired(self, now: int) -> int:
        """Delete every message with ``expires_at <= now`` and spent nonces past expiry."""

    @abstractmethod
    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        """Record a challenge nonce as used; False if it was used before (a replay)."""

    @abstractmethod
    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        """``(sequence, encoded SignedDeviceList)`` of a user, or None."""

    @abstractmethod
    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        """Compare and set: store if the current sequence is ``expected_sequence`` (None: none)."""

    @abstractmethod
    async def put_prekeys(
        self,
        device_key: bytes,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        """Replace the device's signed prekey and add one-time prekeys (ids already held are
        skipped); returns the pool size after."""

    @abstractmethod
    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        """The device's prekeys with its lowest-id one-time prekey, removed atomically.

        None (and nothing removed) unless the device published prekeys as
        ``user_id``. Two concurrent claims never get the same one-time prekey.
        """

    @abstractmethod
    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        """Size of a device's one-time prekey pool (0 for an unknown device)."""

    @abstractmethod
    async def delete_prekeys(self, device_key: bytes) -> None:
        """Forget everything published for a device (when it is revoked)."""

    @abstractmethod
    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        """Mark a device's mailbox revoked for good and delete what waits in it.

        One atomic operation (a deposit racing with it is either purged or
        refused); returns how many messages were deleted. Idempotent: the
        first ``revoked_at`` (Unix milliseconds) is kept. Revocation is
        permanent (device keys never come back): nothing un-revokes.
        """

    @abstractmethod
    async def is_revoked(self, recipient_hash: str) -> bool:
        """True once :meth:`revoke_device` ran for this mailbox."""

    async def aclose(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class Listener(ABC):
    """A subscription to one mailbox's arrivals."""

    @abstractmethod
    async def wait(self) -> None:
        """Return once a deposit for the mailbox was announced after the subscription began."""


class Notifier(ABC):
    """Announces deposits to clients waiting on a mailbox (long poll, WebSocket)."""

    @abstractmethod
    def listen(self, recipient_hash: str) -> AbstractAsyncContextManager[Listener]:
        """Subscribe to a mailbox for the duration of the ``async with`` block."""

    @abstractmethod
    async def notify(self, recipient_hash: str) -> None:
        """Announce that something was deposited for ``recipient_hash``."""

    async def aclose(self) -> None:  # noqa: B027 - most notifiers hold nothing to release
        """Release connections; idempotent."""
