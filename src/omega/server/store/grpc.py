"""The store's gRPC API (grpclib) over :class:`omega.mailbox.StoreService`.

:class:`StoreServicer` implements the service ``omega.store.v1.Store``
(``src/omega/mailbox/store_service.proto``, generated base class
:class:`~omega.mailbox._generated.store_service.StoreBase`) with the same
rules as the HTTP API, because it calls the same service layer: the same
challenges, quotas, rate limits (per peer address) and typed errors, mapped
to gRPC status codes by :func:`omega.mailbox._grpc_wire.grpc_status_for`
(docs/servers.md, "gRPC API").

Every request is bounded before it is read: the 5-byte gRPC message prefix
announces the size, and a request larger than its method's limit is refused
with RESOURCE_EXHAUSTED without reading its body. Requests are decoded
strictly (:class:`~omega.mailbox._grpc_wire.StrictCodec`).
"""

from __future__ import annotations

import contextvars
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib.const import Handler
from grpclib.server import Server, Stream

from omega.crypto import MAX_DEVICE_LIST_SIZE
from omega.errors import (
    AuthenticationFailedError,
    OmegaError,
    QuotaExceededError,
    RequestRejectedError,
    StorageError,
)
from omega.mailbox import StoreService
from omega.mailbox._auth import AuthProof
from omega.mailbox._generated import store_service as pb
from omega.mailbox._grpc_wire import ErrorDetailsCodec, StrictCodec, grpc_error_for

__all__ = [
    "FETCH_RESPONSE_BUDGET",
    "SERVICE_NAME",
    "StoreServicer",
    "create_grpc_server",
    "listening_socket",
]

SERVICE_NAME = "omega.store.v1.Store"
"""The fully qualified gRPC service name."""

_log = logging.getLogger("omega.server.store")
_source: contextvars.ContextVar[str] = contextvars.ContextVar("omega_grpc_source")
_PREFIX_SIZE = 5
_SMALL_REQUEST = 4096
FETCH_RESPONSE_BUDGET = 4 * 1024 * 1024
"""A ``Fetch`` answer stops adding messages once their payloads pass this many bytes
(it always holds at least one): responses stay small, whatever ``limit`` asks."""


def _proof(auth: pb.Auth | None) -> AuthProof:
    if auth is None:
        raise AuthenticationFailedError("authentication required: send auth")
    return AuthProof(device_key=auth.device_key, challenge=auth.challenge, signature=auth.signature)


class _BoundedStream:
    """A grpclib server stream whose one request is size-checked before it is read."""

    def __init__(self, stream: Stream[Any, Any], request_type: type, limit: int) -> None:
        self._stream = stream
        self._request_type = request_type
        self._limit = limit

    async def recv_message(self) -> Any:
        # grpclib reads a whole message, however large its prefix says it is; read the
        # prefix ourselves from its HTTP/2 stream, so that memory stays bounded per request.
        raw = self._stream._stream  # grpclib.protocol.Stream (grpclib pinned < 0.5)
        prefix = await raw.recv_data(_PREFIX_SIZE)
        if len(prefix) != _PREFIX_SIZE:
            raise RequestRejectedError("the call carries no request message", reason="malformed")
        if prefix[0]:
            raise RequestRejectedError("compressed messages are not supported", reason="malformed")
        size = int.from_bytes(prefix[1:], "big")
        if size > self._limit:
            raise QuotaExceededError(
                f"request of {size} bytes exceeds the limit of {self._limit} bytes",
                reason="payload_too_large",
                details={"size": size, "limit": self._limit},
            )
        data = await raw.recv_data(size)
        if len(data) != size:
            raise RequestRejectedError("the request message is truncated", reason="malformed")
        return StrictCodec(max_size=self._limit).decode(data, self._request_type)

    async def send_message(self, message: Any) -> None:
        await self._stream.send_message(message)


class StoreServicer(pb.StoreBase):
    """``omega.store.v1.Store`` over one :class:`StoreService`."""

    def __init__(self, service: StoreService) -> None:
        self.service = service
        config = service.config
        self._limits = {
            "Deposit": config.max_payload_bytes + 1024,
            "PublishDeviceList": MAX_DEVICE_LIST_SIZE + 1024,
            "PublishPrekeys": config.max_one_time_prekeys * 48 + 8192,
            "Acknowledge": config.max_acknowledge * 140 + 1024,
        }

    def __mapping__(self) -> dict[str, Handler]:
        """The generated routes, each behind size limits and the error mapping."""
        mapping: dict[str, Handler] = super().__mapping__()
        return {
            route: Handler(
                self._guarded(route, handler),
                handler.cardinality,
                handler.request_type,
                handler.reply_type,
            )
            for route, handler in mapping.items()
        }

    def _guarded(
        self, route: str, handler: Handler
    ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        method = route.rsplit("/", 1)[-1]
        limit = self._limits.get(method, _SMALL_REQUEST)
        generated: Callable[[Any], Awaitable[None]] = handler.func

        async def guarded(stream: Stream[Any, Any]) -> None:
            address = stream.peer.addr()
            token = _source.set(str(address[0]) if address else "unknown")
            try:
                await generated(_BoundedStream(stream, handler.request_type, limit))
            except OmegaError as exc:
                if isinstance(exc, StorageError):
                    _log.error("event=backend_failed method=%s error=%s", method, exc)
                elif not isinstance(exc, RequestRejectedError):
                    exc = RequestRejectedError(exc.message, reason="malformed_request")
                raise grpc_error_for(exc) from exc
            finally:
                _source.reset(token)

        return guarded

    # -- the service's methods (docs/servers.md, "gRPC API") ------------------------------

    async def challenge(self, message: pb.ChallengeRequest) -> pb.ChallengeResponse:
        """A fresh challenge for ``device_key``."""
        challenge = await self.service.issue_challenge(
            source=_source.get(), device_key=message.device_key
        )
        return pb.ChallengeResponse(challenge=challenge)

    async def deposit(self, message: pb.DepositRequest) -> pb.DepositResponse:
        """Store a payload for a mailbox."""
        stored = await self.service.deposit(
            source=_source.get(),
            recipient=message.recipient,
            message_id=message.message_id,
            payload=message.payload,
            ttl_seconds=message.ttl_seconds,
        )
        return pb.DepositResponse(stored=stored)

    async def fetch(self, message: pb.FetchRequest) -> pb.FetchResponse:
        """The authenticated device's waiting messages."""
        proof = _proof(message.auth)
        answer = pb.FetchResponse()
        size = 0
        for stored in await self.service.fetch(proof, limit=message.limit or 100):
            size += len(stored.payload)
            if answer.messages and size > FETCH_RESPONSE_BUDGET:
                break
            answer.messages.append(
                pb.StoredMessage(
                    message_id=stored.message_id,
                    payload=stored.payload,
                    deposited_at=stored.deposited_at,
                    expires_at=stored.expires_at,
                )
            )
        return answer

    async def acknowledge(self, message: pb.AcknowledgeRequest) -> pb.AcknowledgeResponse:
        """Delete delivered messages."""
        deleted = await self.service.acknowledge(_proof(message.auth), message.message_ids)
        return pb.AcknowledgeResponse(deleted=deleted)

    async def wait_for_messages(self, message: pb.WaitRequest) -> pb.WaitResponse:
        """Long poll: answers as soon as a message waits, or after the timeout."""
        timeout = message.timeout_seconds
        limit = self.service.config.max_wait_seconds
        if math.isnan(timeout) or not 0 <= timeout <= limit:
            raise RequestRejectedError(
                f"timeout_seconds must be in 0..{limit}", reason="malformed_request"
            )
        waiting = await self.service.wait_for_messages(_proof(message.auth), timeout=timeout)
        return pb.WaitResponse(waiting=waiting)

    async def publish_device_list(
        self, message: pb.PublishDeviceListRequest
    ) -> pb.PublishDeviceListResponse:
        """Verify and store a signed device list."""
        verified = await self.service.directory.publish_device_list(
            source=_source.get(), signed=message.signed_device_list
        )
        return pb.PublishDeviceListResponse(sequence=verified.sequence)

    async def fetch_device_list(
        self, message: pb.FetchDeviceListRequest
    ) -> pb.FetchDeviceListResponse:
        """A user's signed device list, if published."""
        signed = await self.service.directory.get_device_list(message.user_id)
        return pb.FetchDeviceListResponse(signed_device_list=signed)

    async def publish_prekeys(self, message: pb.PublishPrekeysRequest) -> pb.PrekeyCountResponse:
        """Verify and store an authenticated device's prekeys."""
        count = await self.service.directory.publish_prekeys(
            _proof(message.auth),
            user_id=message.user_id,
            certificate=message.certificate,
            signed_prekey=message.signed_prekey,
            one_time_prekeys=[
                (entry.prekey_id, entry.public_key) for entry in message.one_time_prekeys
            ],
        )
        return pb.PrekeyCountResponse(one_time_prekeys=count)

    async def claim_prekey_bundle(
        self, message: pb.ClaimPrekeyBundleRequest
    ) -> pb.ClaimPrekeyBundleResponse:
        """A prekey bundle of one device, its one-time prekey handed out once."""
        bundle = await self.service.directory.claim_prekey_bundle(
            source=_source.get(), user_id=message.user_id, device_key=message.device_key
        )
        return pb.ClaimPrekeyBundleResponse(bundle=bundle)

    async def one_time_prekey_count(
        self, message: pb.OneTimePrekeyCountRequest
    ) -> pb.PrekeyCountResponse:
        """Size of the authenticated device's one-time prekey pool."""
        count = await self.service.directory.count_one_time_prekeys(_proof(message.auth))
        return pb.PrekeyCountResponse(one_time_prekeys=count)

    async def health(self, message: pb.HealthRequest) -> pb.HealthResponse:
        """``ok`` when the backend answers (UNAVAILABLE otherwise)."""
        await self.service.backend.count_one_time_prekeys(bytes(32))
        return pb.HealthResponse(status="ok")


def create_grpc_server(service: StoreService) -> Server:
    """A grpclib server of ``service``; ``await server.start(...)`` to listen."""
    return Server(
        [StoreServicer(service)],
        codec=StrictCodec(max_size=service.config.max_payload_bytes + 1024),
        status_details_codec=ErrorDetailsCodec(),
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for :meth:`Server.start` (``sock=``); port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
