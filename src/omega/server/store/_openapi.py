"""The OpenAPI 3.0 document of the store's HTTP API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from omega.mailbox import StoreConfig

__all__ = ["openapi_document"]

_B64 = {"type": "string", "format": "byte"}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "reason", "message"],
            "properties": {
                "code": {"type": "string"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}
_AUTH = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": _B64,
    }
    for name, description in (
        ("X-Omega-Device-Key", "The device's Ed25519 public key (32 bytes)."),
        ("X-Omega-Challenge", "A challenge from POST /auth/challenge (41 bytes)."),
        ("X-Omega-Signature", "Ed25519 signature over the auth message (64 bytes)."),
    )
]
_RECIPIENT = {
    "name": "recipient",
    "in": "query",
    "required": True,
    "description": "hex SHA-256('omega/store-recipient/v1' || device key)",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "Malformed or refused request",
        401: "Authentication failed",
        403: "Forbidden",
        404: "Not found",
        410: "The device was revoked (reason revoked_device); permanent, do not retry",
        413: "Too large",
        429: "Rate limited",
        503: "Backend unavailable; retry",
        507: "Mailbox full",
    }
    return {str(status): _json(_ERROR, names[status]) for status in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def openapi_document(config: StoreConfig) -> dict[str, Any]:
    """The document, with the limits of ``config`` in it."""
    common = (400, 413, 429, 503)
    authed = (400, 401, 403, 410, 429, 503)
    message = _obj(
        ["message_id", "payload", "deposited_at", "expires_at"],
        message_id={"type": "string"},
        payload=_B64,
        deposited_at={"type": "integer"},
        expires_at={"type": "integer"},
    )
    count = _json(_obj(["one_time_prekeys"], one_time_prekeys={"type": "integer"}))
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "responses": {
                    "200": _json(_obj(["status"], status={"type": "string"})),
                    **_errors(503),
                }
            }
        },
        "/store": {
            "post": {
                "summary": "Deposit a message for a device (anyone may)",
                "requestBody": _body(
                    _obj(
                        ["recipient", "message_id", "payload"],
                        recipient={"type": "string"},
                        message_id={"type": "string"},
                        payload=_B64,
                        ttl_seconds={"type": "integer", "maximum": 2**62},
                    )
                ),
                "responses": {
                    "201": _json(_obj(["stored"], stored={"type": "boolean"}), "Stored"),
                    "200": _json(_obj(["stored"], stored={"type": "boolean"}), "Already there"),
                    **_errors(*common, 410, 507),
                },
            },
            "get": {
                "summary": "Fetch waiting messages, oldest first",
                "parameters": [
                    _RECIPIENT,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": config.max_fetch},
                    },
                    *_AUTH,
                ],
                "responses": {
                    "200": _json(_obj(["messages"], messages={"type": "array", "items": message})),
                    **_errors(*authed),
                },
            },
        },
        "/store/wait": {
            "get": {
                "summary": "Long poll until a message waits",
                "parameters": [
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": config.max_wait_seconds,
                        },
                    },
                    *_AUTH,
                ],
                "responses": {
                    "200": _json(_obj(["waiting"], waiting={"type": "boolean"})),
                    **_errors(*authed),
                },
            }
        },
        "/store/{ids}": {
            "delete": {
                "summary": "Acknowledge (delete) messages; ids are comma-separated",
                "parameters": [
                    {"name": "ids", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_AUTH,
                ],
                "responses": {
                    "200": _json(_obj(["deleted"], deleted={"type": "integer"})),
                    **_errors(*authed),
                },
            }
        },
        "/auth/challenge": {
            "post": {
                "summary": "A fresh single-use challenge for a device key",
                "requestBody": _body(_obj(["device_key"], device_key=_B64)),
                "responses": {
                    "200": _json(_obj(["challenge"], challenge=_B64)),
                    **_errors(*common),
                },
            }
        },
        "/keys/device-list": {
            "put": {
                "summary": "Publish a signed device list (encoded SignedDeviceList)",
                "requestBody": _body(_obj(["signed"], signed=_B64)),
                "responses": {
                    "200": _json(_obj(["sequence"], sequence={"type": "integer"})),
                    **_errors(*common),
                },
            }
        },
        "/keys/{user_id}/device-list": {
            "get": {
                "parameters": [_USER_ID],
                "responses": {
                    "200": _json(_obj(["signed"], signed=_B64)),
                    **_errors(400, 404, 503),
                },
            }
        },
        "/keys/prekeys": {
            "put": {
                "summary": "Publish the authenticated device's prekeys",
                "parameters": _AUTH,
                "requestBody": _body(
                    _obj(
                        ["user_id", "certificate", "signed_prekey"],
                        user_id={"type": "string"},
                        certificate=_B64,
                        signed_prekey=_B64,
                        one_time_prekeys={
                            "type": "array",
                            "items": _obj(
                                ["prekey_id", "public_key"],
                                prekey_id={"type": "integer"},
                                public_key=_B64,
                            ),
                        },
                    )
                ),
                "responses": {"200": count, **_errors(*authed, 413)},
            }
        },
        "/keys/prekeys/count": {
            "get": {"parameters": _AUTH, "responses": {"200": count, **_errors(*authed)}}
        },
        "/keys/{user_id}/devices/{device_key}/bundle": {
            "post": {
                "summary": "Claim a prekey bundle (hands out a one-time prekey at most once)",
                "parameters": [
                    _USER_ID,
                    {
                        "name": "device_key",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(_obj(["bundle"], bundle=_B64)),
                    **_errors(400, 404, 429, 503),
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "omega-store",
            "version": "1",
            "description": "Store-and-forward mailboxes and key directory (docs/servers.md).",
        },
        "paths": paths,
    }
