"""The WebSocket transport, ws:// and wss://, on loopback: conformance and its own rules."""

from __future__ import annotations

import ssl

import anyio
import pytest
from transport_helpers import Tls
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    DialError,
    MalformedFrameError,
)
from omega.testing.transport import check_transport
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.noise import NoiseCredentials
from omega.transport.secure_channel import SecureTransport
from omega.transport.websocket import SUBPROTOCOL, WebSocketConfig, WebSocketTransport

pytestmark = pytest.mark.anyio

WS = Address.parse("/ip4/127.0.0.1/tcp/0/ws")
WSS = Address.parse("/ip4/127.0.0.1/tcp/0/wss")


def wss_transport(tls: Tls, **settings: object) -> WebSocketTransport:
    config = WebSocketConfig(tls=True, server_ssl=tls.server, client_ssl=tls.client, **settings)  # type: ignore[arg-type]
    return WebSocketTransport(config)


async def test_ws_passes_the_conformance_suite() -> None:
    await check_transport(WebSocketTransport(), WS)


async def test_wss_passes_the_conformance_suite(tls: Tls) -> None:
    await check_transport(wss_transport(tls), WSS)


async def test_secure_channel_over_wss_passes_the_conformance_suite(
    tls: Tls, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    await check_transport(
        SecureTransport(wss_transport(tls), bob_credentials),
        WSS,
        dialer=SecureTransport(wss_transport(tls), alice_credentials),
    )


async def test_wss_refuses_a_server_certificate_it_does_not_trust(tls: Tls) -> None:
    untrusting = WebSocketTransport(
        WebSocketConfig(tls=True, client_ssl=ssl.create_default_context())
    )

    async def handler(connection: FrameConnection) -> None:
        await connection.receive_frame()

    with anyio.fail_after(5):
        async with listening(wss_transport(tls), WSS, handler) as listener:
            with pytest.raises(DialError, match="cannot open a WebSocket"):
                await untrusting.dial(listener.addresses[0])


async def test_listening_on_wss_needs_a_certificate() -> None:
    async def handler(connection: FrameConnection) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigurationError, match="server_ssl"):
        await WebSocketTransport(tls=True).listen(WSS, handler)


async def test_a_text_message_other_than_the_end_is_malformed() -> None:
    errors: list[Exception] = []
    done = anyio.Event()

    async def handler(connection: FrameConnection) -> None:
        try:
            await connection.receive_frame()
        except MalformedFrameError as exc:
            errors.append(exc)
        finally:
            done.set()

    with anyio.fail_after(5):
        async with listening(WebSocketTransport(), WS, handler) as listener:
            port = listener.addresses[0].port
            async with connect(
                f"ws://127.0.0.1:{port}/", subprotocols=[SUBPROTOCOL], compression=None
            ) as websocket:
                await websocket.send("not a frame")
                await done.wait()
    assert len(errors) == 1


async def test_a_server_without_the_subprotocol_is_refused() -> None:
    async def plain(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    with anyio.fail_after(5):
        async with serve(plain, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(DialError):
                await WebSocketTransport().dial(WS.with_port(port))


async def test_dialing_nothing_is_a_dial_error() -> None:
    async def handler(connection: FrameConnection) -> None:
        raise AssertionError("never called")

    with anyio.fail_after(5):
        async with listening(WebSocketTransport(), WS, handler) as listener:
            address = listener.addresses[0]
        with pytest.raises(DialError):
            await WebSocketTransport().dial(address)


async def test_addresses_of_another_transport_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        await WebSocketTransport().dial(WSS)
    with pytest.raises(ConfigurationError, match="tls"):
        WebSocketTransport(WebSocketConfig(tls=False), tls=True)


async def test_end_of_stream_is_sticky_and_sending_after_close_fails() -> None:
    async def handler(connection: FrameConnection) -> None:
        await connection.send_eof()
        await connection.send_eof()  # idempotent
        async for _ in connection:
            pass

    with anyio.fail_after(5):
        async with listening(WebSocketTransport(), WS, handler) as listener:
            async with await WebSocketTransport().dial(listener.addresses[0]) as connection:
                for _ in range(2):
                    with pytest.raises(ConnectionClosedError):
                        await connection.receive_frame()
                assert connection.remote_address is not None
                assert connection.remote_address.transport == "ws"
            with pytest.raises(ConnectionClosedError):
                await connection.send_frame(b"late")
            with pytest.raises(ConnectionClosedError):
                await connection.receive_frame()
