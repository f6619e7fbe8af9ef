"""A client of a store server over gRPC (``omega serve store --grpc-port N``), with grpclib.

:class:`GrpcStoreClient` is both a :class:`~omega.mailbox.base.Mailbox` and
a :class:`~omega.mailbox.base.KeyDirectory`, like the HTTP
:class:`~omega.mailbox.http.StoreClient`, and behaves the same: failures to
reach the server raise :class:`~omega.errors.ServerUnavailableError`,
refusals :class:`~omega.errors.RequestRejectedError` or a subclass with the
server's ``reason``, and everything the server returns is decoded strictly
and verified before use.

grpclib is optional (``pip install 'omega-p2p[grpc]'``): this module imports
without it, and constructing a client without it raises
:class:`~omega.errors.ConfigurationError` naming the extra.
"""

from __future__ import annotations

import math
import ssl as _ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omega.crypto import LocalDevice, VerifiedDeviceList
from omega.crypto.x3dh import VerifiedPrekeyBundle
from omega.errors import (
    ConfigurationError,
    ConnectionClosedError,
    RemoteProtocolError,
    RequestRejectedError,
    ServerUnavailableError,
)
from omega.mailbox._auth import CHALLENGE_SIZE, auth_message, check_message_id, recipient_hash
from omega.mailbox._client_checks import (
    check_bundle,
    check_device_list,
    encode_prekeys,
    to_envelope,
)
from omega.mailbox.backend import StoredMessage
from omega.mailbox.base import KeyDirectory, Mailbox, StoredEnvelope
from omega.protocol import OneTimePrekey, SignedDeviceList, SignedPrekey, encode_message

if TYPE_CHECKING:
    from grpclib.client import Channel

    from omega.mailbox._generated import store_service as pb

__all__ = ["GRPC_EXTRA_HINT", "GrpcStoreClient", "GrpcStoreClientConfig"]

GRPC_EXTRA_HINT = "pip install 'omega-p2p[grpc]'"
"""How to install what the gRPC client needs."""

_ACK_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcStoreClientConfig:
    """How a :class:`GrpcStoreClient` talks to its server."""

    timeout_seconds: float = 10.0
    """Deadline of an ordinary call (long polls add their own wait)."""
    max_response_bytes: int = 16 * 1024 * 1024
    """Largest response message decoded (a fetch holds up to ``limit`` payloads)."""

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0 or math.isinf(self.timeout_seconds):
            raise ConfigurationError("timeout_seconds must be a positive finite number")
        if isinstance(self.max_response_bytes, bool) or self.max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be positive")


def _load() -> tuple[Any, Any]:
    """The generated module and the shared wire helpers; ConfigurationError without grpclib."""
    try:
        from omega.mailbox import _grpc_wire
        from omega.mailbox._generated import store_service
    except ImportError as exc:
        raise ConfigurationError(
            f"the gRPC store client needs grpclib: {GRPC_EXTRA_HINT} ({exc})"
        ) from exc
    return store_service, _grpc_wire


class GrpcStoreClient(Mailbox, KeyDirectory):
    """A Mailbox and KeyDirectory over the gRPC API at ``host:port``.

    ``ssl``: True (system trust store) or an :class:`ssl.SSLContext` for TLS,
    None for plaintext HTTP/2 (loopback, or behind a TLS-terminating proxy).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        config: GrpcStoreClientConfig | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
    ) -> None:
        self.config = config or GrpcStoreClientConfig()
        self._pb, self._wire = _load()
        self._address = (host, port, ssl)
        self._channel: Channel | None = None  # opened on first use, in the event loop
        self._closed = False

    @property
    def _stub(self) -> pb.StoreStub:
        if self._channel is None:
            from grpclib.client import Channel

            host, port, ssl = self._address
            self._channel = Channel(
                host,
                port,
                ssl=ssl,
                codec=self._wire.StrictCodec(max_size=self.config.max_response_bytes),
                status_details_codec=self._wire.ErrorDetailsCodec(),
            )
        stub: pb.StoreStub = self._pb.StoreStub(self._channel, timeout=self.config.timeout_seconds)
        return stub

    @asynccontextmanager
    async def _call(self, what: str) -> AsyncIterator[None]:
        """Translate grpclib's and the network's failures into typed errors, in one place."""
        if self._closed:
            raise ConnectionClosedError("the store client is closed")
        from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

        try:
            yield
        except GRPCError as exc:
            raise self._wire.error_from_grpc(exc) from exc
        except (OSError, TimeoutError, StreamTerminatedError, ProtocolError) as exc:
            raise ServerUnavailableError(
                f"store server unreachable ({what}): {exc or type(exc).__name__}"
            ) from exc

    async def _auth(self, device: LocalDevice, action: str) -> pb.Auth:
        request = self._pb.ChallengeRequest(device_key=device.device_key)
        async with self._call("Challenge"):
            answer = await self._stub.challenge(request)
        if len(answer.challenge) != CHALLENGE_SIZE:
            raise RemoteProtocolError("store server sent a malformed challenge")
        signature = device.key_pair.sign(auth_message(answer.challenge, device.device_key, action))
        auth: pb.Auth = self._pb.Auth(
            device_key=device.device_key, challenge=answer.challenge, signature=signature
        )
        return auth

    async def deposit(
        self,
        recipient_device_key: bytes,
        message_id: str,
        payload: bytes,
        *,
        ttl_seconds: int | None = None,
    ) -> bool:
        """``Deposit`` (see :meth:`Mailbox.deposit`)."""
        if ttl_seconds is not None and not -(1 << 63) <= ttl_seconds < 1 << 63:
            raise ConfigurationError("ttl_seconds must fit an int64")
        request = self._pb.DepositRequest(
            recipient=recipient_hash(recipient_device_key),
            message_id=message_id,
            payload=payload,
            ttl_seconds=ttl_seconds,
        )
        async with self._call("Deposit"):
            answer = await self._stub.deposit(request)
        return bool(answer.stored)

    async def fetch(self, device: LocalDevice, *, limit: int = 100) -> list[StoredEnvelope]:
        """``Fetch`` (see :meth:`Mailbox.fetch`)."""
        if not 1 <= limit < 1 << 32:
            raise ConfigurationError("limit must be a positive uint32")
        auth = await self._auth(device, "fetch")
        async with self._call("Fetch"):
            answer = await self._stub.fetch(self._pb.FetchRequest(auth=auth, limit=limit))
        recipient = recipient_hash(device.device_key)
        envelopes = []
        for item in answer.messages:
            try:
                check_message_id(item.message_id)
            except RequestRejectedError as exc:
                raise RemoteProtocolError("store server sent a bad message id") from exc
            envelopes.append(
                to_envelope(
                    StoredMessage(
                        recipient_hash=recipient,
                        message_id=item.message_id,
                        payload=item.payload,
                        deposited_at=item.deposited_at,
                        expires_at=item.expires_at,
                    )
                )
            )
        return envelopes

    async def acknowledge(self, device: LocalDevice, message_ids: Sequence[str]) -> int:
        """``Acknowledge`` in batches (see :meth:`Mailbox.acknowledge`)."""
        ids = [check_message_id(message_id) for message_id in message_ids]
        deleted = 0
        for start in range(0, len(ids), _ACK_BATCH):
            auth = await self._auth(device, "acknowledge")
            request = self._pb.AcknowledgeRequest(
                auth=auth, message_ids=ids[start : start + _ACK_BATCH]
            )
            async with self._call("Acknowledge"):
                answer = await self._stub.acknowledge(request)
            deleted += answer.deleted
        return deleted

    async def wait_for_messages(self, device: LocalDevice, *, timeout: float) -> bool:
        """``WaitForMessages`` long poll (see :meth:`Mailbox.wait_for_messages`)."""
        if not timeout >= 0 or math.isinf(timeout):
            raise ConfigurationError("timeout must be a finite non-negative number")
        auth = await self._auth(device, "wait")
        request = self._pb.WaitRequest(auth=auth, timeout_seconds=float(timeout))
        async with self._call("WaitForMessages"):
            answer = await self._stub.wait_for_messages(
                request, timeout=self.config.timeout_seconds + timeout
            )
        return bool(answer.waiting)

    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """``PublishDeviceList`` (see :meth:`KeyDirectory.publish_device_list`)."""
        request = self._pb.PublishDeviceListRequest(signed_device_list=encode_message(signed))
        async with self._call("PublishDeviceList"):
            await self._stub.publish_device_list(request)

    async def fetch_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """``FetchDeviceList``, verified here too."""
        async with self._call("FetchDeviceList"):
            answer = await self._stub.fetch_device_list(
                self._pb.FetchDeviceListRequest(user_id=user_id)
            )
        if answer.signed_device_list is None:
            return None
        return check_device_list(answer.signed_device_list, user_id)

    async def publish_prekeys(
        self,
        device: LocalDevice,
        *,
        signed_prekey: SignedPrekey,
        one_time_prekeys: Sequence[OneTimePrekey],
    ) -> int:
        """``PublishPrekeys`` (see :meth:`KeyDirectory.publish_prekeys`)."""
        user_id, certificate, signed, one_time = encode_prekeys(
            device, signed_prekey, one_time_prekeys
        )
        auth = await self._auth(device, "publish-prekeys")
        request = self._pb.PublishPrekeysRequest(
            auth=auth,
            user_id=user_id,
            certificate=certificate,
            signed_prekey=signed,
            one_time_prekeys=[
                self._pb.PrekeyEntry(prekey_id=prekey_id, public_key=key)
                for prekey_id, key in one_time
            ],
        )
        async with self._call("PublishPrekeys"):
            answer = await self._stub.publish_prekeys(request)
        return int(answer.one_time_prekeys)

    async def claim_prekey_bundle(
        self, user_id: str, device_key: bytes
    ) -> VerifiedPrekeyBundle | None:
        """``ClaimPrekeyBundle``, verified here."""
        request = self._pb.ClaimPrekeyBundleRequest(user_id=user_id, device_key=device_key)
        async with self._call("ClaimPrekeyBundle"):
            answer = await self._stub.claim_prekey_bundle(request)
        if answer.bundle is None:
            return None
        return check_bundle(answer.bundle, user_id, device_key)

    async def one_time_prekey_count(self, device: LocalDevice) -> int:
        """``OneTimePrekeyCount`` (see :meth:`KeyDirectory.one_time_prekey_count`)."""
        auth = await self._auth(device, "count-prekeys")
        async with self._call("OneTimePrekeyCount"):
            answer = await self._stub.one_time_prekey_count(
                self._pb.OneTimePrekeyCountRequest(auth=auth)
            )
        return int(answer.one_time_prekeys)

    async def health(self) -> bool:
        """True when ``Health`` answers ``ok``."""
        async with self._call("Health"):
            answer = await self._stub.health(self._pb.HealthRequest())
        return bool(answer.status == "ok")

    async def aclose(self) -> None:
        """Close the HTTP/2 connection; idempotent."""
        if not self._closed:
            self._closed = True
            if self._channel is not None:
                self._channel.close()
