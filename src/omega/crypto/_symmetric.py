"""The symmetric step of the Double Ratchet and Sender Keys: compiled when built.

KDF_RK, KDF_CK, message-key expansion and AES-256-GCM seal/open, from the Cython
twin ``omega.crypto._ratchet_c`` when it was built and ``OMEGA_PURE_PYTHON``
is not set, else from the pure-Python reference :mod:`omega.crypto._kdf`.
Both give the same bytes and the same errors (differential tests pin them);
``omega.accelerator_status()["ratchet"]`` tells which one is live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omega import _accel
from omega.crypto import _kdf

__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "kdf_ck",
    "kdf_rk",
    "message_key_material",
    "open_step",
    "seal_step",
]

if TYPE_CHECKING:
    from omega.crypto._kdf import (
        aead_decrypt,
        aead_encrypt,
        kdf_ck,
        kdf_rk,
        message_key_material,
        open_step,
        seal_step,
    )
else:
    _impl = _accel.select("ratchet", _kdf)
    aead_decrypt = _impl.aead_decrypt
    aead_encrypt = _impl.aead_encrypt
    kdf_ck = _impl.kdf_ck
    kdf_rk = _impl.kdf_rk
    message_key_material = _impl.message_key_material
    open_step = _impl.open_step
    seal_step = _impl.seal_step
