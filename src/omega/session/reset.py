"""Session reset requests: how a device that cannot decrypt asks for a fresh session.

When a device cannot decrypt a message (it lost its ratchet state, restored
an old backup, or was reinstalled with the same device key), it cannot answer
inside the broken session. It sends instead a ``SignedSessionResetRequest``
(docs/client-protocol.md, "Session recovery"): the ``SessionResetRequest``
names the device whose messages failed and the message ids to send again,
carries the requester's device certificate, a timestamp and a random nonce,
and is signed by the requesting device's key over::

    b"omega/session-reset/v1" || request

The receiver (:func:`verify_reset_request`) checks the signature and the
certificate chain to the user it expects, the target device, the age of the
request, and (:class:`ResetGuard`) that the nonce is new and the requester
has not asked too often; only then does it drop its session with that device,
run a fresh X3DH and resend the listed messages from its outbox.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from dataclasses import dataclass

from omega.crypto._ed25519 import verify_signature
from omega.crypto.account import LocalDevice
from omega.crypto.devices import verify_device_certificate
from omega.crypto.identity import public_key_from_user_id
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    ConfigurationError,
    DuplicateMessageError,
    MessageDecodeError,
    RemoteProtocolError,
)
from omega.protocol import (
    SessionResetRequest,
    SignedSessionResetRequest,
    decode_message,
    encode_message,
)

__all__ = [
    "MAX_RESET_MESSAGE_IDS",
    "RESET_SIGNATURE_CONTEXT",
    "ResetGuard",
    "VerifiedResetRequest",
    "sign_reset_request",
    "verify_reset_request",
]

RESET_SIGNATURE_CONTEXT = b"omega/session-reset/v1"
"""Domain separation prefix of the reset request signature."""

MAX_RESET_MESSAGE_IDS = 256
"""Most message ids one request may list."""

_VERSION = 1
_NONCE_SIZE = 16
_MAX_REQUEST_SIZE = 64 * 1024


def _message_id_ok(message_id: str) -> bool:
    return 0 < len(message_id) <= 256


def sign_reset_request(
    device: LocalDevice,
    *,
    target_device_key: bytes,
    message_ids: list[str],
    now: int,
    rng: RandomSource = system_random,
) -> SignedSessionResetRequest:
    """Build and sign a reset request to ``target_device_key`` for ``message_ids``.

    Raises :class:`~omega.errors.ConfigurationError` for anything
    :func:`verify_reset_request` would refuse: a device key of the wrong size,
    more than :data:`MAX_RESET_MESSAGE_IDS` ids, an id that is not 1..256
    characters, or a request over 64 KiB.
    """
    if len(target_device_key) != 32:
        raise ConfigurationError("a device key is 32 bytes")
    if len(message_ids) > MAX_RESET_MESSAGE_IDS:
        raise ConfigurationError(f"at most {MAX_RESET_MESSAGE_IDS} message ids per request")
    if not all(_message_id_ok(message_id) for message_id in message_ids):
        raise ConfigurationError("message ids are 1..256 characters")
    request = encode_message(
        SessionResetRequest(
            version=_VERSION,
            device_certificate=device.certificate.to_signed(),
            target_device_key=target_device_key,
            message_ids=list(message_ids),
            timestamp=now,
            nonce=random_bytes(rng, _NONCE_SIZE),
        )
    )
    if len(request) > _MAX_REQUEST_SIZE:
        raise ConfigurationError(f"the request is {len(request)} bytes; the limit is 64 KiB")
    signature = device.key_pair.sign(RESET_SIGNATURE_CONTEXT + request)
    return SignedSessionResetRequest(request=request, signature=signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedResetRequest:
    """A reset request whose signature and certificate verified."""

    user_id: str
    """The requesting user."""
    device_key: bytes
    """The requesting device: drop the session with it and start a new one."""
    message_ids: tuple[str, ...]
    """Messages to send again."""
    timestamp: int
    """When it was made, Unix milliseconds."""
    nonce: bytes
    """Its random nonce."""


def verify_reset_request(
    signed: SignedSessionResetRequest,
    *,
    local_device_key: bytes,
    expected_user_id: str,
    now: int,
    max_age_ms: int = 24 * 3600 * 1000,
) -> VerifiedResetRequest:
    """Check ``signed`` came from a device of ``expected_user_id`` and targets us.

    Raises :class:`~omega.errors.MessageDecodeError` for malformed bytes,
    :class:`~omega.errors.InvalidSignatureError` or
    :class:`~omega.errors.CertificateError` for bad signatures, and
    :class:`~omega.errors.RemoteProtocolError` for a request to another
    device, with a bad version or nonce, too many ids, or a timestamp more
    than ``max_age_ms`` away from ``now``.
    """
    if len(signed.request) > _MAX_REQUEST_SIZE:
        raise MessageDecodeError("reset request too large")
    request = decode_message(SessionResetRequest, signed.request)
    if request.version != _VERSION:
        raise RemoteProtocolError(f"unsupported reset request version {request.version}")
    if request.device_certificate is None:
        raise RemoteProtocolError("reset request without a device certificate")
    certificate = verify_device_certificate(
        request.device_certificate, identity_key=public_key_from_user_id(expected_user_id)
    )
    verify_signature(
        certificate.device_key, RESET_SIGNATURE_CONTEXT + signed.request, signed.signature
    )
    if not hmac.compare_digest(request.target_device_key, local_device_key):
        raise RemoteProtocolError("reset request for another device")
    if len(request.nonce) != _NONCE_SIZE:
        raise RemoteProtocolError(f"reset request nonce must be {_NONCE_SIZE} bytes")
    if len(request.message_ids) > MAX_RESET_MESSAGE_IDS or not all(
        _message_id_ok(message_id) for message_id in request.message_ids
    ):
        raise RemoteProtocolError("reset request lists too many or malformed message ids")
    if abs(now - request.timestamp) > max_age_ms:
        raise RemoteProtocolError("reset request is too old or from the future")
    return VerifiedResetRequest(
        user_id=expected_user_id.lower(),
        device_key=certificate.device_key,
        message_ids=tuple(request.message_ids),
        timestamp=request.timestamp,
        nonce=request.nonce,
    )


class ResetGuard:
    """Refuses replayed reset requests and limits how often one device may reset.

    Remembers the last ``max_nonces`` nonces (bounded memory) and the time of
    the last reset it allowed per device (at most ``max_devices`` remembered,
    the least recently reset forgotten first). Raises
    :class:`~omega.errors.ConfigurationError` for a negative interval or a
    limit below one.
    """

    def __init__(
        self, *, min_interval_ms: int = 30_000, max_nonces: int = 4096, max_devices: int = 4096
    ) -> None:
        for name, value, low in (
            ("min_interval_ms", min_interval_ms, 0),
            ("max_nonces", max_nonces, 1),
            ("max_devices", max_devices, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{name} must be an int >= {low}, got {value!r}")
        self._min_interval_ms = min_interval_ms
        self._nonces: OrderedDict[bytes, None] = OrderedDict()
        self._last_reset: OrderedDict[bytes, int] = OrderedDict()
        self._max_nonces = max_nonces
        self._max_devices = max_devices

    def admit(self, request: VerifiedResetRequest, *, now: int) -> bool:
        """Record ``request``; False when it comes too soon after the device's last reset.

        Raises :class:`~omega.errors.DuplicateMessageError` for a nonce seen before.
        """
        if request.nonce in self._nonces:
            raise DuplicateMessageError("this reset request was received already")
        self._nonces[request.nonce] = None
        if len(self._nonces) > self._max_nonces:
            self._nonces.popitem(last=False)
        last = self._last_reset.get(request.device_key)
        if last is not None and now - last < self._min_interval_ms:
            return False
        self._last_reset[request.device_key] = now
        self._last_reset.move_to_end(request.device_key)
        if len(self._last_reset) > self._max_devices:
            self._last_reset.popitem(last=False)
        return True
