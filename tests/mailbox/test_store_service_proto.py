"""store_service.proto: the committed generated code is fresh; grpclib stays optional."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_protocol", ROOT / "scripts" / "generate_protocol.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_service_code_is_fresh() -> None:
    module = _generator()
    assert module.stale_files(target=module.STORE_SERVICE) == [], (
        "run: python scripts/generate_protocol.py"
    )


def test_service_staleness_is_detected(tmp_path: Path) -> None:
    module = _generator()
    module.generate(tmp_path, module.STORE_SERVICE)
    (tmp_path / "store_service.py").write_text("# edited by hand\n", encoding="utf-8")
    assert module.stale_files(tmp_path, target=module.STORE_SERVICE) == ["store_service.py"]


def test_grpclib_stays_out_of_the_protocol_and_mailbox_packages() -> None:
    # With grpclib unimportable, the sans-I/O protocol package, the mailbox package and the
    # gRPC client module still import; only constructing the client needs the extra.
    code = (
        "import sys; sys.modules['grpclib'] = None\n"
        "import omega.protocol, omega.mailbox, omega.mailbox.grpc\n"
        "from omega.errors import ConfigurationError\n"
        "try:\n"
        "    omega.mailbox.grpc.GrpcStoreClient('127.0.0.1', 1)\n"
        "except ConfigurationError as exc:\n"
        "    assert 'omega-p2p[grpc]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no ConfigurationError')\n"
        "assert not any(name.startswith('grpclib') and sys.modules[name] for name in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# The canonical google.rpc definitions (googleapis: google/rpc/status.proto and
# error_details.proto), to check our details trailer against the official runtime.
GOOGLE_RPC = """
syntax = "proto3";
package google.rpc;
import "google/protobuf/any.proto";
message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
message ErrorInfo {
  string reason = 1;
  string domain = 2;
  map<string, string> metadata = 3;
}
"""


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    import grpc_tools

    out = tmp_path_factory.mktemp("store_pb")
    (out / "google_rpc_for_test.proto").write_text(GOOGLE_RPC, encoding="utf-8")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    proto_dir = ROOT / "src" / "omega" / "mailbox"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"-I{out}",
            f"-I{well_known}",
            f"--python_out={out}",
            "store_service.proto",
            "google_rpc_for_test.proto",
        ],
        check=True,
        cwd=out,
    )
    sys.path.insert(0, str(out))
    try:
        return (
            importlib.import_module("store_service_pb2"),
            importlib.import_module("google_rpc_for_test_pb2"),
        )
    finally:
        sys.path.remove(str(out))


def test_requests_interoperate_with_the_official_runtime(
    official: tuple[ModuleType, ModuleType],
) -> None:
    from omega.mailbox._generated import store_service as pb
    from omega.mailbox._grpc_wire import StrictCodec

    google, _ = official
    codec = StrictCodec(max_size=1 << 16)
    theirs = google.PublishPrekeysRequest(
        auth=google.Auth(device_key=b"k" * 32, challenge=b"c" * 41, signature=b"s" * 64),
        user_id="user",
        certificate=b"cert",
        signed_prekey=b"spk",
        one_time_prekeys=[google.PrekeyEntry(prekey_id=7, public_key=b"p" * 32)],
    )
    ours = codec.decode(theirs.SerializeToString(), pb.PublishPrekeysRequest)
    assert ours.auth is not None
    assert ours.auth.signature == b"s" * 64
    assert [(e.prekey_id, e.public_key) for e in ours.one_time_prekeys] == [(7, b"p" * 32)]
    deposit = pb.DepositRequest(recipient="r", message_id="m", payload=b"x", ttl_seconds=-1)
    parsed = google.DepositRequest.FromString(codec.encode(deposit, pb.DepositRequest))
    assert parsed.HasField("ttl_seconds")
    assert (parsed.recipient, parsed.payload, parsed.ttl_seconds) == ("r", b"x", -1)
    absent = google.FetchDeviceListResponse.FromString(
        codec.encode(pb.FetchDeviceListResponse(), pb.FetchDeviceListResponse)
    )
    assert not absent.HasField("signed_device_list")


def test_error_details_are_a_standard_google_rpc_status(
    official: tuple[ModuleType, ModuleType],
) -> None:
    from grpclib.const import Status

    from omega.mailbox._grpc_wire import ERROR_DOMAIN, ErrorDetailsCodec

    _, rpc = official
    codec = ErrorDetailsCodec()
    data = codec.encode(Status.RESOURCE_EXHAUSTED, "full", ("quota_exceeded", "mailbox_full"))
    status = rpc.Status.FromString(data)
    assert (status.code, status.message) == (8, "full")
    info = rpc.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "mailbox_full",
        ERROR_DOMAIN,
        {"code": "quota_exceeded"},
    )
    theirs = rpc.Status(code=16, message="no")
    theirs.details.add().Pack(
        rpc.ErrorInfo(reason="bad", domain=ERROR_DOMAIN, metadata={"code": "authentication_failed"})
    )
    decoded = codec.decode(Status.UNAUTHENTICATED, "no", theirs.SerializeToString())
    assert decoded == ("authentication_failed", "bad")
