"""Primitives shared by X3DH and the Double Ratchet, composed from libsodium and pyca.

Nothing here invents a primitive: X25519 and the Ed25519-to-X25519 key
conversion are libsodium's (``crypto_scalarmult``,
``crypto_sign_ed25519_pk_to_curve25519``, ``crypto_sign_ed25519_sk_to_curve25519``)
through PyNaCl; HKDF-SHA256 and AES-256-GCM are pyca/cryptography's, HMAC-SHA256
the standard library's (OpenSSL). docs/crypto.md gives every label and length
used below.

This module is also the pure-Python reference of the compiled twin
``omega.crypto._ratchet_c``: :mod:`omega.crypto._symmetric` exports whichever
is live, and the differential tests pin the two together.
"""

from __future__ import annotations

import functools
import hmac

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from omega.crypto._ed25519 import check_public_key
from omega.crypto.random import RandomSource, random_bytes
from omega.errors import (
    DecryptionError,
    InvalidKeyError,
    InvalidSignatureError,
    map_exceptions,
)
from omega.protocol import (
    RatchetHeader,
    RatchetMessage,
    SenderKeyHeader,
    SenderKeyMessage,
    encode_message,
)

__all__ = [
    "AEAD_KEY_INFO",
    "KEY_SIZE",
    "NONCE_SIZE",
    "ROOT_KDF_INFO",
    "SENDER_KEY_AD_CONTEXT",
    "SENDER_KEY_MESSAGE_INFO",
    "SENDER_KEY_SIGNATURE_CONTEXT",
    "TAG_SIZE",
    "X3DH_INFO",
    "X3DH_PADDING",
    "aead_decrypt",
    "aead_encrypt",
    "check_x25519_public_key",
    "ed25519_public_to_x25519",
    "ed25519_seed_to_x25519",
    "ed25519_sign",
    "ed25519_verify",
    "generate_x25519",
    "hkdf_sha256",
    "kdf_ck",
    "kdf_rk",
    "message_key_material",
    "open_ratchet_message",
    "open_sender_key_message",
    "open_step",
    "seal_ratchet_message",
    "seal_sender_key_message",
    "seal_step",
    "x25519",
    "x25519_public",
    "x3dh_secret",
]

KEY_SIZE = 32
"""Size of every X25519 key, root key, chain key and message key, in bytes."""

NONCE_SIZE = 12
"""Size of an AES-256-GCM nonce, in bytes."""

TAG_SIZE = 16
"""Size of an AES-256-GCM authentication tag, in bytes."""

X3DH_INFO = b"omega/x3dh/v1"
"""HKDF info of the X3DH shared secret SK."""

X3DH_PADDING = b"\xff" * 32
"""X3DH's F: 32 0xFF bytes prepended to the DH outputs (X3DH section 2.2)."""

ROOT_KDF_INFO = b"omega/ratchet/root/v1"
"""HKDF info of KDF_RK."""

AEAD_KEY_INFO = b"omega/ratchet/message-key/v1"
"""HKDF info expanding a message key into an AES-256-GCM key and nonce."""

SENDER_KEY_MESSAGE_INFO = b"omega/sender-key/message-key/v1"
"""HKDF info expanding a sender-key message key into an AES-256-GCM key and nonce."""

SENDER_KEY_AD_CONTEXT = b"omega/sender-key/ad/v1"
"""First bytes of every group message's AEAD associated data."""

SENDER_KEY_SIGNATURE_CONTEXT = b"omega/sender-key/signature/v1"
"""First bytes of what a sender key's signature key signs for every group message."""

_ZERO_SALT = bytes(32)
_CHAIN_MESSAGE_KEY = b"\x01"
_CHAIN_NEXT_KEY = b"\x02"
_FIELD_PRIME = 2**255 - 19


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), extract then expand to ``length`` bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def check_x25519_public_key(public_key: object, what: str = "X25519 public key") -> bytes:
    """Return ``public_key`` if it is a canonical 32-byte X25519 public key.

    Canonical means the little-endian u-coordinate is below 2**255 - 19 (so
    the unused top bit is clear): every key has exactly one accepted
    encoding, which keeps associated data and serialized state unambiguous.
    Low-order points are refused later, by :func:`x25519`, when their DH
    output would be all zeros. Raises :class:`~omega.errors.InvalidKeyError`.
    """
    if not isinstance(public_key, bytes) or len(public_key) != KEY_SIZE:
        size = len(public_key) if isinstance(public_key, bytes) else None
        raise InvalidKeyError(f"{what} must be {KEY_SIZE} bytes", details={"size": size})
    if int.from_bytes(public_key, "little") >= _FIELD_PRIME:
        raise InvalidKeyError(f"{what} is not canonically encoded")
    return public_key


def x25519_public(private_key: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key (libsodium clamps it)."""
    public: bytes = nacl.bindings.crypto_scalarmult_base(private_key)
    return public


def generate_x25519(rng: RandomSource) -> tuple[bytes, bytes]:
    """Draw a fresh X25519 key pair from ``rng``: ``(private_key, public_key)``."""
    private_key = random_bytes(rng, KEY_SIZE)
    return private_key, x25519_public(private_key)


def x25519(private_key: bytes, public_key: bytes) -> bytes:
    """The X25519 shared secret of ``private_key`` and ``public_key``.

    Raises :class:`~omega.errors.InvalidKeyError` for a non-canonical key and
    for a low-order point: libsodium refuses those, and an all-zero output is
    refused here as well (RFC 7748, section 6.1).
    """
    check_x25519_public_key(public_key)
    with map_exceptions(
        {nacl.exceptions.RuntimeError: InvalidKeyError}, "X25519 refused the public key"
    ):
        shared: bytes = nacl.bindings.crypto_scalarmult(private_key, public_key)
    if hmac.compare_digest(shared, bytes(KEY_SIZE)):  # pragma: no cover - libsodium refuses first
        raise InvalidKeyError("X25519 produced the all-zero shared secret (low-order point)")
    return shared


def ed25519_public_to_x25519(public_key: bytes) -> bytes:
    """Convert a valid Ed25519 public key to its X25519 form (Montgomery u-coordinate).

    Raises :class:`~omega.errors.InvalidKeyError` for an unusable Ed25519 key.
    """
    return _converted_public_key(check_public_key(public_key))


@functools.lru_cache(maxsize=4096)
def _converted_public_key(public_key: bytes) -> bytes:
    """libsodium's conversion (a field inversion), remembered: the same device keys
    are converted again for every prekey message. Public keys only, never secrets."""
    converted: bytes = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    return converted


def ed25519_seed_to_x25519(seed: bytes) -> bytes:
    """Convert the 32-byte seed of an Ed25519 key pair to its X25519 private key."""
    _, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    converted: bytes = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret_key)
    return converted


def x3dh_secret(dh_outputs: list[bytes]) -> bytes:
    """X3DH's SK: HKDF-SHA256(salt = 32 zero bytes, IKM = F || DH1 || ..., info = X3DH_INFO).

    32 bytes; ``dh_outputs`` are DH1..DH3 and, when a one-time prekey was used, DH4.
    """
    return hkdf_sha256(
        X3DH_PADDING + b"".join(dh_outputs), salt=_ZERO_SALT, info=X3DH_INFO, length=KEY_SIZE
    )


def kdf_rk(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """KDF_RK: HKDF-SHA256(salt = RK, IKM = DH output, info = ROOT_KDF_INFO), 64 bytes.

    Returns ``(new root key, new chain key)``: the first and last 32 bytes.
    """
    output = hkdf_sha256(dh_output, salt=root_key, info=ROOT_KDF_INFO, length=2 * KEY_SIZE)
    return output[:KEY_SIZE], output[KEY_SIZE:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK: ``(next CK, MK) = (HMAC-SHA256(CK, 0x02), HMAC-SHA256(CK, 0x01))``."""
    return _hmac_sha256(chain_key, _CHAIN_NEXT_KEY), _hmac_sha256(chain_key, _CHAIN_MESSAGE_KEY)


def message_key_material(message_key: bytes, *, info: bytes = AEAD_KEY_INFO) -> tuple[bytes, bytes]:
    """Expand a message key: HKDF-SHA256(salt = 32 zero bytes, IKM = MK, info, 44 bytes).

    ``info`` is AEAD_KEY_INFO for ratchet messages; Sender Keys pass their own
    label. Returns ``(AES-256 key, GCM nonce)``: the first 32 and the next 12 bytes.
    """
    output = hkdf_sha256(message_key, salt=_ZERO_SALT, info=info, length=KEY_SIZE + NONCE_SIZE)
    return output[:KEY_SIZE], output[KEY_SIZE:]


def aead_encrypt(
    message_key: bytes, plaintext: bytes, associated_data: bytes, *, info: bytes = AEAD_KEY_INFO
) -> bytes:
    """AES-256-GCM encryption under the key and nonce expanded from ``message_key``."""
    key, nonce = message_key_material(message_key, info=info)
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def aead_decrypt(
    message_key: bytes,
    ciphertext: bytes,
    associated_data: bytes,
    *,
    info: bytes = AEAD_KEY_INFO,
    what: str = "ratchet message",
) -> bytes:
    """AES-256-GCM decryption; raises :class:`~omega.errors.DecryptionError` on any mismatch."""
    key, nonce = message_key_material(message_key, info=info)
    with map_exceptions({InvalidTag: DecryptionError}, f"{what} failed authentication"):
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)


def seal_step(
    chain_key: bytes, plaintext: bytes, associated_data: bytes, info: bytes = AEAD_KEY_INFO
) -> tuple[bytes, bytes]:
    """One sending step of a symmetric chain: ``(next chain key, ciphertext)``.

    KDF_CK on ``chain_key``, then :func:`aead_encrypt` under the message key.
    """
    next_chain_key, message_key = kdf_ck(chain_key)
    return next_chain_key, aead_encrypt(message_key, plaintext, associated_data, info=info)


def open_step(
    chain_key: bytes,
    ciphertext: bytes,
    associated_data: bytes,
    info: bytes = AEAD_KEY_INFO,
    what: str = "ratchet message",
) -> tuple[bytes, bytes]:
    """One receiving step of a symmetric chain: ``(next chain key, plaintext)``.

    KDF_CK on ``chain_key``, then :func:`aead_decrypt`; raises
    :class:`~omega.errors.DecryptionError` when authentication fails.
    """
    next_chain_key, message_key = kdf_ck(chain_key)
    return next_chain_key, aead_decrypt(
        message_key, ciphertext, associated_data, info=info, what=what
    )


def seal_ratchet_message(  # noqa: PLR0917 - positional, as the compiled twin is called
    chain_key: bytes,
    plaintext: bytes,
    associated_data: bytes,
    version: int,
    ratchet_key: bytes,
    previous_chain_length: int,
    message_number: int,
) -> tuple[bytes, bytes]:
    """One sending step of the Double Ratchet, encoded: ``(next chain key, RatchetMessage)``.

    The header is the encoded ``RatchetHeader {version, ratchet_key,
    previous_chain_length, message_number}``; the AEAD authenticates
    ``associated_data || header``; the result is the encoded
    ``RatchetMessage {header, ciphertext}``.
    """
    header = encode_message(
        RatchetHeader(
            version=version,
            ratchet_key=ratchet_key,
            previous_chain_length=previous_chain_length,
            message_number=message_number,
        )
    )
    next_chain_key, ciphertext = seal_step(chain_key, plaintext, associated_data + header)
    return next_chain_key, encode_message(RatchetMessage(header=header, ciphertext=ciphertext))


def open_ratchet_message(  # noqa: PLR0917 - positional, as the compiled twin is called
    chain_key: bytes,
    data: bytes,
    associated_data: bytes,
    ratchet_key: bytes,
    receiving_number: int,
    max_message_size: int,
    max_plaintext_size: int,
) -> tuple[bytes, bytes] | None:
    """The compiled twin's one-call receiving step; the reference always declines (``None``).

    The caller's strict path (decode, check, :func:`open_step`) *is* the
    reference: the compiled twin only takes the canonical common case off it.
    """
    del chain_key, data, associated_data, ratchet_key, receiving_number
    del max_message_size, max_plaintext_size
    return None


def seal_sender_key_message(  # noqa: PLR0917 - positional, as the compiled twin is called
    chain_key: bytes,
    plaintext: bytes,
    binding: bytes,
    version: int,
    key_id: int,
    iteration: int,
    secret_key: bytes,
) -> tuple[bytes, bytes]:
    """One Sender Keys sending step, signed and encoded: ``(next chain key, SenderKeyMessage)``.

    The header is the encoded ``SenderKeyHeader {version, key_id,
    iteration}``; the AEAD (under :data:`SENDER_KEY_MESSAGE_INFO`)
    authenticates ``SENDER_KEY_AD_CONTEXT || binding || header``; the
    Ed25519 signature under the 64-byte ``secret_key`` covers
    ``SENDER_KEY_SIGNATURE_CONTEXT || binding || len(header) (2, BE) ||
    header || ciphertext``; the result is the encoded ``SenderKeyMessage
    {header, ciphertext, signature}`` (docs/crypto.md, "Sender Keys").
    """
    header = encode_message(SenderKeyHeader(version=version, key_id=key_id, iteration=iteration))
    next_chain_key, ciphertext = seal_step(
        chain_key, plaintext, SENDER_KEY_AD_CONTEXT + binding + header, SENDER_KEY_MESSAGE_INFO
    )
    signed = SENDER_KEY_SIGNATURE_CONTEXT + binding + len(header).to_bytes(2, "big") + header
    signature = ed25519_sign(secret_key, signed + ciphertext)
    return next_chain_key, encode_message(
        SenderKeyMessage(header=header, ciphertext=ciphertext, signature=signature)
    )


def open_sender_key_message(  # noqa: PLR0917 - positional, as the compiled twin is called
    chain_key: bytes,
    data: bytes,
    binding: bytes,
    key_id: int,
    iteration: int,
    signature_key: bytes,
    max_message_size: int,
    max_plaintext_size: int,
) -> tuple[bytes, bytes] | None:
    """The compiled twin's one-call Sender Keys receiving step; the reference always declines.

    The caller's strict path (decode, check, verify, :func:`open_step`)
    *is* the reference: the compiled twin only takes the canonical common
    case (the next message of the newest sender key) off it.
    """
    del chain_key, data, binding, key_id, iteration, signature_key
    del max_message_size, max_plaintext_size
    return None


def ed25519_sign(secret_key: bytes, message: bytes) -> bytes:
    """libsodium's detached Ed25519 signature of ``message`` under a 64-byte secret key.

    Raises :class:`~omega.errors.InvalidKeyError` for a key of another length
    (PyNaCl's ``crypto_sign`` would read past its end).
    """
    if not isinstance(secret_key, bytes) or len(secret_key) != 64:
        raise InvalidKeyError("an Ed25519 secret key is 64 bytes")
    signed: bytes = nacl.bindings.crypto_sign(message, secret_key)
    return signed[:64]


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes, what: str) -> None:
    """Check a detached Ed25519 signature with libsodium (``crypto_sign_verify_detached``).

    The public key must have been validated already. Raises
    :class:`~omega.errors.InvalidSignatureError` naming ``what``.
    """
    if len(signature) != 64:
        raise InvalidSignatureError(
            "an Ed25519 signature is 64 bytes", details={"size": len(signature)}
        )
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError:
        raise InvalidSignatureError(f"{what} signature does not verify") from None
