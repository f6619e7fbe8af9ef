"""Devices: device keys, device certificates and the signed device list.

Each device of a user has its own Ed25519 key pair. The user's identity key
vouches for a device with a *device certificate*, and publishes the current
set of devices in a *signed device list*. Sessions, prekeys and mailboxes
belong to devices; revoking a device changes the device list, never the
identity.

Device certificates
-------------------
``SignedDeviceCertificate.certificate`` holds the encoded ``DeviceCertificate``
(identity key, device key, device name, creation time) and
``SignedDeviceCertificate.signature`` the identity key's Ed25519 signature over
``b"omega/device-certificate/v1" || certificate``. The signature covers
exactly the transmitted bytes: verifiers check it before decoding them and
never re-encode. A certificate is valid when, in this order:

1. the signed envelope is at most :data:`MAX_CERTIFICATE_SIZE` bytes, and so
   is the certificate inside it;
2. the signature verifies under the identity key the verifier expects;
3. the certificate decodes strictly, names that same identity key, and a
   device key that is a valid Ed25519 point different from the identity key;
4. the device name is 1..64 UTF-8 bytes without control, line-separator or
   bidirectional-formatting characters, and ``created_at`` (Unix
   milliseconds) is not negative.

Signed device lists
-------------------
``SignedDeviceList.device_list`` holds the encoded ``DeviceList`` and
``SignedDeviceList.signature`` the identity key's signature over
``b"omega/device-list/v1" || device_list``. A list is accepted for a user id
when, in this order:

1. the signed envelope and the list inside are at most
   :data:`MAX_DEVICE_LIST_SIZE` (64 KiB) each;
2. the signature verifies under the identity key the user id encodes;
3. the list decodes strictly and its ``user_id`` is the canonical
   (lowercase) form of that user id;
4. if a previously accepted list is known, the new ``sequence`` is strictly
   greater (else :class:`~omega.errors.StaleDeviceListError`: a replay or a
   rollback);
5. ``issued_at`` is not negative; the list holds 1..:data:`MAX_DEVICES` (32)
   certificates, each valid for the identity key, with no device key twice;
6. every revocation names a valid device key, at most once, with a
   non-negative ``revoked_at`` and a reason of at most 256 UTF-8 bytes
   (may be empty, same character rules as names); no device is both listed
   and revoked (:class:`~omega.errors.RevokedDeviceError`);
7. if a previous list is known, every device it revoked is still revoked:
   a revoked device never comes back, and its revocation is never dropped
   (:class:`~omega.errors.RevokedDeviceError`).

Sequence numbers are ``uint64``; the first list an identity publishes has
sequence 1. ``issued_at`` is informative only: lists are ordered by
sequence, never by clock.

Device ids
----------
:func:`device_id` is the lowercase hex of the first 8 bytes of
SHA-256(device key): 16 characters for logs and displays. Protocol messages
always carry the full 32-byte key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from omega.crypto._ed25519 import Ed25519KeyPair, check_public_key, verify_signature
from omega.crypto._text import label_problem
from omega.crypto.identity import IdentityKeyPair, public_key_from_user_id
from omega.errors import (
    CertificateError,
    ConfigurationError,
    CryptoError,
    DecodeError,
    InvalidKeyError,
    MessageDecodeError,
    RevokedDeviceError,
    StaleDeviceListError,
)
from omega.protocol import (
    DeviceCertificate,
    DeviceList,
    DeviceRevocation,
    SignedDeviceCertificate,
    SignedDeviceList,
    decode_message,
    encode_message,
)

__all__ = [
    "DEVICE_CERTIFICATE_CONTEXT",
    "DEVICE_LIST_CONTEXT",
    "MAX_CERTIFICATE_SIZE",
    "MAX_DEVICES",
    "MAX_DEVICE_LIST_SIZE",
    "MAX_DEVICE_NAME_BYTES",
    "MAX_REVOCATION_REASON_BYTES",
    "DeviceCertificateInfo",
    "DeviceKeyPair",
    "RevokedDevice",
    "VerifiedDeviceList",
    "certify_device",
    "device_id",
    "sign_device_list",
    "verify_device_certificate",
    "verify_device_list",
]

DEVICE_CERTIFICATE_CONTEXT = b"omega/device-certificate/v1"
"""Domain-separation prefix of device certificate signatures."""

DEVICE_LIST_CONTEXT = b"omega/device-list/v1"
"""Domain-separation prefix of device list signatures."""

MAX_DEVICES = 32
"""Most devices one device list may hold."""

MAX_DEVICE_NAME_BYTES = 64
"""Longest device name, in UTF-8 bytes."""

MAX_REVOCATION_REASON_BYTES = 256
"""Longest revocation reason, in UTF-8 bytes."""

MAX_CERTIFICATE_SIZE = 1024
"""Largest encoded signed certificate (and certificate inside it) accepted, in bytes."""

MAX_DEVICE_LIST_SIZE = 64 * 1024
"""Largest encoded signed device list (and list inside it) accepted, in bytes."""

_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


def device_id(device_key: bytes) -> str:
    """Return the short display id of a device key: hex of SHA-256(key)[:8].

    Raises :class:`~omega.errors.InvalidKeyError` unless ``device_key`` is 32 bytes.
    """
    if not isinstance(device_key, bytes) or len(device_key) != 32:
        raise InvalidKeyError("a device key is 32 bytes")
    return hashlib.sha256(device_key).digest()[:8].hex()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class DeviceKeyPair(Ed25519KeyPair):
    """The Ed25519 key pair of one device; ``repr`` shows its device id, never the seed."""

    @property
    def device_id(self) -> str:
        """Short display id of this device (see :func:`device_id`)."""
        return device_id(self.public_key)

    def __repr__(self) -> str:
        return f"DeviceKeyPair(device_id={self.device_id!r})"


@dataclass(frozen=True, slots=True)
class DeviceCertificateInfo:
    """The verified content of a device certificate."""

    identity_key: bytes
    """Ed25519 public key of the user who certified the device."""
    device_key: bytes
    """Ed25519 public key of the device."""
    device_name: str
    """Human label of the device."""
    created_at: int
    """When the device was certified, Unix milliseconds."""
    device_id: str
    """Short display id of the device key."""
    certificate_bytes: bytes = field(repr=False)
    """The signed encoded ``DeviceCertificate``, exactly as received."""
    signature: bytes = field(repr=False)
    """The identity key's signature over it."""

    def to_signed(self) -> SignedDeviceCertificate:
        """Return the certificate as the protobuf message it was verified from."""
        return SignedDeviceCertificate(certificate=self.certificate_bytes, signature=self.signature)


@dataclass(frozen=True, slots=True)
class RevokedDevice:
    """A verified entry of a device list's revocations."""

    device_key: bytes
    """Ed25519 public key of the revoked device."""
    revoked_at: int
    """When it was revoked, Unix milliseconds."""
    reason: str
    """Why, in the user's words (may be empty)."""

    @property
    def device_id(self) -> str:
        """Short display id of the revoked device."""
        return device_id(self.device_key)


@dataclass(frozen=True, slots=True)
class VerifiedDeviceList:
    """A signed device list that passed :func:`verify_device_list`."""

    user_id: str
    """Canonical user id of the list's owner."""
    identity_key: bytes
    """Ed25519 identity key of the owner."""
    sequence: int
    """Version of the list; a newer list has a higher sequence."""
    issued_at: int
    """When the list was signed, Unix milliseconds (informative only)."""
    devices: tuple[DeviceCertificateInfo, ...]
    """The devices of the user, in list order."""
    revoked: frozenset[bytes]
    """Keys of every device the user has revoked."""
    revocations: tuple[RevokedDevice, ...]
    """The revocations with their times and reasons, in list order."""
    device_list_bytes: bytes = field(repr=False)
    """The signed encoded ``DeviceList``, exactly as received."""
    signature: bytes = field(repr=False)
    """The identity key's signature over it."""

    def is_active(self, device_key: bytes) -> bool:
        """True when ``device_key`` is one of the listed (hence unrevoked) devices."""
        return any(hmac.compare_digest(info.device_key, device_key) for info in self.devices)

    def is_revoked(self, device_key: bytes) -> bool:
        """True when the user has revoked ``device_key``."""
        return device_key in self.revoked

    def device(self, device_key: bytes) -> DeviceCertificateInfo:
        """Return the certificate of the listed device ``device_key``.

        Raises :class:`~omega.errors.RevokedDeviceError` for a revoked device
        and :class:`~omega.errors.CertificateError` for an unknown one.
        """
        for info in self.devices:
            if hmac.compare_digest(info.device_key, device_key):
                return info
        name = device_id(device_key)
        if device_key in self.revoked:
            raise RevokedDeviceError(
                f"device {name} of {self.user_id} has been revoked",
                details={"device_id": name, "user_id": self.user_id},
            )
        raise CertificateError(
            f"device {name} is not in the device list of {self.user_id}",
            details={"device_id": name, "user_id": self.user_id},
        )

    def to_signed(self) -> SignedDeviceList:
        """Return the list as the protobuf message it was verified from."""
        return SignedDeviceList(device_list=self.device_list_bytes, signature=self.signature)


def _check_timestamp(value: int, what: str) -> None:
    if not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise ConfigurationError(f"{what} must be Unix milliseconds in 0..2**63-1, got {value!r}")


def certify_device(
    identity: IdentityKeyPair, device_key: bytes, *, name: str, created_at: int
) -> SignedDeviceCertificate:
    """Sign a certificate saying that ``device_key`` is a device of ``identity``.

    Raises :class:`~omega.errors.InvalidKeyError` for an unusable device key
    and :class:`~omega.errors.ConfigurationError` for an invalid name (see
    the module docstring), a negative ``created_at``, or a device key equal
    to the identity key.
    """
    check_public_key(device_key)
    if hmac.compare_digest(device_key, identity.public_key):
        raise ConfigurationError("a device key must differ from the identity key")
    problem = label_problem(name, max_bytes=MAX_DEVICE_NAME_BYTES, allow_empty=False)
    if problem is not None:
        raise ConfigurationError(f"device name {problem}", details={"name": name})
    _check_timestamp(created_at, "created_at")
    certificate = encode_message(
        DeviceCertificate(
            identity_key=identity.public_key,
            device_key=device_key,
            device_name=name,
            created_at=created_at,
        )
    )
    signature = identity.sign(DEVICE_CERTIFICATE_CONTEXT + certificate)
    return SignedDeviceCertificate(certificate=certificate, signature=signature)


def _as_signed_certificate(
    signed: SignedDeviceCertificate | bytes,
) -> SignedDeviceCertificate:
    if isinstance(signed, SignedDeviceCertificate):
        return signed
    return decode_message(SignedDeviceCertificate, signed, max_size=MAX_CERTIFICATE_SIZE)


def verify_device_certificate(
    signed: SignedDeviceCertificate | bytes, *, identity_key: bytes
) -> DeviceCertificateInfo:
    """Verify a device certificate issued by ``identity_key`` and return its content.

    ``signed`` is the message or its encoding. Raises
    :class:`~omega.errors.InvalidKeyError` if ``identity_key`` itself is
    unusable, :class:`~omega.errors.MessageDecodeError` for malformed or
    oversized bytes, :class:`~omega.errors.InvalidSignatureError` when the
    signature does not verify, and :class:`~omega.errors.CertificateError`
    when a signed field breaks a rule (see the module docstring).

    Every check here depends only on the identity key, the certificate bytes
    and the signature, so successful verifications are remembered (the last
    4096, keyed by exactly those three byte strings):
    the same certificates arrive again with every prekey message and bundle.
    Failures are never remembered; anything that depends on time or on a
    device list (revocation) is checked by the callers on every call.
    """
    check_public_key(identity_key)
    envelope = _as_signed_certificate(signed)
    certificate_bytes, signature = envelope.certificate, envelope.signature
    if type(certificate_bytes) is bytes and type(signature) is bytes:
        return _verified_certificate(identity_key, certificate_bytes, signature)
    return _verify_certificate(identity_key, certificate_bytes, signature)


_VERIFIED_CACHE_SIZE = 4096
"""Successful certificate verifications remembered (about 0.5 KiB each)."""


@functools.lru_cache(maxsize=_VERIFIED_CACHE_SIZE)
def _verified_certificate(
    identity_key: bytes, certificate_bytes: bytes, signature: bytes
) -> DeviceCertificateInfo:
    """:func:`_verify_certificate`, remembered; lru_cache never stores a raised error."""
    return _verify_certificate(identity_key, certificate_bytes, signature)


def _verify_certificate(
    identity_key: bytes, certificate_bytes: bytes, signature: bytes
) -> DeviceCertificateInfo:
    if len(certificate_bytes) > MAX_CERTIFICATE_SIZE:
        raise MessageDecodeError(
            f"device certificate of {len(certificate_bytes)} bytes exceeds the limit "
            f"of {MAX_CERTIFICATE_SIZE} bytes"
        )
    verify_signature(identity_key, DEVICE_CERTIFICATE_CONTEXT + certificate_bytes, signature)
    certificate = decode_message(DeviceCertificate, certificate_bytes)
    if not hmac.compare_digest(certificate.identity_key, identity_key):
        raise CertificateError("device certificate names a different identity key")
    try:
        check_public_key(certificate.device_key)
    except InvalidKeyError as exc:
        raise CertificateError(f"device certificate holds an unusable device key: {exc}") from exc
    if hmac.compare_digest(certificate.device_key, identity_key):
        raise CertificateError("device certificate certifies the identity key as a device")
    problem = label_problem(
        certificate.device_name, max_bytes=MAX_DEVICE_NAME_BYTES, allow_empty=False
    )
    if problem is not None:
        raise CertificateError(f"device certificate's device name {problem}")
    if certificate.created_at < 0:
        raise CertificateError("device certificate has a negative creation time")
    return DeviceCertificateInfo(
        identity_key=identity_key,
        device_key=certificate.device_key,
        device_name=certificate.device_name,
        created_at=certificate.created_at,
        device_id=device_id(certificate.device_key),
        certificate_bytes=certificate_bytes,
        signature=signature,
    )


def sign_device_list(
    identity: IdentityKeyPair,
    *,
    sequence: int,
    devices: Iterable[SignedDeviceCertificate],
    revocations: Iterable[DeviceRevocation],
    issued_at: int,
) -> SignedDeviceList:
    """Sign the device list of ``identity``.

    The result is checked with :func:`verify_device_list` before it is
    returned, so Omega never publishes a list its peers would refuse: any
    rule broken (see the module docstring) raises
    :class:`~omega.errors.ConfigurationError`.
    """
    if not isinstance(sequence, int) or not 0 <= sequence <= _UINT64_MAX:
        raise ConfigurationError(f"sequence must be in 0..2**64-1, got {sequence!r}")
    _check_timestamp(issued_at, "issued_at")
    user_id = identity.user_id
    body = encode_message(
        DeviceList(
            user_id=user_id,
            sequence=sequence,
            devices=list(devices),
            revocations=list(revocations),
            issued_at=issued_at,
        )
    )
    signed = SignedDeviceList(device_list=body, signature=identity.sign(DEVICE_LIST_CONTEXT + body))
    try:
        verify_device_list(signed, user_id=user_id)
    except (CryptoError, DecodeError) as exc:
        raise ConfigurationError(f"refusing to sign an invalid device list: {exc}") from exc
    return signed


def _as_signed_list(signed: SignedDeviceList | bytes) -> SignedDeviceList:
    if isinstance(signed, SignedDeviceList):
        return signed
    return decode_message(SignedDeviceList, signed, max_size=MAX_DEVICE_LIST_SIZE)


def _verify_revocation(revocation: DeviceRevocation) -> RevokedDevice:
    try:
        check_public_key(revocation.device_key)
    except InvalidKeyError as exc:
        raise CertificateError(f"device list revokes an unusable device key: {exc}") from exc
    if revocation.revoked_at < 0:
        raise CertificateError("device list holds a revocation with a negative time")
    problem = label_problem(
        revocation.reason, max_bytes=MAX_REVOCATION_REASON_BYTES, allow_empty=True
    )
    if problem is not None:
        raise CertificateError(f"device list holds a revocation whose reason {problem}")
    return RevokedDevice(
        device_key=revocation.device_key, revoked_at=revocation.revoked_at, reason=revocation.reason
    )


def _check_revocations_kept(
    previous: VerifiedDeviceList, revoked: frozenset[bytes], listed: frozenset[bytes]
) -> None:
    dropped = sorted(previous.revoked - revoked)
    if not dropped:
        return
    name = device_id(dropped[0])
    if dropped[0] in listed:
        message = f"device {name} was revoked and cannot come back"
    else:
        message = f"device list drops the revocation of device {name}"
    raise RevokedDeviceError(message, details={"device_id": name})


def verify_device_list(
    signed: SignedDeviceList | bytes,
    *,
    user_id: str,
    previous: VerifiedDeviceList | None = None,
    max_devices: int = MAX_DEVICES,
) -> VerifiedDeviceList:
    """Verify the signed device list of ``user_id`` and return its content.

    ``signed`` is the message or its encoding. ``previous`` is the list
    accepted before for the same user, if any: the new one must be newer and
    keep every revocation. Raises :class:`~omega.errors.InvalidUserIdError`
    for a bad ``user_id``, :class:`~omega.errors.MessageDecodeError` for
    malformed or oversized bytes, :class:`~omega.errors.InvalidSignatureError`
    when a signature does not verify, and
    :class:`~omega.errors.CertificateError` (or its subclasses
    :class:`~omega.errors.StaleDeviceListError` and
    :class:`~omega.errors.RevokedDeviceError`) when a rule is broken; the
    module docstring lists the rules in the order they are checked.
    """
    if not 1 <= max_devices <= MAX_DEVICES:
        raise ConfigurationError(f"max_devices must be in 1..{MAX_DEVICES}, got {max_devices}")
    identity_key = public_key_from_user_id(user_id)
    canonical_user_id = user_id.lower()  # the encoding is one-to-one once decoding succeeded
    if previous is not None and previous.user_id != canonical_user_id:
        raise ConfigurationError("previous device list belongs to another user")
    envelope = _as_signed_list(signed)
    body = envelope.device_list
    if len(body) > MAX_DEVICE_LIST_SIZE:
        raise MessageDecodeError(
            f"device list of {len(body)} bytes exceeds the limit of {MAX_DEVICE_LIST_SIZE} bytes"
        )
    verify_signature(identity_key, DEVICE_LIST_CONTEXT + body, envelope.signature)
    device_list = decode_message(DeviceList, body)
    if device_list.user_id != canonical_user_id:
        raise CertificateError("device list is signed by the right key but names another user")
    if previous is not None and device_list.sequence <= previous.sequence:
        raise StaleDeviceListError(
            f"device list sequence {device_list.sequence} is not newer than the accepted "
            f"sequence {previous.sequence}",
            details={"sequence": device_list.sequence, "accepted": previous.sequence},
        )
    if device_list.issued_at < 0:
        raise CertificateError("device list has a negative issue time")
    if not device_list.devices:
        raise CertificateError("device list holds no device")
    if len(device_list.devices) > max_devices:
        raise CertificateError(
            f"device list holds {len(device_list.devices)} devices, the maximum is {max_devices}",
            details={"devices": len(device_list.devices), "limit": max_devices},
        )
    devices = tuple(
        verify_device_certificate(certificate, identity_key=identity_key)
        for certificate in device_list.devices
    )
    listed = frozenset(info.device_key for info in devices)
    if len(listed) != len(devices):
        raise CertificateError("device list holds the same device twice")
    revocations = tuple(_verify_revocation(entry) for entry in device_list.revocations)
    revoked = frozenset(entry.device_key for entry in revocations)
    if len(revoked) != len(revocations):
        raise CertificateError("device list revokes the same device twice")
    both = sorted(listed & revoked)
    if both:
        name = device_id(both[0])
        raise RevokedDeviceError(
            f"device list both lists and revokes device {name}", details={"device_id": name}
        )
    if previous is not None:
        _check_revocations_kept(previous, revoked, listed)
    return VerifiedDeviceList(
        user_id=canonical_user_id,
        identity_key=identity_key,
        sequence=device_list.sequence,
        issued_at=device_list.issued_at,
        devices=devices,
        revoked=revoked,
        revocations=revocations,
        device_list_bytes=body,
        signature=envelope.signature,
    )
