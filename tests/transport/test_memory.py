"""The in-memory transport: conformance, names, limits, and what a listener does with extras."""

from __future__ import annotations

import logging

import anyio
import pytest

from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionLostError,
    DialError,
    FrameTooLargeError,
)
from omega.testing.transport import check_transport
from omega.transport.address import Address
from omega.transport.base import FrameConnection, listening
from omega.transport.memory import MemoryConfig, MemoryNetwork, MemoryTransport

pytestmark = pytest.mark.anyio

ADDRESS = Address.parse("/memory/server")


async def test_memory_passes_the_conformance_suite(network: MemoryNetwork) -> None:
    await check_transport(MemoryTransport(network), ADDRESS)


async def test_a_rendezvous_memory_transport_passes_too(network: MemoryNetwork) -> None:
    await check_transport(MemoryTransport(network, MemoryConfig(max_buffered_frames=0)), ADDRESS)


async def hold(connection: FrameConnection) -> None:
    async for _ in connection:
        pass


async def test_names_are_unique_per_network_and_freed_on_close(network: MemoryNetwork) -> None:
    transport = MemoryTransport(network)
    with pytest.raises(DialError, match="nothing listens"):
        await transport.dial(ADDRESS)
    async with listening(transport, ADDRESS, hold) as listener:
        assert listener.addresses == (ADDRESS,)
        with pytest.raises(DialError, match="already in use"):
            await transport.listen(ADDRESS, hold)
        # Another network is another namespace.
        async with listening(MemoryTransport(MemoryNetwork()), ADDRESS, hold):
            pass
        connection = await transport.dial(ADDRESS.with_peer(None))
        assert connection.remote_address == ADDRESS
        assert connection.local_address is not None
        assert connection.local_address.host.startswith("anonymous-")
        await connection.aclose()
    with pytest.raises(DialError):
        await transport.dial(ADDRESS)


async def test_other_addresses_are_configuration_errors(network: MemoryNetwork) -> None:
    with pytest.raises(ConfigurationError, match="memory transport cannot use"):
        await MemoryTransport(network).dial(Address.parse("/ip4/127.0.0.1/tcp/1"))


@pytest.mark.parametrize(
    "settings",
    [
        {"max_frame_size": 0},
        {"max_frame_size": True},
        {"max_connections": 0},
        {"max_buffered_frames": -1},
        {"max_pending_dials": 0},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        MemoryConfig(**settings)  # type: ignore[arg-type]


async def test_a_frame_over_the_receivers_limit_is_refused_and_sticky(
    network: MemoryNetwork,
) -> None:
    errors: list[Exception] = []
    done = anyio.Event()

    async def strict(connection: FrameConnection) -> None:
        try:
            for _ in range(2):
                try:
                    await connection.receive_frame()
                except FrameTooLargeError as exc:
                    errors.append(exc)
        finally:
            done.set()

    small = MemoryTransport(network, MemoryConfig(max_frame_size=10))
    large = MemoryTransport(network, MemoryConfig(max_frame_size=100))
    with anyio.fail_after(5):
        async with listening(small, ADDRESS, strict), await large.dial(ADDRESS) as connection:
            await connection.send_frame(bytes(11))
            await done.wait()
    assert [type(error) for error in errors] == [FrameTooLargeError, FrameTooLargeError]


async def test_connections_beyond_the_limit_are_closed_with_a_log_line(
    network: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    transport = MemoryTransport(network, MemoryConfig(max_connections=2))
    with anyio.fail_after(5):
        async with listening(transport, ADDRESS, hold):
            kept = [await transport.dial(ADDRESS) for _ in range(2)]
            for connection in kept:
                await connection.send_frame(b"hello")  # both handlers are running
            extra = await transport.dial(ADDRESS)
            with pytest.raises((ConnectionClosedError, ConnectionLostError)):
                await extra.receive_frame()
            with pytest.raises(ConnectionLostError):
                await extra.send_frame(b"x")
            for connection in [*kept, extra]:
                await connection.aclose()
    assert any("2 connections open, the limit" in record.message for record in caplog.records)


async def test_dials_not_yet_accepted_end_when_the_listener_closes(
    network: MemoryNetwork,
) -> None:
    transport = MemoryTransport(network)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as task_group:
            listener = await task_group.start(transport.listen, ADDRESS, hold)
            # Dialed but not accepted yet: the listener task has not run since.
            pending = await transport.dial(ADDRESS)
            await listener.aclose()
            with pytest.raises(ConnectionClosedError):
                await pending.receive_frame()
            await pending.aclose()


async def test_a_listener_logs_at_info_when_a_peer_just_goes_away(
    network: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    finished = anyio.Event()

    async def read_one(connection: FrameConnection) -> None:
        try:
            await connection.receive_frame()
        finally:
            finished.set()

    transport = MemoryTransport(network)
    with caplog.at_level(logging.INFO, logger="omega.transport"), anyio.fail_after(5):
        async with listening(transport, ADDRESS, read_one):
            connection = await transport.dial(ADDRESS)
            await connection.send_eof()
            await finished.wait()
            await connection.aclose()
    assert any("closed" in record.message for record in caplog.records)


async def test_a_handler_whose_own_tasks_fail_with_typed_errors_only_loses_its_connection(
    network: MemoryNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    served = anyio.Event()

    async def grouped(connection: FrameConnection) -> None:
        first = await connection.receive_frame()
        if first == b"ok":
            served.set()
            return
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(connection.receive_frame)
            raise ConnectionLostError("a typed failure inside the handler's task group")

    transport = MemoryTransport(network)
    with anyio.fail_after(5):
        async with listening(transport, ADDRESS, grouped):
            async with await transport.dial(ADDRESS) as failing:
                await failing.send_frame(b"fail")
                with pytest.raises((ConnectionClosedError, ConnectionLostError)):
                    await failing.receive_frame()
            async with await transport.dial(ADDRESS) as fine:
                await fine.send_frame(b"ok")
                await served.wait()
    assert any("inside the handler's task group" in record.message for record in caplog.records)


async def test_a_handler_bug_inside_a_task_group_is_not_swallowed(network: MemoryNetwork) -> None:
    async def buggy(connection: FrameConnection) -> None:
        await connection.receive_frame()
        async with anyio.create_task_group():
            raise KeyError("a bug")

    transport = MemoryTransport(network)

    async def scenario() -> None:
        async with listening(transport, ADDRESS, buggy), await transport.dial(ADDRESS) as peer:
            await peer.send_frame(b"x")
            await anyio.sleep_forever()

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as info:
        await scenario()
    assert info.group_contains(KeyError, depth=None)
