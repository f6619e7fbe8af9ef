"""What the store's gRPC client and server share: codecs and the error <-> status mapping.

Imports grpclib: only :mod:`omega.mailbox.grpc` (lazily, on first use) and
:mod:`omega.server.store.grpc` import this module.

* :class:`StrictCodec` decodes every message with
  :func:`omega.protocol.decode_message` (strict, size-bounded), never with
  betterproto2's lenient parser.
* :class:`ErrorDetailsCodec` carries an error's ``code`` and ``reason`` in the
  ``grpc-status-details-bin`` trailer as a ``google.rpc.Status`` holding one
  ``google.rpc.ErrorInfo`` (domain ``omega.store``, metadata ``code``), the
  standard "richer error model" every gRPC stack can read.
* :func:`grpc_status_for` and :func:`error_from_grpc` map typed errors to
  gRPC status codes and back (docs/servers.md, "gRPC API").
"""

from __future__ import annotations

from typing import Any

from grpclib.const import Status
from grpclib.encoding.base import CodecBase, StatusDetailsCodecBase
from grpclib.exceptions import GRPCError

from omega.errors import (
    AuthenticationFailedError,
    MessageDecodeError,
    OmegaError,
    QuotaExceededError,
    RateLimitedError,
    RequestRejectedError,
    ServerUnavailableError,
)
from omega.mailbox._generated.store_service import AnyDetail, ErrorInfo, RpcStatus
from omega.protocol import decode_message, encode_message

__all__ = [
    "ERROR_DOMAIN",
    "ERROR_INFO_TYPE_URL",
    "ErrorDetailsCodec",
    "StrictCodec",
    "error_from_grpc",
    "grpc_error_for",
    "grpc_status_for",
]

ERROR_DOMAIN = "omega.store"
"""``ErrorInfo.domain`` of the store's errors."""

ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo"
"""``Any.type_url`` of an ``ErrorInfo`` detail."""

_MAX_DETAILS = 4096
_UNAVAILABLE = {
    Status.UNAVAILABLE,
    Status.UNKNOWN,
    Status.INTERNAL,
    Status.DEADLINE_EXCEEDED,
    Status.CANCELLED,
    Status.DATA_LOSS,
}
_REJECTIONS: dict[str, type[RequestRejectedError]] = {
    cls.code: cls
    for cls in (
        RequestRejectedError,
        AuthenticationFailedError,
        QuotaExceededError,
        RateLimitedError,
    )
}
_BY_STATUS: dict[Status, type[RequestRejectedError]] = {
    Status.UNAUTHENTICATED: AuthenticationFailedError,
    Status.RESOURCE_EXHAUSTED: QuotaExceededError,
}


class StrictCodec(CodecBase):
    """Protobuf codec that encodes with betterproto2 and decodes strictly.

    ``max_size`` bounds every decoded message; a malformed or oversized one
    raises :class:`~omega.errors.MessageDecodeError`.
    """

    __content_subtype__ = "proto"

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size

    def encode(self, message: Any, message_type: Any) -> bytes:
        """Standard protobuf encoding of ``message``."""
        if not isinstance(message, message_type):
            raise TypeError(f"expected {message_type.__name__}, got {type(message).__name__}")
        return encode_message(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        """Strictly decode ``data`` as ``message_type``."""
        return decode_message(message_type, data, max_size=self.max_size)


class ErrorDetailsCodec(StatusDetailsCodecBase):
    """``grpc-status-details-bin``: ``google.rpc.Status`` with one ``ErrorInfo``.

    The server passes the :class:`~omega.errors.OmegaError` as the details;
    the client gets back ``(code, reason)``, or None when the trailer holds
    nothing of ours.
    """

    def encode(self, status: Status, message: str | None, details: Any) -> bytes:
        """Encode an error's code and reason."""
        code, reason = details
        info = ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata={"code": code})
        detail = AnyDetail(type_url=ERROR_INFO_TYPE_URL, value=encode_message(info))
        return encode_message(RpcStatus(code=status.value, message=message or "", details=[detail]))

    def decode(self, status: Status, message: str | None, data: bytes) -> Any:
        """``(code, reason)`` from the trailer, or None."""
        try:
            decoded = decode_message(RpcStatus, data, max_size=_MAX_DETAILS)
            for detail in decoded.details:
                if detail.type_url == ERROR_INFO_TYPE_URL:
                    info = decode_message(ErrorInfo, detail.value, max_size=_MAX_DETAILS)
                    if info.domain == ERROR_DOMAIN:
                        return info.metadata.get("code", ""), info.reason
        except MessageDecodeError:
            return None
        return None


def grpc_status_for(exc: OmegaError) -> Status:
    """The gRPC status a server answers ``exc`` with (the HTTP API's statuses, in gRPC)."""
    if isinstance(exc, AuthenticationFailedError):
        return Status.UNAUTHENTICATED
    if isinstance(exc, QuotaExceededError | RateLimitedError):
        return Status.RESOURCE_EXHAUSTED
    if isinstance(exc, RequestRejectedError):
        if exc.reason in {"forbidden", "revoked_device"}:
            return Status.PERMISSION_DENIED
        if exc.reason == "stale_device_list":
            return Status.FAILED_PRECONDITION
        return Status.INVALID_ARGUMENT
    return Status.UNAVAILABLE


def grpc_error_for(exc: OmegaError) -> GRPCError:
    """The :class:`GRPCError` a server raises for ``exc`` (details: code and reason)."""
    if isinstance(exc, RequestRejectedError):
        return GRPCError(grpc_status_for(exc), exc.message, (exc.code, exc.reason))
    return GRPCError(
        Status.UNAVAILABLE,
        "storage unavailable",
        (ServerUnavailableError.code, "server_unavailable"),
    )


def error_from_grpc(exc: GRPCError) -> OmegaError:
    """Client side: the typed error a failed call stands for."""
    status = exc.status
    name = status.name.lower()
    if status in _UNAVAILABLE:
        return ServerUnavailableError(
            f"store server failed with gRPC status {status.name}: {exc.message}",
            details={"grpc_status": name},
        )
    message = f"store server refused the request: {exc.message or status.name}"
    if isinstance(exc.details, tuple):
        code, reason = exc.details
        cls = _REJECTIONS.get(code, RequestRejectedError)
        return cls(message, reason=reason or code or name, details={"grpc_status": name})
    cls = _BY_STATUS.get(status, RequestRejectedError)
    return cls(message, reason=f"grpc_{name}", details={"grpc_status": name})
