"""The symmetric core of Sender Keys: chain steps, message layout, chain state.

Private to :mod:`omega.crypto.sender_keys`, which documents the protocol.
Everything here composes library primitives: the chain step is
:func:`omega.crypto._kdf.kdf_ck` (HMAC-SHA256 with 0x01 and 0x02, as in the
Double Ratchet), the message key expands with pyca/cryptography's HKDF, and
messages are sealed with its AES-256-GCM. docs/crypto.md ("Sender Keys")
gives every label and layout below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omega.crypto import _symmetric
from omega.crypto._ed25519 import check_public_key
from omega.crypto._kdf import (
    KEY_SIZE,
    SENDER_KEY_AD_CONTEXT,
    SENDER_KEY_MESSAGE_INFO,
    SENDER_KEY_SIGNATURE_CONTEXT,
)
from omega.crypto._symmetric import kdf_ck
from omega.errors import (
    ConfigurationError,
    DuplicateMessageError,
    MessageDecodeError,
    TooManySkippedMessagesError,
)
from omega.protocol import SenderKeyChainState

__all__ = [
    "ASSOCIATED_DATA_CONTEXT",
    "MAX_GROUP_ID_LENGTH",
    "MESSAGE_KEY_INFO",
    "SIGNATURE_CONTEXT",
    "SKIPPED_RECORD_SIZE",
    "UINT32_MAX",
    "SenderChain",
    "associated_data",
    "chain_from_state",
    "chain_to_state",
    "check_group_id",
    "group_binding",
    "message_key_material",
    "open_message",
    "seal_message",
    "signed_bytes",
    "verify_message_signature",
]

MESSAGE_KEY_INFO = SENDER_KEY_MESSAGE_INFO
"""HKDF info expanding a sender-key message key into an AES-256-GCM key and nonce."""

ASSOCIATED_DATA_CONTEXT = SENDER_KEY_AD_CONTEXT
"""First bytes of every group message's AEAD associated data."""

SIGNATURE_CONTEXT = SENDER_KEY_SIGNATURE_CONTEXT
"""First bytes of what a sender key's signature key signs for every group message."""

MAX_GROUP_ID_LENGTH = 256
"""Longest group id, in characters (the key stores' limit too)."""

SKIPPED_RECORD_SIZE = 36
"""A serialized skipped key: iteration (4, big-endian) || message key (32)."""

UINT32_MAX = (1 << 32) - 1
"""Largest key id and chain iteration; no message has this iteration."""


def check_group_id(group_id: object, *, remote: bool = False) -> bytes:
    """Return the UTF-8 bytes of a valid group id: a str of 1..256 characters.

    Raises :class:`~omega.errors.MessageDecodeError` when ``remote`` (the id
    came from bytes a peer sent) and :class:`~omega.errors.ConfigurationError`
    otherwise.
    """
    error = MessageDecodeError if remote else ConfigurationError
    if not isinstance(group_id, str) or not 0 < len(group_id) <= MAX_GROUP_ID_LENGTH:
        raise error(f"a group id is a str of 1..{MAX_GROUP_ID_LENGTH} characters")
    try:
        return group_id.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates; wire strings are valid UTF-8
        raise error("a group id must be encodable as UTF-8") from exc


def group_binding(group_id: str, sender_device_key: bytes) -> bytes:
    """``len(group id) (2, BE) || group id (UTF-8) || sender device key (32)``.

    Both the associated data and the signed bytes of every group message
    start with it, so a message is bound to its group and to its sender's
    device.
    """
    encoded = check_group_id(group_id)
    return len(encoded).to_bytes(2, "big") + encoded + sender_device_key


def associated_data(binding: bytes, header: bytes) -> bytes:
    """The AEAD's associated data: ``ASSOCIATED_DATA_CONTEXT || binding || header``."""
    return ASSOCIATED_DATA_CONTEXT + binding + header


def signed_bytes(binding: bytes, header: bytes, ciphertext: bytes) -> bytes:
    """What the signature covers: context, binding, ``len(header) (2, BE)``, header, ciphertext."""
    return SIGNATURE_CONTEXT + binding + len(header).to_bytes(2, "big") + header + ciphertext


def verify_message_signature(signature_key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature (libsodium's ``crypto_sign_verify_detached``).

    The key was validated (``crypto_core_ed25519_is_valid_point``) when its
    distribution or state was read, so it is not checked again here: that
    check costs as much as the verification itself. Raises
    :class:`~omega.errors.InvalidSignatureError`.
    """
    _symmetric.ed25519_verify(signature_key, message, signature, "group message")


def message_key_material(message_key: bytes) -> tuple[bytes, bytes]:
    """HKDF-SHA256(salt = 32 zero bytes, IKM = message key, info = MESSAGE_KEY_INFO, 44 bytes).

    Returns ``(AES-256 key, GCM nonce)``: the first 32 and the last 12 bytes.
    """
    return _symmetric.message_key_material(message_key, info=MESSAGE_KEY_INFO)


def seal_message(message_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """AES-256-GCM under the key and nonce expanded from ``message_key``: ciphertext || tag."""
    return _symmetric.aead_encrypt(message_key, plaintext, ad, info=MESSAGE_KEY_INFO)


def open_message(message_key: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Open :func:`seal_message`'s output; :class:`~omega.errors.DecryptionError` on mismatch."""
    return _symmetric.aead_decrypt(
        message_key, ciphertext, ad, info=MESSAGE_KEY_INFO, what="group message"
    )


@dataclass(slots=True, kw_only=True)
class SenderChain:
    """One sender key as a receiver holds it: the chain at ``iteration`` and skipped keys."""

    key_id: int
    iteration: int
    chain_key: bytes
    signature_key: bytes
    skipped: dict[int, bytes] = field(default_factory=dict)  # iteration -> key, oldest first

    def copy(self) -> SenderChain:
        """A copy whose skipped keys can change without touching this chain."""
        return SenderChain(
            key_id=self.key_id,
            iteration=self.iteration,
            chain_key=self.chain_key,
            signature_key=self.signature_key,
            skipped=dict(self.skipped),
        )

    def message_key(self, iteration: int, *, max_skip: int) -> bytes:
        """Take the message key of ``iteration``, skipping (and storing) the keys before it.

        Raises :class:`~omega.errors.DuplicateMessageError` for an iteration
        whose key was used or evicted, and
        :class:`~omega.errors.TooManySkippedMessagesError` when more than
        ``max_skip`` keys would be skipped. Call it on a :meth:`copy`.
        """
        if iteration < self.iteration:
            key = self.skipped.pop(iteration, None)
            if key is None:
                raise DuplicateMessageError(
                    f"group message {iteration} was decrypted already or its key was evicted",
                    details={"key_id": self.key_id, "iteration": iteration},
                )
            return key
        if iteration - self.iteration > max_skip:
            raise TooManySkippedMessagesError(
                f"group message would skip {iteration - self.iteration} message keys, "
                f"more than the limit of {max_skip}",
                details={"skip": iteration - self.iteration, "limit": max_skip},
            )
        chain_key = self.chain_key
        for skipped_iteration in range(self.iteration, iteration):
            chain_key, skipped_key = kdf_ck(chain_key)
            self.skipped[skipped_iteration] = skipped_key
        self.chain_key, key = kdf_ck(chain_key)
        self.iteration = iteration + 1
        return key

    def evict(self, max_skipped_keys: int) -> None:
        """Delete the oldest skipped keys beyond ``max_skipped_keys``."""
        while len(self.skipped) > max_skipped_keys:
            del self.skipped[next(iter(self.skipped))]


def chain_to_state(chain: SenderChain) -> SenderKeyChainState:
    """The ``SenderKeyChainState`` of a chain (skipped keys packed, oldest first)."""
    return SenderKeyChainState(
        key_id=chain.key_id,
        iteration=chain.iteration,
        chain_key=chain.chain_key,
        signature_key=chain.signature_key,
        skipped_message_keys=b"".join(
            iteration.to_bytes(4, "big") + key for iteration, key in chain.skipped.items()
        ),
    )


def chain_from_state(state: SenderKeyChainState, *, max_records: int) -> SenderChain:
    """Validate a decoded ``SenderKeyChainState``; :class:`MessageDecodeError` if invalid."""
    if len(state.chain_key) != KEY_SIZE:
        raise MessageDecodeError(f"sender key {state.key_id} has a malformed chain key")
    check_public_key(state.signature_key)
    records = state.skipped_message_keys
    if len(records) % SKIPPED_RECORD_SIZE or len(records) > max_records * SKIPPED_RECORD_SIZE:
        raise MessageDecodeError(f"sender key {state.key_id} has malformed skipped keys")
    skipped: dict[int, bytes] = {}
    previous = -1
    for start in range(0, len(records), SKIPPED_RECORD_SIZE):
        iteration = int.from_bytes(records[start : start + 4], "big")
        if not previous < iteration < state.iteration:
            raise MessageDecodeError(f"sender key {state.key_id} has disordered skipped keys")
        skipped[iteration] = records[start + 4 : start + SKIPPED_RECORD_SIZE]
        previous = iteration
    return SenderChain(
        key_id=state.key_id,
        iteration=state.iteration,
        chain_key=state.chain_key,
        signature_key=state.signature_key,
        skipped=skipped,
    )
