# cython: language_level=3, boundscheck=False, wraparound=False
"""The symmetric step of the Double Ratchet and Sender Keys, compiled twin.

Same functions, same bytes, same errors as the pure-Python reference in
:mod:`omega.crypto._kdf` (``kdf_ck``, ``message_key_material``,
``aead_encrypt``, ``aead_decrypt``, ``seal_step``, ``open_step``); tests pin
the two together on random keys, plaintexts and tampered ciphertexts.

No primitive is implemented here: HMAC-SHA256, HKDF-Expand and AES-256-GCM
are pyca/cryptography's. What is cheaper than the reference is how they are
called: the two HMACs of KDF_CK share one keyed HMAC state (``copy()``), and
HKDF's extract step, which RFC 5869 defines as HMAC(salt, IKM) with the
fixed all-zero salt here, starts from a copy of an HMAC keyed once with that
salt, followed by the library's HKDF-Expand.
"""

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from omega.errors import DecryptionError

__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "kdf_ck",
    "kdf_rk",
    "message_key_material",
    "open_step",
    "seal_step",
]

cdef object _SHA256 = hashes.SHA256()
cdef object _ZERO_SALT_HMAC = HMAC(bytes(32), _SHA256)
cdef bytes _MESSAGE_KEY_BYTE = b"\x01"
cdef bytes _NEXT_KEY_BYTE = b"\x02"
cdef bytes _AEAD_KEY_INFO = b"omega/ratchet/message-key/v1"
cdef bytes _ROOT_KDF_INFO = b"omega/ratchet/root/v1"
cdef Py_ssize_t _KEY_SIZE = 32
cdef Py_ssize_t _MATERIAL_SIZE = 44


cpdef tuple kdf_ck(bytes chain_key):
    """KDF_CK: ``(HMAC-SHA256(CK, 0x02), HMAC-SHA256(CK, 0x01))``."""
    keyed = HMAC(chain_key, _SHA256)
    other = keyed.copy()
    keyed.update(_NEXT_KEY_BYTE)
    other.update(_MESSAGE_KEY_BYTE)
    return keyed.finalize(), other.finalize()


cpdef tuple kdf_rk(bytes root_key, bytes dh_output):
    """KDF_RK: HKDF-SHA256(salt = RK, IKM = DH output, info = ROOT_KDF_INFO): (RK', CK)."""
    extract = HMAC(root_key, _SHA256)
    extract.update(dh_output)
    cdef bytes output = HKDFExpand(_SHA256, 2 * _KEY_SIZE, _ROOT_KDF_INFO).derive(
        extract.finalize()
    )
    return output[:_KEY_SIZE], output[_KEY_SIZE:]


cpdef tuple message_key_material(bytes message_key, bytes info=_AEAD_KEY_INFO):
    """HKDF-SHA256(salt = 32 zero bytes, IKM = message key, info, 44 bytes): (key, nonce)."""
    extract = _ZERO_SALT_HMAC.copy()
    extract.update(message_key)
    cdef bytes output = HKDFExpand(_SHA256, _MATERIAL_SIZE, info).derive(extract.finalize())
    return output[:_KEY_SIZE], output[_KEY_SIZE:]


cpdef bytes aead_encrypt(bytes message_key, bytes plaintext, bytes associated_data,
                         bytes info=_AEAD_KEY_INFO):
    """AES-256-GCM under the key and nonce expanded from ``message_key``."""
    key, nonce = message_key_material(message_key, info)
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


cpdef bytes aead_decrypt(bytes message_key, bytes ciphertext, bytes associated_data,
                         bytes info=_AEAD_KEY_INFO, str what="ratchet message"):
    """AES-256-GCM decryption; :class:`~omega.errors.DecryptionError` on any mismatch."""
    key, nonce = message_key_material(message_key, info)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as exc:
        # The message omega.errors.map_exceptions gives, without a context manager per call.
        raise DecryptionError(f"{what} failed authentication: {exc}") from exc


cpdef tuple seal_step(bytes chain_key, bytes plaintext, bytes associated_data,
                      bytes info=_AEAD_KEY_INFO):
    """One sending step: ``(next chain key, ciphertext of plaintext under this step's key)``."""
    next_chain_key, message_key = kdf_ck(chain_key)
    return next_chain_key, aead_encrypt(message_key, plaintext, associated_data, info)


cpdef tuple open_step(bytes chain_key, bytes ciphertext, bytes associated_data,
                      bytes info=_AEAD_KEY_INFO, str what="ratchet message"):
    """One receiving step: ``(next chain key, plaintext)``, or DecryptionError."""
    next_chain_key, message_key = kdf_ck(chain_key)
    return next_chain_key, aead_decrypt(message_key, ciphertext, associated_data, info, what)
