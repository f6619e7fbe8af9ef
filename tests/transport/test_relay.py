"""The relay transport through a real relay server on loopback: conformance, end-to-end secrecy,
registration checks, refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from transport_helpers import make_identity

from omega.crypto import Identity
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    RelayRefusedError,
)
from omega.protocol import (
    Ack,
    Frame,
    RelayChallenge,
    RelayData,
    RelayError,
    RelayReason,
    RelayRegistered,
    RelayWindow,
)
from omega.server.relay import RelayServer, RelayServerConfig
from omega.server.relay._session import End, ServerSession
from omega.testing.transport import check_transport
from omega.transport._relay_protocol import (
    decode_relay_frame,
    encode_relay_frame,
    sign_registration,
)
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.manager import ConnectionManager
from omega.transport.noise import NoiseCredentials
from omega.transport.registry import TransportRegistry, register_builtin_transports
from omega.transport.relay import RelayConfig, RelayCredentials, RelayTransport
from omega.transport.secure_channel import SecureTransport
from omega.transport.websocket import WebSocketTransport

pytestmark = pytest.mark.anyio


class TappedRelay(RelayServer):
    """A relay that also keeps every RelayData payload it forwards, to look for plaintext."""

    def __init__(self, config: RelayServerConfig) -> None:
        super().__init__(config)
        self.forwarded: list[bytes] = []

    async def forward_from(  # type: ignore[override]
        self, sink: object, body: object, entry: tuple[object, End] | None = None
    ) -> None:
        if isinstance(body, RelayData):
            self.forwarded.append(body.data)
        await super().forward_from(sink, body, entry)  # type: ignore[arg-type]


@pytest.fixture
async def relay() -> AsyncIterator[TappedRelay]:
    server = TappedRelay(RelayServerConfig(port=0, tcp_port=0))
    async with anyio.create_task_group() as task_group:
        await task_group.start(server.serve)
        yield server
        task_group.cancel_scope.cancel()


def ws_address(server: RelayServer) -> Address:
    return Address.parse(f"/ip4/127.0.0.1/tcp/{server.addresses[0].port}/ws/relay")


def tcp_address(server: RelayServer) -> Address:
    return Address.parse(f"/ip4/127.0.0.1/tcp/{server.addresses[1].port}/relay")


def relay_transport(identity: Identity, **settings: object) -> RelayTransport:
    return RelayTransport(
        RelayCredentials.from_identity(identity),
        RelayConfig(**settings),  # type: ignore[arg-type]
    )


async def test_relay_over_websocket_passes_the_conformance_suite(
    relay: TappedRelay, bob: Identity, alice: Identity
) -> None:
    await check_transport(
        relay_transport(bob), ws_address(relay), dialer=relay_transport(alice), timeout=30
    )
    assert relay.metrics.value("frames_forwarded_total") > 300


async def test_relay_over_tcp_passes_the_conformance_suite(
    relay: TappedRelay, bob: Identity
) -> None:
    await check_transport(relay_transport(bob), tcp_address(relay), timeout=30)


async def test_secure_channel_through_the_relay_passes_and_the_relay_sees_only_ciphertext(
    relay: TappedRelay,
    bob: Identity,
    alice: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    secret = b"the relay must never see this sentence"

    async def extra(dialer: object, address: Address) -> None:
        assert isinstance(dialer, SecureTransport)
        async with await dialer.dial(address.with_peer(bob.user_id)) as connection:
            assert connection.peer.user_id == bob.user_id
            await connection.send_frame(b"echo")
            await connection.send_frame(secret)
            assert await connection.receive_frame() == secret
            await connection.send_eof()

    await check_transport(
        SecureTransport(relay_transport(bob), bob_credentials),
        ws_address(relay),
        dialer=SecureTransport(relay_transport(alice), alice_credentials),
        concurrent_peers=4,
        many_frames=100,
        timeout=60,
        extra_checks=extra,
    )
    assert relay.forwarded, "nothing went through the relay"
    assert not any(secret in data for data in relay.forwarded)


async def test_connection_manager_runs_unchanged_over_the_relay(
    relay: TappedRelay,
    alice: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    def registry(credentials: NoiseCredentials) -> TransportRegistry:
        return register_builtin_transports(
            TransportRegistry(), relay_credentials=RelayCredentials.from_noise(credentials)
        )

    with anyio.fail_after(15):
        async with (
            ConnectionManager(registry(bob_credentials), bob_credentials) as bob_side,
            ConnectionManager(registry(alice_credentials), alice_credentials) as alice_side,
        ):
            listener = await bob_side.listen(ws_address(relay))
            by_user = listener.addresses[1]
            assert by_user.relay_target == bob.user_id
            outbound = await alice_side.connect(bob.user_id, [by_user])
            inbound = await bob_side.accept()
            assert inbound.peer.user_id == alice.user_id
            await outbound.send(Frame(ack=Ack(message_id="through the relay")))
            assert await inbound.receive() == Frame(ack=Ack(message_id="through the relay"))
            await listener.aclose()


async def test_the_registry_needs_credentials_for_the_relay() -> None:
    with pytest.raises(ConfigurationError, match="relay_credentials"):
        register_builtin_transports(TransportRegistry()).create("relay")


async def _raw_session(server: RelayServer) -> tuple[FrameConnection, RelayChallenge]:
    link = await WebSocketTransport().dial(server.addresses[0])
    _, challenge = decode_relay_frame(await link.receive_frame(), max_size=4096)
    assert isinstance(challenge, RelayChallenge)
    return link, challenge


async def _expect_error(link: FrameConnection, reason: RelayReason) -> str:
    _, body = decode_relay_frame(await link.receive_frame(), max_size=4096)
    assert isinstance(body, RelayError), body
    assert body.reason == reason
    with pytest.raises(ConnectionClosedError):
        await link.receive_frame()
    return body.message


async def test_a_forged_registration_is_refused(
    relay: TappedRelay, bob: Identity, mallory: Identity
) -> None:
    with anyio.fail_after(5):
        link, challenge = await _raw_session(relay)
        async with link:
            forged = sign_registration(
                challenge,
                device_key_pair=mallory.device.key_pair,  # not the key bob's certificate names
                device_certificate=bob.device.certificate.to_signed(),
                timestamp=relay._wall_clock_ms(),
                listen=True,
            )
            await link.send_frame(encode_relay_frame(forged))
            assert "signature" in await _expect_error(link, RelayReason.BAD_REGISTRATION)
    assert relay.find_listener(bob.user_id, "") is None
    assert relay.metrics.value("refusals_total", "bad_registration") == 1


async def test_a_replayed_registration_is_refused(relay: TappedRelay, bob: Identity) -> None:
    with anyio.fail_after(5):
        first, challenge = await _raw_session(relay)
        async with first:
            register = sign_registration(
                challenge,
                device_key_pair=bob.device.key_pair,
                device_certificate=bob.device.certificate.to_signed(),
                timestamp=relay._wall_clock_ms(),
                listen=False,
            )
            await first.send_frame(encode_relay_frame(register))
            _, body = decode_relay_frame(await first.receive_frame(), max_size=4096)
            assert isinstance(body, RelayRegistered)
            assert body.user_id == bob.user_id
        second, _ = await _raw_session(relay)
        async with second:
            await second.send_frame(encode_relay_frame(register))  # recorded, sent again
            assert "replayed" in await _expect_error(second, RelayReason.BAD_REGISTRATION)


async def test_an_expired_registration_is_refused(relay: TappedRelay, bob: Identity) -> None:
    late = RelayTransport(
        RelayCredentials.from_identity(bob), wall_clock_ms=lambda: 1_000_000_000_000
    )
    with anyio.fail_after(5), pytest.raises(RelayRefusedError, match="timestamp") as info:
        await late.dial(ws_address(relay).with_relay_target(bob.user_id))
    assert info.value.details["reason"] == "bad_registration"


async def test_a_session_that_never_registers_is_closed(bob: Identity) -> None:
    config = RelayServerConfig(port=0, registration_timeout=0.2)
    async with anyio.create_task_group() as task_group:
        server = await task_group.start(RelayServer(config).serve)
        with anyio.fail_after(5):
            link, _ = await _raw_session(server)
            async with link:
                assert "timed out" in await _expect_error(link, RelayReason.BAD_REGISTRATION)
        task_group.cancel_scope.cancel()


async def test_a_target_that_is_not_registered_is_refused_and_others_go_on(
    relay: TappedRelay, alice: Identity, bob: Identity
) -> None:
    carol = make_identity("carol")

    async def echo(connection: FrameConnection) -> None:
        async for frame in connection:
            await connection.send_frame(frame)

    with anyio.fail_after(10):
        async with listening(relay_transport(bob), ws_address(relay), echo) as listener:
            for target in (carol.user_id, "0123456789abcdef"):
                with pytest.raises(RelayRefusedError, match="not_registered") as info:
                    await relay_transport(alice).dial(ws_address(relay).with_relay_target(target))
                assert info.value.details["reason"] == "not_registered"
            async with await relay_transport(alice).dial(listener.addresses[0]) as connection:
                await connection.send_frame(b"still served")
                assert await connection.receive_frame() == b"still served"


async def test_malformed_frames_end_only_that_session(
    relay: TappedRelay, alice: Identity, bob: Identity
) -> None:
    async def echo(connection: FrameConnection) -> None:
        async for frame in connection:
            await connection.send_frame(frame)

    with anyio.fail_after(10):
        async with listening(relay_transport(bob), ws_address(relay), echo) as listener:
            link, challenge = await _raw_session(relay)
            async with link:
                register = sign_registration(
                    challenge,
                    device_key_pair=alice.device.key_pair,
                    device_certificate=alice.device.certificate.to_signed(),
                    timestamp=relay._wall_clock_ms(),
                    listen=False,
                )
                await link.send_frame(encode_relay_frame(register))
                await link.receive_frame()  # RelayRegistered
                await link.send_frame(b"\xff\xff not a relay frame")
                await _expect_error(link, RelayReason.MALFORMED)
            link, challenge = await _raw_session(relay)
            async with link:
                await link.send_frame(encode_relay_frame(RelayWindow(stream_id=1, frames=1)))
                assert "RelayRegister" in await _expect_error(link, RelayReason.BAD_REGISTRATION)
            async with await relay_transport(alice).dial(listener.addresses[0]) as connection:
                await connection.send_frame(b"still served")
                assert await connection.receive_frame() == b"still served"


async def test_relay_listener_reports_its_addresses(relay: TappedRelay, bob: Identity) -> None:
    async def handler(connection: FrameConnection) -> None:
        raise AssertionError("never called")

    with anyio.fail_after(5):
        async with listening(relay_transport(bob), ws_address(relay), handler) as listener:
            by_device, by_user = listener.addresses
            assert by_device.relay_target == bob.device.device_id
            assert by_user.relay_target == bob.user_id
            assert relay.find_listener(bob.user_id, "") is not None
            assert isinstance(relay.find_listener("", bob.device.device_id), ServerSession)


async def test_relay_transport_refuses_other_addresses(bob: Identity) -> None:
    transport = relay_transport(bob)
    with pytest.raises(ConfigurationError):
        await transport.dial(Address.parse("/ip4/127.0.0.1/tcp/1/ws"))
    with pytest.raises(ConfigurationError, match="no target"):
        await transport.dial(Address.parse("/ip4/127.0.0.1/tcp/1/ws/relay"))
