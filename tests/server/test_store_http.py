"""The HTTP API and StoreClient: the suites in process and over a real socket, bad input."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from omega.crypto import Identity, LocalDevice
from omega.errors import (
    AuthenticationFailedError,
    QuotaExceededError,
    RateLimitedError,
    RemoteProtocolError,
    RequestRejectedError,
    ServerUnavailableError,
    StorageError,
)
from omega.mailbox import MemoryBackend, StoreConfig, StoreService, recipient_hash
from omega.mailbox._wire import parse_auth_headers
from omega.mailbox.http import StoreClient, StoreClientConfig
from omega.server.store.app import create_app
from omega.testing.clock import ManualClock
from omega.testing.mailbox import check_key_directory, check_mailbox

pytestmark = pytest.mark.anyio

ROOMY = StoreConfig(request_burst=100_000, max_payload_bytes=4096)


def _device() -> LocalDevice:
    return Identity.create(device_name="d", created_at=1).device


def _client(service: StoreService) -> StoreClient:
    app = create_app(service, run_sweeper=False)
    return StoreClient("http://store.test", transport=httpx.ASGITransport(app=app))


async def test_the_http_client_conforms_in_process() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    service = StoreService(MemoryBackend(), config=ROOMY, clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    await check_mailbox(lambda: _client(service), advance=advance, max_payload_bytes=4096)
    await check_key_directory(lambda: _client(service))


@pytest.fixture
async def served(
    serve_store: Callable[[StoreService], Any],
) -> AsyncIterator[tuple[str, StoreService]]:
    service = StoreService(MemoryBackend(), config=ROOMY)
    async with serve_store(service) as url:
        yield url, service


async def test_the_http_client_conforms_over_a_real_socket(
    served: tuple[str, StoreService],
) -> None:
    url, _ = served
    await check_mailbox(lambda: StoreClient(url), max_payload_bytes=4096)
    await check_key_directory(lambda: StoreClient(url))
    async with StoreClient(url) as client:
        assert await client.health()


async def test_the_websocket_announces_waiting_messages(served: tuple[str, StoreService]) -> None:
    from websockets.asyncio.client import connect

    url, _ = served
    device = _device()
    async with StoreClient(url) as client:
        headers = await client._auth_headers(device, "wait")
        async with connect(url.replace("http", "ws") + "/store/ws") as websocket:
            await websocket.send(__import__("json").dumps(headers))
            assert "subscribed" in str(await websocket.recv())
            await client.deposit(device.device_key, "m", b"x")
            assert "messages_waiting" in str(await websocket.recv())
        async with connect(url.replace("http", "ws") + "/store/ws") as websocket:
            await websocket.send(__import__("json").dumps(headers))  # replayed
            assert "authentication_failed" in str(await websocket.recv())


async def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with StoreClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(ServerUnavailableError):
            await client.deposit(_device().device_key, "m", b"x")
    with pytest.raises(Exception, match="closed"):
        await client.deposit(_device().device_key, "m", b"x")


async def _raw(service: StoreService) -> httpx.AsyncClient:
    app = create_app(service, run_sweeper=False)
    return httpx.AsyncClient(base_url="http://store.test", transport=httpx.ASGITransport(app=app))


async def test_malformed_and_oversized_requests_get_clear_errors() -> None:
    service = StoreService(MemoryBackend(), config=ROOMY)
    target = recipient_hash(_device().device_key)
    async with await _raw(service) as http:
        for body, status in [
            (b"not json", 400),
            (b"[1]", 400),
            (b'{"recipient": "x", "message_id": "m", "payload": "AA=="}', 400),
            (b'{"recipient": "' + target.encode() + b'", "message_id": "m", "payload": "@@"}', 400),
            (b"{" + b" " * 10_000 + b"}", 400),
        ]:
            response = await http.post("/store", content=body)
            assert response.status_code == status, body
            assert response.json()["error"]["code"] == "request_rejected"
        big = base64.b64encode(b"x" * 4097).decode()
        response = await http.post(
            "/store", json={"recipient": target, "message_id": "m", "payload": big}
        )
        assert response.status_code in {400, 413}
        response = await http.get("/store", params={"recipient": target})
        assert response.status_code == 401
        response = await http.get("/store")
        assert response.status_code == 400
        response = await http.get("/store/wait", params={"timeout": "nan"})
        assert response.status_code == 400
        response = await http.post(f"/keys/{'x'}/devices/zz/bundle")
        assert response.status_code == 400
        response = await http.get("/keys/nobody/device-list")
        assert response.status_code == 400
        assert (await http.get("/openapi.json")).json()["openapi"].startswith("3.")


async def test_forged_replayed_and_foreign_auth_is_refused() -> None:
    service = StoreService(MemoryBackend(), config=ROOMY)
    device, other = _device(), _device()
    async with _client(service) as client, await _raw(service) as http:
        headers = await client._auth_headers(device, "fetch")
        ok = await http.get(
            "/store", params={"recipient": recipient_hash(device.device_key)}, headers=headers
        )
        assert ok.status_code == 200
        replay = await http.get(
            "/store", params={"recipient": recipient_hash(device.device_key)}, headers=headers
        )
        assert replay.status_code == 401
        assert "replay" in replay.json()["error"]["message"]
        headers = await client._auth_headers(device, "fetch")
        foreign = await http.get(
            "/store", params={"recipient": recipient_hash(other.device_key)}, headers=headers
        )
        assert foreign.status_code == 403
        forged = dict(headers, **{"x-omega-signature": base64.b64encode(bytes(64)).decode()})
        response = await http.get(
            "/store", params={"recipient": recipient_hash(device.device_key)}, headers=forged
        )
        assert response.status_code == 401
        garbage = dict(headers, **{"x-omega-challenge": "!!"})
        response = await http.get(
            "/store", params={"recipient": recipient_hash(device.device_key)}, headers=garbage
        )
        assert response.status_code == 401


async def test_typed_errors_reach_the_client() -> None:
    config = StoreConfig(
        request_burst=3,
        max_payload_bytes=10,
        max_messages_per_recipient=1,
        max_bytes_per_recipient=10,
        bytes_burst=100,
    )
    service = StoreService(MemoryBackend(), config=config, clock=ManualClock(start=1e9))
    device = _device()
    async with _client(service) as client:
        assert await client.deposit(device.device_key, "a", b"1")
        with pytest.raises(QuotaExceededError) as info:
            await client.deposit(device.device_key, "b", b"2")
        assert info.value.reason == "mailbox_full"
        with pytest.raises(QuotaExceededError):
            await client.deposit(device.device_key, "c", b"x" * 11)
        with pytest.raises(RateLimitedError):  # noqa: PT012 - the burst is 3 requests
            for n in range(3):
                await client.deposit(_device().device_key, f"d{n}", b"")


class _FlakyBackend(MemoryBackend):
    """Fails every call while ``down`` is set, like a database that went away."""

    down = False

    async def insert_message(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
        if self.down:
            raise StorageError("connection to the database was lost")
        return await super().insert_message(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_backend_failure_is_a_503_for_that_request_only() -> None:
    backend = _FlakyBackend()
    service = StoreService(backend, config=ROOMY)
    device = _device()
    async with _client(service) as client:
        await client.deposit(device.device_key, "before", b"1")
        backend.down = True
        with pytest.raises(ServerUnavailableError):
            await client.deposit(device.device_key, "during", b"2")
        backend.down = False
        await client.deposit(device.device_key, "after", b"3")
        assert [e.message_id for e in await client.fetch(device)] == ["before", "after"]


async def test_a_lying_server_is_a_protocol_error() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"stored": "yes", "messages": 5}'})

    client = StoreClient("http://liar", transport=httpx.ASGITransport(app=app))
    async with client:
        with pytest.raises(RemoteProtocolError):
            await client.deposit(_device().device_key, "m", b"")

    async def teapot(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"<html>"})

    async with StoreClient("http://t", transport=httpx.ASGITransport(app=teapot)) as client:
        with pytest.raises(RequestRejectedError) as info:
            await client.deposit(_device().device_key, "m", b"")
        assert info.value.reason == "http_418"


def test_client_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="timeout"):
        StoreClientConfig(timeout_seconds=0)


async def test_the_websocket_wake_up_conforms(served: tuple[str, StoreService]) -> None:
    url, _ = served
    config = StoreClientConfig(wake_up="websocket")
    await check_mailbox(lambda: StoreClient(url, config=config), max_payload_bytes=4096)
    with pytest.raises(ValueError, match="wake_up"):
        StoreClientConfig(wake_up="carrier pigeon")


async def test_a_refused_websocket_raises_the_servers_error(
    served: tuple[str, StoreService],
) -> None:
    url, service = served
    config = StoreClientConfig(wake_up="websocket")
    device = _device()
    async with StoreClient(url, config=config) as client:
        real = client._auth_headers

        async def replayed(device: LocalDevice, action: str) -> dict[str, str]:
            headers = await real(device, action)
            await service.authenticate(parse_auth_headers(headers), action)  # spend it first
            return headers

        client._auth_headers = replayed  # type: ignore[method-assign]
        with pytest.raises(AuthenticationFailedError):
            await client.wait_for_messages(device, timeout=5)


async def test_a_revoked_device_is_gone_over_http_and_websocket(
    served: tuple[str, StoreService],
) -> None:
    url, service = served
    device = _device()
    await service.revoke_mailbox(device.device_key)
    async with httpx.AsyncClient(base_url=url) as http:
        body = {"recipient": recipient_hash(device.device_key), "message_id": "m", "payload": ""}
        response = await http.post("/store", json=body)
    assert response.status_code == 410
    assert response.json()["error"]["reason"] == "revoked_device"
    async with StoreClient(url) as client:
        with pytest.raises(RequestRejectedError) as refused:
            await client.deposit(device.device_key, "m", b"x")
        assert type(refused.value) is RequestRejectedError
        assert refused.value.reason == "revoked_device"
        assert refused.value.details["status"] == 410
        with pytest.raises(RequestRejectedError, match="revoked") as waiting:
            await client.wait_for_messages(device, timeout=1)
        assert waiting.value.reason == "revoked_device"
    config = StoreClientConfig(wake_up="websocket")
    async with StoreClient(url, config=config) as client:
        with pytest.raises(RequestRejectedError) as woken:
            await client.wait_for_messages(device, timeout=1)
        assert woken.value.reason == "revoked_device"
