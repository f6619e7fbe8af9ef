"""Session resets: asking a device to start over, and answering such a request.

When an envelope from a device cannot be decrypted (a lost or corrupted
session), the client tells the user once (``DecryptionFailed``) and asks that
device, at most every 10 seconds, with a signed ``SessionResetRequest`` naming
the failed message (directly, else through the store). A request received is
honoured only if it is validly signed, from a contact (or one of our own
devices), within the rate the ``ResetGuard`` admits, and names a message still
waiting for that device's acknowledgement: so nobody on the path can force a
session to reset (docs/client-protocol.md).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from omega.client._core import Core
from omega.client._links import Links
from omega.client._outbox import Outbox
from omega.client.events import DecryptionFailed, SessionReset
from omega.crypto.devices import device_id
from omega.errors import OmegaError, RemoteProtocolError
from omega.protocol import Frame, SignedSessionResetRequest, encode_message
from omega.session.envelope import EnvelopeInfo
from omega.session.reset import ResetGuard, sign_reset_request, verify_reset_request
from omega.transport.manager import PeerConnection

__all__ = ["Resets"]

logger = logging.getLogger("omega.client")

_REQUEST_INTERVAL_MS = 10_000
_MAX_REPORTED = 1024


class Resets:
    """Session resets of one client: requests sent and requests received."""

    def __init__(self, core: Core, links: Links, outbox: Outbox) -> None:
        self._core = core
        self._links = links
        self._outbox = outbox
        self._guard = ResetGuard()
        self._requested: dict[bytes, int] = {}  # device key -> when we last asked it
        self._reported: OrderedDict[tuple[bytes, str], None] = OrderedDict()

    async def request(
        self, info: EnvelopeInfo, connection: PeerConnection | None, cause: OmegaError
    ) -> None:
        """Report an undecryptable envelope once and ask its device to reset (rate-limited)."""
        core = self._core
        now = core.now()
        reported = (info.sender_device_key, info.message_id)
        if reported not in self._reported:
            self._reported[reported] = None
            if len(self._reported) > _MAX_REPORTED:
                self._reported.popitem(last=False)
            await core.emit(
                DecryptionFailed(
                    sender_id=info.sender_id,
                    device_id=device_id(info.sender_device_key),
                    message_id=info.message_id,
                    reason=cause.message,
                )
            )
        last = self._requested.get(info.sender_device_key)
        if last is not None and now - last < _REQUEST_INTERVAL_MS:
            return
        self._requested[info.sender_device_key] = now
        signed = sign_reset_request(
            core.identity.device,
            target_device_key=info.sender_device_key,
            message_ids=[info.message_id],
            now=now,
            rng=core.rng,
        )
        frame = Frame(session_reset=signed)
        if connection is not None and await self._links.send(connection, frame):
            return
        if core.mailbox is not None:
            try:
                await core.mailbox.deposit(
                    info.sender_device_key, core.new_message_id(), encode_message(frame)
                )
            except OmegaError as exc:
                logger.warning("event=reset_deposit_failed error=%s", exc.code)

    async def handle(self, signed: SignedSessionResetRequest, *, expected_user_id: str) -> None:
        """Verify a reset request and start over with the requesting device."""
        core = self._core
        verified = verify_reset_request(
            signed,
            local_device_key=core.device_key,
            expected_user_id=expected_user_id,
            now=core.now(),
        )
        if verified.user_id != core.user_id:
            async with core.db.transaction() as tx:
                contact = await tx.get_contact(verified.user_id)
            if contact is None or contact.blocked:
                raise RemoteProtocolError("reset request from someone who is not a contact")
        if not self._guard.admit(verified, now=core.now()):
            logger.info("event=reset_throttled device=%s", device_id(verified.device_key))
            return
        if not await self._outbox.awaits_any(verified.device_key, verified.message_ids):
            # Nothing it names is waiting for an acknowledgement from that device: the
            # failed envelope was not ours (a forgery injected on the way), so our
            # session with the device is fine and stays.
            logger.info("event=reset_ignored device=%s", device_id(verified.device_key))
            return
        async with core.keys.transaction() as tx:
            await tx.delete_session(verified.device_key)
        resent = await self._outbox.resend_to(verified.device_key)
        await core.emit(
            SessionReset(
                user_id=verified.user_id, device_id=device_id(verified.device_key), resent=resent
            )
        )
