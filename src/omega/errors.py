"""One exception hierarchy for the whole Omega SDK.

Every error Omega raises on purpose derives from :class:`OmegaError`, so an
application can catch everything Omega-specific with one ``except`` clause,
or pick the branch it cares about::

    OmegaError
    ├── ConfigurationError          a caller passed an invalid value (also ValueError)
    │   └── MessageTooLargeError    content over the size limit
    ├── DecodeError                 malformed bytes or text (also ValueError)
    │   ├── FrameError
    │   │   ├── FrameTooLargeError  a length prefix announces more than the limit
    │   │   └── MalformedFrameError a length prefix is not a valid varint
    │   ├── MessageDecodeError      bytes are not a valid protobuf message
    │   ├── InvalidUserIdError      a user id fails its format or checksum
    │   ├── InvalidUriError         an ``omega://`` URI is malformed
    │   ├── InvalidAddressError     a transport address is malformed
    │   ├── InvalidQrPayloadError   a scanned QR payload is malformed
    │   ├── CommandSyntaxError      a bot command's text or arguments are malformed
    │   └── InvalidLinkCodeError    a device link code is malformed or mistyped
    ├── CryptoError
    │   ├── InvalidKeyError         a key has the wrong size or is unusable
    │   ├── InvalidSignatureError   a signature does not verify
    │   ├── DecryptionError         an AEAD refused the ciphertext
    │   │   └── WrongPassphraseError
    │   ├── CertificateError        a device certificate or device list is invalid
    │   │   ├── StaleDeviceListError   older than the one already accepted
    │   │   ├── RevokedDeviceError     the device has been revoked
    │   │   ├── ExpiredRecordError     a signed peer record is past its expiry
    │   │   └── StaleRecordError       a signed peer record older than the one held
    │   └── DeviceLinkError         a device link exchange failed (forged code or transcript)
    │       └── LinkCodeExpiredError   the link code expired or was used already
    ├── ProtocolError               a protocol rule was broken
    │   ├── LocalProtocolError      ... by our caller (wrong state, bad command)
    │   │   ├── UnknownContactError  the user is not a contact (or is blocked)
    │   │   ├── GroupPermissionError the local member may not make that group change
    │   │   └── UnknownGroupError    the client is not in that group
    │   └── RemoteProtocolError     ... by the remote peer
    │       ├── DuplicateMessageError        a message's key is spent (replay)
    │       ├── TooManySkippedMessagesError  a message skips too many keys
    │       ├── UnknownPrekeyError           a prekey message names a prekey we lack
    │       │   └── PrekeyReusedError        ... a one-time prekey already consumed
    │       ├── UnknownSenderKeyError        a group message names a sender key we lack
    │       │   └── StaleSenderKeyError      ... one its sender replaced after a removal
    │       ├── InvalidEnvelopeError         a message envelope fails its checks
    │       ├── InvalidGroupOperationError   a group operation is malformed, forged or misplaced
    │       │   └── UnauthorizedGroupOperationError  its author's role does not allow it
    │       └── InvalidSyncUpdateError       a sync update is malformed, too large or off-schema
    ├── TransportError              a network operation failed
    │   ├── DialError                   no connection could be made to an address
    │   │   └── RelayRefusedError           a relay, or the peer behind it, refused
    │   ├── ConnectionClosedError       the stream ended cleanly, or was closed by us
    │   ├── ConnectionLostError         the connection broke: reset, truncated, aborted
    │   ├── TransportTimeoutError       a dial, handshake or idle timeout expired
    │   ├── ConnectionLimitError        a limit on connections or handshakes was reached
    │   ├── SecureChannelError          an established secure channel got a bad record
    │   ├── HandshakeError              the secure-channel handshake failed
    │   │   └── PeerIdentityMismatchError  the peer is not the user or device expected
    │   ├── DiscoveryError              the DHT could not be joined or would not store a record
    │   ├── ServerUnavailableError      a server cannot be reached or failed; retry later
    │   └── RequestRejectedError        a server refused a request (its reason in ``reason``)
    │       ├── AuthenticationFailedError  a forged, expired or replayed auth challenge
    │       ├── QuotaExceededError         a size or count quota is exhausted
    │       └── RateLimitedError           too many requests from one source
    └── StorageError                a store failed, or holds data it cannot read
        └── CorruptDataError

Adapters that call third-party libraries translate their exceptions in one
place with :func:`map_exceptions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

__all__ = [
    "AuthenticationFailedError",
    "CertificateError",
    "CommandSyntaxError",
    "ConfigurationError",
    "ConnectionClosedError",
    "ConnectionLimitError",
    "ConnectionLostError",
    "CorruptDataError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "DeviceLinkError",
    "DialError",
    "DiscoveryError",
    "DuplicateMessageError",
    "ExpiredRecordError",
    "FrameError",
    "FrameTooLargeError",
    "GroupPermissionError",
    "HandshakeError",
    "InvalidAddressError",
    "InvalidEnvelopeError",
    "InvalidGroupOperationError",
    "InvalidKeyError",
    "InvalidLinkCodeError",
    "InvalidQrPayloadError",
    "InvalidSignatureError",
    "InvalidSyncUpdateError",
    "InvalidUriError",
    "InvalidUserIdError",
    "LinkCodeExpiredError",
    "LocalProtocolError",
    "MalformedFrameError",
    "MessageDecodeError",
    "MessageTooLargeError",
    "OmegaError",
    "PeerIdentityMismatchError",
    "PrekeyReusedError",
    "QuotaExceededError",
    "RateLimitedError",
    "ProtocolError",
    "RelayRefusedError",
    "RemoteProtocolError",
    "RequestRejectedError",
    "RevokedDeviceError",
    "SecureChannelError",
    "ServerUnavailableError",
    "StaleDeviceListError",
    "StaleRecordError",
    "StaleSenderKeyError",
    "StorageError",
    "TooManySkippedMessagesError",
    "TransportError",
    "TransportTimeoutError",
    "UnauthorizedGroupOperationError",
    "UnknownContactError",
    "UnknownGroupError",
    "UnknownPrekeyError",
    "UnknownSenderKeyError",
    "WrongPassphraseError",
    "map_exceptions",
]


class OmegaError(Exception):
    """Root of every error Omega raises on purpose.

    ``code`` is a stable, machine-readable name for the kind of error (it does
    not change when the message is reworded); ``details`` holds the values
    that explain this occurrence.
    """

    code: ClassVar[str] = "omega_error"

    def __init__(self, message: str, *, details: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: Mapping[str, object] = dict(details or {})


class ConfigurationError(OmegaError, ValueError):
    """A caller passed a value that a component cannot work with."""

    code = "configuration_error"


class MessageTooLargeError(ConfigurationError):
    """A message's content is larger than the limit; ``details`` has ``size`` and ``limit``."""

    code = "message_too_large"


class DecodeError(OmegaError, ValueError):
    """Bytes or text from the network, a file or a user are malformed."""

    code = "decode_error"


class FrameError(DecodeError):
    """A byte stream does not hold valid length-prefixed frames."""

    code = "frame_error"


class FrameTooLargeError(FrameError):
    """A length prefix announces a frame larger than the configured maximum."""

    code = "frame_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"frame of {size} bytes exceeds the maximum of {limit} bytes",
            details={"size": size, "limit": limit},
        )
        self.size = size
        self.limit = limit


class MalformedFrameError(FrameError):
    """A length prefix is not a valid minimal varint."""

    code = "malformed_frame"


class MessageDecodeError(DecodeError):
    """Bytes are not a valid encoding of the expected protobuf message."""

    code = "message_decode_error"


class InvalidUserIdError(DecodeError):
    """A user id is malformed or its checksum does not match."""

    code = "invalid_user_id"


class InvalidUriError(DecodeError):
    """An ``omega://`` URI is malformed."""

    code = "invalid_uri"


class InvalidAddressError(DecodeError):
    """A transport address (``/ip4/127.0.0.1/tcp/4001``, ...) is malformed."""

    code = "invalid_address"


class InvalidQrPayloadError(DecodeError):
    """A QR payload (safety number or contact) is malformed."""

    code = "invalid_qr_payload"


class CommandSyntaxError(DecodeError):
    """A bot command's text or arguments are malformed (unbalanced quotes, a bad value)."""

    code = "command_syntax"


class InvalidLinkCodeError(DecodeError):
    """A device link code (docs/multi-device.md) is malformed or mistyped."""

    code = "invalid_link_code"


class CryptoError(OmegaError):
    """A cryptographic check failed or a key is unusable."""

    code = "crypto_error"


class InvalidKeyError(CryptoError):
    """A key has the wrong length or is otherwise unusable."""

    code = "invalid_key"


class InvalidSignatureError(CryptoError):
    """A signature does not verify against the expected key."""

    code = "invalid_signature"


class DecryptionError(CryptoError):
    """An authenticated cipher refused a ciphertext (wrong key or tampered data)."""

    code = "decryption_failed"


class WrongPassphraseError(DecryptionError):
    """A passphrase-protected file could not be opened with the given passphrase."""

    code = "wrong_passphrase"


class CertificateError(CryptoError):
    """A device certificate or signed device list is invalid."""

    code = "certificate_error"


class StaleDeviceListError(CertificateError):
    """A device list is older than (or as old as) the one already accepted."""

    code = "stale_device_list"


class RevokedDeviceError(CertificateError):
    """A device has been revoked by its user."""

    code = "revoked_device"


class ExpiredRecordError(CertificateError):
    """A signed peer record is past its expiry time."""

    code = "expired_record"


class StaleRecordError(CertificateError):
    """A signed peer record is not newer than the one already held for the device."""

    code = "stale_record"


class DeviceLinkError(CryptoError):
    """A device link exchange failed: a forged or mistyped code, a tampered message,
    a certificate or device list that does not match (docs/multi-device.md)."""

    code = "device_link_failed"


class LinkCodeExpiredError(DeviceLinkError):
    """A device link code is past its expiry, or was used already (it is single-use)."""

    code = "link_code_expired"


class ProtocolError(OmegaError):
    """A rule of the Omega protocol was broken."""

    code = "protocol_error"


class LocalProtocolError(ProtocolError):
    """Our caller asked for something the protocol does not allow now."""

    code = "local_protocol_error"


class RemoteProtocolError(ProtocolError):
    """The remote peer sent something the protocol does not allow."""

    code = "remote_protocol_error"


class UnknownContactError(LocalProtocolError):
    """The operation needs a contact the client does not have, or has blocked.

    ``details["user_id"]`` names the user.
    """

    code = "unknown_contact"


class DuplicateMessageError(RemoteProtocolError):
    """A ratchet or group message whose key is already spent: a replay, or a key evicted long ago.

    The message was decrypted before (message keys are deleted once used),
    or its skipped-message key was evicted under the per-session or
    per-chain bound, or it is an initial message accepted already.
    """

    code = "duplicate_message"


class TooManySkippedMessagesError(RemoteProtocolError):
    """A ratchet or group message would skip more message keys than the chain allows."""

    code = "too_many_skipped_messages"


class UnknownPrekeyError(RemoteProtocolError):
    """A prekey message names a prekey this device does not hold (any more)."""

    code = "unknown_prekey"


class PrekeyReusedError(UnknownPrekeyError):
    """A prekey message names a one-time prekey that was already consumed."""

    code = "prekey_reused"


class UnknownSenderKeyError(RemoteProtocolError):
    """A group message names a sender key this device does not hold (yet, or any more).

    Either its distribution has not arrived, or the key was rotated away or
    forgotten; ``details["key_id"]`` names it.
    """

    code = "unknown_sender_key"


class StaleSenderKeyError(UnknownSenderKeyError):
    """A group message under a sender key of an epoch before the group's last removal.

    Its sender has already distributed a key for the current epoch (it saw
    the removal), so the old key is no longer accepted (docs/groups.md,
    "Messaging"); ``details["key_id"]`` names it.
    """

    code = "stale_sender_key"


class InvalidEnvelopeError(RemoteProtocolError):
    """A received message envelope failed its checks (docs/client-protocol.md).

    Addressed to another device, malformed ids or keys, clear-text metadata
    set, oversized, or a signature that does not verify;
    ``details["reason"]`` says which.
    """

    code = "invalid_envelope"


class GroupPermissionError(LocalProtocolError):
    """The local member may not make that group change (docs/groups.md, "Rules").

    Not a member, a role too low for the group's permissions, a target that
    is not a member or outranks the author, or a full group;
    ``details["reason"]`` says which.
    """

    code = "group_permission_denied"


class UnknownGroupError(LocalProtocolError):
    """The client holds no group with that id (never joined, or its state is gone).

    ``details["group_id"]`` names the group.
    """

    code = "unknown_group"


class InvalidGroupOperationError(RemoteProtocolError):
    """A received group operation failed its checks (docs/groups.md, "Receiving").

    Malformed or oversized, a forged signature or certificate, another
    group's operation, a second genesis, or too many held operations;
    ``details["reason"]`` says which. The group state is unchanged.
    """

    code = "invalid_group_operation"


class UnauthorizedGroupOperationError(InvalidGroupOperationError):
    """A group operation its author was not allowed to make at its causal position.

    A non-member, a role below the group's permissions, a target that
    outranks the author, or an add beyond the member limit;
    ``details["reason"]`` says which. The group state is unchanged.
    """

    code = "unauthorized_group_operation"


class InvalidSyncUpdateError(RemoteProtocolError):
    """A sync update from one of our devices was refused: malformed, too large, or
    breaking the document schema (docs/multi-device.md); ``details["reason"]`` says
    which. The local documents are unchanged."""

    code = "invalid_sync_update"


class TransportError(OmegaError):
    """A network operation failed."""

    code = "transport_error"


class DialError(TransportError):
    """No connection could be made to an address (refused, unreachable, unresolvable)."""

    code = "dial_failed"


class RelayRefusedError(DialError):
    """A relay refused the registration or the stream, or the device behind it refused.

    ``details["reason"]`` holds the relay's reason name (``"not_registered"``,
    ``"rate_limited"``, ...; docs/transports.md, "The relay protocol").
    """

    code = "relay_refused"


class ConnectionClosedError(TransportError):
    """The connection's stream of frames has ended.

    Raised by ``receive_frame`` once the peer has finished sending (a clean
    end of stream), and by any operation on a connection we closed ourselves.
    """

    code = "connection_closed"


class ConnectionLostError(TransportError):
    """The connection broke: reset by the peer, cut mid-frame, or ended unauthenticated."""

    code = "connection_lost"


class TransportTimeoutError(TransportError):
    """A dial, handshake, idle or keep-alive timeout expired."""

    code = "transport_timeout"


class ConnectionLimitError(TransportError):
    """A limit on concurrent connections or handshakes was reached."""

    code = "connection_limit"


class SecureChannelError(TransportError):
    """An established secure channel received a record that fails authentication or its rules.

    The record was tampered with, forged, replayed or reordered, or breaks
    the channel's record format; the channel is unusable afterwards.
    """

    code = "secure_channel_error"


class HandshakeError(TransportError):
    """The secure-channel handshake failed: malformed, forged or unverifiable messages."""

    code = "handshake_failed"


class PeerIdentityMismatchError(HandshakeError):
    """The peer proved an identity, but not the user (or device) the dialer expected."""

    code = "peer_identity_mismatch"


class DiscoveryError(TransportError):
    """The DHT could not be joined, or no reachable node would store a record."""

    code = "discovery_failed"


class ServerUnavailableError(TransportError):
    """A server could not be reached, timed out, or failed on its side (retry later)."""

    code = "server_unavailable"


class RequestRejectedError(TransportError):
    """A server refused a request; ``reason`` is the machine-readable code it gave."""

    code = "request_rejected"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.reason = reason if reason is not None else self.code


class AuthenticationFailedError(RequestRejectedError):
    """An authentication challenge was forged, expired, replayed or signed by another key."""

    code = "authentication_failed"


class QuotaExceededError(RequestRejectedError):
    """A size or count quota is exhausted (a full mailbox, an oversized payload)."""

    code = "quota_exceeded"


class RateLimitedError(RequestRejectedError):
    """One source sent more requests than its rate limit allows; retry later."""

    code = "rate_limited"


class StorageError(OmegaError):
    """A key or message store failed."""

    code = "storage_error"


class CorruptDataError(StorageError):
    """A store holds data that cannot be read back."""

    code = "corrupt_data"


@contextmanager
def map_exceptions(
    mapping: Mapping[type[BaseException], type[OmegaError]], message: str
) -> Iterator[None]:
    """Translate third-party exceptions into Omega errors in one place.

    The first entry of ``mapping`` whose key matches the raised exception
    decides the Omega error raised instead; the original is chained as
    ``__cause__``. Exceptions that match no entry pass through unchanged.

    >>> with map_exceptions({KeyError: StorageError}, "lookup failed"):
    ...     {}["x"]
    Traceback (most recent call last):
    omega.errors.StorageError: lookup failed: 'x'
    """
    try:
        yield
    except OmegaError:
        raise
    except BaseException as exc:
        for source, target in mapping.items():
            if isinstance(exc, source):
                raise target(f"{message}: {exc}") from exc
        raise
