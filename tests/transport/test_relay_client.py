"""The relay client against scripted relays: odd, slow and hostile ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from transport_helpers import make_identity

from omega.errors import (
    ConfigurationError,
    ConnectionLostError,
    DialError,
    FrameTooLargeError,
    RemoteProtocolError,
    TransportError,
    TransportTimeoutError,
)
from omega.protocol import (
    RelayAccept,
    RelayChallenge,
    RelayClose,
    RelayConnect,
    RelayData,
    RelayError,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayRegister,
    RelayRegistered,
    RelayWindow,
)
from omega.transport._relay_protocol import RelayBody, decode_relay_frame, encode_relay_frame
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener
from omega.transport.relay import RelayConfig, RelayCredentials, RelayTransport
from omega.transport.websocket import WebSocketTransport

pytestmark = pytest.mark.anyio

BOB = make_identity("bob")
CHALLENGE = RelayChallenge(version=1, relay_id="scripted", nonce=bytes(32), max_frame_size=4096)
Script = Callable[[FrameConnection], Awaitable[None]]


async def send(link: FrameConnection, body: RelayBody) -> None:
    await link.send_frame(encode_relay_frame(body))


async def receive(link: FrameConnection) -> RelayBody:
    return decode_relay_frame(await link.receive_frame(), max_size=1 << 16)[1]


async def register(link: FrameConnection) -> RelayRegister:
    await send(link, CHALLENGE)
    body = await receive(link)
    assert isinstance(body, RelayRegister)
    await send(link, RelayRegistered(user_id=BOB.user_id, device_id=BOB.device.device_id))
    return body


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[Address]:
    """A WebSocket 'relay' running ``script`` for each session; yields its relay address."""
    async with anyio.create_task_group() as task_group:
        where = Address.parse("/ip4/127.0.0.1/tcp/0/ws")
        listener: Listener = await task_group.start(WebSocketTransport().listen, where, script)
        port = listener.addresses[0].port
        yield Address.parse(f"/ip4/127.0.0.1/tcp/{port}/ws/relay/{BOB.user_id}")
        await listener.aclose()


def client(**settings: object) -> RelayTransport:
    settings.setdefault("open_timeout", 2)
    config = RelayConfig(**settings)  # type: ignore[arg-type]
    return RelayTransport(RelayCredentials.from_identity(BOB), config)


@pytest.mark.parametrize(
    ("first", "match"),
    [
        (b"\xff not a relay", "did not answer as a relay"),
        (encode_relay_frame(RelayChallenge(version=2, nonce=bytes(32))), "unsupported relay"),
        (encode_relay_frame(RelayAccept(stream_id=1)), "instead of RelayChallenge"),
    ],
)
async def test_something_that_is_not_a_relay_is_a_dial_error(first: bytes, match: str) -> None:
    async def script(link: FrameConnection) -> None:
        await link.send_frame(first)
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with scripted(script) as address:
            with pytest.raises(DialError, match=match):
                await client().dial(address)


async def test_a_relay_that_never_answers_the_connect_times_out() -> None:
    async def script(link: FrameConnection) -> None:
        await register(link)
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with scripted(script) as address:
            with pytest.raises(TransportTimeoutError, match="did not answer"):
                await client(open_timeout=0.3).dial(address)


async def test_a_relay_that_never_challenges_times_out() -> None:
    async def script(link: FrameConnection) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with scripted(script) as address:
            with pytest.raises(TransportTimeoutError, match="reaching the relay"):
                await client(open_timeout=0.3).dial(address)
            with pytest.raises(TransportTimeoutError, match="reaching the relay"):
                await client(open_timeout=0.3).listen(address.with_relay_target(None), _never)


async def _never(connection: FrameConnection) -> None:
    raise AssertionError("never called")


async def test_a_relay_ending_the_session_during_a_dial() -> None:
    async def script(link: FrameConnection) -> None:
        await register(link)
        await receive(link)
        await send(link, RelayError(reason=RelayReason.SHUTTING_DOWN, message="bye"))

    with anyio.fail_after(5):
        async with scripted(script) as address:
            with pytest.raises(DialError, match="shutting_down"):
                await client().dial(address)


async def test_a_peer_sending_beyond_its_window_is_reset() -> None:
    seen: list[RelayBody] = []

    async def script(link: FrameConnection) -> None:
        await register(link)
        connect = await receive(link)
        assert isinstance(connect, RelayConnect)
        stream = connect.stream_id
        await send(link, RelayAccept(stream_id=stream))
        for _ in range(17):
            await send(link, RelayData(stream_id=stream, data=b"x"))
        while not isinstance(body := await receive(link), RelayClose):
            assert isinstance(body, RelayData)
        seen.append(body)

    with anyio.fail_after(5):
        async with scripted(script) as address:
            connection = await client().dial(address)
            async with connection:
                for _ in range(16):  # the relay grants nothing: the 17th send reads the link
                    await connection.send_frame(b"y")
                with pytest.raises(RemoteProtocolError, match="window"):
                    await connection.send_frame(b"y")
    assert len(seen) == 1
    assert isinstance(seen[0], RelayClose)
    assert seen[0].abort


async def test_oversized_data_and_unexpected_frames_fail_the_stream() -> None:
    sessions = 0

    async def script(link: FrameConnection) -> None:
        nonlocal sessions
        sessions += 1
        await register(link)
        connect = await receive(link)
        assert isinstance(connect, RelayConnect)
        await send(link, RelayAccept(stream_id=connect.stream_id))
        if sessions == 1:
            await send(link, RelayData(stream_id=connect.stream_id, data=bytes(1030)))
        else:
            await send(link, CHALLENGE)  # a relay may not send this now
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with scripted(script) as address:
            connection = await client(max_frame_size=1024).dial(address)
            async with connection:
                assert connection.max_frame_size == 1024
                with pytest.raises(FrameTooLargeError):
                    await connection.receive_frame()
                with pytest.raises(FrameTooLargeError):
                    await connection.send_frame(bytes(1025))
            connection = await client(max_frame_size=1024).dial(address)
            async with connection:
                with pytest.raises(ConnectionLostError, match="unexpected challenge"):
                    await connection.receive_frame()
                with pytest.raises(ConnectionLostError):
                    await connection.send_frame(b"too late")


async def test_a_listener_refuses_duplicates_and_streams_over_its_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[RelayBody] = []
    done = anyio.Event()

    async def script(link: FrameConnection) -> None:
        await register(link)
        for stream_id in (2, 2, 4):
            await send(link, RelayIncoming(stream_id=stream_id, source_user_id=BOB.user_id))
            answers.append(await receive(link))
        await send(link, RelayError(reason=RelayReason.SHUTTING_DOWN))
        done.set()

    async def hold(connection: FrameConnection) -> None:
        await done.wait()

    caplog.set_level(logging.WARNING, "omega.transport")
    with anyio.fail_after(5):
        async with scripted(script) as address:
            await client(max_connections=1).listen(address.with_relay_target(None), hold)
    assert answers == [
        RelayAccept(stream_id=2),
        RelayRefuse(stream_id=2, reason=RelayReason.MALFORMED),
        RelayRefuse(stream_id=4, reason=RelayReason.REFUSED, message="too many connections"),
    ]
    assert "stopped" in caplog.text


async def test_a_session_whose_relay_vanishes_fails_its_streams() -> None:
    async def script(link: FrameConnection) -> None:
        await register(link)
        connect = await receive(link)
        assert isinstance(connect, RelayConnect)
        await send(link, RelayAccept(stream_id=connect.stream_id))
        await send(link, RelayWindow(stream_id=connect.stream_id, frames=4))

    with anyio.fail_after(5):
        async with scripted(script) as address:
            connection = await client().dial(address)
            async with connection:
                with pytest.raises(TransportError):
                    await connection.receive_frame()


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="client_ssl"):
        RelayConfig(client_ssl="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="RelayCredentials"):
        RelayTransport("bob")  # type: ignore[arg-type]
    assert client().config.open_timeout == 2
