"""The JSON shapes of the store's HTTP API, parsed strictly on both sides.

Servers parse requests and clients parse responses with these functions;
anything malformed raises :class:`~omega.errors.RequestRejectedError`
(server side, reason ``malformed_request``) or
:class:`~omega.errors.RemoteProtocolError` (client side). Bytes travel as
standard base64 with padding (RFC 4648, section 4).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from omega.errors import (
    AuthenticationFailedError,
    OmegaError,
    QuotaExceededError,
    RateLimitedError,
    RemoteProtocolError,
    RequestRejectedError,
    ServerUnavailableError,
)
from omega.mailbox._auth import AuthProof
from omega.mailbox.backend import StoredMessage

__all__ = [
    "AUTH_HEADERS",
    "b64",
    "error_body",
    "error_from_response",
    "parse_auth_headers",
    "parse_json_object",
    "parse_message_ids",
    "parse_messages",
    "status_for",
    "unb64",
]

AUTH_HEADERS = ("x-omega-device-key", "x-omega-challenge", "x-omega-signature")
"""Headers of an authenticated request: base64 device key, challenge, signature."""

_MAX_INT64 = (1 << 63) - 1


def b64(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def unb64(value: object, what: str, *, max_bytes: int, error: type[OmegaError]) -> bytes:
    """Decode strict standard base64 of at most ``max_bytes`` bytes, or raise ``error``."""
    if not isinstance(value, str) or len(value) > (max_bytes + 2) // 3 * 4:
        raise error(f"{what} must be base64 of at most {max_bytes} bytes")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc


def parse_json_object(body: bytes, error: type[OmegaError]) -> dict[str, Any]:
    """Decode a JSON object (UTF-8), or raise ``error``."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise error("body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise error("body must be a JSON object")
    return value


def _malformed(message: str) -> RequestRejectedError:
    return RequestRejectedError(message, reason="malformed_request")


def parse_auth_headers(headers: Mapping[str, str]) -> AuthProof:
    """The :class:`AuthProof` an authenticated request carries in :data:`AUTH_HEADERS`."""
    values = [headers.get(name) for name in AUTH_HEADERS]
    if any(value is None for value in values):
        raise AuthenticationFailedError("authentication required: send " + ", ".join(AUTH_HEADERS))
    device_key, challenge, signature = (
        unb64(value, name, max_bytes=128, error=AuthenticationFailedError)
        for name, value in zip(AUTH_HEADERS, values, strict=True)
    )
    return AuthProof(device_key=device_key, challenge=challenge, signature=signature)


def parse_message_ids(segment: str) -> list[str]:
    """The comma-separated ids of ``DELETE /store/{ids}`` (checked later one by one)."""
    return [part for part in segment.split(",") if part] if segment else []


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT64:
        raise RemoteProtocolError(f"server sent a bad {what}")
    return value


def parse_messages(body: bytes, recipient: str, *, max_payload: int) -> list[StoredMessage]:
    """Client side: the messages of a ``GET /store`` response."""
    data = parse_json_object(body, RemoteProtocolError)
    items = data.get("messages")
    if not isinstance(items, list):
        raise RemoteProtocolError("server sent no message list")
    messages = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("message_id"), str):
            raise RemoteProtocolError("server sent a malformed message")
        messages.append(
            StoredMessage(
                recipient_hash=recipient,
                message_id=item["message_id"],
                payload=unb64(
                    item.get("payload"), "payload", max_bytes=max_payload, error=RemoteProtocolError
                ),
                deposited_at=_int(item.get("deposited_at"), "deposited_at"),
                expires_at=_int(item.get("expires_at"), "expires_at"),
            )
        )
    return messages


def status_for(exc: OmegaError) -> int:
    """The HTTP status a server answers an error with."""
    if isinstance(exc, AuthenticationFailedError):
        return 401
    if isinstance(exc, RateLimitedError):
        return 429
    if isinstance(exc, QuotaExceededError):
        return 507 if exc.reason == "mailbox_full" else 413
    if isinstance(exc, RequestRejectedError):
        if exc.reason == "revoked_device":
            return 410
        return 403 if exc.reason == "forbidden" else 400
    return 503


def error_body(exc: OmegaError) -> dict[str, object]:
    """The JSON body of an error response: ``{"error": {"code", "reason", "message"}}``."""
    reason = exc.reason if isinstance(exc, RequestRejectedError) else "server_unavailable"
    code = exc.code if isinstance(exc, RequestRejectedError) else ServerUnavailableError.code
    message = exc.message if isinstance(exc, RequestRejectedError) else "storage unavailable"
    return {"error": {"code": code, "reason": reason, "message": message}}


_REJECTIONS: dict[str, type[RequestRejectedError]] = {
    cls.code: cls
    for cls in (
        RequestRejectedError,
        AuthenticationFailedError,
        QuotaExceededError,
        RateLimitedError,
    )
}


def error_from_response(status: int, body: bytes) -> OmegaError:
    """Client side: the typed error an error response stands for."""
    if status >= 500 and status != 507:
        return ServerUnavailableError(
            f"store server failed with HTTP {status}", details={"status": status}
        )
    try:
        error = parse_json_object(body, RemoteProtocolError).get("error")
    except RemoteProtocolError:
        error = None
    if not isinstance(error, dict):
        return RequestRejectedError(
            f"store server refused the request with HTTP {status}",
            reason=f"http_{status}",
            details={"status": status},
        )
    code, reason, message = (str(error.get(key, "")) for key in ("code", "reason", "message"))
    cls = _REJECTIONS.get(code, RequestRejectedError)
    return cls(
        f"store server refused the request: {message}",
        reason=reason or code or f"http_{status}",
        details={"status": status},
    )
