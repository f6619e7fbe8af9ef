"""The relay protocol's frames and registration proof, shared by the relay client and server.

Sans I/O: nothing here reads a clock or a socket. Every frame between a
relay client and a relay is one encoded ``RelayFrame`` (docs/transports.md,
"The relay protocol", documents it byte for byte). :func:`decode_relay_frame`
decodes one strictly and checks the rules every receiver applies (a body is
set, stream ids are not zero, text fields are bounded), so both ends refuse
the same frames. :func:`registration_payload` builds the exact bytes a device
signs to register, and :func:`verify_registration` checks them on the relay.
"""

from __future__ import annotations

import enum
import hmac
import re
from dataclasses import dataclass
from typing import Final

import betterproto2

from omega.crypto.devices import (
    MAX_CERTIFICATE_SIZE,
    DeviceCertificateInfo,
    DeviceKeyPair,
    device_id,
    verify_device_certificate,
)
from omega.crypto.identity import user_id_from_public_key, verify_signature
from omega.errors import (
    CertificateError,
    CryptoError,
    DecodeError,
    MessageDecodeError,
    RemoteProtocolError,
)
from omega.protocol import (
    DeviceCertificate,
    RelayAccept,
    RelayChallenge,
    RelayClose,
    RelayConnect,
    RelayData,
    RelayError,
    RelayFrame,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayRegister,
    RelayRegistered,
    RelayWindow,
    SignedDeviceCertificate,
    decode_message,
    encode_message,
)

__all__ = [
    "FRAME_OVERHEAD",
    "INITIAL_WINDOW",
    "MAX_RELAY_ID_BYTES",
    "MAX_TEXT_BYTES",
    "NONCE_LENGTH",
    "REGISTER_CONTEXT",
    "RELAY_VERSION",
    "RelayBody",
    "RelayKind",
    "VerifiedRegistration",
    "decode_relay_frame",
    "encode_relay_frame",
    "reason_name",
    "registration_payload",
    "sign_registration",
    "verify_registration",
]

RELAY_VERSION: Final = 1
"""``RelayChallenge.version`` of this protocol."""
REGISTER_CONTEXT: Final = b"omega/relay-register/v1"
"""Domain separation of the registration signature."""
NONCE_LENGTH: Final = 32
"""Bytes of a challenge nonce."""
MAX_RELAY_ID_BYTES: Final = 255
"""Longest relay id, in UTF-8 bytes."""
MAX_TEXT_BYTES: Final = 256
"""Longest human-readable message in RelayRefuse and RelayError, in UTF-8 bytes."""
INITIAL_WINDOW: Final = 16
"""RelayData frames either side may send on a new stream before the receiver grants more."""
FRAME_OVERHEAD: Final = 32
"""Bytes a RelayData frame adds around its data, at most (tags, lengths, stream id)."""

_DEVICE_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
_MAX_STREAM_ID: Final = (1 << 32) - 1

RelayBody = (
    RelayChallenge
    | RelayRegister
    | RelayRegistered
    | RelayConnect
    | RelayIncoming
    | RelayAccept
    | RelayRefuse
    | RelayData
    | RelayWindow
    | RelayClose
    | RelayError
)
"""Any message a RelayFrame may carry."""


class RelayKind(enum.Enum):
    """Which body a RelayFrame carries (the oneof field's name)."""

    CHALLENGE = "challenge"
    REGISTER = "register"
    REGISTERED = "registered"
    CONNECT = "connect"
    INCOMING = "incoming"
    ACCEPT = "accept"
    REFUSE = "refuse"
    DATA = "data"
    WINDOW = "window"
    CLOSE = "close"
    ERROR = "error"


_KIND_OF: Final[dict[type[betterproto2.Message], RelayKind]] = {
    RelayChallenge: RelayKind.CHALLENGE,
    RelayRegister: RelayKind.REGISTER,
    RelayRegistered: RelayKind.REGISTERED,
    RelayConnect: RelayKind.CONNECT,
    RelayIncoming: RelayKind.INCOMING,
    RelayAccept: RelayKind.ACCEPT,
    RelayRefuse: RelayKind.REFUSE,
    RelayData: RelayKind.DATA,
    RelayWindow: RelayKind.WINDOW,
    RelayClose: RelayKind.CLOSE,
    RelayError: RelayKind.ERROR,
}
_STREAM_KINDS: Final = frozenset(
    {
        RelayKind.CONNECT,
        RelayKind.INCOMING,
        RelayKind.ACCEPT,
        RelayKind.REFUSE,
        RelayKind.DATA,
        RelayKind.WINDOW,
        RelayKind.CLOSE,
    }
)


def reason_name(reason: RelayReason | int) -> str:
    """``RelayReason.NOT_REGISTERED`` -> ``"not_registered"`` (unknown: its number)."""
    try:
        name = RelayReason(reason).name
    except ValueError:
        name = None
    return name.lower() if name else str(int(reason))


# The hot path. RelayData and RelayWindow frames are most of the traffic, and the
# generic protobuf runtime spends hundreds of microseconds on each; these build
# and recognise their canonical encodings directly. A differential test pins
# them to the generic encoder and the strict decoder: the fast decoder accepts
# only canonical frames, and anything else takes the strict path.
_DATA_TAG: Final = 0x42  # RelayFrame field 8 (data), length-delimited
_WINDOW_TAG: Final = 0x4A  # RelayFrame field 9 (window), length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A minimal varint of at most 5 bytes at ``pos``; ``(-1, pos)`` for anything else."""
    value = shift = 0
    for index in range(pos, min(pos + 5, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and index > pos:
                return -1, pos  # not minimal
            return value, index + 1
        shift += 7
    return -1, pos


def _encode_pair(tag: int, stream_id: int, second: bytes) -> bytes:
    inner_length = 1 + len(_varint(stream_id)) + len(second)
    return b"".join((bytes([tag]), _varint(inner_length), b"\x08", _varint(stream_id), second))


def _fast_decode(data: bytes) -> RelayData | RelayWindow | None:
    """The frame if ``data`` is a canonical RelayData or RelayWindow frame, else None."""
    if len(data) < 4 or data[0] not in (_DATA_TAG, _WINDOW_TAG):
        return None
    inner_length, pos = _read_varint(data, 1)
    if inner_length < 0 or pos + inner_length != len(data) or data[pos] != 0x08:
        return None
    stream_id, pos = _read_varint(data, pos + 1)
    if not 0 < stream_id <= _MAX_STREAM_ID:
        return None
    if data[0] == _WINDOW_TAG:
        if pos == len(data):
            return RelayWindow(stream_id=stream_id, frames=0)
        if data[pos] != 0x10:
            return None
        frames, end = _read_varint(data, pos + 1)
        if not 0 < frames <= _MAX_STREAM_ID or end != len(data):
            return None
        return RelayWindow(stream_id=stream_id, frames=frames)
    if pos == len(data):
        return RelayData(stream_id=stream_id, data=b"")
    if data[pos] != 0x12:
        return None
    length, start = _read_varint(data, pos + 1)
    if length <= 0 or start + length != len(data):
        return None
    return RelayData(stream_id=stream_id, data=bytes(data[start:]))


def encode_relay_frame(body: RelayBody) -> bytes:
    """Encode ``body`` as one RelayFrame (canonical protobuf)."""
    if isinstance(body, RelayData) and 0 < body.stream_id <= _MAX_STREAM_ID:
        data = body.data
        second = b"\x12" + _varint(len(data)) + data if data else b""
        return _encode_pair(_DATA_TAG, body.stream_id, second)
    if isinstance(body, RelayWindow) and 0 < body.stream_id <= _MAX_STREAM_ID:
        second = b"\x10" + _varint(body.frames) if body.frames else b""
        return _encode_pair(_WINDOW_TAG, body.stream_id, second)
    frame = RelayFrame()
    setattr(frame, _KIND_OF[type(body)].value, body)
    return encode_message(frame)


def _bounded_text(text: str, what: str) -> None:
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise MessageDecodeError(f"{what} is longer than {MAX_TEXT_BYTES} UTF-8 bytes")


def decode_relay_frame(data: bytes, *, max_size: int) -> tuple[RelayKind, RelayBody]:
    """Decode one RelayFrame strictly; return which body it carries and the body.

    Raises :class:`~omega.errors.DecodeError` for bytes that are not a
    RelayFrame of at most ``max_size`` bytes with exactly one body, a stream
    id of zero on a stream message, or an over-long text field.
    """
    if len(data) <= max_size and (fast := _fast_decode(data)) is not None:
        return (RelayKind.DATA if isinstance(fast, RelayData) else RelayKind.WINDOW), fast
    frame = decode_message(RelayFrame, data, max_size=max_size)
    name, body = betterproto2.which_one_of(frame, "body")
    if body is None:
        raise MessageDecodeError("a relay frame carries no body")
    kind = RelayKind(name)
    if kind in _STREAM_KINDS:
        stream_id = body.stream_id
        if not 0 < stream_id <= _MAX_STREAM_ID:
            raise MessageDecodeError("a relay stream id is 1..2**32-1")
    if isinstance(body, RelayRefuse | RelayError):
        _bounded_text(body.message, "a relay message")
    elif isinstance(body, RelayConnect):
        if not body.target_user_id and not body.target_device_id:
            raise MessageDecodeError("a relay connect names no target")
        if body.target_device_id and _DEVICE_ID_RE.fullmatch(body.target_device_id) is None:
            raise MessageDecodeError("a relay target device id is 16 lowercase hex characters")
        _bounded_text(body.target_user_id, "a relay target user id")
    elif (
        isinstance(body, RelayChallenge) and len(body.relay_id.encode("utf-8")) > MAX_RELAY_ID_BYTES
    ):
        raise MessageDecodeError(f"a relay id is at most {MAX_RELAY_ID_BYTES} UTF-8 bytes")
    return kind, body


def registration_payload(relay_id: str, nonce: bytes, timestamp: int, listen: bool) -> bytes:
    """The exact bytes a device key signs to register (docs/transports.md).

    ``REGISTER_CONTEXT || uint8 len(relay_id) || relay_id || nonce (32) ||
    int64 big-endian timestamp || uint8 listen``.
    """
    relay_id_bytes = relay_id.encode("utf-8")
    if len(relay_id_bytes) > MAX_RELAY_ID_BYTES:
        raise MessageDecodeError(f"a relay id is at most {MAX_RELAY_ID_BYTES} UTF-8 bytes")
    return b"".join(
        (
            REGISTER_CONTEXT,
            bytes([len(relay_id_bytes)]),
            relay_id_bytes,
            nonce,
            timestamp.to_bytes(8, "big", signed=True),
            b"\x01" if listen else b"\x00",
        )
    )


def sign_registration(
    challenge: RelayChallenge,
    *,
    device_key_pair: DeviceKeyPair,
    device_certificate: SignedDeviceCertificate,
    timestamp: int,
    listen: bool,
) -> RelayRegister:
    """Answer ``challenge``: the RelayRegister proving ownership of ``device_key_pair``."""
    payload = registration_payload(challenge.relay_id, challenge.nonce, timestamp, listen)
    return RelayRegister(
        device_certificate=device_certificate,
        nonce=challenge.nonce,
        timestamp=timestamp,
        listen=listen,
        signature=device_key_pair.sign(payload),
    )


@dataclass(frozen=True, slots=True)
class VerifiedRegistration:
    """A registration the relay accepted."""

    user_id: str
    """Canonical user id of the certificate's identity key."""
    device_key: bytes
    """The device key that signed."""
    device_id: str
    """Its 16-hex-character display id, which relay addresses name."""
    listen: bool
    """Whether inbound streams are routed to this session."""
    certificate: DeviceCertificateInfo
    """The verified device certificate."""


def verify_registration(
    register: RelayRegister,
    *,
    relay_id: str,
    nonce: bytes,
    now_ms: int,
    max_clock_skew_ms: int,
) -> VerifiedRegistration:
    """Check a RelayRegister against the challenge this session sent, at time ``now_ms``.

    In order: the certificate verifies under the identity key it names; the
    nonce is the session's own (so a recorded registration replayed on
    another session fails); the timestamp is within ``max_clock_skew_ms`` of
    ``now_ms``; the signature verifies under the certified device key. Raises
    :class:`~omega.errors.RemoteProtocolError` saying which check failed.
    """
    signed = register.device_certificate
    try:
        if signed is None:
            raise CertificateError("the registration carries no device certificate")
        inner = decode_message(DeviceCertificate, signed.certificate, max_size=MAX_CERTIFICATE_SIZE)
        info = verify_device_certificate(signed, identity_key=inner.identity_key)
    except (CryptoError, DecodeError) as exc:
        raise RemoteProtocolError(f"bad device certificate: {exc}") from exc
    if not hmac.compare_digest(register.nonce, nonce):
        raise RemoteProtocolError("the registration answers another challenge (replayed?)")
    if abs(register.timestamp - now_ms) > max_clock_skew_ms:
        raise RemoteProtocolError(
            "the registration's timestamp is too far from the relay's clock",
            details={"timestamp": register.timestamp, "now": now_ms},
        )
    payload = registration_payload(relay_id, nonce, register.timestamp, register.listen)
    try:
        verify_signature(info.device_key, payload, register.signature)
    except CryptoError as exc:
        raise RemoteProtocolError(f"the registration signature does not verify: {exc}") from exc
    return VerifiedRegistration(
        user_id=user_id_from_public_key(info.identity_key),
        device_key=info.device_key,
        device_id=device_id(info.device_key),
        listen=register.listen,
        certificate=info,
    )
