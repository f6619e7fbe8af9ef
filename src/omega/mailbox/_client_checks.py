"""What every client does with a store's answers: verify them, shape them."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from omega.crypto import (
    LocalDevice,
    VerifiedDeviceList,
    user_id_from_public_key,
    verify_device_list,
)
from omega.crypto.x3dh import VerifiedPrekeyBundle, verify_prekey_bundle
from omega.errors import CertificateError
from omega.mailbox.backend import StoredMessage
from omega.mailbox.base import StoredEnvelope
from omega.protocol import OneTimePrekey, SignedPrekey, encode_message

__all__ = ["check_bundle", "check_device_list", "encode_prekeys", "to_envelope"]


def to_envelope(message: StoredMessage) -> StoredEnvelope:
    """The client's view of a stored message."""
    return StoredEnvelope(
        message_id=message.message_id,
        payload=message.payload,
        deposited_at=message.deposited_at,
        expires_at=message.expires_at,
    )


def check_device_list(signed: bytes, user_id: str) -> VerifiedDeviceList:
    """Verify a device list the server returned for ``user_id`` (never trust the server)."""
    return verify_device_list(signed, user_id=user_id)


def check_bundle(bundle: bytes, user_id: str, device_key: bytes) -> VerifiedPrekeyBundle:
    """Verify a prekey bundle the server returned for ``device_key`` of ``user_id``."""
    verified = verify_prekey_bundle(bundle, user_id=user_id)
    if not hmac.compare_digest(verified.device_key, device_key):
        raise CertificateError("the server returned a bundle of another device")
    return verified


def encode_prekeys(
    device: LocalDevice, signed_prekey: SignedPrekey, one_time_prekeys: Sequence[OneTimePrekey]
) -> tuple[str, bytes, bytes, list[tuple[int, bytes]]]:
    """``(user_id, certificate, signed prekey, [(id, key)])`` as the service takes them."""
    return (
        user_id_from_public_key(device.certificate.identity_key),
        encode_message(device.certificate.to_signed()),
        encode_message(signed_prekey),
        [(prekey.prekey_id, prekey.public_key) for prekey in one_time_prekeys],
    )
