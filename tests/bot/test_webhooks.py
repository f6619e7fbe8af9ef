"""Outbound webhooks (signed, retried, bounded) and the inbound HTTP endpoint."""

from __future__ import annotations

import base64
import json
import socket
import time

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omega.bot import Bot, CommandContext, WebhookConfig
from omega.bot.signing import sign, signature_headers, verify
from omega.bot.testing import BotTestClient
from omega.crypto import Identity
from omega.errors import AuthenticationFailedError, ConfigurationError
from omega.protocol import MessageContent, decode_message

pytestmark = pytest.mark.anyio

SECRET = b"a shared secret of 32 bytes!!!!!"


def new_bot() -> Bot:
    bot = Bot(Identity.create(display_name="Hook bot", device_name="srv", created_at=0))

    @bot.command("ping")
    async def ping(ctx: CommandContext) -> None:
        await ctx.reply("pong")

    return bot


class Receiver:
    def __init__(self, failures: int = 0, status: int = 500) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        self.status = status
        self.arrived = anyio.Event()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((dict(request.headers), body))
        if self.failures:
            self.failures -= 1
            return Response(status_code=self.status)
        self.arrived.set()
        return JSONResponse({"ok": True})


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"a":1}'
    headers = signature_headers(SECRET, 1_700_000_000, body)
    # The test vector of docs/bots.md.
    assert headers["Omega-Signature"] == (
        "v1=52458f5dec580b2262ea992bf01ff3b29c96703b7fbcb5cf7590a79563e1f45e"
    )
    assert headers["Omega-Timestamp"] == "1700000000"
    assert headers["Omega-Signature"] == sign(SECRET, 1_700_000_000, body)
    assert headers["Omega-Signature"].startswith("v1=")
    assert len(headers["Omega-Signature"]) == 67
    args = {"timestamp": headers["Omega-Timestamp"], "signature": headers["Omega-Signature"]}
    verify(SECRET, body=body, now=1_700_000_100, **args)
    with pytest.raises(AuthenticationFailedError, match="does not match"):
        verify(SECRET, body=b'{"a":2}', now=1_700_000_100, **args)
    with pytest.raises(AuthenticationFailedError, match="too old"):
        verify(SECRET, body=body, now=1_700_000_301, **args)
    with pytest.raises(AuthenticationFailedError, match="missing"):
        verify(SECRET, body=body, now=0, timestamp=None, signature="v1=00")
    with pytest.raises(AuthenticationFailedError, match="Unix seconds"):
        verify(SECRET, body=body, now=0, timestamp="-5", signature="v1=00")
    with pytest.raises(ConfigurationError, match="16 bytes"):
        sign(b"short", 0, body)
    with pytest.raises(ConfigurationError):
        WebhookConfig(url="ftp://x", secret=SECRET)
    with pytest.raises(ConfigurationError):
        WebhookConfig(url="http://x", secret=SECRET, max_attempts=0)


async def test_each_incoming_message_is_posted_signed() -> None:
    receiver = Receiver()
    bot = new_bot()
    webhook = bot.add_webhook(
        "http://erp.test/hook", secret=SECRET, transport=httpx.ASGITransport(receiver.app)
    )
    async with BotTestClient(bot) as tester:
        assert (await tester.send("/ping")).text == "pong"
        with anyio.fail_after(5):
            await receiver.arrived.wait()
    [(headers, body)] = receiver.requests
    verify(
        SECRET,
        timestamp=headers["omega-timestamp"],
        signature=headers["omega-signature"],
        body=body,
        now=time.time(),
    )
    payload = json.loads(body)
    assert payload["type"] == "message.received"
    assert payload["text"] == "/ping"
    assert payload["kind"] == "text"
    assert payload["sender_id"] == tester.user.user_id
    assert payload["bot_id"] == bot.user_id
    content = decode_message(MessageContent, base64.b64decode(payload["content"]))
    assert content.text is not None
    assert content.text.text == "/ping"
    assert headers["omega-event"] == "message.received"
    assert webhook.delivered == 1


async def test_failures_are_retried_with_backoff() -> None:
    receiver = Receiver(failures=2, status=503)
    bot = new_bot()
    webhook = bot.add_webhook(
        "http://erp.test/hook",
        secret=SECRET,
        transport=httpx.ASGITransport(receiver.app),
        initial_backoff=0.01,
    )
    async with BotTestClient(bot) as tester:
        await tester.send("/ping")
        with anyio.fail_after(5):
            await receiver.arrived.wait()
    assert len(receiver.requests) == 3
    assert webhook.delivered == 1
    assert webhook.dropped == 0


async def test_a_refusing_target_is_not_retried() -> None:
    receiver = Receiver(failures=1, status=400)
    bot = new_bot()
    webhook = bot.add_webhook(
        "http://erp.test/hook", secret=SECRET, transport=httpx.ASGITransport(receiver.app)
    )
    async with BotTestClient(bot) as tester:
        await tester.send("/ping")
        with anyio.fail_after(5):
            while webhook.dropped == 0:
                await anyio.sleep(0.01)
    assert len(receiver.requests) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_dead_or_slow_target_does_not_stop_the_bot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = new_bot()
    dead = bot.add_webhook(
        f"http://127.0.0.1:{_closed_port()}/hook",
        secret=SECRET,
        max_attempts=2,
        initial_backoff=0.01,
    )

    async def slow_app(scope: object, receive: object, send: object) -> None:
        await anyio.sleep(3600)

    slow = bot.add_webhook(
        "http://slow.test/hook",
        secret=SECRET,
        transport=httpx.ASGITransport(slow_app),  # type: ignore[arg-type]
        timeout=0.05,
        max_attempts=1,
        queue_size=1,
        concurrency=1,
    )
    async with BotTestClient(bot) as tester:
        for _ in range(4):
            assert (await tester.send("/ping")).text == "pong"
        with anyio.fail_after(5):
            while dead.dropped < 4 or slow.dropped < 4:
                await anyio.sleep(0.01)
    assert "event=webhook_gave_up" in caplog.text


async def test_inbound_endpoint_sends_messages() -> None:
    bot = new_bot()
    endpoint = bot.serve_http(token="a bearer token of some length", secret=SECRET)
    async with BotTestClient(bot) as tester, httpx.AsyncClient() as http:
        assert endpoint.port
        url = endpoint.url + "/v1/messages"
        health = await http.get(endpoint.url + "/health")
        assert health.json() == {"status": "ok", "user_id": bot.user_id}
        body = json.dumps({"to": tester.user.user_id, "text": "Your order shipped"}).encode()
        auth = {"Authorization": "Bearer a bearer token of some length"}
        response = await http.post(url, content=body, headers=auth)
        assert response.status_code == 202, response.text
        assert (await tester.receive()).text == "Your order shipped"
        signed = signature_headers(SECRET, int(time.time()), body)
        assert (await http.post(url, content=body, headers=signed)).status_code == 202
        assert (await tester.receive()).text == "Your order shipped"
        refused = [
            ({}, body, 401),
            ({"Authorization": "Bearer wrong token of some length"}, body, 401),
            (signature_headers(SECRET, int(time.time()) - 1000, body), body, 401),
            (auth, b"{not json", 400),
            (auth, b"[1, 2]", 400),
            (auth, json.dumps({"to": tester.user.user_id}).encode(), 400),
            (auth, json.dumps({"to": "x", "text": "y", "reply_to": 5}).encode(), 400),
            (auth, json.dumps({"to": "omega1nope", "text": "hi"}).encode(), 400),
            (auth, b"x" * 70_000, 413),
        ]
        for headers, payload, status in refused:
            answer = await http.post(url, content=payload, headers=headers)
            assert answer.status_code == status, (headers, payload[:40], answer.text)
            assert "error" in answer.json()
        assert (await tester.send("/ping")).text == "pong"
    with pytest.raises(ConfigurationError):
        new_bot().serve_http()
    with pytest.raises(ConfigurationError):
        new_bot().serve_http(token="short")
