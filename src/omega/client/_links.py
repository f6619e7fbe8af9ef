"""Connections to peer devices: dialing through the resolver, serving each connection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from omega.client._core import Core
from omega.errors import ConnectionClosedError, OmegaError
from omega.protocol import Frame
from omega.transport.address import Address
from omega.transport.manager import PeerConnection

__all__ = ["FrameHandler", "Links"]

logger = logging.getLogger("omega.client")

FrameHandler = Callable[[PeerConnection, Frame], Awaitable[None]]
ConnectedHandler = Callable[[PeerConnection], Awaitable[None]]


class _TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class Links:
    """Serves every connection the manager holds and dials peers on demand."""

    def __init__(
        self, core: Core, *, on_frame: FrameHandler, on_connected: ConnectedHandler
    ) -> None:
        self._core = core
        self._on_frame = on_frame
        self._on_connected = on_connected
        self._served: set[int] = set()
        self._task_group: TaskGroup | None = None

    def start(self, task_group: TaskGroup) -> None:
        """Begin accepting inbound connections in ``task_group``."""
        self._task_group = task_group
        task_group.start_soon(self._accept_loop)

    async def _accept_loop(self) -> None:
        while True:
            try:
                connection = await self._core.manager.accept()
            except ConnectionClosedError:
                return
            self.serve(connection)

    def serve(self, connection: PeerConnection) -> None:
        """Read ``connection``'s frames (once, however often it is called)."""
        if id(connection) in self._served or self._task_group is None:
            return
        self._served.add(id(connection))
        self._task_group.start_soon(self._read, connection)

    async def _read(self, connection: PeerConnection) -> None:
        peer = connection.peer
        clock = self._core.manager.clock
        config = self._core.config
        bucket = _TokenBucket(config.inbound_rate, config.inbound_burst, clock.now())
        logger.info("event=connected peer=%s device=%s", peer.user_id, peer.device_id)
        try:
            await self._on_connected(connection)
            async for frame in connection:
                if not bucket.take(clock.now()):
                    logger.warning("event=rate_limited peer=%s", peer.device_id)
                    continue
                try:
                    await self._on_frame(connection, frame)
                except OmegaError as exc:
                    logger.warning(
                        "event=frame_refused peer=%s error=%s reason=%s",
                        peer.device_id,
                        exc.code,
                        exc.message,
                    )
        except OmegaError as exc:
            logger.info("event=connection_ended peer=%s error=%s", peer.device_id, exc.code)
        finally:
            self._served.discard(id(connection))
            logger.info("event=disconnected peer=%s device=%s", peer.user_id, peer.device_id)

    def connected(self, user_id: str, device_key: bytes) -> PeerConnection | None:
        """The live connection to that device, if any."""
        connection = self._core.manager.get(user_id, device_key)
        if connection is not None and not connection.closed.is_set():
            return connection
        return None

    async def addresses(self, user_id: str, device_key: bytes | None) -> tuple[Address, ...]:
        """Every address we know for the device: its peer record, then hints."""
        found: list[Address] = []
        if self._core.resolver is not None and device_key is not None:
            try:
                record = await self._core.resolver.resolve_peer(device_key, user_id=user_id)
            except OmegaError as exc:
                logger.info("event=resolve_failed user=%s error=%s", user_id, exc.code)
                record = None
            if record is not None:
                found.extend(record.addresses)
                found.extend(record.relays)
        found.extend(self._core.addresses_hint(user_id))
        return tuple(dict.fromkeys(found))

    async def connect(self, user_id: str, device_key: bytes | None) -> PeerConnection | None:
        """A connection to the device (or any device of the user), dialing if needed.

        Returns None when no address is known or none answered as that peer.
        """
        if device_key is not None and (existing := self.connected(user_id, device_key)):
            return existing
        if device_key is None:
            any_device = self._core.manager.get(user_id)
            if any_device is not None and not any_device.closed.is_set():
                self.serve(any_device)
                return any_device
        addresses = await self.addresses(user_id, device_key)
        if not addresses:
            return None
        try:
            connection = await self._core.manager.connect(user_id, addresses, device_key=device_key)
        except OmegaError as exc:
            logger.info("event=dial_failed user=%s error=%s", user_id, exc.code)
            return None
        self.serve(connection)
        return connection

    async def send(self, connection: PeerConnection, frame: Frame) -> bool:
        """Send ``frame``; False (logged) when the connection broke."""
        try:
            await connection.send(frame)
        except OmegaError as exc:
            logger.info("event=send_failed peer=%s error=%s", connection.peer.device_id, exc.code)
            return False
        except anyio.BrokenResourceError:  # pragma: no cover - the channel maps these
            return False
        return True
