"""One exception hierarchy for the whole Omega SDK.

Every error Omega raises on purpose derives from :class:`OmegaError`, so an
application can catch everything Omega-specific with one ``except`` clause,
or pick the branch it cares about::

    OmegaError
    ├── ConfigurationError          a caller passed an invalid value (also ValueError)
    ├── DecodeError                 malformed bytes or text (also ValueError)
    │   ├── FrameError
    │   │   ├── FrameTooLargeError  a length prefix announces more than the limit
    │   │   └── MalformedFrameError a length prefix is not a valid varint
    │   ├── MessageDecodeError      bytes are not a valid protobuf message
    │   ├── InvalidUserIdError      a user id fails its format or checksum
    │   ├── InvalidUriError         an ``omega://`` URI is malformed
    │   └── InvalidQrPayloadError   a scanned QR payload is malformed
    ├── CryptoError
    │   ├── InvalidKeyError         a key has the wrong size or is unusable
    │   ├── InvalidSignatureError   a signature does not verify
    │   ├── DecryptionError         an AEAD refused the ciphertext
    │   │   └── WrongPassphraseError
    │   └── CertificateError        a device certificate or device list is invalid
    │       ├── StaleDeviceListError   older than the one already accepted
    │       └── RevokedDeviceError     the device has been revoked
    ├── ProtocolError               a protocol rule was broken
    │   ├── LocalProtocolError      ... by our caller (wrong state, bad command)
    │   └── RemoteProtocolError     ... by the remote peer
    ├── TransportError              a network operation failed
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
    "CertificateError",
    "ConfigurationError",
    "CorruptDataError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "FrameError",
    "FrameTooLargeError",
    "InvalidKeyError",
    "InvalidQrPayloadError",
    "InvalidSignatureError",
    "InvalidUriError",
    "InvalidUserIdError",
    "LocalProtocolError",
    "MalformedFrameError",
    "MessageDecodeError",
    "OmegaError",
    "ProtocolError",
    "RemoteProtocolError",
    "RevokedDeviceError",
    "StaleDeviceListError",
    "StorageError",
    "TransportError",
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


class InvalidQrPayloadError(DecodeError):
    """A QR payload (safety number or contact) is malformed."""

    code = "invalid_qr_payload"


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


class ProtocolError(OmegaError):
    """A rule of the Omega protocol was broken."""

    code = "protocol_error"


class LocalProtocolError(ProtocolError):
    """Our caller asked for something the protocol does not allow now."""

    code = "local_protocol_error"


class RemoteProtocolError(ProtocolError):
    """The remote peer sent something the protocol does not allow."""

    code = "remote_protocol_error"


class TransportError(OmegaError):
    """A network operation failed."""

    code = "transport_error"


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
