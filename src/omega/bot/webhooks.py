"""Webhooks: every incoming message POSTed to a URL, and an HTTP endpoint that sends.

Outbound (:class:`OutboundWebhook`, ``bot.add_webhook(url, secret=...)``):
each incoming message that passes the middleware becomes one signed JSON POST
(format in docs/bots.md), queued in a bounded queue (full: dropped and
logged) and retried with exponential backoff on network errors, timeouts,
408, 429 and 5xx answers. A slow or dead target never blocks the bot.

Inbound (:class:`InboundEndpoint`, ``bot.serve_http(port=..., token=...)``):
a Starlette app served by uvicorn where an authenticated
``POST /v1/messages`` ``{"to": user_id, "text": "...", "reply_to": id?}``
sends a message from the bot, so an ERP or an AI agent service can drive the
bot without Python. Authentication: ``Authorization: Bearer <token>`` or the
same HMAC signature as outbound webhooks (:mod:`omega.bot.signing`).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import uvicorn
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from omega.bot.context import MessageContext
from omega.bot.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    secret_bytes,
    signature_headers,
    verify,
)
from omega.errors import AuthenticationFailedError, ConfigurationError, OmegaError
from omega.protocol import encode_message

if TYPE_CHECKING:  # pragma: no cover
    from omega.bot._bot import Bot

__all__ = ["MAX_BODY", "InboundEndpoint", "OutboundWebhook", "WebhookConfig", "message_payload"]

logger = logging.getLogger("omega.bot.webhooks")

MAX_BODY = 64 * 1024
"""Largest request body the inbound endpoint reads."""
_RETRY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """An outbound webhook. Times are seconds."""

    url: str
    """Where to POST (http or https)."""
    secret: bytes | str
    """The shared HMAC key (at least 16 bytes)."""
    timeout: float = 10.0
    """Longest time one attempt may take."""
    max_attempts: int = 6
    """Attempts per message before it is dropped (logged)."""
    initial_backoff: float = 0.5
    """Wait after the first failure; doubled each time."""
    max_backoff: float = 60.0
    """Longest wait between attempts."""
    queue_size: int = 1000
    """Messages waiting to be posted; more are dropped (logged)."""
    concurrency: int = 4
    """POSTs in flight at once."""
    transport: httpx.AsyncBaseTransport | None = None
    """An httpx transport (tests use ``httpx.ASGITransport``); ``None``: the network."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError("a webhook URL starts with http:// or https://")
        secret_bytes(self.secret)
        for name, low, high in (
            ("timeout", 0.01, 600),
            ("max_attempts", 1, 100),
            ("initial_backoff", 0.0, 600),
            ("max_backoff", 0.0, 3600),
            ("queue_size", 1, 1_000_000),
            ("concurrency", 1, 256),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not low <= value <= high:
                raise ConfigurationError(f"{name} must be in {low}..{high}, got {value!r}")


def message_payload(bot_id: str, ctx: MessageContext) -> dict[str, Any]:
    """The JSON object posted for one incoming message (docs/bots.md)."""
    message = ctx.message
    return {
        "type": "message.received",
        "bot_id": bot_id,
        "message_id": message.message_id,
        "conversation_id": message.conversation_id,
        "sender_id": message.sender_id,
        "timestamp": message.timestamp,
        "received_at": message.received_at,
        "kind": ctx.kind,
        "text": ctx.text,
        "reply_to": message.reply_to,
        "content": base64.b64encode(encode_message(ctx.content)).decode("ascii"),
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class OutboundWebhook:
    """Posts incoming messages to one URL (see the module docstring)."""

    def __init__(self, config: WebhookConfig, bot: Bot) -> None:
        self.config = config
        self._bot = bot
        self._send: MemoryObjectSendStream[bytes] | None = None
        self._receive: MemoryObjectReceiveStream[bytes] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        """Messages the target accepted (2xx)."""
        self.dropped = 0
        """Messages given up on: queue full, out of attempts, or refused (4xx)."""

    def start(self, task_group: TaskGroup) -> None:
        """Start posting (the bot calls this)."""
        self._send, self._receive = anyio.create_memory_object_stream[bytes](self.config.queue_size)
        self._client = httpx.AsyncClient(
            timeout=self.config.timeout, transport=self.config.transport
        )
        for _ in range(self.config.concurrency):
            task_group.start_soon(self._worker, self._receive.clone())

    async def stop(self) -> None:
        """Stop posting (queued messages are dropped)."""
        if self._send is not None:
            self._send.close()
        if self._receive is not None:
            self._receive.close()
        if self._client is not None:
            await self._client.aclose()

    def enqueue(self, ctx: MessageContext) -> None:
        """Queue the message's POST; drop it (logged) when the queue is full."""
        if self._send is None:
            return
        body = encode_body(message_payload(self._bot.user_id, ctx))
        try:
            self._send.send_nowait(body)
        except anyio.WouldBlock:
            self.dropped += 1
            logger.error(
                "event=webhook_queue_full url=%s message=%s", self.config.url, ctx.message_id
            )
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.dropped += 1
            logger.warning(
                "event=webhook_stopped url=%s message=%s", self.config.url, ctx.message_id
            )

    async def _worker(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        async with receive:
            async for body in receive:
                await self._deliver(body)

    async def _deliver(self, body: bytes) -> None:
        config, client = self.config, self._client
        assert client is not None
        delay = config.initial_backoff
        for attempt in range(1, config.max_attempts + 1):
            headers = {"Content-Type": "application/json", "Omega-Event": "message.received"}
            headers.update(signature_headers(config.secret, int(time.time()), body))
            try:
                # httpx's timeouts are per read or write; this one bounds the whole attempt.
                with anyio.fail_after(config.timeout):
                    response = await client.post(config.url, content=body, headers=headers)
            except (httpx.HTTPError, TimeoutError) as exc:
                outcome = f"error:{type(exc).__name__}"
            else:
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    return
                outcome = f"status:{response.status_code}"
                if response.status_code < 500 and response.status_code not in _RETRY_STATUS:
                    break
            logger.warning(
                "event=webhook_attempt_failed url=%s attempt=%d outcome=%s",
                config.url,
                attempt,
                outcome,
            )
            if attempt < config.max_attempts:
                await anyio.sleep(delay)
                delay = min(config.max_backoff, max(delay * 2, 0.001))
        self.dropped += 1
        logger.error("event=webhook_gave_up url=%s outcome=%s", config.url, outcome)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the bot handles SIGINT/SIGTERM)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


class InboundEndpoint:
    """The bot's HTTP endpoint (see the module docstring and docs/bots.md)."""

    def __init__(
        self,
        bot: Bot,
        *,
        host: str,
        port: int,
        token: str | None,
        secret: bytes | str | None,
    ) -> None:
        if token is None and secret is None:
            raise ConfigurationError("the HTTP endpoint needs a bearer token or an HMAC secret")
        if token is not None and len(token) < 16:
            raise ConfigurationError("a bearer token has at least 16 characters")
        self._bot = bot
        self._host = host
        self._port = port
        self._token = token
        self._secret = secret_bytes(secret) if secret is not None else None
        self._server: _Server | None = None
        self._done = anyio.Event()
        self.port: int | None = None
        """The port it listens on, once started."""
        self.app = Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/messages", self._send_message, methods=["POST"]),
            ]
        )

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        return f"http://{self._host}:{self.port}"

    async def start(self, task_group: TaskGroup) -> None:
        """Serve in ``task_group``; returns once listening."""
        config = uvicorn.Config(
            self.app, host=self._host, port=self._port, log_config=None, access_log=False
        )
        server = self._server = _Server(config)

        async def serve() -> None:
            try:
                await server.serve()
            except SystemExit:  # uvicorn exits the process when it cannot bind
                logger.error("event=bot_http_failed host=%s port=%d", self._host, self._port)
            finally:
                self._done.set()

        task_group.start_soon(serve)
        with anyio.fail_after(10):
            while not server.started:
                if self._done.is_set():
                    raise ConfigurationError(f"cannot listen on {self._host}:{self._port}")
                await anyio.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        logger.info("event=bot_http_listening host=%s port=%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
            with anyio.move_on_after(5):
                await self._done.wait()

    def _authenticate(self, request: Request, body: bytes) -> None:
        header = request.headers.get("authorization", "")
        if self._token is not None and header.startswith("Bearer "):
            if hmac.compare_digest(header[7:].encode(), self._token.encode()):
                return
            raise AuthenticationFailedError("wrong bearer token")
        if self._secret is not None:
            verify(
                self._secret,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=body,
                now=time.time(),
            )
            return
        raise AuthenticationFailedError("missing Authorization: Bearer token")

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "user_id": self._bot.user_id})

    async def _send_message(self, request: Request) -> JSONResponse:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, "too_large", f"the body is limited to {MAX_BODY} bytes")
        try:
            self._authenticate(request, body)
        except AuthenticationFailedError as exc:
            logger.warning("event=bot_http_refused reason=%s", exc.message)
            return _error(401, exc.code, exc.message)
        try:
            request_json = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_json", "the body is not JSON")
        if not isinstance(request_json, dict):
            return _error(400, "invalid_request", "the body is a JSON object")
        to, text, reply_to = (request_json.get(k) for k in ("to", "text", "reply_to"))
        if not isinstance(to, str) or not isinstance(text, str) or not text:
            return _error(400, "invalid_request", '"to" and "text" are required strings')
        if reply_to is not None and not isinstance(reply_to, str):
            return _error(400, "invalid_request", '"reply_to" is a string')
        try:
            sent = await self._bot.send(to, text, reply_to=reply_to)
        except OmegaError as exc:
            return _error(400, exc.code, exc.message)
        return JSONResponse(
            {"message_id": sent.message_id, "state": sent.state.value}, status_code=202
        )
