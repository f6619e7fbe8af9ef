"""The transport conformance suite: a transport proves itself by passing :func:`check_transport`.

Every transport's tests run it (in-memory, TCP, WebSocket, QUIC, and the
secure channel over each), so they all promise the same things: frames
arrive whole and in order in both directions, empty frames and frames of
exactly ``max_frame_size`` bytes travel, a larger frame is refused with
:class:`~omega.errors.FrameTooLargeError` before anything is sent, half-close
lets the other direction go on, an abrupt close surfaces as a typed error on
the other side, many peers are served at once, a sender waits while its peer
is not reading instead of buffering without bound, a handler that fails with
a typed error costs only its own connection (with a log line) while the
listener serves everyone else, and closing the listener ends its connections.

Each check runs under ``anyio.fail_after``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from omega.errors import (
    ConnectionClosedError,
    FrameTooLargeError,
    RemoteProtocolError,
    TransportError,
)
from omega.transport.address import Address
from omega.transport.base import FrameConnection, Listener, Transport, listening

__all__ = ["check_transport"]

_SCRIPT_ECHO = b"echo"
_SCRIPT_HOLD = b"hold"
_SCRIPT_FAIL = b"fail"
_SCRIPT_HALF = b"half"
_SCRIPT_WAIT = b"wait"


class _ConformanceError(AssertionError):
    """A transport broke one of the suite's promises."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _ConformanceError(message)


@dataclass
class _Server:
    """The listening side's handler: the first frame picks a script."""

    received_in_hold: int = 0
    hold_release: anyio.Event = field(default_factory=anyio.Event)
    hold_done: anyio.Event = field(default_factory=anyio.Event)
    half_closed_frames: list[bytes] = field(default_factory=list)
    waiting: int = 0
    wait_errors: list[BaseException] = field(default_factory=list)
    wait_started: anyio.Event = field(default_factory=anyio.Event)
    wait_done: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, connection: FrameConnection) -> None:
        script = await connection.receive_frame()
        if script == _SCRIPT_ECHO:
            async for frame in connection:
                await connection.send_frame(frame)
        elif script == _SCRIPT_HOLD:
            await self.hold_release.wait()
            try:
                async for _ in connection:
                    self.received_in_hold += 1
            finally:
                self.hold_done.set()
        elif script == _SCRIPT_FAIL:
            raise RemoteProtocolError("conformance: a handler refusing its peer")
        elif script == _SCRIPT_HALF:
            async for frame in connection:
                self.half_closed_frames.append(frame)
            for frame in self.half_closed_frames:
                await connection.send_frame(frame[::-1])
            await connection.send_eof()
            await _expect_end(connection)
        elif script == _SCRIPT_WAIT:
            await self._wait_for_abrupt_close(connection)

    async def _wait_for_abrupt_close(self, connection: FrameConnection) -> None:
        self.waiting += 1
        self.wait_started.set()
        try:
            await connection.receive_frame()
        except TransportError as exc:
            self.wait_errors.append(exc)
        finally:
            self.wait_done.set()


async def _expect_end(connection: FrameConnection) -> None:
    try:
        frame = await connection.receive_frame()
    except ConnectionClosedError:
        return
    raise _ConformanceError(f"expected the end of stream, got a frame of {len(frame)} bytes")


@asynccontextmanager
async def _connected(
    dialer: Transport, address: Address, script: bytes
) -> AsyncIterator[FrameConnection]:
    connection = await dialer.dial(address)
    async with connection:
        await connection.send_frame(script)
        yield connection


async def _check_round_trips(
    dialer: Transport, address: Address, max_frame_size: int, many: int
) -> None:
    sizes = [0, 1, 2, 127, 128, 1000, 65535, 65536, 70000, max_frame_size]
    frames = [bytes([index % 251]) * min(size, max_frame_size) for index, size in enumerate(sizes)]
    frames += [index.to_bytes(4, "big") * 8 for index in range(many)]
    async with _connected(dialer, address, _SCRIPT_ECHO) as connection:
        received: list[bytes] = []

        async def reader() -> None:
            for _ in frames:
                received.append(await connection.receive_frame())

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader)
            for frame in frames:
                await connection.send_frame(frame)
        _require(received == frames, "echoed frames differ from those sent (content or order)")
        try:
            await connection.send_frame(bytes(max_frame_size + 1))
        except FrameTooLargeError:
            pass
        else:
            raise _ConformanceError("a frame over max_frame_size was sent instead of refused")
        await connection.send_frame(b"still usable")
        _require(await connection.receive_frame() == b"still usable", "refusal broke the stream")
        await connection.send_eof()
        await _expect_end(connection)


async def _check_half_close(dialer: Transport, address: Address, server: _Server) -> None:
    frames = [b"first", b"", b"third" * 100]
    async with _connected(dialer, address, _SCRIPT_HALF) as connection:
        for frame in frames:
            await connection.send_frame(frame)
        await connection.send_eof()
        try:
            await connection.send_frame(b"after eof")
        except ConnectionClosedError:
            pass
        else:
            raise _ConformanceError("send_frame after send_eof did not raise ConnectionClosedError")
        replies = [await connection.receive_frame() for _ in frames]
        _require(replies == [frame[::-1] for frame in frames], "half-closed peer's replies lost")
        await _expect_end(connection)
        await _expect_end(connection)  # the end of stream is sticky
    _require(server.half_closed_frames == frames, "frames before the half-close were lost")


async def _check_abrupt_close(dialer: Transport, address: Address, server: _Server) -> None:
    connection = await dialer.dial(address)
    await connection.send_frame(_SCRIPT_WAIT)
    await server.wait_started.wait()
    await connection.aclose()
    await server.wait_done.wait()
    _require(
        len(server.wait_errors) == 1, "the peer's abrupt close did not reach a blocked receiver"
    )
    try:
        await connection.receive_frame()
    except ConnectionClosedError:
        pass
    else:
        raise _ConformanceError("a closed connection still received frames")
    try:
        await connection.send_frame(b"x")
    except ConnectionClosedError:
        pass
    else:
        raise _ConformanceError("a closed connection still sent frames")


async def _check_concurrent_peers(dialer: Transport, address: Address, peers: int) -> None:
    async def one_peer(number: int) -> None:
        async with _connected(dialer, address, _SCRIPT_ECHO) as connection:
            for index in range(20):
                frame = f"{number}:{index}".encode()
                await connection.send_frame(frame)
                _require(await connection.receive_frame() == frame, "peers' frames got mixed up")

    async with anyio.create_task_group() as task_group:
        for number in range(peers):
            task_group.start_soon(one_peer, number)


async def _check_backpressure(
    dialer: Transport, address: Address, server: _Server, unread_limit: int
) -> None:
    frame = bytes(16 * 1024)
    sent = 0
    stop = False
    finished = anyio.Event()
    async with _connected(dialer, address, _SCRIPT_HOLD) as connection:

        async def sender() -> None:
            nonlocal sent
            while not stop and sent * len(frame) < unread_limit:
                await connection.send_frame(frame)
                sent += 1
            finished.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(sender)
            # A sender whose peer reads nothing must end up waiting: if it gets rid of
            # every frame up to the limit, something buffers them without bound.
            with anyio.move_on_after(0.5):
                await finished.wait()
            _require(
                not finished.is_set(),
                f"{sent * len(frame)} bytes were accepted for a peer that reads nothing",
            )
            stop = True
            server.hold_release.set()
        await connection.send_eof()
        await server.hold_done.wait()
    _require(server.received_in_hold == sent, "frames sent under backpressure were lost")


async def _check_failing_handler_is_isolated(dialer: Transport, address: Address) -> None:
    records: list[logging.LogRecord] = []
    handler = _ListHandler(records)
    logger = logging.getLogger("omega.transport")
    logger.addHandler(handler)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        async with _connected(dialer, address, _SCRIPT_FAIL) as connection:
            try:
                await connection.receive_frame()
            except TransportError:
                pass
            else:
                raise _ConformanceError("a frame arrived from a handler that failed")
        await _check_concurrent_peers(dialer, address, 1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    _require(
        any(
            "conformance: a handler refusing its peer" in record.getMessage() for record in records
        ),
        "a handler's typed failure was not logged on 'omega.transport'",
    )


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


async def _check_listener_close(dialer: Transport, listener: Listener, server: _Server) -> None:
    connection = await dialer.dial(listener.addresses[0])
    async with connection:
        await connection.send_frame(_SCRIPT_ECHO)
        await connection.send_frame(b"ping")
        _require(await connection.receive_frame() == b"ping", "echo failed before close")
        await listener.aclose()
        try:
            await connection.receive_frame()
        except TransportError:
            pass
        else:
            raise _ConformanceError("a connection outlived its closed listener")


async def check_transport(
    transport: Transport,
    address: Address,
    *,
    dialer: Transport | None = None,
    concurrent_peers: int = 10,
    many_frames: int = 300,
    unread_limit: int = 64 * 1024 * 1024,
    timeout: float = 10.0,
    extra_checks: Callable[[Transport, Address], Awaitable[None]] | None = None,
) -> None:
    """Run the conformance suite: ``transport`` listens on ``address``, ``dialer`` dials it.

    ``dialer`` defaults to ``transport`` (pass another when each side needs
    its own credentials, as with the secure channel). ``concurrent_peers``
    peers exchange frames at once and ``many_frames`` small frames stream
    both ways on one connection (slow transports may ask for fewer). ``unread_limit`` is
    how many bytes a sender may get rid of while its peer reads nothing
    before the suite calls the buffering unbounded. ``extra_checks`` runs
    last against the listening address, for a transport's own promises.
    Raises ``AssertionError`` naming the first promise broken; any
    unexpected :class:`~omega.errors.OmegaError` propagates as is.
    """
    dialer = dialer if dialer is not None else transport
    server = _Server()
    with anyio.fail_after(timeout):
        async with listening(transport, address, server.handle) as listener:
            _require(bool(listener.addresses), "the listener reports no address")
            target = listener.addresses[0]
            probe = await dialer.dial(target)
            max_frame_size = probe.max_frame_size
            await probe.aclose()
            await _check_round_trips(dialer, target, max_frame_size, many_frames)
            await _check_half_close(dialer, target, server)
            await _check_abrupt_close(dialer, target, server)
            await _check_concurrent_peers(dialer, target, concurrent_peers)
            await _check_backpressure(dialer, target, server, unread_limit)
            await _check_failing_handler_is_isolated(dialer, target)
            if extra_checks is not None:
                await extra_checks(dialer, target)
            await _check_listener_close(dialer, listener, server)
