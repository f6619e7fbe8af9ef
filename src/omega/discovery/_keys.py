"""Memoised key checks: every lookup validates a user id and a device key.

Decoding a Bech32m user id and checking that a key is a valid Ed25519 point
cost about a third of a DHT lookup's CPU; both are pure functions of their
input, so their successful results are kept (bounded, least recently used
out). Failures are not cached: they raise every time.
"""

from __future__ import annotations

import functools

from omega.crypto import check_public_key
from omega.crypto.identity import public_key_from_user_id

__all__ = ["checked_device_key", "identity_key_of"]


@functools.lru_cache(maxsize=8192)
def identity_key_of(user_id: str) -> bytes:
    """The identity key ``user_id`` encodes (raises InvalidUserIdError)."""
    return public_key_from_user_id(user_id)


@functools.lru_cache(maxsize=8192)
def checked_device_key(device_key: bytes) -> bytes:
    """``device_key`` if it is a usable Ed25519 key (raises InvalidKeyError)."""
    return check_public_key(device_key)
