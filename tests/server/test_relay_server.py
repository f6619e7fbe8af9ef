"""The relay server's limits, bad input, metrics and health, on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families
from relay_helpers import (
    expect_error,
    make_identity,
    raw_link,
    receive,
    registered,
    running,
    send_registration,
)
from relay_helpers import ws_relay as relay_address

from omega.errors import ConfigurationError, RelayRefusedError, TransportError
from omega.protocol import (
    RelayAccept,
    RelayClose,
    RelayConnect,
    RelayData,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayWindow,
)
from omega.server.relay import RelayMetrics, RelayServerConfig
from omega.server.relay._limits import TokenBucket
from omega.server.relay._session import Outbox
from omega.transport._relay_protocol import encode_relay_frame
from omega.transport.base import FrameConnection, listening
from omega.transport.relay import RelayCredentials, RelayTransport

pytestmark = pytest.mark.anyio

ALICE = make_identity("alice")
BOB = make_identity("bob")


def transport(name: str) -> RelayTransport:
    return RelayTransport(RelayCredentials.from_identity(make_identity(name)))


async def echo(connection: FrameConnection) -> None:
    async for frame in connection:
        await connection.send_frame(frame)


def config(**settings: object) -> RelayServerConfig:
    return RelayServerConfig(port=0, tcp_port=0, **settings)  # type: ignore[arg-type]


async def test_new_streams_beyond_the_rate_are_refused_others_go_on() -> None:
    async with running(config(connects_per_second=0.001, burst_connects=2)) as server:
        with anyio.fail_after(10):
            async with listening(transport("bob"), relay_address(server), echo) as listener:
                alice = transport("alice")
                for _ in range(2):
                    async with await alice.dial(listener.addresses[0]):
                        pass
                with pytest.raises(RelayRefusedError, match="rate_limited"):
                    await alice.dial(listener.addresses[0])
                async with await transport("carol").dial(listener.addresses[0]) as connection:
                    await connection.send_frame(b"carol is not limited")
                    assert await connection.receive_frame() == b"carol is not limited"
    assert server.metrics.value("refusals_total", "rate_limited") == 1
    assert ALICE.device.key_pair.public_key in server._limits  # in debt: remembered
    server.sweep_limits(now=anyio.current_time() + 1e9)  # long after: every bucket is full
    assert not server._limits


async def test_streams_and_sessions_per_device_are_bounded() -> None:
    async with running(config(max_streams_per_session=1, max_sessions_per_device=2)) as server:
        with anyio.fail_after(10):
            target = await registered(server, BOB, listen=True)
            link = await registered(server, ALICE)
            async with target, link:
                await link.send_frame(
                    encode_relay_frame(RelayConnect(stream_id=1, target_user_id=BOB.user_id))
                )
                incoming = await receive(target)
                assert isinstance(incoming, RelayIncoming)
                assert incoming.source_user_id == ALICE.user_id
                await link.send_frame(
                    encode_relay_frame(RelayConnect(stream_id=3, target_user_id=BOB.user_id))
                )
                refusal = await receive(link)
                assert isinstance(refusal, RelayRefuse)
                assert refusal.reason == RelayReason.LIMIT_REACHED
                second = await registered(server, ALICE)
                async with second:
                    await second.send_frame(
                        encode_relay_frame(RelayConnect(stream_id=1, target_user_id=BOB.user_id))
                    )
                    busy = await receive(second)
                    assert isinstance(busy, RelayRefuse)
                    assert busy.reason == RelayReason.LIMIT_REACHED  # bob's session is full
                    third = await raw_link(server)
                    async with third:
                        await send_registration(server, third, ALICE)
                        assert "sessions" in await expect_error(third, RelayReason.LIMIT_REACHED)


async def test_a_stream_between_raw_clients_forwards_and_closes() -> None:
    async with running(config()) as server:
        with anyio.fail_after(10):
            target = await registered(server, BOB, listen=True)
            source = await registered(server, ALICE)
            async with target, source:
                await source.send_frame(
                    encode_relay_frame(
                        RelayConnect(stream_id=7, target_device_id=BOB.device.device_id)
                    )
                )
                incoming = await receive(target)
                assert isinstance(incoming, RelayIncoming)
                theirs = incoming.stream_id
                assert theirs % 2 == 0
                await target.send_frame(encode_relay_frame(RelayAccept(stream_id=theirs)))
                assert await receive(source) == RelayAccept(stream_id=7)
                await source.send_frame(encode_relay_frame(RelayData(stream_id=7, data=b"x")))
                assert await receive(target) == RelayData(stream_id=theirs, data=b"x")
                await target.send_frame(encode_relay_frame(RelayWindow(stream_id=theirs, frames=3)))
                assert await receive(source) == RelayWindow(stream_id=7, frames=3)
                await target.send_frame(encode_relay_frame(RelayAccept(stream_id=theirs)))
                await expect_error(target, RelayReason.MALFORMED)  # answered twice
                reset = await receive(source)
                assert isinstance(reset, RelayClose)
                assert (reset.abort, reset.reason) == (True, RelayReason.PEER_GONE)


async def test_a_refused_stream_reaches_the_source_with_its_reason() -> None:
    async with running(config()) as server:
        with anyio.fail_after(10):
            target = await registered(server, BOB, listen=True)
            source = await registered(server, ALICE)
            async with target, source:
                await source.send_frame(
                    encode_relay_frame(RelayConnect(stream_id=1, target_user_id=BOB.user_id))
                )
                incoming = await receive(target)
                assert isinstance(incoming, RelayIncoming)
                refusal = RelayRefuse(
                    stream_id=incoming.stream_id, reason=RelayReason.REFUSED, message="busy"
                )
                await target.send_frame(encode_relay_frame(refusal))
                assert await receive(source) == RelayRefuse(
                    stream_id=1, reason=RelayReason.REFUSED, message="busy"
                )
                await source.send_frame(encode_relay_frame(RelayData(stream_id=1, data=b"late")))
                await source.send_frame(
                    encode_relay_frame(RelayConnect(stream_id=2, target_user_id=BOB.user_id))
                )
                assert "even" in await expect_error(source, RelayReason.MALFORMED)


async def test_an_oversized_frame_is_refused_with_too_large() -> None:
    async with running(config(max_frame_size=2048)) as server:
        with anyio.fail_after(10):
            link = await registered(server, ALICE)
            async with link:
                await link.send_frame(bytes(4096))
                assert "exceeds" in await expect_error(link, RelayReason.TOO_LARGE)
    assert server.metrics.value("sessions_dropped_total", "too_large") == 1


async def test_a_flood_is_throttled_not_dropped() -> None:
    limits = config(bytes_per_second=400_000, burst_bytes=20_000)
    async with running(limits) as server:
        with anyio.fail_after(20):
            async with listening(transport("bob"), relay_address(server), echo) as listener:
                connection = await transport("alice").dial(listener.addresses[0])
                frames = [bytes([index]) * 10_000 for index in range(20)]

                async def reader() -> None:
                    for frame in frames:
                        assert await connection.receive_frame() == frame

                async with connection, anyio.create_task_group() as task_group:
                    task_group.start_soon(reader)
                    for frame in frames:
                        await connection.send_frame(frame)
    assert server.metrics.value("throttle_seconds_total") > 0.1


async def test_a_session_that_stops_reading_is_dropped_after_the_stall_timeout() -> None:
    async with running(config(max_buffered_bytes=1024, stall_timeout=0.3)) as server:
        with anyio.fail_after(20):
            target = await registered(server, BOB, listen=True)  # and never reads again
            source = await registered(server, ALICE)
            async with target, source:
                await source.send_frame(
                    encode_relay_frame(RelayConnect(stream_id=1, target_user_id=BOB.user_id))
                )
                with pytest.raises(TransportError):
                    await _flood_until_reset(source)
    assert server.metrics.value("sessions_dropped_total", "stalled") == 1


async def _flood_until_reset(source: FrameConnection) -> None:
    """Send without regard for the window, as a hostile client would, until reset."""
    while True:
        await source.send_frame(encode_relay_frame(RelayData(stream_id=1, data=bytes(1 << 20))))
        if isinstance(await _poll(source), RelayClose):
            raise TransportError("reset")


async def _read_until_closed(link: FrameConnection) -> None:
    while True:
        await receive(link)


async def _poll(link: FrameConnection) -> object:
    with anyio.move_on_after(0.01):
        return await receive(link)
    return None


async def test_a_newer_listening_session_replaces_the_older() -> None:
    async with running(config()) as server:
        with anyio.fail_after(10):
            older = await registered(server, BOB, listen=True)
            async with older:
                newer = await registered(server, BOB, listen=True)
                async with newer:
                    with pytest.raises(TransportError):
                        await _read_until_closed(older)
                    assert server.find_listener(BOB.user_id, "") is not None


async def test_metrics_and_health_over_http() -> None:
    async with running(config()) as server:
        with anyio.fail_after(10):
            async with listening(transport("bob"), relay_address(server), echo) as listener:
                connection = await transport("alice").dial(listener.addresses[0])
                async with connection:
                    await connection.send_frame(b"counted, never logged")
                    await connection.receive_frame()
            base = f"http://127.0.0.1:{server.addresses[0].port}"
            metrics = await anyio.to_thread.run_sync(_get, base + "/metrics")
            health = await anyio.to_thread.run_sync(_get, base + "/health")
            missing = await anyio.to_thread.run_sync(_get, base + "/nothing")
    assert metrics[0] == 200
    assert metrics[1].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(metrics[2])}
    assert families["omega_relay_registrations"].samples[0].value == 2
    assert families["omega_relay_bytes_forwarded"].samples[0].value > 0
    assert health[0] == 200
    assert json.loads(health[2])["status"] == "ok"
    assert missing[0] == 404


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def test_shutdown_refuses_new_sessions_and_reports_stopping() -> None:
    async with running(config(shutdown_grace=0.2)) as server:
        with anyio.fail_after(10):
            link = await registered(server, BOB)
            async with link, anyio.create_task_group() as task_group:
                task_group.start_soon(server.shutdown)
                await anyio.sleep(0)
                assert server.health()[1] == 503
                late = await raw_link(server)
                async with late:
                    await expect_error(late, RelayReason.SHUTTING_DOWN)


def test_metrics_render_every_family() -> None:
    metrics = RelayMetrics()
    metrics.inc("refusals_total", label="rate_limited")
    metrics.set("sessions_active", 2.5)
    text = metrics.render()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"omega_relay_refusals", "omega_relay_sessions_active", "omega_relay_bus_up"} <= names
    assert 'omega_relay_refusals_total{reason="rate_limited"} 1' in text
    assert "omega_relay_sessions_active 2.5" in text


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0)
    assert bucket.try_take(5, now=0)
    assert not bucket.try_take(1, now=0)
    assert bucket.try_take(1, now=0.1)
    assert bucket.take(10, now=0.1) == pytest.approx(1.0)
    assert not bucket.is_full(now=1.0)
    assert bucket.is_full(now=2.0)


async def test_outbox_bounds_and_closes() -> None:
    outbox = Outbox(limit=10)
    assert outbox.put_nowait(bytes(10))
    assert not outbox.put_nowait(b"x")
    assert outbox.put_nowait(b"x", force=True)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(outbox.put, b"waits")
        assert await outbox.get() == bytes(10)
        assert await outbox.get() == b"x"
        assert await outbox.get() == b"waits"
    outbox.close()
    assert outbox.put_nowait(b"dropped")
    assert await outbox.get() is None


@pytest.mark.parametrize(
    "settings",
    [
        {"relay_id": ""},
        {"relay_id": "x" * 256},
        {"host": ""},
        {"port": 70000},
        {"tcp_port": -1},
        {"max_frame_size": 10},
        {"stall_timeout": 0},
        {"bytes_per_second": float("inf")},
        {"burst_connects": True},
        {"redis_url": "http://x"},
        {"redis_prefix": ""},
    ],
)
def test_invalid_configuration_is_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RelayServerConfig(**settings)  # type: ignore[arg-type]
