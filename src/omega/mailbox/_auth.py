"""The store's authentication challenge, byte for byte (docs/servers.md, "Authentication").

Only the holder of a device key may read or delete that device's mailbox.
The server hands out a *challenge*, stateless for the server (an HMAC under a
server secret, so any process of a deployment sharing the secret can check
it), bound to one device key and valid for a short time::

    challenge = version (1 byte, 0x01)
             || nonce (16 random bytes)
             || expires_at (8 bytes, big-endian Unix milliseconds)
             || tag (16 bytes) = HMAC-SHA256(secret, CHALLENGE_CONTEXT || nonce
                                             || expires_at || device_key)[:16]

The client answers with an Ed25519 signature by the device key over::

    AUTH_CONTEXT || challenge (41 bytes) || device_key (32 bytes) || action (ASCII)

where ``action`` names the operation (:data:`ACTIONS`), so a signature for
``fetch`` cannot be replayed as ``acknowledge``. The server checks the
version, the tag (constant time), the expiry and the signature, and only
then spends the nonce, once: a second use is refused as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

from omega.crypto import verify_signature
from omega.errors import AuthenticationFailedError, CryptoError, RequestRejectedError

__all__ = [
    "ACTIONS",
    "AUTH_CONTEXT",
    "CHALLENGE_CONTEXT",
    "CHALLENGE_SIZE",
    "AuthProof",
    "auth_message",
    "check_device_key",
    "check_message_id",
    "check_recipient_hash",
    "make_challenge",
    "open_challenge",
    "recipient_hash",
]

CHALLENGE_CONTEXT = b"omega/store-challenge/v1"
"""Domain-separation prefix of the challenge's HMAC."""

AUTH_CONTEXT = b"omega/store-auth/v1"
"""Domain-separation prefix of the device's signature over a challenge."""

RECIPIENT_CONTEXT = b"omega/store-recipient/v1"
"""Domain-separation prefix of the recipient hash."""

CHALLENGE_VERSION = 1
NONCE_SIZE = 16
TAG_SIZE = 16
CHALLENGE_SIZE = 1 + NONCE_SIZE + 8 + TAG_SIZE
"""Length of an encoded challenge: 41 bytes."""

ACTIONS = frozenset({"fetch", "acknowledge", "wait", "publish-prekeys", "count-prekeys"})
"""The operations a challenge signature may authorise."""

_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RECIPIENT_HASH = re.compile(r"[0-9a-f]{64}")


def recipient_hash(device_key: bytes) -> str:
    """The mailbox address of a device: hex SHA-256(RECIPIENT_CONTEXT || device key).

    Depositors know the device key; the server only ever sees this hash
    until the owner authenticates.
    """
    check_device_key(device_key)
    return hashlib.sha256(RECIPIENT_CONTEXT + device_key).hexdigest()


def check_device_key(device_key: object) -> bytes:
    """Return ``device_key`` if it is 32 bytes, else raise :class:`RequestRejectedError`."""
    if not isinstance(device_key, bytes) or len(device_key) != 32:
        raise RequestRejectedError("a device key is 32 bytes", reason="invalid_device_key")
    return device_key


def check_message_id(message_id: object) -> str:
    """Return ``message_id`` if it is 1..128 characters of ``[A-Za-z0-9._:-]``."""
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise RequestRejectedError(
            "a message id is 1..128 characters of A-Z a-z 0-9 . _ : -",
            reason="invalid_message_id",
        )
    return message_id


def check_recipient_hash(value: object) -> str:
    """Return ``value`` if it is 64 lowercase hex characters (a recipient hash)."""
    if not isinstance(value, str) or not _RECIPIENT_HASH.fullmatch(value):
        raise RequestRejectedError(
            "a recipient is 64 lowercase hex characters", reason="invalid_recipient"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthProof:
    """A device's answer to a challenge: what an authenticated request carries."""

    device_key: bytes
    """The device's Ed25519 public key."""
    challenge: bytes
    """The challenge the server issued, unchanged."""
    signature: bytes
    """The device's signature over :func:`auth_message`."""


def _tag(secret: bytes, nonce: bytes, expires: bytes, device_key: bytes) -> bytes:
    mac = hmac.new(secret, CHALLENGE_CONTEXT + nonce + expires + device_key, hashlib.sha256)
    return mac.digest()[:TAG_SIZE]


def make_challenge(secret: bytes, *, nonce: bytes, expires_at: int, device_key: bytes) -> bytes:
    """Encode a challenge for ``device_key`` valid until ``expires_at`` (Unix ms)."""
    expires = struct.pack(">Q", expires_at)
    tag = _tag(secret, nonce, expires, device_key)
    return bytes([CHALLENGE_VERSION]) + nonce + expires + tag


def auth_message(challenge: bytes, device_key: bytes, action: str) -> bytes:
    """The bytes a device signs to answer ``challenge`` for ``action``."""
    return AUTH_CONTEXT + challenge + device_key + action.encode("ascii")


def open_challenge(secret: bytes, proof: AuthProof, *, action: str, now: int) -> tuple[bytes, int]:
    """Check ``proof`` for ``action`` and return the challenge's ``(nonce, expires_at)``.

    Checks, in order: sizes and version, the server's tag (constant time),
    the expiry against ``now`` (Unix ms), the device's signature. Spending
    the nonce is the caller's job, after this returns. Raises
    :class:`AuthenticationFailedError`.
    """
    if action not in ACTIONS:
        raise AuthenticationFailedError(f"unknown action {action!r}")
    challenge, device_key = proof.challenge, proof.device_key
    if not isinstance(device_key, bytes) or len(device_key) != 32:
        raise AuthenticationFailedError("a device key is 32 bytes")
    if len(challenge) != CHALLENGE_SIZE or challenge[0] != CHALLENGE_VERSION:
        raise AuthenticationFailedError("malformed challenge")
    nonce = challenge[1 : 1 + NONCE_SIZE]
    expires = challenge[1 + NONCE_SIZE : 1 + NONCE_SIZE + 8]
    expected = _tag(secret, nonce, expires, device_key)
    if not hmac.compare_digest(expected, challenge[-TAG_SIZE:]):
        raise AuthenticationFailedError("challenge was not issued by this server for this device")
    (expires_at,) = struct.unpack(">Q", expires)
    if expires_at <= now:
        raise AuthenticationFailedError("challenge has expired")
    try:
        verify_signature(device_key, auth_message(challenge, device_key, action), proof.signature)
    except CryptoError as exc:
        raise AuthenticationFailedError(f"bad challenge signature: {exc.message}") from exc
    return nonce, expires_at
