"""Fuzz the strict protobuf decoder with arbitrary bytes.

Run: ``python fuzz/fuzz_protocol.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). Anything but an OmegaError escaping, or an
accepted message that does not survive re-encoding, is a crash.
"""

from __future__ import annotations

import sys

import omega.protocol as proto
from omega.errors import OmegaError

TARGETS = (
    proto.Frame,
    proto.Message,
    proto.MessageContent,
    proto.Group,
    proto.SignedDeviceList,
    proto.DeviceList,
    proto.EncryptedIdentity,
    proto.IdentitySecret,
    proto.PrekeyBundle,
    proto.HandshakeMessage,
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
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data`` as the message type its first byte selects."""
    if not data:
        return
    cls = TARGETS[data[0] % len(TARGETS)]
    try:
        decoded = proto.decode_message(cls, data[1:])
    except OmegaError:
        return
    again = proto.decode_message(cls, proto.encode_message(decoded))
    if again != decoded:
        raise AssertionError(f"{cls.__name__} changed across a re-encode: {decoded!r}")


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
