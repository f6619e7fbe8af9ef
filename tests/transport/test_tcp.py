"""The TCP transport on loopback: conformance, dialing, and hostile byte streams."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest

from omega.errors import (
    ConfigurationError,
    ConnectionLostError,
    DialError,
    FrameTooLargeError,
    MalformedFrameError,
    OmegaError,
)
from omega.testing.transport import check_transport
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener, listening
from omega.transport.tcp import TcpConfig, TcpTransport, socket_address

pytestmark = pytest.mark.anyio

TCP = Address.parse("/ip4/127.0.0.1/tcp/0")


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_tcp_passes_the_conformance_suite() -> None:
    await check_transport(TcpTransport(), TCP)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
async def test_tcp_over_ipv6_passes_the_conformance_suite() -> None:
    await check_transport(TcpTransport(), Address.parse("/ip6/::1/tcp/0"), concurrent_peers=3)


async def test_small_receive_chunks_pass_the_conformance_suite() -> None:
    await check_transport(TcpTransport(TcpConfig(receive_chunk_size=1024)), TCP)


class Recorder:
    """A handler remembering how each connection ended."""

    def __init__(self, expected: int) -> None:
        self.errors: list[OmegaError] = []
        self.frames: list[bytes] = []
        self._expected = expected
        self.done = anyio.Event()

    async def __call__(self, connection: FrameConnection) -> None:
        try:
            async for frame in connection:
                self.frames.append(frame)
        except OmegaError as exc:
            self.errors.append(exc)
            raise
        finally:
            if len(self.errors) + len(self.frames) >= self._expected:
                self.done.set()


async def raw_send(listener: Listener, data: bytes, *, then_close: bool = True) -> bytes:
    """Send raw bytes to the listener and return what comes back until it closes."""
    address = listener.addresses[0]
    async with await anyio.connect_tcp(address.host, address.port or 0) as stream:
        await stream.send(data)
        if then_close:
            await stream.send_eof()
        received = b""
        try:
            while True:
                received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return received


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x80\x00", MalformedFrameError),  # a non-minimal prefix
        (b"\xff\xff\xff\xff\xff\xff", MalformedFrameError),  # a prefix over 5 bytes
        (b"\x80\x80\x80\x08", FrameTooLargeError),  # 16 MiB announced, 1 MiB allowed
        (b"\x05abc", ConnectionLostError),  # the stream ends inside a frame
    ],
)
async def test_garbage_ends_that_connection_with_a_typed_error_and_a_log_line(
    data: bytes, error: type[OmegaError], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(expected=2)
    with anyio.fail_after(5):
        async with listening(TcpTransport(), TCP, recorder) as listener:
            await raw_send(listener, data)
            # The listener still serves everyone else.
            async with await TcpTransport().dial(listener.addresses[0]) as connection:
                await connection.send_frame(b"fine")
            await recorder.done.wait()
    assert [type(exc) for exc in recorder.errors] == [error]
    assert recorder.frames == [b"fine"]
    assert any(
        "dropped the connection" in record.message and record.levelno == logging.WARNING
        for record in caplog.records
    )


async def test_dialing_a_closed_port_is_a_dial_error() -> None:
    async def handler(connection: FrameConnection) -> None:
        raise AssertionError("never called")

    async with listening(TcpTransport(), TCP, handler) as listener:
        address = listener.addresses[0]
    with pytest.raises(DialError, match="cannot connect"):
        await TcpTransport().dial(address)


@pytest.mark.parametrize("kind", ["dns", "dns4"])
async def test_names_are_resolved(kind: str) -> None:
    recorder = Recorder(expected=1)
    with anyio.fail_after(5):
        async with listening(TcpTransport(), TCP, recorder) as listener:
            port = listener.addresses[0].port
            address = Address.parse(f"/{kind}/localhost/tcp/{port}")
            async with await TcpTransport().dial(address) as connection:
                await connection.send_frame(b"by name")
            await recorder.done.wait()
    assert recorder.frames == [b"by name"]


async def test_a_name_without_an_address_in_the_family_is_a_dial_error() -> None:
    with pytest.raises(DialError):
        await TcpTransport().dial(Address.parse("/dns4/no-such-host.invalid/tcp/1"))


async def test_listening_on_a_busy_port_is_a_dial_error() -> None:
    async def handler(connection: FrameConnection) -> None:
        raise AssertionError("never called")

    async with listening(TcpTransport(), TCP, handler) as listener:
        with pytest.raises(DialError, match="cannot listen"):
            await TcpTransport().listen(listener.addresses[0], handler)


async def test_other_addresses_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        await TcpTransport().dial(Address.parse("/ip4/127.0.0.1/tcp/1/ws"))


@pytest.mark.parametrize(
    "settings", [{"receive_chunk_size": 10}, {"backlog": 0}, {"max_connections": -1}]
)
def test_invalid_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TcpConfig(**settings)  # type: ignore[arg-type]


def test_socket_addresses_become_addresses() -> None:
    assert str(socket_address(("127.0.0.1", 5))) == "/ip4/127.0.0.1/tcp/5"
    assert str(socket_address(("fe80::1%eth0", 5, 0, 2))) == "/ip6/fe80::1/tcp/5"
    assert socket_address("/tmp/unix.sock") is None
