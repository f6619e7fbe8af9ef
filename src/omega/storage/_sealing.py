"""At-rest encryption of key store values (see :mod:`omega.storage.sqlite`).

Key schedule, from a 32-byte store key ``K``:

* ``id_key  = HKDF-SHA256(K, salt=none, info=b"omega/keystore/v1/ids", 32)``
* ``box_key = HKDF-SHA256(K, salt=none, info=b"omega/keystore/v1/values", 32)``

A row identifier ``x`` of table ``t`` is stored as
``BLAKE2b-256(x, key=id_key, person=b"omega-keystore", salt=t padded)``
(libsodium's keyed generic hash); a value ``v`` of column ``c`` in row ``r``
as ``nonce(24) || XChaCha20-Poly1305(box_key, nonce, v, ad=b"omega/keystore/v1"
|| c || 0x00 || r)``. A passphrase becomes ``K`` with Argon2id (16-byte salt,
opslimit 3, memlimit 64 MiB, stored in the file).

:data:`PLAIN` is the identity sealer of unencrypted stores.
"""

from __future__ import annotations

import hmac
import unicodedata

import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.pwhash
import nacl.utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from omega.errors import ConfigurationError, CorruptDataError, WrongPassphraseError

__all__ = ["PLAIN", "Sealer", "derive_store_key", "new_kdf_parameters"]

_AD_PREFIX = b"omega/keystore/v1"
_NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_KEY_CHECK_PLAINTEXT = b"omega key store"
_OPSLIMIT = 3
_MEMLIMIT = 64 * 1024 * 1024
_MAX_OPSLIMIT = 10
_MAX_MEMLIMIT = 1024 * 1024 * 1024
_SALT_SIZE = nacl.pwhash.argon2id.SALTBYTES


def _subkey(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key)


class Sealer:
    """Seals values and hides row identifiers under one store key (``None``: plain)."""

    def __init__(self, key: bytes | None) -> None:
        self._encrypted = key is not None
        self._id_key = _subkey(key, b"omega/keystore/v1/ids") if key is not None else b""
        self._box_key = _subkey(key, b"omega/keystore/v1/values") if key is not None else b""

    def row_id(self, table: str, raw: bytes) -> bytes:
        """How the identifier ``raw`` of ``table`` is stored."""
        if not self._encrypted:
            return raw
        salt = table.encode("ascii")[:16].ljust(16, b"\x00")
        return nacl.hash.blake2b(
            raw,
            digest_size=32,
            key=self._id_key,
            salt=salt,
            person=b"omega-keystore",
            encoder=nacl.encoding.RawEncoder,
        )

    def seal(self, column: str, row_id: bytes, value: bytes) -> bytes:
        """How ``value`` of ``column`` in row ``row_id`` is stored."""
        if not self._encrypted:
            return value
        nonce = nacl.utils.random(_NONCE_SIZE)
        sealed: bytes = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            value, _associated_data(column, row_id), nonce, self._box_key
        )
        return nonce + sealed

    def open(self, column: str, row_id: bytes, stored: bytes) -> bytes:
        """The value :meth:`seal` stored; CorruptDataError if it was altered or moved."""
        stored = bytes(stored)
        if not self._encrypted:
            return stored
        try:
            opened: bytes = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                stored[_NONCE_SIZE:],
                _associated_data(column, row_id),
                stored[:_NONCE_SIZE],
                self._box_key,
            )
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise CorruptDataError(
                f"a stored {column} value fails authentication (altered or moved)",
                details={"column": column},
            ) from exc
        return opened

    def key_check(self) -> bytes:
        """A record that tells, on reopening, whether the right key was given."""
        return self.seal("meta/key_check", b"", _KEY_CHECK_PLAINTEXT)

    def check_key(self, stored: bytes) -> None:
        """Raise WrongPassphraseError unless ``stored`` came from :meth:`key_check` of this key."""
        try:
            opened = self.open("meta/key_check", b"", stored)
        except CorruptDataError as exc:
            raise WrongPassphraseError("wrong key or passphrase for this key store") from exc
        if not hmac.compare_digest(opened, _KEY_CHECK_PLAINTEXT):
            raise WrongPassphraseError("wrong key or passphrase for this key store")


PLAIN = Sealer(None)
"""The sealer of unencrypted stores: identifiers and values as they are."""


def _associated_data(column: str, row_id: bytes) -> bytes:
    return _AD_PREFIX + column.encode("ascii") + b"\x00" + row_id


def new_kdf_parameters() -> bytes:
    """Fresh Argon2id parameters: salt (16) || opslimit (8, BE) || memlimit (8, BE)."""
    salt = nacl.utils.random(_SALT_SIZE)
    return salt + _OPSLIMIT.to_bytes(8, "big") + _MEMLIMIT.to_bytes(8, "big")


def derive_store_key(passphrase: str, parameters: bytes) -> bytes:
    """The 32-byte store key for ``passphrase`` under stored Argon2id ``parameters``."""
    if len(parameters) != _SALT_SIZE + 16:
        raise CorruptDataError("the key store's passphrase parameters are malformed")
    salt = parameters[:_SALT_SIZE]
    opslimit = int.from_bytes(parameters[_SALT_SIZE : _SALT_SIZE + 8], "big")
    memlimit = int.from_bytes(parameters[_SALT_SIZE + 8 :], "big")
    if not 1 <= opslimit <= _MAX_OPSLIMIT or not 8192 <= memlimit <= _MAX_MEMLIMIT:
        raise CorruptDataError("the key store's passphrase parameters are out of bounds")
    password = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    if not password:
        raise ConfigurationError("the key store passphrase must not be empty")
    key: bytes = nacl.pwhash.argon2id.kdf(32, password, salt, opslimit=opslimit, memlimit=memlimit)
    return key
