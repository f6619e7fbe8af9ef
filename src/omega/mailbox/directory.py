"""The key directory half of the store service: device lists and prekey bundles.

Every upload is verified before anything is stored: device lists with
:func:`omega.crypto.verify_device_list` against the list held before (no
rollback, revocations kept), prekeys through the device certificate chain
(:func:`omega.crypto.x3dh.verify_prekey_bundle`), by an authenticated device
that the user's current device list names. Revoking or dropping a device
from the list forgets its prekeys; revoking it also closes its mailbox for
good (:meth:`StoreService.revoke_mailbox`: what waits is deleted, later
deposits and requests authenticated as it are refused with reason
``revoked_device``).
A one-time prekey is handed out at most once (the backend pops it atomically).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omega.crypto import (
    MAX_CERTIFICATE_SIZE,
    MAX_DEVICE_LIST_SIZE,
    VerifiedDeviceList,
    public_key_from_user_id,
    verify_device_list,
)
from omega.crypto.x3dh import verify_prekey_bundle
from omega.errors import (
    CryptoError,
    DecodeError,
    OmegaError,
    QuotaExceededError,
    RequestRejectedError,
)
from omega.mailbox._auth import AuthProof, check_device_key
from omega.protocol import (
    DeviceList,
    OneTimePrekey,
    PrekeyBundle,
    SignedDeviceCertificate,
    SignedDeviceList,
    SignedPrekey,
    decode_message,
    encode_message,
)

if TYPE_CHECKING:
    from omega.mailbox.service import StoreService

__all__ = ["MAX_SIGNED_PREKEY_SIZE", "DirectoryService"]

MAX_SIGNED_PREKEY_SIZE = 256
"""Largest encoded ``SignedPrekey`` accepted, in bytes."""

_UINT32_MAX = (1 << 32) - 1
_log = logging.getLogger("omega.server.store")


def _rejected(exc: OmegaError, what: str) -> RequestRejectedError:
    return RequestRejectedError(f"{what}: {exc.message}", reason=exc.code)


def _check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str):
        raise RequestRejectedError("a user id is a string", reason="invalid_user_id")
    try:
        public_key_from_user_id(user_id)
    except DecodeError as exc:
        raise _rejected(exc, "invalid user id") from exc
    return user_id


class DirectoryService:
    """Key directory rules over the service's backend (``StoreService.directory``)."""

    def __init__(self, service: StoreService) -> None:
        self._service = service

    async def _current(self, user_id: str) -> VerifiedDeviceList | None:
        stored = await self._service.backend.get_device_list(user_id)
        if stored is None:
            return None
        return verify_device_list(stored[1], user_id=user_id)

    async def publish_device_list(self, *, source: str, signed: bytes) -> VerifiedDeviceList:
        """Verify and store a signed device list (encoded ``SignedDeviceList``)."""
        self._service.check_rate(source)
        try:
            envelope = decode_message(SignedDeviceList, signed, max_size=MAX_DEVICE_LIST_SIZE + 128)
            claimed = decode_message(
                DeviceList, envelope.device_list, max_size=MAX_DEVICE_LIST_SIZE
            ).user_id
        except DecodeError as exc:
            raise _rejected(exc, "device list refused") from exc
        _check_user_id(claimed)
        stored = await self._service.backend.get_device_list(claimed)
        previous = None if stored is None else verify_device_list(stored[1], user_id=claimed)
        if stored is not None and previous is not None and stored[1] == signed:
            return previous
        try:
            verified = verify_device_list(envelope, user_id=claimed, previous=previous)
        except (DecodeError, CryptoError) as exc:
            raise _rejected(exc, "device list refused") from exc
        expected = None if previous is None else previous.sequence
        if not await self._service.backend.put_device_list(
            claimed, verified.sequence, signed, expected_sequence=expected
        ):
            raise RequestRejectedError(
                "a newer device list was published meanwhile", reason="stale_device_list"
            )
        active = {info.device_key for info in verified.devices}
        gone = set(verified.revoked)
        if previous is not None:
            gone |= {info.device_key for info in previous.devices}
        for device_key in gone - active:
            await self._service.backend.delete_prekeys(device_key)
            # Only a revocation is for good (verify_device_list keeps revocations and never
            # lets a revoked key back); a device merely left out of a list may come back in
            # a later one (a merge of concurrent lists), so its mailbox stays open.
            if device_key in verified.revoked:
                await self._service.revoke_mailbox(device_key)
        _log.info("event=device_list_published sequence=%d", verified.sequence)
        return verified

    async def get_device_list(self, user_id: str) -> bytes | None:
        """The stored encoded ``SignedDeviceList`` of ``user_id``, or None."""
        _check_user_id(user_id)
        stored = await self._service.backend.get_device_list(user_id)
        return None if stored is None else stored[1]

    async def publish_prekeys(
        self,
        proof: AuthProof,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        """Verify and store an authenticated device's prekeys; returns its pool size."""
        _check_user_id(user_id)
        limit = self._service.config.max_one_time_prekeys
        if len(one_time_prekeys) > limit:
            raise QuotaExceededError(
                f"at most {limit} one-time prekeys per device", reason="too_many_prekeys"
            )
        for prekey_id, public_key in one_time_prekeys:
            if isinstance(prekey_id, bool) or not isinstance(prekey_id, int):
                raise RequestRejectedError("a prekey id is an integer", reason="invalid_prekey")
            if not 0 <= prekey_id <= _UINT32_MAX:
                raise RequestRejectedError("a prekey id is a uint32", reason="invalid_prekey")
            if not isinstance(public_key, bytes) or len(public_key) != 32:
                raise RequestRejectedError("a prekey is 32 bytes", reason="invalid_prekey")
        device_key = check_device_key(proof.device_key)
        try:
            bundle = PrekeyBundle(
                device_certificate=decode_message(
                    SignedDeviceCertificate, certificate, max_size=MAX_CERTIFICATE_SIZE
                ),
                signed_prekey=decode_message(
                    SignedPrekey, signed_prekey, max_size=MAX_SIGNED_PREKEY_SIZE
                ),
            )
            verified = verify_prekey_bundle(bundle, user_id=user_id)
        except OmegaError as exc:
            raise _rejected(exc, "prekeys refused") from exc
        if not hmac.compare_digest(verified.device_key, device_key):
            raise RequestRejectedError(
                "the certificate is for another device", reason="device_mismatch"
            )
        await self._service.authenticate(proof, "publish-prekeys")
        current = await self._current(user_id)
        if current is None or not current.is_active(device_key):
            raise RequestRejectedError(
                "the user's published device list does not name this device",
                reason="device_not_listed",
            )
        backend = self._service.backend
        held = await backend.count_one_time_prekeys(device_key)
        if held + len(one_time_prekeys) > limit:
            raise QuotaExceededError(
                f"at most {limit} one-time prekeys per device ({held} held)",
                reason="too_many_prekeys",
            )
        return await backend.put_prekeys(
            device_key,
            user_id=user_id,
            certificate=certificate,
            signed_prekey=signed_prekey,
            one_time_prekeys=list(one_time_prekeys),
        )

    async def claim_prekey_bundle(
        self, *, source: str, user_id: str, device_key: bytes
    ) -> bytes | None:
        """An encoded ``PrekeyBundle`` of one device, its one-time prekey removed; or None."""
        _check_user_id(user_id)
        check_device_key(device_key)
        self._service.check_rate(source)
        record = await self._service.backend.claim_prekeys(device_key, user_id)
        if record is None:
            return None
        one_time = None
        if record.one_time_prekey is not None:
            prekey_id, public_key = record.one_time_prekey
            one_time = OneTimePrekey(prekey_id=prekey_id, public_key=public_key)
        bundle = PrekeyBundle(
            device_certificate=decode_message(SignedDeviceCertificate, record.certificate),
            signed_prekey=decode_message(SignedPrekey, record.signed_prekey),
            one_time_prekey=one_time,
        )
        return encode_message(bundle)

    async def count_one_time_prekeys(self, proof: AuthProof) -> int:
        """Size of the authenticated device's one-time prekey pool."""
        await self._service.authenticate(proof, "count-prekeys")
        return await self._service.backend.count_one_time_prekeys(proof.device_key)
