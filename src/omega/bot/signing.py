"""The webhook signature: HMAC-SHA256 over the timestamp and the raw body.

A signed HTTP request carries two headers (docs/bots.md, "Webhook signature")::

    Omega-Timestamp: 1764072000
    Omega-Signature: v1=5f2b...  (64 lowercase hex digits)

where the hex digits are ``HMAC-SHA256(secret, timestamp_ascii || "." || raw_body)``
and ``timestamp_ascii`` is the header's value, Unix seconds in decimal. A
receiver recomputes the MAC over the body bytes exactly as received, compares
in constant time, and refuses a timestamp more than ``tolerance`` seconds away
from its clock (replay protection; a receiver that must refuse every replay
also remembers the ``message_id`` of the body).
"""

from __future__ import annotations

import hashlib
import hmac

from omega.errors import AuthenticationFailedError, ConfigurationError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "secret_bytes",
    "sign",
    "signature_headers",
    "verify",
]

TIMESTAMP_HEADER = "Omega-Timestamp"
SIGNATURE_HEADER = "Omega-Signature"
TOLERANCE = 300
"""Seconds a signed request stays valid, either way from the receiver's clock."""
_VERSION = "v1="


def secret_bytes(secret: bytes | str) -> bytes:
    """A webhook secret as bytes (UTF-8 for text); at least 16 bytes."""
    data = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(data) < 16:
        raise ConfigurationError("a webhook secret has at least 16 bytes")
    return data


def sign(secret: bytes | str, timestamp: int, body: bytes) -> str:
    """The ``Omega-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return _VERSION + hmac.new(secret_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_headers(secret: bytes | str, timestamp: int, body: bytes) -> dict[str, str]:
    """Both headers of a signed request."""
    return {
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: bytes | str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE,
) -> None:
    """Check a signed request; raise :class:`~omega.errors.AuthenticationFailedError`
    (naming what is wrong) unless the signature matches and the timestamp is fresh."""
    if not timestamp or not signature:
        raise AuthenticationFailedError("missing Omega-Timestamp or Omega-Signature header")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise AuthenticationFailedError("Omega-Timestamp must be Unix seconds")
    expected = sign(secret, int(timestamp), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise AuthenticationFailedError("the signature does not match the body")
    if abs(now - int(timestamp)) > tolerance:
        raise AuthenticationFailedError("the request is too old or from the future (replay?)")
