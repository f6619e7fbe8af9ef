"""Signed peer records: where one device can be reached, signed by that device.

``SignedPeerRecord.peer_record`` holds the encoded ``PeerRecord`` (owner's
user id, device key, direct addresses, relay addresses, mailbox URLs,
sequence, expiry) and ``SignedPeerRecord.signature`` the device key's
Ed25519 signature over ``b"omega/peer-record/v1" || peer_record``.
``SignedPeerRecord.certificate`` carries the identity's certificate for the
device key, so a record verifies on its own: the certificate links the
device key to the identity key, hence to the user id. The signature covers
exactly the transmitted bytes; verifiers check it before decoding them and
never re-encode. A record is accepted, for a user id given by the caller or
else the one the record names, when, in this order:

1. the signed envelope, and the record inside it, are at most
   :data:`MAX_PEER_RECORD_SIZE` bytes (a record must fit one DHT datagram);
2. the user id is valid (:class:`~omega.errors.InvalidUserIdError`);
3. the certificate is present and valid for that user's identity key
   (docs/protocol.md, section 5);
4. the signature verifies under the certified device key
   (:class:`~omega.errors.InvalidSignatureError`);
5. the record decodes strictly; its ``version`` is 1, its ``user_id`` is the
   canonical form of that user id and its ``device_key`` the certified key;
6. it lists at most :data:`MAX_ADDRESSES` addresses and
   :data:`MAX_RELAYS` relays, each a valid transport address
   (docs/transports.md), and at most :data:`MAX_MAILBOXES` mailbox URLs,
   each an absolute ``http``/``https`` URL with a host, no user info, no
   fragment, at most :data:`MAX_MAILBOX_URL_LENGTH` printable ASCII
   characters; no list holds the same entry twice; a record offers at least
   one way to reach the device (an address, a relay or a mailbox);
7. ``expires_at`` is later than the verifier's ``now``
   (:class:`~omega.errors.ExpiredRecordError`).

Rules 5 and 6 raise :class:`~omega.errors.CertificateError`. Records are
ordered by ``sequence`` (``uint64``, strictly increasing per device), never
by clock.
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Iterable
from urllib.parse import urlsplit

from omega.crypto import LocalDevice, verify_device_certificate, verify_signature
from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.discovery.base import PeerRecordInfo
from omega.errors import (
    CertificateError,
    ConfigurationError,
    CryptoError,
    DecodeError,
    ExpiredRecordError,
    InvalidAddressError,
    MessageDecodeError,
)
from omega.protocol import PeerRecord, SignedPeerRecord, decode_message, encode_message
from omega.transport.address import Address

__all__ = [
    "MAX_ADDRESSES",
    "MAX_MAILBOXES",
    "MAX_MAILBOX_URL_LENGTH",
    "MAX_PEER_RECORD_SIZE",
    "MAX_RELAYS",
    "PEER_RECORD_CONTEXT",
    "PEER_RECORD_VERSION",
    "check_mailbox_url",
    "sign_peer_record",
    "verify_peer_record",
]

PEER_RECORD_CONTEXT = b"omega/peer-record/v1"
"""Domain-separation prefix of peer record signatures."""

PEER_RECORD_VERSION = 1
"""The ``PeerRecord.version`` this module writes and accepts."""

MAX_PEER_RECORD_SIZE = 4096
"""Largest encoded signed peer record (and record inside it) accepted, in bytes."""

MAX_ADDRESSES = 16
"""Most direct addresses one record may list."""

MAX_RELAYS = 8
"""Most relay addresses one record may list."""

MAX_MAILBOXES = 8
"""Most mailbox URLs one record may list."""

MAX_MAILBOX_URL_LENGTH = 512
"""Longest mailbox URL, in characters."""

_UINT64_MAX = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)


def check_mailbox_url(url: str) -> str | None:
    """Return why ``url`` is not an acceptable mailbox URL, or ``None`` when it is."""
    if not 0 < len(url) <= MAX_MAILBOX_URL_LENGTH:
        return f"a mailbox URL is 1..{MAX_MAILBOX_URL_LENGTH} characters"
    if not set(url) <= _URL_CHARACTERS:
        return "a mailbox URL is printable ASCII without spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises ValueError when it is invalid
    except ValueError as exc:
        return f"a mailbox URL does not parse: {exc}"
    if parts.scheme not in ("http", "https"):
        return "a mailbox URL starts with http:// or https://"
    if not parts.hostname:
        return "a mailbox URL names a host"
    if parts.username is not None or parts.password is not None:
        return "a mailbox URL carries no user info"
    if parts.fragment or url.endswith("#"):
        return "a mailbox URL has no fragment"
    return None


def _as_address(value: Address | str) -> Address:
    return value if isinstance(value, Address) else Address.parse(value)


def sign_peer_record(
    device: LocalDevice,
    *,
    addresses: Iterable[Address | str],
    relays: Iterable[Address | str] = (),
    mailboxes: Iterable[str] = (),
    sequence: int,
    expires_at: int,
) -> SignedPeerRecord:
    """Sign a peer record saying where ``device`` can be reached until ``expires_at``.

    Addresses are written in canonical text. The result is checked with
    :func:`verify_peer_record` (expiry aside) before it is returned, so
    Omega never publishes a record its peers would refuse: any rule broken
    (see the module docstring) raises :class:`~omega.errors.ConfigurationError`.
    """
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise ConfigurationError(f"sequence must be an integer, got {sequence!r}")
    if not 0 <= sequence <= _UINT64_MAX:
        raise ConfigurationError(f"sequence must be in 0..2**64-1, got {sequence}")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise ConfigurationError(f"expires_at must be an integer, got {expires_at!r}")
    if not 0 < expires_at <= _INT64_MAX:
        raise ConfigurationError("expires_at must be Unix milliseconds in 1..2**63-1")
    try:
        direct = [str(_as_address(value)) for value in addresses]
        relayed = [str(_as_address(value)) for value in relays]
    except InvalidAddressError as exc:
        raise ConfigurationError(f"refusing to sign a peer record: {exc.message}") from exc
    user_id = user_id_from_public_key(device.certificate.identity_key)
    body = encode_message(
        PeerRecord(
            version=PEER_RECORD_VERSION,
            user_id=user_id,
            device_key=device.device_key,
            addresses=direct,
            relays=relayed,
            mailboxes=list(mailboxes),
            sequence=sequence,
            expires_at=expires_at,
        )
    )
    signed = SignedPeerRecord(
        peer_record=body,
        signature=device.key_pair.sign(PEER_RECORD_CONTEXT + body),
        certificate=device.certificate.to_signed(),
    )
    try:
        verify_peer_record(signed, now=expires_at - 1, user_id=user_id)
    except (CryptoError, DecodeError) as exc:
        raise ConfigurationError(f"refusing to sign an invalid peer record: {exc}") from exc
    return signed


def _as_signed(data: SignedPeerRecord | bytes) -> SignedPeerRecord:
    if isinstance(data, SignedPeerRecord):
        return data
    if not isinstance(data, bytes):
        raise ConfigurationError(f"a signed peer record is bytes, not {type(data).__name__}")
    return decode_message(SignedPeerRecord, data, max_size=MAX_PEER_RECORD_SIZE)


def _claimed_user_id(body: bytes) -> str:
    """The user id a record names, read before verification only to pick the key to verify with."""
    return decode_message(PeerRecord, body).user_id


def _addresses(values: list[str], limit: int, what: str) -> tuple[Address, ...]:
    if len(values) > limit:
        raise CertificateError(
            f"peer record lists {len(values)} {what}, the maximum is {limit}",
            details={what: len(values), "limit": limit},
        )
    try:
        parsed = tuple(Address.parse(value) for value in values)
    except InvalidAddressError as exc:
        raise CertificateError(f"peer record holds an invalid {what[:-2]}: {exc.message}") from exc
    if len(set(parsed)) != len(parsed):
        raise CertificateError(f"peer record lists the same {what[:-2]} twice")
    return parsed


def _mailboxes(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_MAILBOXES:
        raise CertificateError(
            f"peer record lists {len(values)} mailboxes, the maximum is {MAX_MAILBOXES}",
            details={"mailboxes": len(values), "limit": MAX_MAILBOXES},
        )
    for url in values:
        problem = check_mailbox_url(url)
        if problem is not None:
            raise CertificateError(f"peer record holds an invalid mailbox URL: {problem}")
    if len(set(values)) != len(values):
        raise CertificateError("peer record lists the same mailbox twice")
    return tuple(values)


def verify_peer_record(
    data: SignedPeerRecord | bytes, *, now: int, user_id: str | None = None
) -> PeerRecordInfo:
    """Verify a signed peer record and return its content.

    ``data`` is the message or its encoding; ``now`` is the current time in
    Unix milliseconds; ``user_id``, when given, is the user the record must
    belong to. Raises :class:`~omega.errors.MessageDecodeError` for malformed
    or oversized bytes, :class:`~omega.errors.InvalidUserIdError` for an
    invalid user id, :class:`~omega.errors.InvalidSignatureError` when a
    signature does not verify, :class:`~omega.errors.CertificateError` when a
    rule is broken and :class:`~omega.errors.ExpiredRecordError` for an
    expired record; the module docstring lists the rules in order.
    """
    envelope = _as_signed(data)
    body = envelope.peer_record
    if len(body) > MAX_PEER_RECORD_SIZE:
        raise MessageDecodeError(
            f"peer record of {len(body)} bytes exceeds the limit of {MAX_PEER_RECORD_SIZE} bytes"
        )
    if user_id is None:
        user_id = _claimed_user_id(body)
    identity_key = public_key_from_user_id(user_id)
    canonical_user_id = user_id.lower()
    if envelope.certificate is None:
        raise CertificateError("peer record carries no device certificate")
    certificate = verify_device_certificate(envelope.certificate, identity_key=identity_key)
    verify_signature(certificate.device_key, PEER_RECORD_CONTEXT + body, envelope.signature)
    record = decode_message(PeerRecord, body)
    if record.version != PEER_RECORD_VERSION:
        raise CertificateError(
            f"peer record version {record.version} is not supported",
            details={"version": record.version},
        )
    if record.user_id != canonical_user_id:
        raise CertificateError("peer record is signed by a device of another user")
    if not hmac.compare_digest(record.device_key, certificate.device_key):
        raise CertificateError("peer record names another device than the one that signed it")
    addresses = _addresses(record.addresses, MAX_ADDRESSES, "addresses")
    relays = _addresses(record.relays, MAX_RELAYS, "relays")
    mailboxes = _mailboxes(record.mailboxes)
    if not (addresses or relays or mailboxes):
        raise CertificateError("peer record offers no address, relay or mailbox")
    if record.expires_at <= now:
        raise ExpiredRecordError(
            f"peer record of device {certificate.device_id} expired at {record.expires_at}",
            details={"expires_at": record.expires_at, "now": now},
        )
    return PeerRecordInfo(
        user_id=canonical_user_id,
        device_key=certificate.device_key,
        addresses=addresses,
        relays=relays,
        mailboxes=mailboxes,
        sequence=record.sequence,
        expires_at=record.expires_at,
        certificate=certificate,
        signed=SignedPeerRecord(
            peer_record=body, signature=envelope.signature, certificate=certificate.to_signed()
        ),
    )
