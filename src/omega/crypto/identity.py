"""User identities: the Ed25519 identity key and the user id derived from it.

A user *is* an Ed25519 key pair, the identity key. Everything a user's
devices do is certified, directly or through the signed device list, by this
key (see :mod:`omega.crypto.devices`).

User ids
--------
A user id is the user's 32-byte Ed25519 public identity key, encoded with
Bech32m (BIP-350) under the human-readable part ``omega``:

* ``"omega"``, the separator ``"1"``, then the key as 52 characters of the
  Bech32 alphabet ``qpzry9x8gf2tvdw0s3jn54khce6mua7l`` (256 bits regrouped
  into 5-bit values, most significant bit first, the last value padded
  with 4 zero bits), then the 6-character Bech32m checksum computed over
  the HRP and those 52 values (BIP-350 constant ``0x2bc830a3``);
* 64 characters in all. Example: the identity whose seed is 32 zero bytes
  has the public key ``3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29``
  and the user id
  ``omega18d4z00xwk6jz6c4r4rgz5mcdwdjny9thrh3y8f36cpy2rz6emg5skcfwc7``;
* the canonical form is all lowercase. Parsers accept an all-uppercase id
  (QR codes in alphanumeric mode carry uppercase) and normalise it; they
  refuse mixed case, any character outside the alphabet, a wrong prefix, a
  wrong length, a wrong checksum, non-zero padding bits, and a key that is
  not a valid Ed25519 point of the prime-order subgroup;
* Bech32m detects any error in up to 4 characters, and in particular every
  single-character substitution or typo, before a key is ever derived.

No whitespace is stripped: :func:`public_key_from_user_id` takes the id
exactly; callers that read ids typed by people strip them first (the
``omega://`` URI parser does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from omega.crypto._ed25519 import (
    PUBLIC_KEY_SIZE,
    SEED_SIZE,
    SIGNATURE_SIZE,
    Ed25519KeyPair,
    check_public_key,
    verify_signature,
)
from omega.crypto.bech32 import bech32m_decode, bech32m_encode, convert_bits
from omega.errors import DecodeError, InvalidKeyError, InvalidUserIdError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "USER_ID_HRP",
    "USER_ID_LENGTH",
    "IdentityKeyPair",
    "check_public_key",
    "public_key_from_user_id",
    "user_id_from_public_key",
    "verify_signature",
]

USER_ID_HRP = "omega"
"""Human-readable part of every user id."""

USER_ID_LENGTH = 64
"""Length of a user id: ``len("omega1")`` + 52 data characters + 6 checksum characters."""

_PREFIX = USER_ID_HRP + "1"


def user_id_from_public_key(public_key: bytes) -> str:
    """Return the canonical (lowercase) user id of an Ed25519 identity key.

    Raises :class:`~omega.errors.InvalidKeyError` if ``public_key`` is not a
    valid Ed25519 public key.
    """
    check_public_key(public_key)
    return _encode_user_id(public_key)


@functools.lru_cache(maxsize=4096)
def _encode_user_id(public_key: bytes) -> str:
    """The Bech32m encoding of a checked key, remembered: ``IdentityKeyPair.user_id``
    is asked for again and again (every envelope, every device-list check)."""
    return bech32m_encode(USER_ID_HRP, convert_bits(public_key, 8, 5, pad=True))


def public_key_from_user_id(user_id: str) -> bytes:
    """Return the 32-byte Ed25519 identity key that ``user_id`` encodes.

    Accepts the canonical lowercase form and the all-uppercase form. Raises
    :class:`~omega.errors.InvalidUserIdError` saying what is wrong: prefix,
    length, case, characters, checksum ("checksum mismatch, possibly
    mistyped"), padding, or a key that is not a valid Ed25519 point.
    """
    if not isinstance(user_id, str):
        raise InvalidUserIdError(f"a user id is a string, not {type(user_id).__name__}")
    return _decode_user_id(user_id)


@functools.lru_cache(maxsize=4096)
def _decode_user_id(user_id: str) -> bytes:
    """:func:`public_key_from_user_id` for a str; valid ids are cached (errors never are).

    Every layer checks the user ids it handles, so the same few ids are
    decoded (Bech32m plus an Ed25519 point check) over and over.
    """
    if user_id[: len(_PREFIX)].lower() != _PREFIX:
        raise InvalidUserIdError(
            f"invalid user id: it must start with {_PREFIX!r}",
            details={"reason": "prefix"},
        )
    if len(user_id) != USER_ID_LENGTH:
        raise InvalidUserIdError(
            f"invalid user id: it is {len(user_id)} characters long, expected {USER_ID_LENGTH}",
            details={"reason": "length", "length": len(user_id)},
        )
    try:
        _, data = bech32m_decode(user_id)
        public_key = bytes(convert_bits(data, 5, 8, pad=False))
    except DecodeError as exc:
        raise InvalidUserIdError(f"invalid user id: {exc.message}") from exc
    try:
        return check_public_key(public_key)
    except InvalidKeyError as exc:
        raise InvalidUserIdError(
            "invalid user id: it does not encode a valid Ed25519 public key",
            details={"reason": "key"},
        ) from exc


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class IdentityKeyPair(Ed25519KeyPair):
    """A user's Ed25519 identity key pair.

    Create one with :meth:`generate` (from an injected random source) or
    :meth:`from_seed`; sign with :meth:`sign`. ``repr`` shows the user id,
    never the seed.
    """

    @property
    def user_id(self) -> str:
        """The user id (Bech32m ``omega1...``) of this identity."""
        return user_id_from_public_key(self.public_key)

    def __repr__(self) -> str:
        return f"IdentityKeyPair(user_id={self.user_id!r})"
