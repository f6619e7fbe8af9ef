"""A client of a store server over HTTP (``omega serve store``), with httpx.

:class:`StoreClient` is both a :class:`~omega.mailbox.base.Mailbox` and a
:class:`~omega.mailbox.base.KeyDirectory`. Network failures, timeouts and
5xx answers raise :class:`~omega.errors.ServerUnavailableError` (retry
later); refusals raise :class:`~omega.errors.RequestRejectedError` or its
subclasses with the server's ``reason``. Everything the server returns is
parsed strictly and verified (device lists, prekey bundles) before use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from omega.crypto import LocalDevice, VerifiedDeviceList
from omega.crypto.x3dh import VerifiedPrekeyBundle
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    RemoteProtocolError,
    ServerUnavailableError,
    map_exceptions,
)
from omega.mailbox._auth import CHALLENGE_SIZE, auth_message, check_message_id, recipient_hash
from omega.mailbox._client_checks import (
    check_bundle,
    check_device_list,
    encode_prekeys,
    to_envelope,
)
from omega.mailbox._wire import (
    AUTH_HEADERS,
    b64,
    error_from_response,
    parse_json_object,
    parse_messages,
    unb64,
)
from omega.mailbox.base import KeyDirectory, Mailbox, StoredEnvelope
from omega.protocol import OneTimePrekey, SignedDeviceList, SignedPrekey, encode_message

__all__ = ["StoreClient", "StoreClientConfig"]

_HTTPX_ERRORS: dict[type[BaseException], type[ServerUnavailableError]] = {
    httpx.TransportError: ServerUnavailableError,
    httpx.InvalidURL: ServerUnavailableError,
}
_ACK_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreClientConfig:
    """How a :class:`StoreClient` talks to its server."""

    timeout_seconds: float = 10.0
    """Connect/read timeout of an ordinary request (long polls add their own wait)."""
    max_payload_bytes: int = 16 * 1024 * 1024
    """Largest payload accepted from the server in a fetch."""
    wake_up: str = "long_poll"
    """How :meth:`StoreClient.wait_for_messages` waits: ``long_poll`` (``GET /store/wait``)
    or ``websocket`` (``/store/ws``; needs a real network, not an ASGI transport)."""

    def __post_init__(self) -> None:
        if self.wake_up not in {"long_poll", "websocket"}:
            raise ConfigurationError("wake_up must be long_poll or websocket")
        if not self.timeout_seconds > 0:
            raise ConfigurationError("timeout_seconds must be positive")
        if self.max_payload_bytes < 1:
            raise ConfigurationError("max_payload_bytes must be positive")


class StoreClient(Mailbox, KeyDirectory):
    """A Mailbox and KeyDirectory over the HTTP API at ``base_url``.

    ``transport`` replaces httpx's network transport (e.g.
    ``httpx.ASGITransport(app)`` to talk to an app in process).
    """

    def __init__(
        self,
        base_url: str,
        *,
        config: StoreClientConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config or StoreClientConfig()
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=self.config.timeout_seconds, transport=transport
        )
        self._closed = False

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        if self._closed:
            raise ConnectionClosedError("the store client is closed")
        with map_exceptions(_HTTPX_ERRORS, f"store server unreachable ({method} {path})"):
            response = await self._http.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            body = await response.aread()
        if response.status_code == 404 and not_found_ok:
            return None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, body)
        return parse_json_object(body, RemoteProtocolError)

    async def _expect(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        result = await self._request(method, path, **kwargs)
        assert result is not None  # not_found_ok is False
        return result

    async def _auth_headers(self, device: LocalDevice, action: str) -> dict[str, str]:
        answer = await self._expect(
            "POST", "/auth/challenge", json={"device_key": b64(device.device_key)}
        )
        challenge = unb64(
            answer.get("challenge"),
            "challenge",
            max_bytes=CHALLENGE_SIZE,
            error=RemoteProtocolError,
        )
        signature = device.key_pair.sign(auth_message(challenge, device.device_key, action))
        values = (device.device_key, challenge, signature)
        return {name: b64(value) for name, value in zip(AUTH_HEADERS, values, strict=True)}

    @staticmethod
    def _int(answer: dict[str, Any], key: str) -> int:
        value = answer.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RemoteProtocolError(f"store server sent a bad {key!r}")
        return value

    async def deposit(
        self,
        recipient_device_key: bytes,
        message_id: str,
        payload: bytes,
        *,
        ttl_seconds: int | None = None,
    ) -> bool:
        """``POST /store`` (see :meth:`Mailbox.deposit`)."""
        body: dict[str, object] = {
            "recipient": recipient_hash(recipient_device_key),
            "message_id": message_id,
            "payload": b64(payload),
        }
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        answer = await self._expect("POST", "/store", json=body)
        stored = answer.get("stored")
        if not isinstance(stored, bool):
            raise RemoteProtocolError("store server sent a bad 'stored'")
        return stored

    async def fetch(self, device: LocalDevice, *, limit: int = 100) -> list[StoredEnvelope]:
        """``GET /store`` (see :meth:`Mailbox.fetch`)."""
        recipient = recipient_hash(device.device_key)
        headers = await self._auth_headers(device, "fetch")
        with map_exceptions(_HTTPX_ERRORS, "store server unreachable (GET /store)"):
            response = await self._http.get(
                "/store",
                params={"recipient": recipient, "limit": str(limit)},
                headers=headers,
            )
            body = await response.aread()
        if response.status_code >= 400:
            raise error_from_response(response.status_code, body)
        messages = parse_messages(body, recipient, max_payload=self.config.max_payload_bytes)
        return [to_envelope(message) for message in messages]

    async def acknowledge(self, device: LocalDevice, message_ids: Sequence[str]) -> int:
        """``DELETE /store/{ids}`` in batches (see :meth:`Mailbox.acknowledge`)."""
        ids = [check_message_id(message_id) for message_id in message_ids]
        deleted = 0
        for start in range(0, len(ids), _ACK_BATCH):
            batch = ids[start : start + _ACK_BATCH]
            headers = await self._auth_headers(device, "acknowledge")
            answer = await self._expect(
                "DELETE",
                "/store/" + quote(",".join(batch), safe=","),
                params={"recipient": recipient_hash(device.device_key)},
                headers=headers,
            )
            deleted += self._int(answer, "deleted")
        return deleted

    async def wait_for_messages(self, device: LocalDevice, *, timeout: float) -> bool:
        """``GET /store/wait`` long poll (see :meth:`Mailbox.wait_for_messages`)."""
        if not timeout >= 0 or math.isinf(timeout):
            raise ConfigurationError("timeout must be a finite non-negative number")
        headers = await self._auth_headers(device, "wait")
        if self.config.wake_up == "websocket":
            return await self._wait_on_websocket(headers, timeout)
        answer = await self._expect(
            "GET",
            "/store/wait",
            params={"timeout": repr(float(timeout))},
            headers=headers,
            timeout=self.config.timeout_seconds + timeout,
        )
        waiting = answer.get("waiting")
        if not isinstance(waiting, bool):
            raise RemoteProtocolError("store server sent a bad 'waiting'")
        return waiting

    async def _wait_on_websocket(self, headers: dict[str, str], timeout: float) -> bool:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        url = str(self._http.base_url.join("/store/ws"))
        url = "ws" + url.removeprefix("http")
        errors: dict[type[BaseException], type[ServerUnavailableError]] = {
            WebSocketException: ServerUnavailableError,
            OSError: ServerUnavailableError,
            TimeoutError: ServerUnavailableError,
        }
        with map_exceptions(errors, "store server WebSocket failed"):
            async with connect(
                url, open_timeout=self.config.timeout_seconds, max_size=4096
            ) as websocket:
                await websocket.send(json.dumps(headers))
                with anyio.fail_after(self.config.timeout_seconds):
                    event = await self._next_event(websocket)
                if event == "messages_waiting":
                    return True
                with anyio.move_on_after(timeout):
                    return await self._next_event(websocket) == "messages_waiting"
        return False

    @staticmethod
    async def _next_event(websocket: Any) -> str:
        """The next event the server announces; its error, raised, if it refused us."""
        raw = await websocket.recv()
        data = parse_json_object(raw.encode() if isinstance(raw, str) else raw, RemoteProtocolError)
        event = data.get("event")
        if isinstance(event, str):
            return event
        raise error_from_response(401, json.dumps(data).encode())

    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """``PUT /keys/device-list`` (see :meth:`KeyDirectory.publish_device_list`)."""
        await self._expect("PUT", "/keys/device-list", json={"signed": b64(encode_message(signed))})

    async def fetch_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """``GET /keys/{user_id}/device-list``, verified here too."""
        answer = await self._request(
            "GET", f"/keys/{quote(user_id, safe='')}/device-list", not_found_ok=True
        )
        if answer is None:
            return None
        signed = unb64(answer.get("signed"), "signed", max_bytes=1 << 17, error=RemoteProtocolError)
        return check_device_list(signed, user_id)

    async def publish_prekeys(
        self,
        device: LocalDevice,
        *,
        signed_prekey: SignedPrekey,
        one_time_prekeys: Sequence[OneTimePrekey],
    ) -> int:
        """``PUT /keys/prekeys`` (see :meth:`KeyDirectory.publish_prekeys`)."""
        user_id, certificate, signed, one_time = encode_prekeys(
            device, signed_prekey, one_time_prekeys
        )
        headers = await self._auth_headers(device, "publish-prekeys")
        answer = await self._expect(
            "PUT",
            "/keys/prekeys",
            headers=headers,
            json={
                "user_id": user_id,
                "certificate": b64(certificate),
                "signed_prekey": b64(signed),
                "one_time_prekeys": [
                    {"prekey_id": prekey_id, "public_key": b64(key)} for prekey_id, key in one_time
                ],
            },
        )
        return self._int(answer, "one_time_prekeys")

    async def claim_prekey_bundle(
        self, user_id: str, device_key: bytes
    ) -> VerifiedPrekeyBundle | None:
        """``POST /keys/{user_id}/devices/{device_key}/bundle``, verified here."""
        answer = await self._request(
            "POST",
            f"/keys/{quote(user_id, safe='')}/devices/{device_key.hex()}/bundle",
            not_found_ok=True,
        )
        if answer is None:
            return None
        bundle = unb64(answer.get("bundle"), "bundle", max_bytes=8192, error=RemoteProtocolError)
        return check_bundle(bundle, user_id, device_key)

    async def one_time_prekey_count(self, device: LocalDevice) -> int:
        """``GET /keys/prekeys/count`` (see :meth:`KeyDirectory.one_time_prekey_count`)."""
        headers = await self._auth_headers(device, "count-prekeys")
        answer = await self._expect("GET", "/keys/prekeys/count", headers=headers)
        return self._int(answer, "one_time_prekeys")

    async def health(self) -> bool:
        """True when ``GET /health`` answers OK."""
        answer = await self._request("GET", "/health")
        return answer is not None and answer.get("status") == "ok"

    async def aclose(self) -> None:
        """Close the HTTP connection pool; idempotent."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()
