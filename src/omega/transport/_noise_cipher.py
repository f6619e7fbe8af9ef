"""Noise's CipherState and SymmetricState for ``25519_ChaChaPoly_SHA256``, sans I/O.

Implements sections 4 (crypto functions), 5.1 (CipherState) and 5.2
(SymmetricState) of the Noise Protocol Framework, revision 34, on the
primitives of ``cryptography``: X25519 for DH, ChaCha20-Poly1305 (RFC 8439)
for the AEAD with the nonce as 32 zero bits then the 64-bit counter in
little-endian, SHA-256 for HASH, and RFC 5869 HKDF-SHA256 with the chaining
key as salt and an empty info, which is exactly Noise's ``HKDF`` (its
outputs are HKDF's first blocks). Nothing here composes a handshake; that is
:mod:`omega.transport.noise`.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from omega.crypto.random import RandomSource, random_bytes
from omega.errors import (
    CryptoError,
    DecryptionError,
    InvalidKeyError,
    LocalProtocolError,
    OmegaError,
    map_exceptions,
)

__all__ = [
    "DH_LENGTH",
    "HASH_LENGTH",
    "KEY_LENGTH",
    "MAX_NONCE",
    "TAG_LENGTH",
    "CipherState",
    "SymmetricState",
    "dh",
    "generate_private_key",
    "public_key_of",
]

DH_LENGTH: Final = 32
"""DHLEN: bytes of an X25519 public key and of a DH output."""
HASH_LENGTH: Final = 32
"""HASHLEN of SHA-256."""
KEY_LENGTH: Final = 32
"""Bytes of a ChaCha20-Poly1305 key."""
TAG_LENGTH: Final = 16
"""Bytes the AEAD adds to every ciphertext."""
MAX_NONCE: Final = 2**64 - 1
"""Reserved by Noise for REKEY: no message is ever encrypted with it."""

# The one translation of this module's third-party failures.
_AEAD_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {InvalidTag: DecryptionError}
_DH_ERRORS: Final[dict[type[BaseException], type[OmegaError]]] = {ValueError: InvalidKeyError}


def generate_private_key(rng: RandomSource) -> bytes:
    """GENERATE_KEYPAIR: 32 random bytes, an X25519 private key (clamped when used)."""
    return random_bytes(rng, DH_LENGTH)


def public_key_of(private_key: bytes) -> bytes:
    """The 32-byte X25519 public key of ``private_key``."""
    with map_exceptions(_DH_ERRORS, "unusable X25519 private key"):
        return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def dh(private_key: bytes, public_key: bytes) -> bytes:
    """DH: the X25519 shared secret.

    Raises :class:`~omega.errors.InvalidKeyError` for a public key of small
    order, whose output would be all zeros (Noise section 12.1 allows
    refusing it; ``cryptography`` does).
    """
    with map_exceptions(_DH_ERRORS, "X25519 refused the peer's public key"):
        peer = X25519PublicKey.from_public_bytes(public_key)
        return X25519PrivateKey.from_private_bytes(private_key).exchange(peer)


def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


_MAX_NONCE_BYTES: Final = _nonce(MAX_NONCE)
_ZEROS: Final = bytes(32)


class CipherState:
    """Noise section 5.1: a key ``k`` (or none) and the nonce ``n`` of its next message."""

    __slots__ = ("_aead", "_key", "nonce")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.nonce = 0
        """``n``: the nonce the next message uses; it only ever grows."""

    @property
    def has_key(self) -> bool:
        """HasKey()."""
        return self._aead is not None

    def encrypt_with_ad(self, associated_data: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd: AEAD-encrypt under ``(k, n)``, then ``n += 1``; identity without a key.

        Raises :class:`~omega.errors.LocalProtocolError` instead of ever
        reaching the reserved nonce 2**64-1.
        """
        if self._aead is None:
            return plaintext
        if self.nonce >= MAX_NONCE:
            raise LocalProtocolError("Noise nonce space exhausted: the channel must be replaced")
        ciphertext = self._aead.encrypt(_nonce(self.nonce), plaintext, associated_data)
        self.nonce += 1
        return ciphertext

    def decrypt_with_ad(self, associated_data: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd: ``n`` grows only when the ciphertext authenticates.

        Raises :class:`~omega.errors.DecryptionError` for a forged or
        tampered ciphertext, and :class:`~omega.errors.CryptoError` when the
        nonce space is exhausted.
        """
        if self._aead is None:
            return ciphertext
        if self.nonce >= MAX_NONCE:
            raise CryptoError("Noise nonce space exhausted")
        with map_exceptions(_AEAD_ERRORS, "message failed authentication"):
            plaintext = self._aead.decrypt(_nonce(self.nonce), ciphertext, associated_data)
        self.nonce += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): ``k = REKEY(k)``, the first 32 bytes of ENCRYPT(k, 2**64-1, "", zeros(32)).

        The nonce is left as it is (Noise section 11.3), so ``(k, n)`` pairs
        never repeat across rekeys either.
        """
        if self._aead is None:
            raise LocalProtocolError("cannot rekey a CipherState without a key")
        self._key = self._aead.encrypt(_MAX_NONCE_BYTES, _ZEROS, b"")[:KEY_LENGTH]
        self._aead = ChaCha20Poly1305(self._key)


def _hkdf(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """Noise's HKDF(ck, ikm, 2) as RFC 5869 HKDF-SHA256(salt=ck, info="")."""
    output = HKDF(
        algorithm=hashes.SHA256(), length=2 * HASH_LENGTH, salt=chaining_key, info=b""
    ).derive(input_key_material)
    return output[:HASH_LENGTH], output[HASH_LENGTH:]


class SymmetricState:
    """Noise section 5.2: the chaining key ``ck``, the handshake hash ``h`` and a CipherState."""

    __slots__ = ("_chaining_key", "_cipher", "_hash")

    def __init__(self, protocol_name: bytes) -> None:
        """InitializeSymmetric(protocol_name)."""
        if len(protocol_name) <= HASH_LENGTH:
            self._hash = protocol_name.ljust(HASH_LENGTH, b"\x00")
        else:
            self._hash = hashlib.sha256(protocol_name).digest()
        self._chaining_key = self._hash
        self._cipher = CipherState()

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): ``h``, unique to this handshake (a channel binding)."""
        return self._hash

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey: ``ck, temp_k = HKDF(ck, ikm, 2)``; InitializeKey(temp_k)."""
        self._chaining_key, temp_key = _hkdf(self._chaining_key, input_key_material)
        self._cipher = CipherState(temp_key)

    def mix_hash(self, data: bytes) -> None:
        """MixHash: ``h = HASH(h || data)``."""
        self._hash = hashlib.sha256(self._hash + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash: encrypt with ``h`` as associated data, then mix the ciphertext."""
        ciphertext = self._cipher.encrypt_with_ad(self._hash, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash; raises :class:`~omega.errors.DecryptionError` for a bad tag."""
        plaintext = self._cipher.decrypt_with_ad(self._hash, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the initiator-to-responder and responder-to-initiator CipherStates."""
        first, second = _hkdf(self._chaining_key, b"")
        return CipherState(first), CipherState(second)
