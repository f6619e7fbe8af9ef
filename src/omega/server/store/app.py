"""The store's HTTP API: an ASGI app (Starlette) over :class:`omega.mailbox.StoreService`.

Every endpoint parses strictly (:mod:`omega.mailbox._wire`), calls the one
service layer, and answers errors as JSON ``{"error": {"code", "reason",
"message"}}`` with the status :func:`omega.mailbox._wire.status_for` picks;
a failing backend is a 503 for that request only. The OpenAPI document is
served at ``/openapi.json``; docs/servers.md describes every endpoint.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from omega.crypto import MAX_DEVICE_LIST_SIZE
from omega.errors import (
    OmegaError,
    RequestRejectedError,
    StorageError,
)
from omega.mailbox import StoreService, recipient_hash
from omega.mailbox._auth import AuthProof, check_recipient_hash
from omega.mailbox._wire import (
    b64,
    error_body,
    parse_auth_headers,
    parse_json_object,
    parse_message_ids,
    status_for,
    unb64,
)
from omega.server.store._openapi import openapi_document

__all__ = ["create_app"]

_log = logging.getLogger("omega.server.store")
Handler = Callable[[Request], Awaitable[Response]]


def _malformed(message: str) -> RequestRejectedError:
    return RequestRejectedError(message, reason="malformed_request")


def _source(request: Request | WebSocket) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _read_body(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejectedError(f"body exceeds {limit} bytes", reason="payload_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestRejectedError(f"body exceeds {limit} bytes", reason="payload_too_large")
    return parse_json_object(bytes(body), RequestRejectedError)


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise _malformed(f"{name} must be a non-negative integer")
    return int(raw)


def _guarded(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except OmegaError as exc:
            if isinstance(exc, StorageError):
                _log.error("event=backend_failed path=%s error=%s", request.url.path, exc)
            elif not isinstance(exc, RequestRejectedError):
                exc = _malformed(exc.message)
            headers = {"retry-after": "1"} if status_for(exc) in {429, 503} else None
            return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)

    return endpoint


class _Api:
    def __init__(self, service: StoreService) -> None:
        self.service = service
        config = service.config
        self.deposit_limit = config.max_payload_bytes * 4 // 3 + 4096
        self.prekey_limit = config.max_one_time_prekeys * 80 + 8192

    async def _proof_for(self, request: Request) -> AuthProof:
        proof = parse_auth_headers(request.headers)
        recipient = request.query_params.get("recipient")
        if recipient is not None:
            check_recipient_hash(recipient)
            if len(proof.device_key) == 32 and not hmac.compare_digest(
                recipient, recipient_hash(proof.device_key)
            ):
                raise RequestRejectedError(
                    "recipient is not the authenticated device's mailbox", reason="forbidden"
                )
        return proof

    async def health(self, request: Request) -> Response:
        await self.service.backend.count_one_time_prekeys(bytes(32))
        return JSONResponse({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.service.config))

    async def deposit(self, request: Request) -> Response:
        body = await _read_body(request, self.deposit_limit)
        payload = unb64(
            body.get("payload"),
            "payload",
            max_bytes=self.service.config.max_payload_bytes + 3,
            error=RequestRejectedError,
        )
        ttl = body.get("ttl_seconds")
        stored = await self.service.deposit(
            source=_source(request),
            recipient=body.get("recipient"),  # type: ignore[arg-type]  # checked by the service
            message_id=body.get("message_id"),  # type: ignore[arg-type]
            payload=payload,
            ttl_seconds=ttl,
        )
        return JSONResponse({"stored": stored}, status_code=201 if stored else 200)

    async def challenge(self, request: Request) -> Response:
        body = await _read_body(request, 1024)
        device_key = unb64(
            body.get("device_key"), "device_key", max_bytes=32, error=RequestRejectedError
        )
        challenge = await self.service.issue_challenge(
            source=_source(request), device_key=device_key
        )
        return JSONResponse({"challenge": b64(challenge)})

    async def fetch(self, request: Request) -> Response:
        if request.query_params.get("recipient") is None:
            raise _malformed("recipient is required")
        proof = await self._proof_for(request)
        messages = await self.service.fetch(proof, limit=_query_int(request, "limit", 100))
        return JSONResponse(
            {
                "messages": [
                    {
                        "message_id": message.message_id,
                        "payload": b64(message.payload),
                        "deposited_at": message.deposited_at,
                        "expires_at": message.expires_at,
                    }
                    for message in messages
                ]
            }
        )

    async def acknowledge(self, request: Request) -> Response:
        proof = await self._proof_for(request)
        ids = parse_message_ids(request.path_params["ids"])
        deleted = await self.service.acknowledge(proof, ids)
        return JSONResponse({"deleted": deleted})

    async def wait(self, request: Request) -> Response:
        raw = request.query_params.get("timeout", "30")
        try:
            timeout = float(raw)
        except ValueError as exc:
            raise _malformed("timeout must be a number") from exc
        if not 0 <= timeout <= self.service.config.max_wait_seconds:  # also refuses NaN
            raise _malformed(f"timeout must be in 0..{self.service.config.max_wait_seconds}")
        proof = await self._proof_for(request)
        waiting = await self.service.wait_for_messages(proof, timeout=timeout)
        return JSONResponse({"waiting": waiting})

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            hello = await websocket.receive_text()
            if len(hello) > 2048:
                raise _malformed("first message too long")
            proof = parse_auth_headers(parse_json_object(hello.encode(), RequestRejectedError))
            recipient = await self.service.authenticate(proof, "wait")
        except (OmegaError, WebSocketDisconnect) as exc:
            if isinstance(exc, OmegaError):
                await websocket.send_json(error_body(exc))
                await websocket.close(code=1008)
            return
        try:
            await self._notify_loop(websocket, recipient)
        except (WebSocketDisconnect, StorageError):
            return

    async def _notify_loop(self, websocket: WebSocket, recipient: str) -> None:
        async with anyio.create_task_group() as group:

            async def watch_close() -> None:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch_close)
            first = True
            while True:
                async with self.service.notifier.listen(recipient) as listener:
                    if await self.service.has_messages(recipient):
                        await websocket.send_json({"event": "messages_waiting"})
                    elif first:
                        await websocket.send_json({"event": "subscribed"})
                    first = False
                    await listener.wait()

    async def publish_device_list(self, request: Request) -> Response:
        body = await _read_body(request, MAX_DEVICE_LIST_SIZE * 2)
        signed = unb64(
            body.get("signed"),
            "signed",
            max_bytes=MAX_DEVICE_LIST_SIZE + 128,
            error=RequestRejectedError,
        )
        verified = await self.service.directory.publish_device_list(
            source=_source(request), signed=signed
        )
        return JSONResponse({"sequence": verified.sequence})

    async def get_device_list(self, request: Request) -> Response:
        signed = await self.service.directory.get_device_list(request.path_params["user_id"])
        if signed is None:
            return _not_found("no device list for this user")
        return JSONResponse({"signed": b64(signed)})

    async def publish_prekeys(self, request: Request) -> Response:
        proof = await self._proof_for(request)
        body = await _read_body(request, self.prekey_limit)
        items = body.get("one_time_prekeys", [])
        if not isinstance(items, list):
            raise _malformed("one_time_prekeys must be a list")
        one_time = []
        for item in items:
            if not isinstance(item, dict):
                raise _malformed("a one-time prekey is an object")
            key = unb64(
                item.get("public_key"), "public_key", max_bytes=32, error=RequestRejectedError
            )
            one_time.append((item.get("prekey_id"), key))
        count = await self.service.directory.publish_prekeys(
            proof,
            user_id=body.get("user_id"),  # type: ignore[arg-type]  # checked by the service
            certificate=unb64(
                body.get("certificate"), "certificate", max_bytes=2048, error=RequestRejectedError
            ),
            signed_prekey=unb64(
                body.get("signed_prekey"),
                "signed_prekey",
                max_bytes=512,
                error=RequestRejectedError,
            ),
            one_time_prekeys=one_time,  # type: ignore[arg-type]  # ids checked by the service
        )
        return JSONResponse({"one_time_prekeys": count})

    async def claim_bundle(self, request: Request) -> Response:
        device_hex = request.path_params["device_key"]
        try:
            device_key = bytes.fromhex(device_hex)
        except ValueError as exc:
            raise _malformed("device_key must be hex") from exc
        bundle = await self.service.directory.claim_prekey_bundle(
            source=_source(request), user_id=request.path_params["user_id"], device_key=device_key
        )
        if bundle is None:
            return _not_found("no prekeys for this device")
        return JSONResponse({"bundle": b64(bundle)})

    async def count_prekeys(self, request: Request) -> Response:
        proof = await self._proof_for(request)
        count = await self.service.directory.count_one_time_prekeys(proof)
        return JSONResponse({"one_time_prekeys": count})


def _not_found(message: str) -> Response:
    body = {"error": {"code": "not_found", "reason": "not_found", "message": message}}
    return JSONResponse(body, status_code=404)


def create_app(service: StoreService, *, run_sweeper: bool = True) -> Starlette:
    """The ASGI app serving ``service``; its lifespan runs the sweeper when asked."""
    api = _Api(service)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            if run_sweeper:
                await group.start(service.run_sweeper)
            _log.info("event=store_started")
            yield
            group.cancel_scope.cancel()
        _log.info("event=store_stopped")

    def route(path: str, **handlers: Handler) -> Route:
        guarded = {method.upper(): _guarded(handler) for method, handler in handlers.items()}

        async def dispatch(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await guarded[method](request)

        return Route(path, dispatch, methods=list(guarded))

    routes = [
        route("/health", get=api.health),
        route("/openapi.json", get=api.openapi),
        route("/store", post=api.deposit, get=api.fetch),
        route("/store/wait", get=api.wait),
        route("/store/{ids}", delete=api.acknowledge),
        route("/auth/challenge", post=api.challenge),
        route("/keys/device-list", put=api.publish_device_list),
        route("/keys/prekeys", put=api.publish_prekeys),
        route("/keys/prekeys/count", get=api.count_prekeys),
        route("/keys/{user_id}/device-list", get=api.get_device_list),
        route("/keys/{user_id}/devices/{device_key}/bundle", post=api.claim_bundle),
        WebSocketRoute("/store/ws", api.websocket),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
