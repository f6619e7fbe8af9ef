"""Signed prekey records and the serialization helpers of :class:`PrekeyStore`.

Private to :mod:`omega.crypto.prekeys`, which documents the format and
re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass

from omega.crypto._ed25519 import verify_signature
from omega.crypto._kdf import KEY_SIZE, check_x25519_public_key, x25519_public
from omega.errors import MessageDecodeError
from omega.protocol import PrekeyStoreState, SignedPrekey, SignedPrekeySecret

__all__ = [
    "BASE_KEY_RECORD_SIZE",
    "MAX_BASE_KEYS_LIMIT",
    "SIGNED_PREKEY_CONTEXT",
    "SignedPrekeyEntry",
    "base_keys_from_state",
    "entry_from_state",
    "entry_to_state",
    "signed_prekey_signature_message",
]

SIGNED_PREKEY_CONTEXT = b"omega/signed-prekey/v1"
"""Domain-separation prefix of signed prekey signatures."""

MAX_BASE_KEYS_LIMIT = 20_000
"""Hard bound on recorded base keys (``PrekeyConfig.max_accepted_base_keys``)."""

BASE_KEY_RECORD_SIZE = 36
"""A recorded base key: signed_prekey_id (4, big-endian) || base_key (32)."""


def signed_prekey_signature_message(public_key: bytes, prekey_id: int, created_at: int) -> bytes:
    """The bytes the device key signs for a signed prekey (omega.crypto.prekeys explains them)."""
    return (
        SIGNED_PREKEY_CONTEXT
        + public_key
        + prekey_id.to_bytes(4, "big")
        + created_at.to_bytes(8, "big")
    )


@dataclass(slots=True)
class SignedPrekeyEntry:
    """A signed prekey with its private key, as a store holds it."""

    prekey_id: int
    private_key: bytes
    public_key: bytes
    signature: bytes
    created_at: int
    retired_at: int = 0

    def public(self) -> SignedPrekey:
        """The signed prekey as published."""
        return SignedPrekey(
            prekey_id=self.prekey_id,
            public_key=self.public_key,
            signature=self.signature,
            created_at=self.created_at,
        )


def entry_to_state(entry: SignedPrekeyEntry) -> SignedPrekeySecret:
    """The ``SignedPrekeySecret`` of an entry."""
    return SignedPrekeySecret(
        prekey_id=entry.prekey_id,
        private_key=entry.private_key,
        signature=entry.signature,
        created_at=entry.created_at,
        retired_at=entry.retired_at,
    )


def entry_from_state(
    state: SignedPrekeySecret | None, device_key: bytes, *, current: bool
) -> SignedPrekeyEntry:
    """Validate a stored signed prekey, its signature by ``device_key`` included."""
    if state is None:
        raise MessageDecodeError("prekey store state has no signed prekey")
    if len(state.private_key) != KEY_SIZE:
        raise MessageDecodeError(f"signed prekey {state.prekey_id} has a malformed private key")
    if state.created_at < 0 or state.retired_at < 0 or (current and state.retired_at):
        raise MessageDecodeError(f"signed prekey {state.prekey_id} has invalid times")
    public = x25519_public(state.private_key)
    message = signed_prekey_signature_message(public, state.prekey_id, state.created_at)
    verify_signature(device_key, message, state.signature)
    return SignedPrekeyEntry(
        state.prekey_id,
        state.private_key,
        public,
        state.signature,
        state.created_at,
        state.retired_at,
    )


def base_keys_from_state(state: PrekeyStoreState, spk_ids: list[int]) -> dict[bytes, int]:
    """Validate the packed base key records of a state (none in version 1)."""
    records = state.accepted_base_keys
    if (
        (state.version == 1 and records)
        or len(records) % BASE_KEY_RECORD_SIZE
        or len(records) > MAX_BASE_KEYS_LIMIT * BASE_KEY_RECORD_SIZE
    ):
        raise MessageDecodeError("prekey store state has malformed base key records")
    base_keys: dict[bytes, int] = {}
    for start in range(0, len(records), BASE_KEY_RECORD_SIZE):
        spk_id = int.from_bytes(records[start : start + 4], "big")
        key = check_x25519_public_key(records[start + 4 : start + BASE_KEY_RECORD_SIZE])
        if spk_id not in spk_ids or key in base_keys:
            raise MessageDecodeError("prekey store state has inconsistent base key records")
        base_keys[key] = spk_id
    return base_keys
