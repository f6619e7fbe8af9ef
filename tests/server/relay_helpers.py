"""Helpers shared by the relay server tests (imported by name: conftest modules clash)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from omega.crypto import Identity
from omega.protocol import RelayChallenge, RelayError, RelayReason, RelayRegistered
from omega.server.relay import RelayServer, RelayServerConfig
from omega.testing.random import SeededRandom
from omega.transport._relay_protocol import (
    RelayBody,
    decode_relay_frame,
    encode_relay_frame,
    sign_registration,
)
from omega.transport.address import Address
from omega.transport.base import FrameConnection
from omega.transport.tcp import TcpConfig, TcpTransport


def make_identity(name: str) -> Identity:
    """A deterministic identity with one device called ``name``."""
    return Identity.create(
        device_name=name, created_at=1_700_000_000_000, rng=SeededRandom(name.encode())
    )


@asynccontextmanager
async def running(config: RelayServerConfig) -> AsyncIterator[RelayServer]:
    """A relay serving on loopback (WebSocket, and TCP when ``tcp_port`` is set)."""
    server = RelayServer(config)
    async with anyio.create_task_group() as task_group:
        await task_group.start(server.serve)
        yield server
        task_group.cancel_scope.cancel()


def ws_relay(server: RelayServer) -> Address:
    """The relay address of ``server``'s WebSocket listener."""
    return Address.parse(f"/ip4/127.0.0.1/tcp/{server.addresses[0].port}/ws/relay")


async def receive(link: FrameConnection) -> RelayBody:
    """The next relay frame on a raw link."""
    _, body = decode_relay_frame(await link.receive_frame(), max_size=1 << 21)
    return body


async def raw_link(server: RelayServer, *, max_frame_size: int = 1 << 21) -> FrameConnection:
    """A raw TCP link to the relay's TCP listener (the relay's challenge is still unread)."""
    tcp = TcpTransport(TcpConfig(max_frame_size=max_frame_size))
    return await tcp.dial(server.addresses[1])


async def registered(
    server: RelayServer, identity: Identity, *, listen: bool = False
) -> FrameConnection:
    """A raw TCP link registered as ``identity``'s device."""
    link = await raw_link(server)
    await send_registration(server, link, identity, listen=listen)
    answer = await receive(link)
    assert isinstance(answer, RelayRegistered), answer
    return link


async def send_registration(
    server: RelayServer, link: FrameConnection, identity: Identity, *, listen: bool = False
) -> None:
    """Answer the relay's challenge on ``link`` as ``identity``'s device."""
    challenge = await receive(link)
    assert isinstance(challenge, RelayChallenge)
    register = sign_registration(
        challenge,
        device_key_pair=identity.device.key_pair,
        device_certificate=identity.device.certificate.to_signed(),
        timestamp=server._wall_clock_ms(),
        listen=listen,
    )
    await link.send_frame(encode_relay_frame(register))


async def expect_error(link: FrameConnection, reason: RelayReason) -> str:
    """Read frames until the relay's RelayError; check its reason; return its message."""
    while True:
        body = await receive(link)
        if isinstance(body, RelayError):
            assert body.reason == reason, body
            return body.message
