"""Scale-out: relay processes reach each other's devices through Redis (docs/servers.md, "Relay").

Each process is a *node* with a random id and a pub/sub channel
``{prefix}:node:{node id}``. It advertises every device listening on it in
two keys, refreshed every :data:`REFRESH_SECONDS` and expiring after
:data:`DIRECTORY_TTL_SECONDS` (so a crashed node's devices disappear)::

    {prefix}:device:{device id}  ->  "{node id} {user id}"
    {prefix}:user:{user id}      ->  "{node id} {device id}"   (the newest device)

A stream to a device on another node gets a random 16-byte *route key*.
The source node publishes on the target node's channel ``b"C" || key ||
JSON`` (source node, source user and device, target user and device); the
target node answers like a local target, and from then on both nodes publish
``b"F" || key || RelayFrame`` for every frame of the stream, with stream id 1
in the frame (each node rewrites it to its own session's). Pub/sub keeps the
order of one publisher's messages, and each node publishes from one task.

If Redis goes away, every cross-node stream is reset with
``RelayReason.UNAVAILABLE``, new ones to other nodes are refused the same
way, local streams go on, and the node reconnects with backoff and
re-advertises its devices.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import redis.asyncio as redis
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.exceptions import RedisError

from omega.errors import DecodeError, OmegaError
from omega.protocol import (
    RelayAccept,
    RelayClose,
    RelayData,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayWindow,
)
from omega.server.relay._session import End, Route, ServerSession
from omega.transport._relay_protocol import decode_relay_frame, encode_relay_frame

if TYPE_CHECKING:
    from omega.server.relay._server import RelayServer

__all__ = ["DIRECTORY_TTL_SECONDS", "REFRESH_SECONDS", "RedisBus"]

REFRESH_SECONDS: Final = 20.0
"""How often a node re-advertises its listening devices."""
DIRECTORY_TTL_SECONDS: Final = 60
"""How long an advertisement lives without a refresh."""
_PUBLISH_QUEUE: Final = 1024
_MAX_BATCH: Final = 256
_KEY_LENGTH: Final = 16
_REMOTE_STREAM_ID: Final = 1
_IO_ERRORS: Final = (RedisError, OSError, TimeoutError)
# Delete a directory key only while it still names this node.
_COMPARE_AND_DELETE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _is_io_failure(exc: BaseException) -> bool:
    """True for a Redis or socket failure, or a task group's bundle of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_io_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, _IO_ERRORS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(eq=False)
class _RemoteSink:
    """The end of a route that lives on another node."""

    bus: RedisBus
    node: str
    key: bytes

    @property
    def label(self) -> str:
        return f"node:{self.node}"

    async def deliver(self, frame: bytes) -> None:
        await self.bus.publish(self.node, b"F" + self.key + frame)

    def deliver_nowait(self, frame: bytes) -> None:
        self.bus.publish_nowait(self.node, b"F" + self.key + frame)

    def detach(self, stream_id: int) -> None:
        self.bus.routes.pop(self.key, None)


class RedisBus:
    """One node's link to the others (see the module docstring)."""

    def __init__(self, server: RelayServer, url: str, prefix: str) -> None:
        self._server = server
        self._url = url
        self._prefix = prefix
        self.node = secrets.token_hex(8)
        """This node's id."""
        self.up = False
        """True while Redis answers."""
        self.routes: dict[bytes, tuple[Route, End]] = {}
        """Cross-node streams by route key: the route and its remote end."""
        self._client: redis.Redis | None = None
        self._outgoing: MemoryObjectSendStream[tuple[str, bytes]] | None = None
        self._announce_now = anyio.Event()
        self._withdrawn: list[tuple[str, str]] = []

    def _channel(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the link to Redis up until cancelled (reconnecting with backoff)."""
        started = False
        backoff = 0.1
        while True:
            send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](_PUBLISH_QUEUE)
            client = redis.Redis.from_url(self._url, socket_connect_timeout=5)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel(self.node))
                self._client, self._outgoing = client, send
                self.up = True
                self._server.metrics.set("bus_up", 1)
                backoff = 0.1
                self._log(logging.INFO, "bus_up")
                if not started:
                    started = True
                    task_status.started()
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(self._publisher, client, receive)
                    task_group.start_soon(self._advertiser, client)
                    await self._subscriber(pubsub)
            except Exception as exc:
                if not _is_io_failure(exc):
                    raise
                self._log(logging.WARNING, "bus_down", error=type(exc).__name__)
            finally:
                self._went_down()
                send.close()
                receive.close()
                with (
                    anyio.CancelScope(shield=True),
                    anyio.move_on_after(2),
                    contextlib.suppress(*_IO_ERRORS),
                ):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _log(self, level: int, event: str, **fields: object) -> None:
        from omega.server.relay._server import log

        log(level, event, node=self.node, **fields)

    def _went_down(self) -> None:
        self.up = False
        self._client = self._outgoing = None
        self._server.metrics.set("bus_up", 0)
        for route, remote in list(self.routes.values()):
            self._server.reset(route, remote, RelayReason.UNAVAILABLE)
        self.routes.clear()

    # ------------------------------------------------------------------ directory

    def announce(self, user_id: str, device_id: str) -> None:
        """Advertise a device that listens here (at the next refresh, which is now)."""
        del user_id, device_id
        self._announce_now.set()

    def withdraw(self, user_id: str, device_id: str) -> None:
        """Stop advertising a device; done by the advertiser, which removes stale keys."""
        self._withdrawn.append((user_id, device_id))
        self._announce_now.set()

    async def _advertiser(self, client: redis.Redis) -> None:
        while True:
            withdrawn, self._withdrawn = self._withdrawn, []
            for user_id, device_id in withdrawn:
                await client.eval(
                    _COMPARE_AND_DELETE,
                    1,
                    f"{self._prefix}:device:{device_id}",
                    f"{self.node} {user_id}",
                )
                await client.eval(
                    _COMPARE_AND_DELETE,
                    1,
                    f"{self._prefix}:user:{user_id}",
                    f"{self.node} {device_id}",
                )
            async with client.pipeline(transaction=False) as pipe:
                for session in self._server.listeners():
                    registration = session.registration
                    pipe.set(
                        f"{self._prefix}:device:{registration.device_id}",
                        f"{self.node} {registration.user_id}",
                        ex=DIRECTORY_TTL_SECONDS,
                    )
                    pipe.set(
                        f"{self._prefix}:user:{registration.user_id}",
                        f"{self.node} {registration.device_id}",
                        ex=DIRECTORY_TTL_SECONDS,
                    )
                await pipe.execute()
            self._announce_now = anyio.Event()
            with anyio.move_on_after(REFRESH_SECONDS):
                await self._announce_now.wait()

    async def _locate(self, user_id: str, device_id: str) -> tuple[str, str, str] | None:
        """``(node, user id, device id)`` of the target, from the directory; None if absent."""
        client = self._client
        if client is None:
            return None
        if device_id:
            value = await client.get(f"{self._prefix}:device:{device_id}")
            if value is None:
                return None
            node, owner = _text(value).split(" ", 1)
            if user_id and owner != user_id:
                return None
            return node, owner, device_id
        value = await client.get(f"{self._prefix}:user:{user_id}")
        if value is None:
            return None
        node, device = _text(value).split(" ", 1)
        return node, user_id, device

    # ------------------------------------------------------------------ publishing

    async def publish(self, node: str, message: bytes) -> None:
        """Queue ``message`` for ``node``'s channel (in order), waiting while the queue is full."""
        if self._outgoing is None:
            return  # down: the routes are being reset
        try:
            await self._outgoing.send((node, message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return

    def publish_nowait(self, node: str, message: bytes) -> None:
        """Queue ``message`` unless the queue is full or the bus is down."""
        if self._outgoing is None:
            return
        try:
            self._outgoing.send_nowait((node, message))
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._server.metrics.inc("refusals_total", label="overloaded")

    async def _publisher(
        self, client: redis.Redis, receive: MemoryObjectReceiveStream[tuple[str, bytes]]
    ) -> None:
        # Everything queued goes out in one pipeline: one round trip to Redis for a
        # burst of frames instead of one per frame, in the order they were queued.
        async for node, message in receive:
            batch = [(node, message)]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            async with client.pipeline(transaction=False) as pipe:
                for target, payload in batch:
                    pipe.publish(self._channel(target), payload)
                await pipe.execute()
            self._server.metrics.inc("bus_messages_total", len(batch), label="out")

    # ------------------------------------------------------------------ streams

    async def connect(
        self, session: ServerSession, source: End, user_id: str, device_id: str
    ) -> bool:
        """Open ``source``'s stream to a device on another node; False if none has it."""
        if not self.up:
            refusal = RelayRefuse(
                stream_id=source.stream_id,
                reason=RelayReason.UNAVAILABLE,
                message="the relays' shared bus is down",
            )
            await self._server.deliver(session, encode_relay_frame(refusal))
            return True
        try:
            location = await self._locate(user_id, device_id)
        except _IO_ERRORS:
            location = None
        if location is None or location[0] == self.node:
            return False
        node, target_user, target_device = location
        key = secrets.token_bytes(_KEY_LENGTH)
        remote = End(_RemoteSink(self, node, key), _REMOTE_STREAM_ID)
        route = Route(source, remote, key=key.hex())
        self.routes[key] = (route, remote)
        self._server.attach(route)
        self._server.metrics.inc("streams_total", label="bus")
        registration = session.registration
        request = {
            "node": self.node,
            "source_user_id": registration.user_id,
            "source_device_id": registration.device_id,
            "target_user_id": target_user,
            "target_device_id": target_device,
        }
        await self.publish(node, b"C" + key + json.dumps(request).encode())
        return True

    async def _subscriber(self, pubsub: redis.client.PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            self._server.metrics.inc("bus_messages_total", label="in")
            if not isinstance(data, bytes) or len(data) < 1 + _KEY_LENGTH:
                continue
            kind, key, payload = data[:1], data[1 : 1 + _KEY_LENGTH], data[1 + _KEY_LENGTH :]
            try:
                if kind == b"C":
                    await self._incoming(key, json.loads(payload))
                elif kind == b"F":
                    await self._frame(key, payload)
            except (OmegaError, ValueError, KeyError, TypeError) as exc:
                self._log(logging.WARNING, "bus_message_dropped", error=type(exc).__name__)

    async def _incoming(self, key: bytes, request: dict[str, str]) -> None:
        node = str(request["node"])
        remote = End(_RemoteSink(self, node, key), _REMOTE_STREAM_ID)
        target = self._server.find_listener(
            str(request["target_user_id"]), str(request["target_device_id"])
        )
        if target is None or len(target.routes) >= self._server.config.max_streams_per_session:
            reason = RelayReason.NOT_REGISTERED if target is None else RelayReason.LIMIT_REACHED
            refusal = RelayRefuse(stream_id=_REMOTE_STREAM_ID, reason=reason)
            await remote.sink.deliver(encode_relay_frame(refusal))
            return
        local = End(target, target.allocate_stream_id())
        route = Route(remote, local, key=key.hex())
        self.routes[key] = (route, remote)
        self._server.attach(route)
        incoming = RelayIncoming(
            stream_id=local.stream_id,
            source_user_id=str(request["source_user_id"]),
            source_device_id=str(request["source_device_id"]),
        )
        target.deliver_nowait(encode_relay_frame(incoming))

    async def _frame(self, key: bytes, payload: bytes) -> None:
        entry = self.routes.get(key)
        if entry is None:
            return  # a late frame for a stream already reset
        route, remote = entry
        try:
            _, body = decode_relay_frame(payload, max_size=self._server.config.max_frame_size)
        except DecodeError:
            self._server.reset(route, remote, RelayReason.MALFORMED)
            return
        local = route.other(remote)
        assert isinstance(local.sink, ServerSession)
        if local.sink.outbox.size >= self._server.config.max_buffered_bytes:
            # The local client is not reading; the bus must not wait for it.
            self._server.reset(route, local, RelayReason.OVERLOADED, both=True)
            return
        if isinstance(body, RelayAccept | RelayRefuse):
            if route.source is local and not route.accepted:
                await self._server.answer((route, remote), body)
        elif isinstance(body, RelayData | RelayWindow | RelayClose):
            await self._server.forward_from(remote.sink, body, entry)
