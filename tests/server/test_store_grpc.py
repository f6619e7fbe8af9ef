"""The gRPC API and GrpcStoreClient: the suites over a real socket, bad input, HTTP beside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from omega.cli import build_parser
from omega.crypto import Identity, LocalDevice
from omega.errors import (
    AuthenticationFailedError,
    ConfigurationError,
    ConnectionClosedError,
    QuotaExceededError,
    RateLimitedError,
    RequestRejectedError,
    ServerUnavailableError,
    StorageError,
)
from omega.mailbox import MemoryBackend, StoreConfig, StoreService, auth_message, recipient_hash
from omega.mailbox._generated import store_service as pb
from omega.mailbox._grpc_wire import (
    ErrorDetailsCodec,
    StrictCodec,
    error_from_grpc,
    grpc_error_for,
    grpc_status_for,
)
from omega.mailbox.grpc import GrpcStoreClient, GrpcStoreClientConfig
from omega.mailbox.http import StoreClient
from omega.server.store.app import create_app
from omega.server.store.command import load_settings
from omega.server.store.grpc import FETCH_RESPONSE_BUDGET, create_grpc_server, listening_socket
from omega.testing.clock import ManualClock
from omega.testing.mailbox import check_key_directory, check_mailbox

pytestmark = pytest.mark.anyio

ROOMY = StoreConfig(request_burst=100_000, max_payload_bytes=4096)


def _device() -> LocalDevice:
    return Identity.create(device_name="d", created_at=1).device


async def _serve(service: StoreService) -> tuple[Server, int]:
    server = create_grpc_server(service)
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    await server.start(sock=sock)
    return server, port


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, StoreService]]:
    clock = ManualClock(start=1_700_000_000.0)
    service = StoreService(MemoryBackend(), config=ROOMY, clock=clock)
    server, port = await _serve(service)
    try:
        yield port, service
    finally:
        server.close()
        await server.wait_closed()


def _client(port: int) -> GrpcStoreClient:
    return GrpcStoreClient("127.0.0.1", port)


class _Raw:
    """A bare grpclib channel speaking the service, for requests a client would never send."""

    def __init__(self, port: int) -> None:
        self.channel = Channel(
            "127.0.0.1",
            port,
            codec=StrictCodec(max_size=1 << 20),
            status_details_codec=ErrorDetailsCodec(),
        )
        self.stub = pb.StoreStub(self.channel, timeout=5)

    def close(self) -> None:
        self.channel.close()


async def test_the_grpc_client_conforms_over_a_real_socket(
    served: tuple[int, StoreService],
) -> None:
    port, service = served
    clock = service.clock
    assert isinstance(clock, ManualClock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    await check_mailbox(lambda: _client(port), advance=advance, max_payload_bytes=4096)
    await check_key_directory(lambda: _client(port))
    async with _client(port) as client:
        assert await client.health()


async def test_a_deposit_over_http_is_fetched_over_grpc_and_back() -> None:
    service = StoreService(MemoryBackend(), config=ROOMY)
    server, port = await _serve(service)
    app = create_app(service, run_sweeper=False)
    http = StoreClient("http://store.test", transport=httpx.ASGITransport(app=app))
    device = _device()
    try:
        async with http, _client(port) as grpc:
            assert await http.deposit(device.device_key, "via-http", b"one") is True
            assert await grpc.deposit(device.device_key, "via-http", b"one") is False
            assert await grpc.deposit(device.device_key, "via-grpc", b"two") is True
            assert [e.message_id for e in await grpc.fetch(device)] == ["via-http", "via-grpc"]
            assert [e.payload for e in await http.fetch(device)] == [b"one", b"two"]
            assert await grpc.acknowledge(device, ["via-http"]) == 1
            assert [e.message_id for e in await http.fetch(device)] == ["via-grpc"]
            assert await grpc.wait_for_messages(device, timeout=0) is True
    finally:
        server.close()
        await server.wait_closed()


async def _status_of(call: object) -> tuple[Status, object]:
    with pytest.raises(GRPCError) as caught:
        await call  # type: ignore[misc]
    return caught.value.status, caught.value.details


async def test_auth_is_checked_like_over_http(served: tuple[int, StoreService]) -> None:
    port, _ = served
    raw = _Raw(port)
    device = _device()
    try:
        # No auth at all.
        status, details = await _status_of(raw.stub.fetch(pb.FetchRequest()))
        assert status is Status.UNAUTHENTICATED
        assert details == ("authentication_failed", "authentication_failed")
        # A correct proof works once; the same proof again is a replay.
        answer = await raw.stub.challenge(pb.ChallengeRequest(device_key=device.device_key))
        signature = device.key_pair.sign(auth_message(answer.challenge, device.device_key, "fetch"))
        auth = pb.Auth(
            device_key=device.device_key, challenge=answer.challenge, signature=signature
        )
        assert (await raw.stub.fetch(pb.FetchRequest(auth=auth))).messages == []
        status, _ = await _status_of(raw.stub.fetch(pb.FetchRequest(auth=auth)))
        assert status is Status.UNAUTHENTICATED
        # A signature for another action, by another key, or over a forged challenge.
        answer = await raw.stub.challenge(pb.ChallengeRequest(device_key=device.device_key))
        wrong_action = device.key_pair.sign(
            auth_message(answer.challenge, device.device_key, "acknowledge")
        )
        other = _device()
        wrong_key = other.key_pair.sign(auth_message(answer.challenge, device.device_key, "fetch"))
        forged = bytes([answer.challenge[0] ^ 0]) + bytes(16) + answer.challenge[17:]
        forged_signature = device.key_pair.sign(auth_message(forged, device.device_key, "fetch"))
        for challenge, bad_signature in (
            (answer.challenge, wrong_action),
            (answer.challenge, wrong_key),
            (forged, forged_signature),
            (answer.challenge[:-1], signature),
        ):
            bad = pb.Auth(
                device_key=device.device_key, challenge=challenge, signature=bad_signature
            )
            status, _ = await _status_of(raw.stub.fetch(pb.FetchRequest(auth=bad)))
            assert status is Status.UNAUTHENTICATED
        # The untouched challenge still works after all those failures (nothing was spent).
        good = device.key_pair.sign(auth_message(answer.challenge, device.device_key, "fetch"))
        auth = pb.Auth(device_key=device.device_key, challenge=answer.challenge, signature=good)
        assert (await raw.stub.fetch(pb.FetchRequest(auth=auth))).messages == []
    finally:
        raw.close()


async def test_an_expired_challenge_is_refused(served: tuple[int, StoreService]) -> None:
    port, service = served
    clock = service.clock
    assert isinstance(clock, ManualClock)
    raw = _Raw(port)
    device = _device()
    try:
        answer = await raw.stub.challenge(pb.ChallengeRequest(device_key=device.device_key))
        clock.advance(service.config.challenge_ttl_seconds + 1)
        signature = device.key_pair.sign(
            auth_message(answer.challenge, device.device_key, "count-prekeys")
        )
        auth = pb.Auth(
            device_key=device.device_key, challenge=answer.challenge, signature=signature
        )
        status, _ = await _status_of(
            raw.stub.one_time_prekey_count(pb.OneTimePrekeyCountRequest(auth=auth))
        )
        assert status is Status.UNAUTHENTICATED
    finally:
        raw.close()


async def test_bad_requests_get_invalid_argument(served: tuple[int, StoreService]) -> None:
    port, _ = served
    raw = _Raw(port)
    device = _device()
    recipient = recipient_hash(device.device_key)
    try:
        bad_requests: list[object] = [
            raw.stub.deposit(pb.DepositRequest(recipient="nope", message_id="m", payload=b"x")),
            raw.stub.deposit(pb.DepositRequest(recipient=recipient, message_id="", payload=b"")),
            raw.stub.deposit(pb.DepositRequest(recipient=recipient, message_id="m", ttl_seconds=0)),
            raw.stub.challenge(pb.ChallengeRequest(device_key=b"short")),
            raw.stub.fetch_device_list(pb.FetchDeviceListRequest(user_id="not a user id")),
            raw.stub.publish_device_list(
                pb.PublishDeviceListRequest(signed_device_list=b"\xff\xff")
            ),
            raw.stub.claim_prekey_bundle(
                pb.ClaimPrekeyBundleRequest(user_id="x", device_key=bytes(32))
            ),
        ]
        for call in bad_requests:
            status, details = await _status_of(call)
            assert status is Status.INVALID_ARGUMENT
            assert isinstance(details, tuple)
        for timeout in (-1.0, float("nan"), 1e9):
            auth = pb.Auth(device_key=device.device_key)
            status, _ = await _status_of(
                raw.stub.wait_for_messages(pb.WaitRequest(auth=auth, timeout_seconds=timeout))
            )
            assert status is Status.INVALID_ARGUMENT
    finally:
        raw.close()


class _Bytes:
    """A "message" whose encoding is the given bytes, to send malformed requests."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class _BytesCodec(StrictCodec):
    def encode(self, message: object, message_type: object) -> bytes:
        assert isinstance(message, _Bytes)
        return message.data


async def test_malformed_and_oversized_requests(served: tuple[int, StoreService]) -> None:
    port, service = served
    channel = Channel("127.0.0.1", port, codec=_BytesCodec(max_size=1 << 20))
    try:

        async def send(method: str, data: bytes) -> Status:
            async with channel.request(
                f"/omega.store.v1.Store/{method}",
                Cardinality.UNARY_UNARY,
                _Bytes,
                pb.DepositResponse,
                timeout=5,
            ) as stream:
                await stream.send_message(_Bytes(data), end=True)
                with pytest.raises(GRPCError) as caught:
                    await stream.recv_message()
                return caught.value.status

        assert await send("Deposit", b"\x08") is Status.INVALID_ARGUMENT
        assert await send("Deposit", b"\x12\x05ab") is Status.INVALID_ARGUMENT
        huge = pb.DepositRequest(
            recipient=recipient_hash(_device().device_key),
            message_id="big",
            payload=bytes(service.config.max_payload_bytes + 2048),
        )
        from omega.protocol import encode_message

        assert await send("Deposit", encode_message(huge)) is Status.RESOURCE_EXHAUSTED
        assert await send("Health", bytes(5000)) is Status.RESOURCE_EXHAUSTED
    finally:
        channel.close()
    # The server still serves everyone else.
    async with _client(port) as client:
        assert await client.health()


async def test_typed_errors_reach_the_client() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    config = StoreConfig(
        request_burst=3,
        requests_per_second=0.001,
        max_payload_bytes=64,
        max_messages_per_recipient=1,
        max_bytes_per_recipient=64,
    )
    service = StoreService(MemoryBackend(), config=config, clock=clock)
    server, port = await _serve(service)
    device = _device()
    try:
        async with _client(port) as client:
            with pytest.raises(QuotaExceededError) as too_big:
                await client.deposit(device.device_key, "big", bytes(65))
            assert too_big.value.reason == "payload_too_large"
            assert await client.deposit(device.device_key, "one", b"x") is True
            with pytest.raises(QuotaExceededError) as full:
                await client.deposit(device.device_key, "two", b"x")
            assert full.value.reason == "mailbox_full"
            await client.deposit(_device().device_key, "r", b"x")
            with pytest.raises(RateLimitedError):
                await client.deposit(_device().device_key, "r", b"x")
            with pytest.raises(RequestRejectedError):
                await client.deposit(device.device_key, "bad id!", b"x")
    finally:
        server.close()
        await server.wait_closed()


class _BrokenBackend(MemoryBackend):
    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        raise StorageError("database down")


async def test_a_failing_backend_is_unavailable_for_that_call_only() -> None:
    service = StoreService(_BrokenBackend(), config=ROOMY)
    server, port = await _serve(service)
    device = _device()
    try:
        async with _client(port) as client:
            with pytest.raises(ServerUnavailableError):
                await client.health()
            assert await client.deposit(device.device_key, "still", b"served") is True
    finally:
        server.close()
        await server.wait_closed()


async def test_an_unreachable_server_and_a_closed_client() -> None:
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    client = _client(port)
    with pytest.raises(ServerUnavailableError):
        await client.health()
    await client.aclose()
    await client.aclose()
    with pytest.raises(ConnectionClosedError):
        await client.health()


async def test_client_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        GrpcStoreClientConfig(timeout_seconds=0)
    with pytest.raises(ConfigurationError):
        GrpcStoreClientConfig(max_response_bytes=0)
    async with GrpcStoreClient("127.0.0.1", 1) as client:
        device = _device()
        with pytest.raises(ConfigurationError):
            await client.wait_for_messages(device, timeout=float("inf"))
        with pytest.raises(ConfigurationError):
            await client.fetch(device, limit=0)
        with pytest.raises(ConfigurationError):
            await client.deposit(device.device_key, "m", b"", ttl_seconds=1 << 63)


def test_status_mapping_without_details() -> None:
    assert isinstance(error_from_grpc(GRPCError(Status.UNAUTHENTICATED)), AuthenticationFailedError)
    assert isinstance(error_from_grpc(GRPCError(Status.RESOURCE_EXHAUSTED)), QuotaExceededError)
    assert isinstance(error_from_grpc(GRPCError(Status.INTERNAL)), ServerUnavailableError)
    rejected = error_from_grpc(GRPCError(Status.PERMISSION_DENIED, "no"))
    assert type(rejected) is RequestRejectedError
    assert rejected.reason == "grpc_permission_denied"
    codec = ErrorDetailsCodec()
    assert codec.decode(Status.INTERNAL, None, b"\xff") is None
    foreign = pb.RpcStatus(code=3, details=[pb.AnyDetail(type_url="x", value=b"")])
    from omega.protocol import encode_message

    assert codec.decode(Status.INTERNAL, None, encode_message(foreign)) is None


def test_without_grpclib_the_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import omega.mailbox
    import omega.mailbox._generated

    for name in ("grpclib", "omega.mailbox._grpc_wire", "omega.mailbox._generated.store_service"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr(omega.mailbox, "_grpc_wire", raising=False)
    monkeypatch.delattr(omega.mailbox._generated, "store_service", raising=False)
    monkeypatch.setitem(sys.modules, "grpclib", None)
    with pytest.raises(ConfigurationError, match=r"omega-p2p\[grpc\]"):
        GrpcStoreClient("127.0.0.1", 1)


def test_grpc_port_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "store", "--grpc-port", "9001"])
    assert args.grpc_port == 9001
    config = tmp_path / "store.toml"
    config.write_text("[store]\ngrpc_port = 9002\n")
    assert load_settings(str(config), {}, {}).grpc_port == 9002
    assert load_settings(str(config), {"OMEGA_STORE_GRPC_PORT": "0"}, {}).grpc_port == 0
    assert load_settings(None, {}, {}).grpc_port is None
    with pytest.raises(ConfigurationError, match="grpc_port"):
        load_settings(None, {"OMEGA_STORE_GRPC_PORT": "70000"}, {})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_omega_serve_store_serves_grpc_beside_http(tmp_path: Path) -> None:
    http_port, grpc_port = _free_port(), _free_port()
    code = "import sys; from omega.cli import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--data-dir", str(tmp_path), "serve", "store"],
        env={
            **os.environ,
            "OMEGA_STORE_PORT": str(http_port),
            "OMEGA_STORE_GRPC_PORT": str(grpc_port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    device = _device()
    try:
        async with _client(grpc_port) as grpc, StoreClient(f"http://127.0.0.1:{http_port}") as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if await grpc.health() and await http.health():
                        break
                except ServerUnavailableError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    await anyio.sleep(0.05)
            assert await grpc.deposit(device.device_key, "over-grpc", b"hello")
            assert [e.payload for e in await http.fetch(device)] == [b"hello"]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"gRPC listening on 127.0.0.1:{grpc_port}" in stdout
    assert "event=store_grpc_closed" in stderr
    assert "event=store_closed" in stderr


async def test_a_fetch_answer_stays_within_its_byte_budget() -> None:
    mib = 1024 * 1024
    config = StoreConfig(
        request_burst=100_000,
        max_payload_bytes=mib,
        bytes_burst=16 * mib,
        max_bytes_per_recipient=16 * mib,
    )
    service = StoreService(MemoryBackend(), config=config)
    server, port = await _serve(service)
    device = _device()
    try:
        async with _client(port) as client:
            for index in range(6):
                await client.deposit(device.device_key, f"m-{index}", bytes([index]) * mib)
            first = await client.fetch(device, limit=10)
            assert len(first) == FETCH_RESPONSE_BUDGET // mib == 4
            assert await client.acknowledge(device, [e.message_id for e in first]) == 4
            rest = await client.fetch(device, limit=10)
            assert [e.payload[0] for e in rest] == [4, 5]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_call_without_a_request_message_is_invalid(
    served: tuple[int, StoreService],
) -> None:
    port, _ = served
    channel = Channel("127.0.0.1", port, codec=StrictCodec(max_size=1 << 16))
    try:
        async with channel.request(
            "/omega.store.v1.Store/Health",
            Cardinality.STREAM_UNARY,  # lets the client end its stream without a message
            pb.HealthRequest,
            pb.HealthResponse,
            timeout=5,
        ) as stream:
            await stream.send_request(end=True)
            with pytest.raises(GRPCError) as caught:
                await stream.recv_message()
        assert caught.value.status is Status.INVALID_ARGUMENT
    finally:
        channel.close()


def test_every_rejection_has_its_status() -> None:
    cases = {
        Status.PERMISSION_DENIED: RequestRejectedError("x", reason="forbidden"),
        Status.FAILED_PRECONDITION: RequestRejectedError("x", reason="stale_device_list"),
        Status.INVALID_ARGUMENT: RequestRejectedError("x", reason="invalid_recipient"),
        Status.RESOURCE_EXHAUSTED: RateLimitedError("x"),
        Status.UNAUTHENTICATED: AuthenticationFailedError("x"),
        Status.UNAVAILABLE: StorageError("x"),
    }
    for status, error in cases.items():
        assert grpc_status_for(error) is status
        back = error_from_grpc(grpc_error_for(error))
        if isinstance(error, RequestRejectedError):
            assert type(back) is type(error)
            assert back.reason == error.reason
        else:
            assert isinstance(back, ServerUnavailableError)
    with pytest.raises(TypeError):
        StrictCodec(max_size=10).encode(pb.HealthRequest(), pb.HealthResponse)


async def test_a_revoked_device_is_permission_denied(served: tuple[int, StoreService]) -> None:
    port, service = served
    device = _device()
    await service.revoke_mailbox(device.device_key)
    async with _client(port) as client:
        with pytest.raises(RequestRejectedError) as deposit:
            await client.deposit(device.device_key, "m", b"x")
        with pytest.raises(RequestRejectedError) as fetch:
            await client.fetch(device)
    for refused in (deposit.value, fetch.value):
        assert type(refused) is RequestRejectedError
        assert refused.reason == "revoked_device"
        assert refused.details["grpc_status"] == "permission_denied"
