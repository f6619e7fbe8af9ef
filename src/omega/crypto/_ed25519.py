"""Ed25519 key pairs and signature checks shared by identities and devices.

Everything here is a thin layer over libsodium (through PyNaCl): key
derivation from a 32-byte seed (``crypto_sign_seed_keypair``), signing
(``crypto_sign``) and verification (``crypto_sign_open``, libsodium's
``crypto_sign_verify_detached`` on a combined buffer). Public keys received
from elsewhere must additionally pass ``crypto_core_ed25519_is_valid_point``:
a canonical encoding of a point in the prime-order subgroup that is not of
small order.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Self

import nacl.bindings
import nacl.exceptions

from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import InvalidKeyError, InvalidSignatureError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Ed25519KeyPair",
    "check_public_key",
    "verify_signature",
]

PUBLIC_KEY_SIZE = 32
"""Length of an Ed25519 public key, in bytes."""

SEED_SIZE = 32
"""Length of the secret seed an Ed25519 key pair is derived from, in bytes."""

SIGNATURE_SIZE = 64
"""Length of an Ed25519 signature, in bytes."""


def check_public_key(public_key: bytes) -> bytes:
    """Return ``public_key`` if it is a usable Ed25519 public key.

    Raises :class:`~omega.errors.InvalidKeyError` when it is not 32 bytes, or
    is not the canonical encoding of a point of the prime-order subgroup, or
    is a small-order point (such keys let several messages share one
    signature).
    """
    if not isinstance(public_key, bytes):
        raise InvalidKeyError(f"an Ed25519 public key is bytes, not {type(public_key).__name__}")
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidKeyError(
            f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}",
            details={"size": len(public_key)},
        )
    if not _is_valid_point(public_key):
        raise InvalidKeyError("not a valid Ed25519 public key (invalid or small-order point)")
    return public_key


@functools.lru_cache(maxsize=4096)
def _is_valid_point(public_key: bytes) -> bool:
    """libsodium's point check (~60-100 µs), remembered: the same few keys of a
    device's contacts are checked again with every certificate and signature."""
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(public_key))


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Check that ``signature`` is ``public_key``'s Ed25519 signature of ``message``.

    Raises :class:`~omega.errors.InvalidKeyError` for an unusable key (see
    :func:`check_public_key`) and :class:`~omega.errors.InvalidSignatureError`
    when the signature is malformed or does not verify. Returns nothing:
    reaching the next line means the signature is good.
    """
    check_public_key(public_key)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        size = len(signature) if isinstance(signature, bytes) else None
        raise InvalidSignatureError(
            f"an Ed25519 signature is {SIGNATURE_SIZE} bytes", details={"size": size}
        )
    tag = hashlib.sha256(b"%b%b%b" % (public_key, signature, message)).digest()
    if tag in _verified:
        return
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError as exc:
        raise InvalidSignatureError("signature does not verify") from exc
    if len(_verified) >= _VERIFIED_SIZE:
        with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
            _verified.popitem(last=False)  # forget the oldest (atomic, unlike iterating)
    _verified[tag] = None


_VERIFIED_SIZE = 4096
# SHA-256(public key || signature || message) of the last signatures that verified
# (keys and signatures have fixed sizes, so the concatenation is unambiguous). The same
# device lists, certificates and signed prekeys arrive again and again; a hash (~1 µs)
# replaces libsodium's verification (~80 µs). Failures are never remembered.
_verified: OrderedDict[bytes, None] = OrderedDict()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Ed25519KeyPair:
    """An Ed25519 signing key pair derived from a 32-byte secret seed.

    Instances are immutable. ``repr`` never shows the seed; equality compares
    seeds in constant time and requires the same concrete class.
    """

    seed: bytes
    """The 32-byte secret seed. Treat as secret: it is the whole private key."""

    public_key: bytes = field(init=False)
    """The 32-byte Ed25519 public key."""

    _secret_key: bytes = field(init=False)

    def __post_init__(self) -> None:
        seed: object = self.seed
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            size = len(seed) if isinstance(seed, bytes) else type(seed).__name__
            raise InvalidKeyError(
                f"an Ed25519 seed is {SEED_SIZE} bytes, got {size}", details={"size": size}
            )
        public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "_secret_key", secret_key)

    @classmethod
    def generate(cls, rng: RandomSource = system_random) -> Self:
        """Create a new key pair from 32 bytes of ``rng``."""
        return cls(random_bytes(rng, SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        """Rebuild the key pair derived from ``seed``.

        Raises :class:`~omega.errors.InvalidKeyError` unless ``seed`` is 32 bytes.
        """
        return cls(seed)

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``."""
        signed: bytes = nacl.bindings.crypto_sign(data, self._secret_key)
        return signed[:SIGNATURE_SIZE]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Ed25519KeyPair):
            return NotImplemented
        return hmac.compare_digest(self.seed, other.seed)

    def __hash__(self) -> int:
        return hash((type(self), self.public_key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public_key={self.public_key.hex()!r})"
