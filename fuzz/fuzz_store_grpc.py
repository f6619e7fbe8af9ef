"""Fuzz the store gRPC API's decoders: request messages and error details.

Run: ``python fuzz/fuzz_store_grpc.py -max_total_time=60`` (needs atheris and
grpclib, ``pip install -e '.[fuzz,server]'``). The first byte picks a
message of ``omega.store.v1`` decoded by the server's strict codec, or the
client's ``grpc-status-details-bin`` decoder. Anything but an OmegaError
escaping, an accepted message that does not survive re-encoding, or a
details decoder that raises, is a crash.
"""

from __future__ import annotations

import sys

from grpclib.const import Status

from omega.errors import OmegaError
from omega.mailbox._generated import store_service as pb
from omega.mailbox._grpc_wire import ErrorDetailsCodec, StrictCodec
from omega.protocol import encode_message

TARGETS = (
    pb.ChallengeRequest,
    pb.DepositRequest,
    pb.FetchRequest,
    pb.FetchResponse,
    pb.AcknowledgeRequest,
    pb.WaitRequest,
    pb.PublishDeviceListRequest,
    pb.FetchDeviceListRequest,
    pb.FetchDeviceListResponse,
    pb.PublishPrekeysRequest,
    pb.ClaimPrekeyBundleRequest,
    pb.ClaimPrekeyBundleResponse,
    pb.OneTimePrekeyCountRequest,
    pb.RpcStatus,
    pb.ErrorInfo,
)
_CODEC = StrictCodec(max_size=1 << 20)
_DETAILS = ErrorDetailsCodec()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data[1:]`` as the message type (or decoder) its first byte selects."""
    if not data:
        return
    choice = data[0] % (len(TARGETS) + 1)
    if choice == len(TARGETS):
        details = _DETAILS.decode(Status.INVALID_ARGUMENT, None, data[1:])
        if details is not None and not (
            isinstance(details, tuple) and all(isinstance(part, str) for part in details)
        ):
            raise AssertionError(f"details decoded to {details!r}")
        return
    cls = TARGETS[choice]
    try:
        decoded = _CODEC.decode(data[1:], cls)
    except OmegaError:
        return
    encoded = encode_message(decoded)
    again = _CODEC.decode(encoded, cls)
    if encode_message(again) != encoded:  # bytes, not ==: a NaN double is not equal to itself
        raise AssertionError(f"{cls.__name__} changed across a re-encode: {decoded!r}")


def main() -> None:
    """Run the fuzzer (atheris)."""
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
