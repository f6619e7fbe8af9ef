"""The store server's one service layer: every rule, whatever the API (memory, HTTP, gRPC).

:class:`StoreService` checks auth challenges, quotas, lifetimes and rate
limits, then calls a :class:`~omega.mailbox.backend.StoreBackend`; the key
directory half lives in :class:`~omega.mailbox.directory.DirectoryService`
(``service.directory``). Errors a client caused are
:class:`~omega.errors.RequestRejectedError` (or a subclass) with a
``reason`` (:data:`REVOKED_DEVICE` for the mailbox of a device its user's
published device list revoked); a failing backend raises
:class:`~omega.errors.StorageError`, which APIs report as "unavailable, retry".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus

from omega.crypto import RandomSource, system_random
from omega.errors import (
    AuthenticationFailedError,
    QuotaExceededError,
    RateLimitedError,
    RequestRejectedError,
)
from omega.mailbox._auth import (
    NONCE_SIZE,
    AuthProof,
    check_device_key,
    check_message_id,
    check_recipient_hash,
    make_challenge,
    open_challenge,
    recipient_hash,
)
from omega.mailbox._limits import TokenBuckets
from omega.mailbox.backend import DepositOutcome, Listener, Notifier, StoreBackend, StoredMessage
from omega.mailbox.config import StoreConfig, WallClock
from omega.mailbox.directory import DirectoryService
from omega.mailbox.notify import MemoryNotifier
from omega.transport.clock import Clock

__all__ = ["REVOKED_DEVICE", "StoreService"]

REVOKED_DEVICE = "revoked_device"
"""The ``reason`` of a :class:`~omega.errors.RequestRejectedError` for a revoked device's
mailbox: deposits for it and requests authenticated as it are refused for good."""

_log = logging.getLogger("omega.server.store")


def _revoked(message: str) -> RequestRejectedError:
    return RequestRejectedError(message, reason=REVOKED_DEVICE)


class StoreService:
    """Mailboxes and key directory of one store server over one backend.

    ``clock.now()`` must read Unix seconds (the default
    :class:`~omega.mailbox.config.WallClock` does). ``source`` arguments name
    who is asking (an IP address over HTTP) for the per-source rate limits.
    """

    def __init__(
        self,
        backend: StoreBackend,
        *,
        config: StoreConfig | None = None,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        rng: RandomSource = system_random,
    ) -> None:
        self.config = config or StoreConfig()
        self.backend = backend
        self.notifier = notifier or MemoryNotifier()
        self.clock: Clock = clock or WallClock()
        self._rng = rng
        self._secret = self.config.auth_secret or rng(32)
        self._requests = TokenBuckets(
            rate=self.config.requests_per_second,
            burst=self.config.request_burst,
            max_sources=self.config.max_tracked_sources,
        )
        self._bytes = TokenBuckets(
            rate=self.config.bytes_per_second,
            burst=self.config.bytes_burst,
            max_sources=self.config.max_tracked_sources,
        )
        self.directory = DirectoryService(self)

    def now_ms(self) -> int:
        """The service's current Unix time in milliseconds."""
        return int(self.clock.now() * 1000)

    def check_rate(self, source: str, payload_bytes: int = 0) -> None:
        """Count one request (and ``payload_bytes``) against ``source``'s limits."""
        now = self.clock.now()
        if not self._requests.take(source, 1, now) or (
            payload_bytes and not self._bytes.take(source, payload_bytes, now)
        ):
            _log.warning("event=rate_limited source=%s", source)
            raise RateLimitedError(
                "too many requests from this source; slow down", details={"source": source}
            )

    # -- mailboxes -----------------------------------------------------------------------

    async def deposit(
        self,
        *,
        source: str,
        recipient: str,
        message_id: str,
        payload: bytes,
        ttl_seconds: int | None = None,
    ) -> bool:
        """Store ``payload`` for mailbox ``recipient``; True if new, False if already there."""
        check_recipient_hash(recipient)
        check_message_id(message_id)
        if not isinstance(payload, bytes):
            raise RequestRejectedError("payload must be bytes", reason="invalid_payload")
        limit = self.config.max_payload_bytes
        if len(payload) > limit:
            raise QuotaExceededError(
                f"payload of {len(payload)} bytes exceeds the limit of {limit} bytes",
                reason="payload_too_large",
                details={"size": len(payload), "limit": limit},
            )
        if ttl_seconds is None:
            ttl_seconds = self.config.default_ttl_seconds
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
            raise RequestRejectedError(
                "ttl_seconds must be a positive integer", reason="invalid_ttl"
            )
        ttl_seconds = min(ttl_seconds, self.config.max_ttl_seconds)
        self.check_rate(source, len(payload))
        now = self.now_ms()
        message = StoredMessage(
            recipient_hash=recipient,
            message_id=message_id,
            payload=payload,
            deposited_at=now,
            expires_at=now + ttl_seconds * 1000,
        )
        outcome = await self.backend.insert_message(
            message,
            max_messages=self.config.max_messages_per_recipient,
            max_bytes=self.config.max_bytes_per_recipient,
        )
        if outcome is DepositOutcome.MAILBOX_FULL:
            raise QuotaExceededError("the recipient's mailbox is full", reason="mailbox_full")
        if outcome is DepositOutcome.REVOKED:
            _log.info("event=deposit_refused_revoked recipient=%s", recipient[:16])
            raise _revoked("the recipient device was revoked; fetch its user's device list")
        if outcome is DepositOutcome.STORED:
            await self.notifier.notify(recipient)
        return outcome is DepositOutcome.STORED

    async def issue_challenge(self, *, source: str, device_key: bytes) -> bytes:
        """A fresh challenge for ``device_key`` (see :mod:`omega.mailbox._auth`)."""
        check_device_key(device_key)
        self.check_rate(source)
        expires_at = self.now_ms() + self.config.challenge_ttl_seconds * 1000
        return make_challenge(
            self._secret,
            nonce=self._rng(NONCE_SIZE),
            expires_at=expires_at,
            device_key=device_key,
        )

    async def authenticate(self, proof: AuthProof, action: str) -> str:
        """Check ``proof`` for ``action``, spend its nonce; returns the device's recipient hash."""
        nonce, expires_at = open_challenge(self._secret, proof, action=action, now=self.now_ms())
        recipient = recipient_hash(proof.device_key)
        if not await self.backend.spend_nonce(nonce, expires_at):
            _log.warning("event=auth_replay device=%s", recipient[:16])
            raise AuthenticationFailedError("challenge was used already (replay)")
        if await self.backend.is_revoked(recipient):
            _log.warning("event=auth_refused_revoked device=%s", recipient[:16])
            raise _revoked("this device was revoked by its user")
        return recipient

    async def revoke_mailbox(self, device_key: bytes) -> int:
        """Close the mailbox of a device for good, deleting what waits in it; returns how many
        messages were deleted (the directory calls this when a device list revokes a device)."""
        recipient = recipient_hash(device_key)
        purged = await self.backend.revoke_device(recipient, revoked_at=self.now_ms())
        _log.info("event=mailbox_revoked device=%s purged=%d", recipient[:16], purged)
        return purged

    async def fetch(self, proof: AuthProof, *, limit: int = 100) -> list[StoredMessage]:
        """The authenticated device's waiting messages, oldest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RequestRejectedError("limit must be a positive integer", reason="invalid_limit")
        recipient = await self.authenticate(proof, "fetch")
        return await self.backend.list_messages(
            recipient, now=self.now_ms(), limit=min(limit, self.config.max_fetch)
        )

    async def acknowledge(self, proof: AuthProof, message_ids: Sequence[str]) -> int:
        """Delete delivered messages of the authenticated device; returns how many."""
        ids = list(message_ids)
        if len(ids) > self.config.max_acknowledge:
            raise RequestRejectedError(
                f"at most {self.config.max_acknowledge} ids per acknowledgement",
                reason="too_many_ids",
            )
        for message_id in ids:
            check_message_id(message_id)
        recipient = await self.authenticate(proof, "acknowledge")
        if not ids:
            return 0
        return await self.backend.delete_messages(recipient, list(dict.fromkeys(ids)))

    async def wait_for_messages(self, proof: AuthProof, *, timeout: float) -> bool:
        """True once a message waits for the authenticated device; False after ``timeout``."""
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise RequestRejectedError("timeout must be a non-negative number", reason="invalid")
        recipient = await self.authenticate(proof, "wait")
        async with self.notifier.listen(recipient) as listener:
            if await self.has_messages(recipient):
                return True
            return await self.wait_on(listener, min(float(timeout), self.config.max_wait_seconds))

    async def has_messages(self, recipient: str) -> bool:
        """True when mailbox ``recipient`` holds an unexpired message."""
        return bool(await self.backend.list_messages(recipient, now=self.now_ms(), limit=1))

    async def wait_on(self, listener: Listener, timeout: float) -> bool:
        """Wait for ``listener`` on the service's clock; False after ``timeout`` seconds."""
        deadline = self.clock.now() + timeout
        notified = False
        async with anyio.create_task_group() as group:

            async def expire() -> None:
                await self.clock.sleep_until(deadline)
                group.cancel_scope.cancel()

            group.start_soon(expire)
            await listener.wait()
            notified = True
            group.cancel_scope.cancel()
        return notified

    # -- upkeep --------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Purge expired messages and spent nonces now; returns how many were removed."""
        removed = await self.backend.purge_expired(self.now_ms())
        _log.info("event=sweep removed=%d", removed)
        return removed

    async def run_sweeper(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Sweep every ``sweep_interval_seconds`` until cancelled; a failed sweep is logged."""
        task_status.started()
        while True:
            await self.clock.sleep_until(self.clock.now() + self.config.sweep_interval_seconds)
            try:
                await self.sweep()
            except Exception:
                _log.exception("event=sweep_failed")
