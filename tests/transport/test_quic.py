"""The QUIC transport on loopback: conformance, TLS, stream multiplexing, flow control."""

from __future__ import annotations

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from transport_helpers import Tls

from omega.errors import ConfigurationError, ConnectionClosedError, ConnectionLostError, DialError
from omega.testing.transport import check_transport
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.noise import NoiseCredentials
from omega.transport.quic import QuicConfig, QuicStreamConnection, QuicTransport
from omega.transport.secure_channel import SecureChannelConfig, SecureTransport

pytestmark = pytest.mark.anyio

QUIC = Address.parse("/ip4/127.0.0.1/udp/0/quic-v1")


def quic_config(tls: Tls, **settings: object) -> QuicConfig:
    key_pem = tls.key_pem
    return QuicConfig(
        certificate=x509.load_pem_x509_certificate(tls.certificate_pem),
        private_key=serialization.load_pem_private_key(key_pem, password=None),
        trusted_certificates=tls.certificate_pem,
        **settings,  # type: ignore[arg-type]
    )


# aioquic moves about 2 MB/s of stream data through Python on one core, so the suites
# run with 256 KiB frames (bench/transports.py measures the real thing).
SMALLER_FRAMES = 256 * 1024


async def test_quic_passes_the_conformance_suite(tls: Tls) -> None:
    config = quic_config(tls, max_frame_size=SMALLER_FRAMES)
    async with QuicTransport(config) as server, QuicTransport(config) as client:
        await check_transport(server, QUIC, dialer=client, concurrent_peers=4, many_frames=100)


async def test_secure_channel_over_quic_passes_the_conformance_suite(
    tls: Tls, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    config = quic_config(tls, max_frame_size=SMALLER_FRAMES)
    channel = SecureChannelConfig(max_frame_size=SMALLER_FRAMES - 1024)
    async with QuicTransport(config) as server, QuicTransport(config) as client:
        await check_transport(
            SecureTransport(server, bob_credentials, channel),
            QUIC,
            dialer=SecureTransport(client, alice_credentials, channel),
            concurrent_peers=4,
            many_frames=100,
        )


async def echo(connection: FrameConnection) -> None:
    async for frame in connection:
        await connection.send_frame(frame)


async def test_dials_to_one_address_share_one_quic_connection(tls: Tls) -> None:
    async with QuicTransport(quic_config(tls)) as server, QuicTransport(quic_config(tls)) as client:
        with anyio.fail_after(5):
            async with listening(server, QUIC, echo) as listener:
                first = await client.dial(listener.addresses[0])
                second = await client.dial(listener.addresses[0])
                assert isinstance(first, QuicStreamConnection)
                assert isinstance(second, QuicStreamConnection)
                assert first.stream_id != second.stream_id
                assert first.remote_address == second.remote_address
                assert first.local_address == second.local_address
                for connection in (second, first):
                    await connection.send_frame(b"on my own stream")
                    assert await connection.receive_frame() == b"on my own stream"
                    await connection.aclose()


async def test_a_reader_that_stops_holds_back_its_peer(tls: Tls) -> None:
    window = 128 * 1024
    config = quic_config(tls, receive_window=window, write_limit=16 * 1024)
    release = anyio.Event()
    inside: list[QuicStreamConnection] = []

    async def stalled(connection: FrameConnection) -> None:
        assert isinstance(connection, QuicStreamConnection)
        inside.append(connection)
        await connection.receive_frame()
        await release.wait()
        async for _ in connection:
            pass

    async with QuicTransport(config) as server, QuicTransport(config) as client:
        with anyio.fail_after(5):
            async with listening(server, QUIC, stalled) as listener:
                connection = await client.dial(listener.addresses[0])
                sent = 0
                with anyio.move_on_after(0.5):
                    while True:
                        await connection.send_frame(bytes(8 * 1024))
                        sent += 8 * 1024
                # The sender was held at about the window plus its own write limit.
                assert sent < window + 16 * 1024 + 64 * 1024
                # aioquic's own rule would have doubled the window several times by now.
                stream = inside[0]
                credit = stream._quic._omega_credit[stream.stream_id]
                assert credit <= stream._received + window
                release.set()
                await connection.aclose()


async def test_an_untrusted_certificate_is_a_dial_error(tls: Tls) -> None:
    untrusting = QuicConfig(open_timeout=2.0)
    async with QuicTransport(quic_config(tls)) as server, QuicTransport(untrusting) as client:
        with anyio.fail_after(5):
            async with listening(server, QUIC, echo) as listener:
                with pytest.raises(DialError):
                    await client.dial(listener.addresses[0])


async def test_nothing_listening_is_a_dial_error_after_the_open_timeout(tls: Tls) -> None:
    async with QuicTransport(quic_config(tls)) as server:
        with anyio.fail_after(5):
            async with listening(server, QUIC, echo) as listener:
                address = listener.addresses[0]
    async with QuicTransport(quic_config(tls, open_timeout=0.3)) as client:
        with anyio.fail_after(5), pytest.raises(DialError):
            await client.dial(address)


async def test_listening_needs_a_certificate_and_the_right_address() -> None:
    with pytest.raises(ConfigurationError, match="certificate"):
        await QuicTransport().listen(QUIC, echo)
    with pytest.raises(ConfigurationError, match="QUIC transport cannot use"):
        await QuicTransport().dial(Address.parse("/ip4/127.0.0.1/tcp/1"))


def test_invalid_settings_are_refused(tls: Tls) -> None:
    with pytest.raises(ConfigurationError, match="go together"):
        QuicConfig(certificate=object())
    for settings in ({"receive_window": 10}, {"write_limit": 0}, {"open_timeout": -1}):
        with pytest.raises(ConfigurationError):
            QuicConfig(**settings)  # type: ignore[arg-type]


async def test_garbage_on_a_stream_is_a_typed_error_and_the_listener_goes_on(
    tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    async with QuicTransport(quic_config(tls)) as server, QuicTransport(quic_config(tls)) as client:
        with anyio.fail_after(5):
            async with listening(server, QUIC, echo) as listener:
                bad = await client.dial(listener.addresses[0])
                assert isinstance(bad, QuicStreamConnection)
                bad._quic.send_stream_data(bad.stream_id, b"\x80\x00garbage")
                bad._protocol.transmit()
                with pytest.raises((ConnectionLostError, ConnectionClosedError)):
                    await bad.receive_frame()
                await bad.aclose()
                good = await client.dial(listener.addresses[0])
                await good.send_frame(b"fine")
                assert await good.receive_frame() == b"fine"
                await good.aclose()
    assert any("not a minimal varint" in record.message for record in caplog.records)
