"""Safety numbers: what two users compare to rule out a man in the middle.

The algorithm is Signal's numeric fingerprint (libsignal,
``rust/protocol/src/fingerprint.rs``, ``Fingerprint::get_fingerprint`` and
``DisplayableFingerprint``, fingerprint version 0, 5200 iterations), applied
to Omega's raw 32-byte Ed25519 identity keys with the user id as the stable
identifier:

1. For each party, ``hash = SHA-512(0x00 0x00 || key || user_id || key)``
   (version 0 as 2 bytes big-endian; ``user_id`` as canonical lowercase
   UTF-8). This counts as the first iteration; then 5199 times
   ``hash = SHA-512(hash || key)``: 5200 SHA-512 computations in all.
2. The party's fingerprint is the first 30 bytes of ``hash``, read as six
   5-byte big-endian integers, each reduced modulo 100000 and written as 5
   decimal digits: 30 digits.
3. The safety number is the two 30-digit strings concatenated, the smaller
   one (as a string) first, so both sides compute the same 60 digits. It is
   displayed as 12 groups of 5 digits separated by spaces.

Scanning instead of reading: a party's QR code holds the encoded
``SafetyNumberQr {version = 1, local_fingerprint = first 32 bytes of its own
hash, remote_fingerprint = first 32 bytes of the hash it computed for the
other party}``. The scanner accepts it when the scanned ``local`` equals its
own ``remote`` and the scanned ``remote`` equals its own ``local``, compared
in constant time. A payload that is not a well-formed version-1
``SafetyNumberQr`` with two 32-byte fingerprints raises
:class:`~omega.errors.InvalidQrPayloadError`.

Signal hashes its 33-byte serialized key (``0x05 || key``); Omega hashes the
32-byte key itself, so Omega and Signal numbers for the same key differ. The
digest step is checked against libsignal's published test vector in the
test suite.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from omega.crypto._ed25519 import check_public_key
from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.errors import InvalidQrPayloadError, MessageDecodeError
from omega.protocol import SafetyNumberQr, decode_message, encode_message

__all__ = [
    "FINGERPRINT_ITERATIONS",
    "MAX_QR_PAYLOAD_SIZE",
    "QR_VERSION",
    "SafetyNumber",
]

FINGERPRINT_ITERATIONS = 5200
"""SHA-512 computations per fingerprint (Signal's value)."""

QR_VERSION = 1
"""Version of the ``SafetyNumberQr`` payload."""

MAX_QR_PAYLOAD_SIZE = 256
"""Largest scanned payload accepted, in bytes (a valid one is 72)."""

_FINGERPRINT_VERSION = (0).to_bytes(2, "big")
_SCANNABLE_SIZE = 32
_CHUNKS = 6
_CHUNK_SIZE = 5


def _fingerprint_hash(key: bytes, stable_id: bytes, iterations: int) -> bytes:
    digest = hashlib.sha512(_FINGERPRINT_VERSION + key + stable_id + key).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def _displayable(fingerprint_hash: bytes) -> str:
    return "".join(
        f"{int.from_bytes(fingerprint_hash[i : i + _CHUNK_SIZE], 'big') % 100_000:05d}"
        for i in range(0, _CHUNKS * _CHUNK_SIZE, _CHUNK_SIZE)
    )


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """The safety number between our identity (local) and a contact's (remote).

    Build it with :meth:`compute` or :meth:`from_user_ids`.
    """

    digits: str
    """The 60 digits, without spaces (the same on both sides)."""
    local_fingerprint: bytes
    """First 32 bytes of our own fingerprint hash."""
    remote_fingerprint: bytes
    """First 32 bytes of the contact's fingerprint hash."""

    @classmethod
    def compute(cls, local_identity_key: bytes, remote_identity_key: bytes) -> SafetyNumber:
        """Compute the safety number between two Ed25519 identity keys.

        Raises :class:`~omega.errors.InvalidKeyError` for an unusable key.
        """
        hashes = []
        for key in (local_identity_key, remote_identity_key):
            stable_id = user_id_from_public_key(check_public_key(key)).encode("ascii")
            hashes.append(_fingerprint_hash(key, stable_id, FINGERPRINT_ITERATIONS))
        local, remote = hashes
        local_digits, remote_digits = _displayable(local), _displayable(remote)
        return cls(
            digits=min(local_digits, remote_digits) + max(local_digits, remote_digits),
            local_fingerprint=local[:_SCANNABLE_SIZE],
            remote_fingerprint=remote[:_SCANNABLE_SIZE],
        )

    @classmethod
    def from_user_ids(cls, local_user_id: str, remote_user_id: str) -> SafetyNumber:
        """Compute the safety number between two user ids.

        Raises :class:`~omega.errors.InvalidUserIdError` for a malformed user id.
        """
        return cls.compute(
            public_key_from_user_id(local_user_id), public_key_from_user_id(remote_user_id)
        )

    def display(self) -> str:
        """The digits as 12 space-separated groups of 5, as people read them out."""
        return " ".join(self.digits[i : i + 5] for i in range(0, len(self.digits), 5))

    def qr_payload(self) -> bytes:
        """The bytes to show as a QR code for the contact to scan (see the module docstring)."""
        return encode_message(
            SafetyNumberQr(
                version=QR_VERSION,
                local_fingerprint=self.local_fingerprint,
                remote_fingerprint=self.remote_fingerprint,
            )
        )

    def verify_scanned(self, payload: bytes) -> bool:
        """Tell whether the contact's scanned QR payload matches this safety number.

        Returns ``False`` for a well-formed payload that does not match (a
        different key on either side: stop and warn the user). Raises
        :class:`~omega.errors.InvalidQrPayloadError` for a payload that is not
        a version-1 safety number code at all.
        """
        try:
            scanned = decode_message(SafetyNumberQr, payload, max_size=MAX_QR_PAYLOAD_SIZE)
        except MessageDecodeError as exc:
            raise InvalidQrPayloadError(f"not a safety number QR code: {exc}") from exc
        if scanned.version != QR_VERSION:
            raise InvalidQrPayloadError(
                f"unsupported safety number QR version {scanned.version} (expected {QR_VERSION})",
                details={"version": scanned.version},
            )
        if (
            len(scanned.local_fingerprint) != _SCANNABLE_SIZE
            or len(scanned.remote_fingerprint) != _SCANNABLE_SIZE
        ):
            raise InvalidQrPayloadError(
                f"safety number QR code fingerprints must be {_SCANNABLE_SIZE} bytes each"
            )
        same_remote = hmac.compare_digest(scanned.local_fingerprint, self.remote_fingerprint)
        same_local = hmac.compare_digest(scanned.remote_fingerprint, self.local_fingerprint)
        return same_remote & same_local
