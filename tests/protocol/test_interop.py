"""Our bytes decode with Google's protobuf runtime, field by field, and the reverse.

The Google classes are compiled at test time from the very .proto the SDK
ships, with grpcio-tools' bundled protoc, so this checks the schema and the
generated betterproto2 code against an independent implementation.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import omega.protocol as proto
from omega.protocol import decode_message, encode_message

PROTO_DIR = Path(proto.__file__).parent
ROOT = PROTO_DIR.parents[2]

# Top-level messages a peer or a file can hand us.
WIRE_MESSAGES = [
    proto.Message,
    proto.MessageContent,
    proto.Group,
    proto.Frame,
    proto.SignedDeviceList,
    proto.DeviceList,
    proto.IdentitySecret,
    proto.EncryptedIdentity,
    proto.PrekeyBundle,
    proto.HandshakePayload,
    proto.SafetyNumberQr,
    proto.PrekeyMessage,
    proto.RatchetMessage,
    proto.RatchetSessionState,
    proto.PrekeyStoreState,
    proto.SenderKeyDistribution,
    proto.SenderKeyHeader,
    proto.SenderKeyMessage,
    proto.OutboundSenderKeyState,
    proto.InboundSenderKeysState,
    proto.SessionResetRequest,
    proto.SessionRecord,
    proto.PeerRecord,
    proto.SignedPeerRecord,
    proto.DhtRecord,
    proto.RelayFrame,
    proto.GroupOperation,
    proto.SignedGroupOperation,
    proto.GroupOperationBatch,
    proto.GroupSessionState,
    proto.SyncContent,
    proto.SyncUpdate,
    proto.SyncStateVector,
    proto.SyncChunk,
    proto.LinkCode,
    proto.LinkHello,
    proto.LinkWelcome,
    proto.LinkProvision,
    proto.LinkFinished,
    proto.SyncedMessage,
    proto.GroupUpdate,
    proto.GroupSyncRequest,
]


@pytest.fixture(scope="module")
def google_pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = tmp_path_factory.mktemp("google_pb")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            "messages.proto",
        ],
        check=True,
        cwd=PROTO_DIR,
    )
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("messages_pb2")
    finally:
        sys.path.remove(str(out))


def _scalar(proto_type: str, enum_cls: Any = None) -> st.SearchStrategy[Any]:
    ints = {
        betterproto2.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
        betterproto2.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
        betterproto2.TYPE_UINT32: st.integers(0, 2**32 - 1),
        betterproto2.TYPE_UINT64: st.integers(0, 2**64 - 1),
    }
    if proto_type in ints:
        return ints[proto_type]
    if proto_type == betterproto2.TYPE_STRING:
        return st.text(max_size=20)
    if proto_type == betterproto2.TYPE_BYTES:
        return st.binary(max_size=40)
    if proto_type == betterproto2.TYPE_BOOL:
        return st.booleans()
    if proto_type == betterproto2.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if proto_type == betterproto2.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=False)
    if proto_type == betterproto2.TYPE_ENUM:
        return st.sampled_from(list(enum_cls))
    raise AssertionError(f"schema uses a type this test does not generate: {proto_type}")


def messages_of(cls: type[betterproto2.Message], depth: int = 0) -> st.SearchStrategy[Any]:
    """Random instances of ``cls``, every field and oneof member reachable."""
    meta = cls._betterproto
    plain: dict[str, st.SearchStrategy[Any]] = {}
    oneofs: dict[str, list[tuple[str, st.SearchStrategy[Any]]]] = {}
    for field in dataclasses.fields(cls):
        field_meta = meta.meta_by_field_name[field.name]
        if field_meta.proto_type == betterproto2.TYPE_MESSAGE:
            if depth >= 3:
                continue
            value = st.deferred(lambda c=meta.cls_by_field[field.name]: messages_of(c, depth + 1))
        else:
            value = _scalar(field_meta.proto_type, meta.cls_by_field.get(field.name))
        if field_meta.repeated:
            value = st.lists(value, max_size=3)
        if field_meta.group:
            oneofs.setdefault(field_meta.group, []).append((field.name, value))
        elif field_meta.optional:
            plain[field.name] = st.none() | value
        else:
            plain[field.name] = value

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kwargs = {name: draw(strategy) for name, strategy in plain.items()}
        for members in oneofs.values():
            chosen = draw(st.sampled_from([None, *members]))
            if chosen is not None:
                kwargs[chosen[0]] = draw(chosen[1])
        return cls(**kwargs)

    return build()


def assert_same(ours: Any, theirs: Any, path: str) -> None:
    """Compare a betterproto2 message with a Google one, field by field."""
    descriptor = theirs.DESCRIPTOR
    for field in descriptor.fields:
        where = f"{path}.{field.name}"
        mine = getattr(ours, field.name)
        if field.has_presence:
            present = theirs.HasField(field.name)
            assert (mine is not None) == present, where
            if not present:
                continue
        other = getattr(theirs, field.name)
        if field.is_repeated:
            assert len(mine) == len(other), where
            pairs = list(zip(mine, other, strict=True))
        else:
            pairs = [(mine, other)]
        for index, (left, right) in enumerate(pairs):
            item = f"{where}[{index}]"
            if field.message_type is not None:
                assert_same(left, right, item)
            elif field.enum_type is not None:
                assert int(left) == right, item
            elif isinstance(left, float):
                assert left == right or (math.isnan(left) and math.isnan(right)), item
            else:
                assert left == right, item


@pytest.mark.parametrize("cls", WIRE_MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_google_runtime_decodes_our_bytes(
    google_pb: ModuleType, cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    ours = data.draw(messages_of(cls))
    theirs = getattr(google_pb, cls.__name__)()
    theirs.ParseFromString(encode_message(ours))
    assert_same(ours, theirs, cls.__name__)


@pytest.mark.parametrize("cls", WIRE_MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_we_decode_google_bytes(
    google_pb: ModuleType, cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    original = data.draw(messages_of(cls))
    theirs = getattr(google_pb, cls.__name__)()
    theirs.ParseFromString(encode_message(original))
    decoded = decode_message(cls, theirs.SerializeToString())
    assert_same(decoded, theirs, cls.__name__)
    assert decoded == original


def test_original_plan_field_numbers_are_kept(google_pb: ModuleType) -> None:
    """The plan's schema is a contract: names and numbers must never drift."""
    expected = {
        "Message": {
            "message_id": 1,
            "sender_id": 2,
            "recipient_id": 3,
            "type": 4,
            "timestamp": 5,
            "encrypted_content": 6,
            "signature": 7,
            "reply_to": 8,
            "ttl_days": 9,
            "mentions": 10,
        },
        "MessageContent": {"text": 1, "media": 2, "location": 3, "contact": 4},
        "TextContent": {"text": 1, "entities": 2},
        "MediaContent": {
            "mime_type": 1,
            "size": 2,
            "thumbnail": 3,
            "file_hash": 4,
            "width": 5,
            "height": 6,
            "duration": 7,
        },
        "Group": {
            "group_id": 1,
            "name": 2,
            "avatar_hash": 3,
            "members": 4,
            "permissions": 5,
            "created_at": 6,
        },
        "Member": {"user_id": 1, "role": 2, "joined_at": 3},
    }
    for name, fields in expected.items():
        descriptor = getattr(google_pb, name).DESCRIPTOR
        actual = {f.name: f.number for f in descriptor.fields}
        assert {k: actual.get(k) for k in fields} == fields, name
    message_type = google_pb.DESCRIPTOR.enum_types_by_name["MessageType"]
    assert {v.name: v.number for v in message_type.values} == {
        "TEXT": 0,
        "IMAGE": 1,
        "VIDEO": 2,
        "AUDIO": 3,
        "FILE": 4,
        "LOCATION": 5,
        "CONTACT": 6,
        "STICKER": 7,
        "REACTION": 8,
        "EDIT": 9,
        "DELETE": 10,
    }
    member_role = google_pb.DESCRIPTOR.enum_types_by_name["MemberRole"]
    assert {v.name: v.number for v in member_role.values} == {
        "MEMBER": 0,
        "ADMIN": 1,
        "OWNER": 2,
    }


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_protocol", ROOT / "scripts" / "generate_protocol.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_is_fresh() -> None:
    assert _generator().stale_files() == [], "run: python scripts/generate_protocol.py"


def test_staleness_is_detected(tmp_path: Path) -> None:
    module = _generator()
    module.generate(tmp_path)
    (tmp_path / "messages.py").write_text("# edited by hand\n", encoding="utf-8")
    assert module.stale_files(tmp_path) == ["messages.py"]
