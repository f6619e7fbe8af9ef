"""The connection manager on the in-memory transport, with a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from omega.crypto import Identity
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLimitError,
    DialError,
    LocalProtocolError,
    PeerIdentityMismatchError,
    TransportTimeoutError,
)
from omega.protocol import Ack, CloseReason, Frame, decode_message, encode_message
from omega.testing.clock import ManualClock
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.manager import ConnectionManager, ManagerConfig, PeerConnection
from omega.transport.memory import MemoryNetwork, MemoryTransport
from omega.transport.noise import NoiseCredentials
from omega.transport.registry import TransportRegistry
from omega.transport.secure_channel import SecureTransport

pytestmark = pytest.mark.anyio

BOB = Address.parse("/memory/bob")
SILENT = Address.parse("/memory/silent")
NOWHERE = Address.parse("/memory/nowhere")


def ack(message_id: str) -> Frame:
    return Frame(ack=Ack(message_id=message_id))


def registry(network: MemoryNetwork) -> TransportRegistry:
    transports = TransportRegistry()
    transports.register("memory", lambda: MemoryTransport(network))
    return transports


def manager(
    network: MemoryNetwork, credentials: NoiseCredentials, clock: ManualClock, **config: object
) -> ConnectionManager:
    return ConnectionManager(
        registry(network),
        credentials,
        config=ManagerConfig(**config),  # type: ignore[arg-type]
        clock=clock,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def silent(connection: FrameConnection) -> None:
    """A listener that accepts and never answers: a handshake there never completes."""
    async for _ in connection:
        pass


async def test_one_connection_per_peer_is_reused_and_carries_frames(
    network: MemoryNetwork,
    clock: ManualClock,
    alice: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    with anyio.fail_after(5):
        async with (
            manager(network, bob_credentials, clock) as bob_side,
            manager(network, alice_credentials, clock) as alice_side,
        ):
            await bob_side.listen(BOB)
            first, second = await _connect_twice(alice_side, bob.user_id)
            assert first is second
            assert alice_side.get(bob.user_id) is first
            assert alice_side.get(bob.user_id, bob.device.device_key) is first
            assert alice_side.get(bob.user_id, bytes(32)) is None
            assert await alice_side.connect(bob.user_id, [BOB]) is first
            inbound = await bob_side.accept()
            assert inbound.peer.user_id == alice.user_id
            assert not inbound.initiator
            assert first.initiator
            assert first.address == BOB
            await first.send(ack("hello"))
            assert await inbound.receive() == ack("hello")
            await inbound.send(ack("back"))
            assert await first.receive() == ack("back")
            assert len(bob_side.connections) == 1
            await first.aclose()
            with pytest.raises(ConnectionClosedError):
                await inbound.receive()
            with pytest.raises(ConnectionClosedError):
                await first.send(ack("late"))
            assert alice_side.connections == ()


async def _connect_twice(
    alice_side: ConnectionManager, user_id: str
) -> tuple[PeerConnection, PeerConnection]:
    results: list[PeerConnection] = []

    async def one() -> None:
        results.append(await alice_side.connect(user_id, [BOB]))

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(one)
        task_group.start_soon(one)
    return results[0], results[1]


@pytest.fixture
async def bob_listening(
    network: MemoryNetwork, clock: ManualClock, bob_credentials: NoiseCredentials
) -> AsyncIterator[ConnectionManager]:
    async with manager(network, bob_credentials, clock) as bob_side:
        await bob_side.listen(BOB)
        yield bob_side


async def test_happy_eyeballs_tries_the_next_address_after_the_stagger(
    network: MemoryNetwork,
    clock: ManualClock,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_listening: ConnectionManager,
) -> None:
    result: list[PeerConnection] = []
    with anyio.fail_after(5):
        async with (
            listening(MemoryTransport(network), SILENT, silent),
            manager(network, alice_credentials, clock, dial_stagger=0.25) as alice_side,
            anyio.create_task_group() as task_group,
        ):

            async def connect() -> None:
                result.append(await alice_side.connect(bob.user_id, [SILENT, BOB]))

            task_group.start_soon(connect)
            await clock.wait_for_sleepers(2)  # the dial timeout, and the stagger
            assert not result
            clock.advance(0.25)
        assert result[0].address == BOB


async def test_a_failed_address_does_not_wait_for_the_stagger(
    network: MemoryNetwork,
    clock: ManualClock,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_listening: ConnectionManager,
) -> None:
    with anyio.fail_after(5):
        async with manager(network, alice_credentials, clock, dial_stagger=60) as alice_side:
            connection = await alice_side.connect(bob.user_id, [NOWHERE, BOB])
            assert connection.address == BOB


async def test_the_expected_user_is_enforced(
    network: MemoryNetwork,
    clock: ManualClock,
    mallory: Identity,
    alice_credentials: NoiseCredentials,
    bob_listening: ConnectionManager,
) -> None:
    with anyio.fail_after(5):
        async with manager(network, alice_credentials, clock) as alice_side:
            with pytest.raises(PeerIdentityMismatchError):
                await alice_side.connect(mallory.user_id, [NOWHERE, BOB])
            with pytest.raises(DialError, match="no address of"):
                await alice_side.connect(mallory.user_id, [NOWHERE])
            with pytest.raises(ConfigurationError, match="not a user id"):
                await alice_side.connect("omega1nobody", [BOB])
            with pytest.raises(ConfigurationError, match="at least one address"):
                await alice_side.connect(mallory.user_id, [])


async def test_a_peer_that_never_authenticates_times_out_on_the_clock(
    network: MemoryNetwork, clock: ManualClock, bob: Identity, alice_credentials: NoiseCredentials
) -> None:
    errors: list[Exception] = []
    with anyio.fail_after(5):
        async with (
            listening(MemoryTransport(network), SILENT, silent),
            manager(network, alice_credentials, clock, dial_timeout=10) as alice_side,
            anyio.create_task_group() as task_group,
        ):

            async def connect() -> None:
                try:
                    await alice_side.connect(bob.user_id, [SILENT])
                except TransportTimeoutError as exc:
                    errors.append(exc)

            task_group.start_soon(connect)
            await clock.wait_for_sleepers(1)
            clock.advance(10)
    assert len(errors) == 1


async def test_the_connection_limit_is_enforced(
    network: MemoryNetwork,
    clock: ManualClock,
    bob: Identity,
    mallory: Identity,
    alice_credentials: NoiseCredentials,
    mallory_credentials: NoiseCredentials,
    bob_listening: ConnectionManager,
) -> None:
    mallory_address = Address.parse("/memory/mallory")
    with anyio.fail_after(5):
        async with (
            manager(network, mallory_credentials, clock) as mallory_side,
            manager(network, alice_credentials, clock, max_connections=1) as alice_side,
        ):
            await mallory_side.listen(mallory_address)
            await alice_side.connect(bob.user_id, [BOB])
            with pytest.raises(ConnectionLimitError):
                await alice_side.connect(mallory.user_id, [mallory_address])


async def test_an_unanswered_keep_alive_closes_the_connection(
    network: MemoryNetwork,
    clock: ManualClock,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    pinged = anyio.Event()
    ended = anyio.Event()

    async def mute_bob(connection: FrameConnection) -> None:
        try:
            async for data in connection:
                if decode_message(Frame, data).ping is not None:
                    pinged.set()
        finally:
            ended.set()

    bob_side = SecureTransport(MemoryTransport(network), bob_credentials)
    with anyio.fail_after(5):
        async with (
            listening(bob_side, BOB, mute_bob),
            manager(network, alice_credentials, clock) as alice_side,
        ):
            connection = await alice_side.connect(bob.user_id, [BOB])
            await clock.wait_for_sleepers(1)
            clock.advance(30)
            await pinged.wait()
            await clock.wait_for_sleepers(1)
            clock.advance(10)
            await connection.closed.wait()
            await ended.wait()
            assert "keep-alive" in connection.close_reason
            assert alice_side.connections == ()


async def test_answered_keep_alives_keep_the_connection_and_idleness_ends_it(
    network: MemoryNetwork,
    clock: ManualClock,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_listening: ConnectionManager,
) -> None:
    with anyio.fail_after(5):
        async with manager(network, alice_credentials, clock) as alice_side:
            connection = await alice_side.connect(bob.user_id, [BOB])
            inbound = await bob_listening.accept()
            await clock.wait_for_sleepers(2)  # both keep-alive loops
            clock.advance(30)  # both ping; both answer
            # Both loops are back to sleeping until the next ping, past the pong deadline.
            await clock.wait_for_sleepers(2, until_after=40)
            assert not connection.closed.is_set()
            assert connection.last_received == 30
            clock.advance(300)  # nothing but pings for five minutes
            await connection.closed.wait()
            await inbound.closed.wait()
            assert connection.close_reason == "idle for 300.0 s"
            assert "GOING_AWAY" in inbound.close_reason or "idle" in inbound.close_reason
            assert CloseReason.GOING_AWAY.name == "GOING_AWAY"


async def test_a_frame_that_is_not_a_frame_ends_the_connection(
    network: MemoryNetwork,
    clock: ManualClock,
    alice: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice_address = Address.parse("/memory/alice")
    bob_side = SecureTransport(MemoryTransport(network), bob_credentials)
    with anyio.fail_after(5):
        async with manager(network, alice_credentials, clock) as alice_side:
            await alice_side.listen(alice_address)
            async with await bob_side.dial(alice_address.with_peer(alice.user_id)) as raw:
                inbound = await alice_side.accept()
                await raw.send_frame(b"\xff\xff\xff")
                await inbound.closed.wait()
    assert any("connection to" in record.message for record in caplog.records)


async def test_simultaneous_dials_leave_one_shared_connection(
    network: MemoryNetwork,
    clock: ManualClock,
    alice: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    alice_address = Address.parse("/memory/alice")
    alice_smaller = alice.device.device_key < bob.device.device_key
    with anyio.fail_after(5):
        async with (
            manager(network, alice_credentials, clock) as alice_side,
            manager(network, bob_credentials, clock) as bob_side,
        ):
            await alice_side.listen(alice_address)
            await bob_side.listen(BOB)
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(alice_side.connect, bob.user_id, [BOB])
                task_group.start_soon(bob_side.connect, alice.user_id, [alice_address])
            survivors = []
            for side, smaller in ((alice_side, alice_smaller), (bob_side, not alice_smaller)):
                for connection in side.connections:
                    if connection.initiator != smaller:
                        await connection.closed.wait()
                survivors.append(side.get(alice.user_id if side is bob_side else bob.user_id))
            first, second = survivors
            assert first is not None
            assert second is not None
            assert first._channel.handshake_hash == second._channel.handshake_hash


async def test_using_a_manager_outside_its_block_is_a_local_error(
    network: MemoryNetwork, clock: ManualClock, alice_credentials: NoiseCredentials
) -> None:
    with pytest.raises(LocalProtocolError, match="async with"):
        await manager(network, alice_credentials, clock).listen(BOB)
    async with manager(network, alice_credentials, clock) as alice_side:
        pass
    with pytest.raises(ConnectionClosedError):
        await alice_side.accept()


@pytest.mark.parametrize(
    "settings",
    [{"max_connections": 0}, {"dial_stagger": 0}, {"idle_timeout": -1}, {"receive_queue": 0}],
)
def test_invalid_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ManagerConfig(**settings)  # type: ignore[arg-type]


def test_the_real_clock_is_the_default(
    network: MemoryNetwork, alice_credentials: NoiseCredentials
) -> None:
    default = ConnectionManager(registry(network), alice_credentials)
    assert default.config == ManagerConfig()
    assert encode_message(ack("x"))
