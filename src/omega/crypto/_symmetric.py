"""The per-message cryptography of the Double Ratchet and Sender Keys: compiled when built.

KDF_RK, KDF_CK, message-key expansion, AES-256-GCM seal/open, a whole encoded
ratchet sending step, the common receiving step in one call, the same two
one-call steps for Sender Keys (signed and verified), X25519 and
detached Ed25519 signatures, from the Cython
twin ``omega.crypto._ratchet_c`` when it was built (and found libsodium's
functions) and ``OMEGA_PURE_PYTHON`` is not set, else from the pure-Python
reference :mod:`omega.crypto._kdf`. Both give the same bytes and the same
errors (differential tests pin them); ``omega.accelerator_status()["ratchet"]``
tells which one is live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omega import _accel
from omega.crypto import _kdf
from omega.crypto.random import RandomSource, random_bytes

__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "ed25519_sign",
    "ed25519_verify",
    "generate_x25519",
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
]

if TYPE_CHECKING:
    from omega.crypto._kdf import (
        aead_decrypt,
        aead_encrypt,
        ed25519_sign,
        ed25519_verify,
        kdf_ck,
        kdf_rk,
        message_key_material,
        open_ratchet_message,
        open_sender_key_message,
        open_step,
        seal_ratchet_message,
        seal_sender_key_message,
        seal_step,
        x25519,
        x25519_public,
    )
else:
    _impl = _accel.select("ratchet", _kdf)
    aead_decrypt = _impl.aead_decrypt
    aead_encrypt = _impl.aead_encrypt
    ed25519_sign = _impl.ed25519_sign
    ed25519_verify = _impl.ed25519_verify
    kdf_ck = _impl.kdf_ck
    kdf_rk = _impl.kdf_rk
    message_key_material = _impl.message_key_material
    open_ratchet_message = _impl.open_ratchet_message
    open_sender_key_message = _impl.open_sender_key_message
    open_step = _impl.open_step
    seal_ratchet_message = _impl.seal_ratchet_message
    seal_sender_key_message = _impl.seal_sender_key_message
    seal_step = _impl.seal_step
    x25519 = _impl.x25519
    x25519_public = _impl.x25519_public


def generate_x25519(rng: RandomSource) -> tuple[bytes, bytes]:
    """Draw a fresh X25519 key pair from ``rng``: ``(private_key, public_key)``."""
    private_key = random_bytes(rng, _kdf.KEY_SIZE)
    return private_key, x25519_public(private_key)
