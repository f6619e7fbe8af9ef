"""What the Omega DHT stores: keys derived from identities, values that verify themselves.

Keys live in Kademlia's 160-bit id space:

* a user's device list is stored under
  ``SHA-256(b"omega/dht/device-list/v1" || identity_key)[:20]``;
* a device's peer record under
  ``SHA-256(b"omega/dht/peer-record/v1" || device_key)[:20]``.

A value is the encoded ``DhtRecord`` holding exactly one of
``SignedDeviceList`` or ``SignedPeerRecord``, at most
:data:`MAX_DHT_VALUE_SIZE` bytes so that a ``store`` request fits one UDP
datagram. :func:`read_dht_value` accepts a value for a key when it decodes
strictly, verifies (docs/protocol.md section 5, and
:mod:`omega.discovery.records`), belongs at that key (the key derived from
the identity or device it names), is unexpired, and is newer than the
value already held for the key, if any.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from omega.crypto import VerifiedDeviceList, verify_device_list
from omega.discovery._keys import identity_key_of
from omega.discovery.base import PeerRecordInfo
from omega.discovery.records import verify_peer_record
from omega.errors import CertificateError, ConfigurationError, MessageDecodeError, StaleRecordError
from omega.protocol import (
    DeviceList,
    DhtRecord,
    SignedDeviceList,
    SignedPeerRecord,
    decode_message,
    encode_message,
)

__all__ = [
    "DEVICE_LIST_KEY_CONTEXT",
    "DHT_KEY_SIZE",
    "MAX_DHT_VALUE_SIZE",
    "PEER_RECORD_KEY_CONTEXT",
    "DhtValue",
    "ValueKind",
    "check_newer",
    "device_list_key",
    "encode_dht_value",
    "peer_record_key",
    "read_dht_value",
]

DEVICE_LIST_KEY_CONTEXT = b"omega/dht/device-list/v1"
"""Domain-separation prefix of device-list keys."""

PEER_RECORD_KEY_CONTEXT = b"omega/dht/peer-record/v1"
"""Domain-separation prefix of peer-record keys."""

DHT_KEY_SIZE = 20
"""Length of a DHT key, in bytes (Kademlia's 160-bit id space)."""

MAX_DHT_VALUE_SIZE = 7 * 1024
"""Largest encoded ``DhtRecord`` stored or served, in bytes (fits rpcudp's 8 KiB datagram)."""


class ValueKind(enum.Enum):
    """Which record a DHT value holds."""

    DEVICE_LIST = "device_list"
    PEER_RECORD = "peer_record"


def device_list_key(user_id: str) -> bytes:
    """The DHT key of ``user_id``'s device list (raises InvalidUserIdError for a bad id)."""
    identity_key = identity_key_of(user_id)
    return hashlib.sha256(DEVICE_LIST_KEY_CONTEXT + identity_key).digest()[:DHT_KEY_SIZE]


def peer_record_key(device_key: bytes) -> bytes:
    """The DHT key of the peer record of ``device_key``."""
    return hashlib.sha256(PEER_RECORD_KEY_CONTEXT + device_key).digest()[:DHT_KEY_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtValue:
    """A DHT value that passed :func:`read_dht_value` for its key."""

    key: bytes
    """The DHT key it is stored under."""
    kind: ValueKind
    """What it holds."""
    sequence: int
    """The record's sequence number: a newer value has a higher one."""
    expires_at: int | None
    """When a peer record expires (Unix milliseconds); ``None`` for device lists."""
    raw: bytes = field(repr=False)
    """The encoded ``DhtRecord``, exactly as received."""
    device_list: VerifiedDeviceList | None = field(default=None, repr=False)
    """The verified device list, for :attr:`ValueKind.DEVICE_LIST`."""
    peer_record: PeerRecordInfo | None = field(default=None, repr=False)
    """The verified peer record, for :attr:`ValueKind.PEER_RECORD`."""

    def is_live(self, now: int) -> bool:
        """False once a peer record has expired at ``now`` (Unix milliseconds)."""
        return self.expires_at is None or self.expires_at > now


def encode_dht_value(signed: SignedDeviceList | SignedPeerRecord) -> bytes:
    """Wrap a signed record in the ``DhtRecord`` stored in the DHT.

    Raises :class:`~omega.errors.ConfigurationError` when the result would
    exceed :data:`MAX_DHT_VALUE_SIZE`.
    """
    if isinstance(signed, SignedDeviceList):
        value = encode_message(DhtRecord(device_list=signed))
    else:
        value = encode_message(DhtRecord(peer_record=signed))
    if len(value) > MAX_DHT_VALUE_SIZE:
        raise ConfigurationError(
            f"a DHT value of {len(value)} bytes exceeds the limit of {MAX_DHT_VALUE_SIZE} bytes",
            details={"size": len(value), "limit": MAX_DHT_VALUE_SIZE},
        )
    return value


def _wrong_key() -> CertificateError:
    return CertificateError("the record does not belong at this DHT key")


def read_dht_value(
    key: bytes, value: object, *, now: int, previous: DhtValue | None = None
) -> DhtValue:
    """Verify ``value`` as the DHT value of ``key`` at time ``now`` (Unix milliseconds).

    ``previous`` is the value already held for ``key``: the new one must
    be newer (for a device list, it must also keep every revocation).
    Raises :class:`~omega.errors.MessageDecodeError` for anything but
    strictly valid bytes within the size limit, the errors of
    :func:`~omega.crypto.verify_device_list` and
    :func:`~omega.discovery.verify_peer_record`,
    :class:`~omega.errors.CertificateError` for a record stored at another
    key than its own, and :class:`~omega.errors.StaleRecordError` for a peer
    record that is not newer than ``previous``.
    """
    if not isinstance(value, bytes):
        raise MessageDecodeError(f"a DHT value is bytes, not {type(value).__name__}")
    if len(value) > MAX_DHT_VALUE_SIZE:
        raise MessageDecodeError(
            f"a DHT value of {len(value)} bytes exceeds the limit of {MAX_DHT_VALUE_SIZE} bytes"
        )
    record = decode_message(DhtRecord, value, max_size=MAX_DHT_VALUE_SIZE)
    if record.device_list is not None:
        return _read_device_list(key, record.device_list, value, previous)
    if record.peer_record is not None:
        return _read_peer_record(key, record.peer_record, value, now, previous)
    raise MessageDecodeError("a DHT value holds neither a device list nor a peer record")


def _read_device_list(
    key: bytes, signed: SignedDeviceList, value: bytes, previous: DhtValue | None
) -> DhtValue:
    # The claimed user id only selects the key to check the signature with.
    user_id = decode_message(DeviceList, signed.device_list, max_size=MAX_DHT_VALUE_SIZE).user_id
    if device_list_key(user_id) != key:
        raise _wrong_key()
    held = previous.device_list if previous is not None else None
    verified = verify_device_list(signed, user_id=user_id, previous=held)
    return DhtValue(
        key=key,
        kind=ValueKind.DEVICE_LIST,
        sequence=verified.sequence,
        expires_at=None,
        raw=value,
        device_list=verified,
    )


def _read_peer_record(
    key: bytes, signed: SignedPeerRecord, value: bytes, now: int, previous: DhtValue | None
) -> DhtValue:
    info = verify_peer_record(signed, now=now)
    if peer_record_key(info.device_key) != key:
        raise _wrong_key()
    accepted = DhtValue(
        key=key,
        kind=ValueKind.PEER_RECORD,
        sequence=info.sequence,
        expires_at=info.expires_at,
        raw=value,
        peer_record=info,
    )
    if previous is not None:
        check_newer(accepted, previous, now)
    return accepted


def check_newer(value: DhtValue, previous: DhtValue, now: int) -> None:
    """Raise :class:`~omega.errors.StaleRecordError` unless ``value`` may replace ``previous``.

    A peer record replaces a held one that has expired, or one with a lower
    sequence. (Device lists are ordered by
    :func:`~omega.crypto.verify_device_list` itself.)
    """
    if value.kind is not ValueKind.PEER_RECORD or not previous.is_live(now):
        return
    if value.sequence <= previous.sequence:
        raise StaleRecordError(
            f"peer record sequence {value.sequence} is not newer than the held {previous.sequence}",
            details={"sequence": value.sequence, "held": previous.sequence},
        )
