"""The secure channel over real transports: identities, men in the middle, hostile peers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
import pytest

from omega.crypto import Identity
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    FrameTooLargeError,
    OmegaError,
    PeerIdentityMismatchError,
    SecureChannelError,
    TransportTimeoutError,
)
from omega.testing.transport import check_transport
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.memory import MemoryConfig, MemoryNetwork, MemoryTransport
from omega.transport.noise import NoiseCredentials, Role
from omega.transport.secure_channel import (
    SecureChannelConfig,
    SecureConnection,
    SecureTransport,
    secure_handshake,
)
from omega.transport.tcp import TcpConfig, TcpTransport

pytestmark = pytest.mark.anyio

BOB = Address.parse("/memory/bob")
RELAY = Address.parse("/memory/relay")
TCP = Address.parse("/ip4/127.0.0.1/tcp/0")


async def test_secure_memory_passes_the_conformance_suite(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    await check_transport(
        SecureTransport(MemoryTransport(network), bob_credentials),
        BOB,
        dialer=SecureTransport(MemoryTransport(network), alice_credentials),
    )


async def test_secure_tcp_passes_the_conformance_suite(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    await check_transport(
        SecureTransport(TcpTransport(), bob_credentials),
        TCP,
        dialer=SecureTransport(TcpTransport(), alice_credentials),
    )


async def test_a_tiny_rekey_interval_passes_the_conformance_suite(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    config = SecureChannelConfig(rekey_interval=2)
    await check_transport(
        SecureTransport(MemoryTransport(network), bob_credentials, config),
        BOB,
        dialer=SecureTransport(MemoryTransport(network), alice_credentials, config),
    )


async def echo(connection: FrameConnection) -> None:
    async for frame in connection:
        await connection.send_frame(frame)


async def test_the_dialer_learns_and_checks_who_answered(
    network: MemoryNetwork,
    alice: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
) -> None:
    seen: list[str] = []

    async def handler(connection: FrameConnection) -> None:
        assert isinstance(connection, SecureConnection)
        seen.append(connection.peer.user_id)
        await echo(connection)

    alice_side = SecureTransport(MemoryTransport(network), alice_credentials)
    with anyio.fail_after(5):
        async with listening(
            SecureTransport(MemoryTransport(network), bob_credentials), BOB, handler
        ):
            connection = await alice_side.dial(BOB.with_peer(bob.user_id))
            async with connection:
                assert connection.peer.user_id == bob.user_id
                assert connection.peer.device_key == bob.device.device_key
                assert connection.remote_address == BOB.with_peer(bob.user_id)
                assert connection.local_address is not None
                await connection.send_frame(b"hello")
                assert await connection.receive_frame() == b"hello"
            by_device = await alice_side.dial_peer(
                BOB, user_id=bob.user_id, device_key=bob.device.device_key
            )
            await by_device.aclose()
    assert seen == [alice.user_id, alice.user_id]


async def test_the_wrong_identity_is_refused_and_the_listener_goes_on(
    network: MemoryNetwork,
    mallory: Identity,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice_side = SecureTransport(MemoryTransport(network), alice_credentials)
    with anyio.fail_after(5):
        async with listening(SecureTransport(MemoryTransport(network), bob_credentials), BOB, echo):
            with pytest.raises(PeerIdentityMismatchError, match=mallory.user_id):
                await alice_side.dial(BOB.with_peer(mallory.user_id))
            with pytest.raises(PeerIdentityMismatchError, match="device"):
                await alice_side.dial_peer(BOB, user_id=bob.user_id, device_key=bytes(32))
            async with await alice_side.dial(BOB.with_peer(bob.user_id)) as connection:
                await connection.send_frame(b"still serving")
                assert await connection.receive_frame() == b"still serving"
    assert any("handshake" in record.message for record in caplog.records)


def relay_through(
    network: MemoryNetwork, target: Address, rewrite: Callable[[int, bytes], bytes | None]
) -> Callable[[FrameConnection], Awaitable[None]]:
    """A man in the middle: forwards frames to ``target``, rewriting the dialer's (None: cut)."""

    async def forward(source: FrameConnection, sink: FrameConnection, change: bool) -> None:
        index = 0
        try:
            async for frame in source:
                changed = rewrite(index, frame) if change else frame
                index += 1
                if changed is None:
                    await sink.aclose()
                    return
                await sink.send_frame(changed)
            await sink.send_eof()
        except OmegaError:
            await sink.aclose()

    async def handler(dialer_side: FrameConnection) -> None:
        async with (
            await MemoryTransport(network).dial(target) as target_side,
            anyio.create_task_group() as task_group,
        ):
            task_group.start_soon(forward, dialer_side, target_side, True)
            task_group.start_soon(forward, target_side, dialer_side, False)

    return handler


async def run_through_relay(
    network: MemoryNetwork,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    rewrite: Callable[[int, bytes], bytes | None],
) -> list[BaseException]:
    """Alice sends two frames to Bob through the relay; return what Bob's handler raised.

    Alice's frames are, in order: handshake messages 1 and 3, the records of
    "first" and "second", and her end of stream.
    """
    errors: list[BaseException] = []
    done = anyio.Event()

    async def bob_handler(connection: FrameConnection) -> None:
        try:
            async for _ in connection:
                pass
        except Exception as exc:
            errors.append(exc)
            raise
        finally:
            done.set()

    bob_side = SecureTransport(MemoryTransport(network), bob_credentials)
    with anyio.fail_after(5):
        async with (
            listening(bob_side, BOB, bob_handler),
            listening(MemoryTransport(network), RELAY, relay_through(network, BOB, rewrite)),
        ):
            alice_side = SecureTransport(MemoryTransport(network), alice_credentials)
            async with await alice_side.dial(RELAY.with_peer(bob_credentials.user_id)) as alice:
                await alice.send_frame(b"first")
                await alice.send_frame(b"second")
                await alice.send_eof()
                await done.wait()
    return errors


def flip(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 1])


async def test_a_relay_that_only_forwards_is_harmless(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    errors = await run_through_relay(
        network, alice_credentials, bob_credentials, lambda _, frame: frame
    )
    assert errors == []


@pytest.mark.parametrize(
    ("rewrite", "error", "reason"),
    [
        (lambda index, frame: flip(frame) if index == 3 else frame, SecureChannelError, "tampered"),
        (lambda index, frame: b"" if index == 3 else frame, SecureChannelError, "authentication"),
        (lambda index, frame: frame if index != 2 else None, ConnectionLostError, "truncated"),
        (lambda index, frame: None if index == 4 else frame, ConnectionLostError, "truncated"),
    ],
    ids=["record-flipped", "record-replaced", "cut-mid-stream", "end-of-stream-dropped"],
)
async def test_a_man_in_the_middle_is_detected(
    network: MemoryNetwork,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    rewrite: Callable[[int, bytes], bytes | None],
    error: type[Exception],
    reason: str,
) -> None:
    errors = await run_through_relay(network, alice_credentials, bob_credentials, rewrite)
    assert len(errors) == 1
    assert isinstance(errors[0], error)
    assert reason in str(errors[0])


async def test_a_flipped_final_handshake_message_kills_the_channel(
    network: MemoryNetwork,
    alice_credentials: NoiseCredentials,
    bob_credentials: NoiseCredentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def never(connection: FrameConnection) -> None:
        raise AssertionError("Bob must never accept this channel")

    relay = relay_through(network, BOB, lambda index, frame: flip(frame) if index == 1 else frame)
    bob_side = SecureTransport(MemoryTransport(network), bob_credentials)
    alice_side = SecureTransport(MemoryTransport(network), alice_credentials)
    with anyio.fail_after(5):
        # The initiator is done once it sent message 3; Bob refuses it, so the
        # channel ends before any record, unauthenticated.
        async with (
            listening(bob_side, BOB, never),
            listening(MemoryTransport(network), RELAY, relay),
            await alice_side.dial(RELAY) as alice,
        ):
            with pytest.raises(ConnectionLostError, match="authenticated end"):
                await alice.receive_frame()
    assert any("handshake" in record.message for record in caplog.records)


async def test_a_relay_terminating_the_handshake_is_someone_else(
    network: MemoryNetwork,
    bob: Identity,
    alice_credentials: NoiseCredentials,
    mallory_credentials: NoiseCredentials,
) -> None:
    mallory_side = SecureTransport(MemoryTransport(network), mallory_credentials)
    alice_side = SecureTransport(MemoryTransport(network), alice_credentials)
    with anyio.fail_after(5):
        async with listening(mallory_side, RELAY, echo):
            with pytest.raises(PeerIdentityMismatchError):
                await alice_side.dial(RELAY.with_peer(bob.user_id))


async def test_a_silent_peer_times_the_handshake_out(
    network: MemoryNetwork, alice_credentials: NoiseCredentials
) -> None:
    async def silent(connection: FrameConnection) -> None:
        await connection.receive_frame()
        await anyio.sleep_forever()

    config = SecureChannelConfig(handshake_timeout=0.2)
    alice_side = SecureTransport(MemoryTransport(network), alice_credentials, config)
    with anyio.fail_after(5):
        async with listening(MemoryTransport(network), BOB, silent):
            with pytest.raises(TransportTimeoutError, match="timed out"):
                await alice_side.dial(BOB)


class CountingHandler(logging.Handler):
    """Counts log records matching any of ``needles``; sets ``reached`` at ``threshold``."""

    def __init__(self, needles: tuple[str, ...], threshold: int) -> None:
        super().__init__(logging.DEBUG)
        self.needles = needles
        self.threshold = threshold
        self.messages: list[str] = []
        self.reached = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(needle in message for needle in self.needles):
            self.messages.append(message)
            if len(self.messages) >= self.threshold:
                self.reached.set()


async def test_garbage_and_idle_handshakes_cost_a_log_line_each(
    alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    attackers = 40
    config = SecureChannelConfig(handshake_timeout=0.3, max_concurrent_handshakes=8)
    bob_side = SecureTransport(TcpTransport(TcpConfig(max_connections=16)), bob_credentials, config)
    alice_side = SecureTransport(TcpTransport(), alice_credentials, config)
    counter = CountingHandler(("dropped", "refused"), attackers)
    logger = logging.getLogger("omega.transport")
    logger.addHandler(counter)
    try:
        with anyio.fail_after(10):
            async with listening(bob_side, TCP, echo) as listener:
                address = listener.addresses[0]
                streams = []
                for index in range(attackers):
                    stream = await anyio.connect_tcp(address.host, address.port or 0)
                    if index % 2:
                        await stream.send(b"\x05garbage" * 3)
                    streams.append(stream)
                # Every attacker ends (garbage, a limit, or the timeout) with one log line.
                await counter.reached.wait()
                for stream in streams:
                    await stream.aclose()
                async with await alice_side.dial(address) as connection:
                    await connection.send_frame(b"served")
                    assert await connection.receive_frame() == b"served"
    finally:
        logger.removeHandler(counter)
    assert any("handshakes already running" in message for message in counter.messages)
    assert any("timed out" in message for message in counter.messages)
    assert any("handshake failed" in message for message in counter.messages)


async def test_a_larger_frame_than_the_peer_accepts_is_refused_there(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    errors: list[Exception] = []

    async def strict(connection: FrameConnection) -> None:
        try:
            await connection.receive_frame()
        except FrameTooLargeError as exc:
            errors.append(exc)

    bob_side = SecureTransport(
        MemoryTransport(network), bob_credentials, SecureChannelConfig(max_frame_size=100_000)
    )
    alice_side = SecureTransport(
        MemoryTransport(network), alice_credentials, SecureChannelConfig(max_frame_size=300_000)
    )
    with anyio.fail_after(5):
        async with listening(bob_side, BOB, strict), await alice_side.dial(BOB) as connection:
            await connection.send_frame(bytes(200_000))
            with pytest.raises(ConnectionClosedError):
                await connection.receive_frame()
    assert len(errors) == 1


async def test_a_send_cut_short_retires_the_sending_direction(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    release = anyio.Event()

    async def slow(connection: FrameConnection) -> None:
        await release.wait()

    rendezvous = MemoryConfig(max_buffered_frames=0)
    bob_side = SecureTransport(MemoryTransport(network, rendezvous), bob_credentials)
    alice_side = SecureTransport(MemoryTransport(network, rendezvous), alice_credentials)
    with anyio.fail_after(5):
        async with listening(bob_side, BOB, slow), await alice_side.dial(BOB) as connection:
            with anyio.move_on_after(0.05):  # cancel a send the peer never takes
                await connection.send_frame(bytes(200_000))
            with pytest.raises(ConnectionLostError, match="earlier send"):
                await connection.send_frame(b"more")
            release.set()


async def test_the_inner_connection_must_carry_noise_messages(
    network: MemoryNetwork, alice_credentials: NoiseCredentials
) -> None:
    small = MemoryTransport(network, MemoryConfig(max_frame_size=1000))
    with anyio.fail_after(5):
        async with listening(small, BOB, echo):
            connection = await small.dial(BOB)
            with pytest.raises(ConfigurationError, match="65535"):
                await secure_handshake(connection, Role.INITIATOR, alice_credentials)
            await connection.aclose()


@pytest.mark.parametrize(
    "settings",
    [
        {"rekey_interval": 1},
        {"rekey_interval": 2**33},
        {"handshake_timeout": 0},
        {"close_timeout": float("inf")},
        {"max_frame_size": 0},
        {"max_concurrent_handshakes": 0},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SecureChannelConfig(**settings)  # type: ignore[arg-type]


async def test_rekeys_happen_on_schedule_in_both_directions(
    network: MemoryNetwork, alice_credentials: NoiseCredentials, bob_credentials: NoiseCredentials
) -> None:
    counts: list[tuple[int, int]] = []

    async def counting_echo(connection: FrameConnection) -> None:
        assert isinstance(connection, SecureConnection)
        await echo(connection)
        counts.append(connection.rekeys)

    config = SecureChannelConfig(rekey_interval=4)
    bob_side = SecureTransport(MemoryTransport(network), bob_credentials, config)
    alice_side = SecureTransport(MemoryTransport(network), alice_credentials, config)
    with anyio.fail_after(5):
        async with (
            listening(bob_side, BOB, counting_echo),
            await alice_side.dial(BOB) as connection,
        ):
            for index in range(20):
                await connection.send_frame(bytes([index]))
                assert await connection.receive_frame() == bytes([index])
            assert connection.messages_sent == 20 + connection.rekeys[0]
            assert connection.rekeys == (6, 6)
            await connection.send_eof()
            with pytest.raises(ConnectionClosedError):
                await connection.receive_frame()
    assert counts == [(6, 6)]
    assert logging.getLogger("omega.transport").name == "omega.transport"
