# cython: language_level=3, boundscheck=False, wraparound=False
"""The symmetric step of the Double Ratchet and Sender Keys, compiled twin.

Same functions, same bytes, same errors as the pure-Python reference in
:mod:`omega.crypto._kdf` (``kdf_ck``, ``kdf_rk``, ``message_key_material``,
``aead_encrypt``, ``aead_decrypt``, ``seal_step``, ``open_step``,
``seal_ratchet_message``, ``open_ratchet_message``, ``seal_sender_key_message``,
``open_sender_key_message``, ``x25519``, ``x25519_public``, ``ed25519_sign``,
``ed25519_verify``); tests pin the two together on random keys, plaintexts and
tampered ciphertexts. X25519 and Ed25519 are in ``_asymmetric_c.pxi`` and the
Sender Keys steps in ``_sender_keys_c.pxi``, both included at the end of this
file (one compiled module).

No primitive is implemented here. The functions are libsodium's, called
directly: PyNaCl ships libsodium inside its compiled module
(``nacl._sodium``), which exports the library's C symbols. At import this
module looks up the addresses of ``crypto_auth_hmacsha256_init/update/final``,
``crypto_aead_aes256gcm_encrypt/decrypt``, ``crypto_scalarmult``,
``crypto_scalarmult_base``, ``crypto_sign_detached`` and
``crypto_sign_verify_detached`` there (``ctypes``: no headers, no extra library),
casts them to the function-pointer types declared below (libsodium's
documented prototypes) and calls them with no Python in between. When a
symbol cannot be found (a PyNaCl built another way) the import fails and
:mod:`omega._accel` keeps the pure-Python path.

HKDF-SHA256 is RFC 5869's extract-then-expand written out over libsodium's
HMAC-SHA256, exactly as the RFC defines it (PRK = HMAC(salt, IKM); T(i) =
HMAC(PRK, T(i-1) || info || i)). AES-256-GCM is libsodium's when the CPU
has AES-NI and PCLMUL (``crypto_aead_aes256gcm_is_available``); otherwise
pyca/cryptography's ``AESGCM``: the same standard cipher, the same bytes.

Whatever the fast path does not handle (a key of another length, a number
out of range, a refused key or signature) is handed to the reference in
:mod:`omega.crypto._kdf`, so errors are the reference's by construction.
``seal_ratchet_message`` writes the ``RatchetHeader`` and ``RatchetMessage``
protobuf encodings itself (fields in number order, zero values omitted, as
every protobuf encoder does); tests pin them to ``omega.protocol.encode_message``.
``open_ratchet_message`` reads only that canonical encoding (a subset of what
the strict decoder accepts) and declines (``None``) anything else, so the
caller's strict path handles, and refuses, every other input.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLongLong
from libc.stdint cimport uintptr_t
from libc.string cimport memcmp, memcpy, memset

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from omega.crypto import _kdf
from omega.errors import DecryptionError

__all__ = [
    "aead_decrypt",
    "aead_encrypt",
    "ed25519_sign",
    "ed25519_verify",
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

# libsodium's prototypes (sodium/crypto_auth_hmacsha256.h, crypto_aead_aes256gcm.h,
# crypto_scalarmult.h), declared here so that no header is needed.
ctypedef int (*hmac_init_f)(void *state, const unsigned char *key, size_t keylen) noexcept nogil
ctypedef int (*hmac_update_f)(
    void *state, const unsigned char *data, unsigned long long length
) noexcept nogil
ctypedef int (*hmac_final_f)(void *state, unsigned char *out) noexcept nogil
ctypedef int (*gcm_encrypt_f)(
    unsigned char *c, unsigned long long *clen_p,
    const unsigned char *m, unsigned long long mlen,
    const unsigned char *ad, unsigned long long adlen,
    const unsigned char *nsec, const unsigned char *npub, const unsigned char *k,
) noexcept nogil
ctypedef int (*gcm_decrypt_f)(
    unsigned char *m, unsigned long long *mlen_p, unsigned char *nsec,
    const unsigned char *c, unsigned long long clen,
    const unsigned char *ad, unsigned long long adlen,
    const unsigned char *npub, const unsigned char *k,
) noexcept nogil
ctypedef int (*scalarmult_f)(
    unsigned char *q, const unsigned char *n, const unsigned char *p
) noexcept nogil
ctypedef int (*scalarmult_base_f)(unsigned char *q, const unsigned char *n) noexcept nogil
ctypedef int (*sign_detached_f)(
    unsigned char *sig, unsigned long long *siglen_p,
    const unsigned char *m, unsigned long long mlen, const unsigned char *sk,
) noexcept nogil
ctypedef int (*verify_detached_f)(
    const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
    const unsigned char *pk,
) noexcept nogil


cdef struct HmacState:
    # crypto_auth_hmacsha256_state is two SHA-256 states (208 bytes in libsodium 1.0.x);
    # the size libsodium reports is checked against this at import.
    unsigned long long words[32]


cdef enum:
    KEY_SIZE = 32
    NONCE_SIZE = 12
    TAG_SIZE = 16
    MATERIAL_SIZE = 44

cdef hmac_init_f _hmac_init = NULL
cdef hmac_update_f _hmac_update = NULL
cdef hmac_final_f _hmac_final = NULL
cdef gcm_encrypt_f _gcm_encrypt = NULL
cdef gcm_decrypt_f _gcm_decrypt = NULL
cdef scalarmult_f _scalarmult = NULL
cdef scalarmult_base_f _scalarmult_base = NULL
cdef sign_detached_f _sign_detached = NULL
cdef verify_detached_f _verify_detached = NULL
cdef bint _native_gcm = False
cdef HmacState _zero_salt  # HMAC keyed with HKDF's all-zero salt, copied for every extract

cdef bytes _AEAD_KEY_INFO = b"omega/ratchet/message-key/v1"
cdef bytes _ROOT_KDF_INFO = b"omega/ratchet/root/v1"
cdef unsigned char _ONE = 1
cdef unsigned char _TWO = 2

_SYMBOLS = (
    "crypto_auth_hmacsha256_init",
    "crypto_auth_hmacsha256_update",
    "crypto_auth_hmacsha256_final",
    "crypto_aead_aes256gcm_encrypt",
    "crypto_aead_aes256gcm_decrypt",
    "crypto_scalarmult",
    "crypto_scalarmult_base",
    "crypto_sign_detached",
    "crypto_sign_verify_detached",
)


def _load_libsodium():
    """Find libsodium's functions in PyNaCl's compiled module; ImportError if missing."""
    import ctypes

    import nacl.bindings
    from nacl import _sodium

    try:
        nacl.bindings.sodium_init()  # CPU feature detection (PyNaCl ran it already; idempotent)
        library = ctypes.CDLL(_sodium.__file__)
        addresses = [ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                     for name in _SYMBOLS]
        statebytes = library.crypto_auth_hmacsha256_statebytes
        statebytes.restype = ctypes.c_size_t
        state_size = statebytes()
        gcm_available = library.crypto_aead_aes256gcm_is_available()
    except (OSError, AttributeError) as exc:
        raise ImportError(f"libsodium's symbols are not reachable in PyNaCl: {exc}") from exc
    if state_size > sizeof(HmacState) or not all(addresses):
        raise ImportError("libsodium's HMAC-SHA256 state does not fit; keeping pure Python")
    return addresses, bool(gcm_available)


def _install():
    global _hmac_init, _hmac_update, _hmac_final, _gcm_encrypt, _gcm_decrypt
    global _scalarmult, _scalarmult_base, _sign_detached, _verify_detached, _native_gcm
    addresses, gcm = _load_libsodium()
    _hmac_init = <hmac_init_f><uintptr_t>addresses[0]
    _hmac_update = <hmac_update_f><uintptr_t>addresses[1]
    _hmac_final = <hmac_final_f><uintptr_t>addresses[2]
    _gcm_encrypt = <gcm_encrypt_f><uintptr_t>addresses[3]
    _gcm_decrypt = <gcm_decrypt_f><uintptr_t>addresses[4]
    _scalarmult = <scalarmult_f><uintptr_t>addresses[5]
    _scalarmult_base = <scalarmult_base_f><uintptr_t>addresses[6]
    _sign_detached = <sign_detached_f><uintptr_t>addresses[7]
    _verify_detached = <verify_detached_f><uintptr_t>addresses[8]
    _native_gcm = gcm
    cdef unsigned char zero[KEY_SIZE]
    memset(zero, 0, KEY_SIZE)
    _hmac_init(&_zero_salt, zero, KEY_SIZE)


_install()


def _use_native_aead(bint native):
    """Tests only: switch libsodium's AES-256-GCM off (pyca's) or back on; returns the old flag.

    Both give the same bytes; the switch lets the differential tests cover
    the branch taken on CPUs without AES-NI.
    """
    global _native_gcm
    old = _native_gcm
    _native_gcm = native
    return old


# --- the HMAC and HKDF compositions --------------------------------------------------------


cdef inline void _kdf_ck(const unsigned char *chain_key, size_t key_size,
                         unsigned char *next_key, unsigned char *message_key) noexcept nogil:
    cdef HmacState keyed, other
    _hmac_init(&keyed, chain_key, key_size)
    memcpy(&other, &keyed, sizeof(HmacState))
    _hmac_update(&keyed, &_TWO, 1)
    _hmac_final(&keyed, next_key)
    _hmac_update(&other, &_ONE, 1)
    _hmac_final(&other, message_key)


cdef inline void _hkdf_expand(const unsigned char *prk, const unsigned char *info,
                              size_t info_size, unsigned char *out, size_t length) noexcept nogil:
    """RFC 5869 HKDF-Expand for length <= 64 (two blocks at most)."""
    cdef HmacState keyed, block
    cdef unsigned char t[KEY_SIZE]
    cdef unsigned char counter = 1
    _hmac_init(&keyed, prk, KEY_SIZE)
    memcpy(&block, &keyed, sizeof(HmacState))
    _hmac_update(&block, info, info_size)
    _hmac_update(&block, &counter, 1)
    _hmac_final(&block, t)
    memcpy(out, t, KEY_SIZE if length > KEY_SIZE else length)
    if length > KEY_SIZE:
        counter = 2
        _hmac_update(&keyed, t, KEY_SIZE)
        _hmac_update(&keyed, info, info_size)
        _hmac_update(&keyed, &counter, 1)
        _hmac_final(&keyed, t)
        memcpy(out + KEY_SIZE, t, length - KEY_SIZE)
    memset(t, 0, KEY_SIZE)


cdef inline void _material(const unsigned char *message_key, size_t key_size,
                           const unsigned char *info, size_t info_size,
                           unsigned char *out) noexcept nogil:
    """HKDF-SHA256(salt = 32 zero bytes, IKM = message key, info) into 44 bytes."""
    cdef HmacState extract
    cdef unsigned char prk[KEY_SIZE]
    memcpy(&extract, &_zero_salt, sizeof(HmacState))
    _hmac_update(&extract, message_key, key_size)
    _hmac_final(&extract, prk)
    _hkdf_expand(prk, info, info_size, out, MATERIAL_SIZE)
    memset(prk, 0, KEY_SIZE)


def kdf_ck(bytes chain_key not None):
    """KDF_CK: ``(HMAC-SHA256(CK, 0x02), HMAC-SHA256(CK, 0x01))``."""
    cdef bytes next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    cdef bytes message_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
            <unsigned char *>PyBytes_AS_STRING(next_key),
            <unsigned char *>PyBytes_AS_STRING(message_key))
    return next_key, message_key


def kdf_rk(bytes root_key not None, bytes dh_output not None):
    """KDF_RK: HKDF-SHA256(salt = RK, IKM = DH output, info = ROOT_KDF_INFO): (RK', CK)."""
    cdef HmacState extract
    cdef unsigned char prk[KEY_SIZE]
    cdef unsigned char output[2 * KEY_SIZE]
    _hmac_init(&extract, <unsigned char *>PyBytes_AS_STRING(root_key),
               PyBytes_GET_SIZE(root_key))
    _hmac_update(&extract, <unsigned char *>PyBytes_AS_STRING(dh_output),
                 PyBytes_GET_SIZE(dh_output))
    _hmac_final(&extract, prk)
    _hkdf_expand(prk, <unsigned char *>PyBytes_AS_STRING(_ROOT_KDF_INFO),
                 PyBytes_GET_SIZE(_ROOT_KDF_INFO), output, 2 * KEY_SIZE)
    result = (PyBytes_FromStringAndSize(<char *>output, KEY_SIZE),
              PyBytes_FromStringAndSize(<char *>output + KEY_SIZE, KEY_SIZE))
    memset(prk, 0, KEY_SIZE)
    memset(output, 0, 2 * KEY_SIZE)
    return result


cdef inline void _key_material(bytes message_key, bytes info, unsigned char *material):
    _material(<unsigned char *>PyBytes_AS_STRING(message_key), PyBytes_GET_SIZE(message_key),
              <unsigned char *>PyBytes_AS_STRING(info), PyBytes_GET_SIZE(info), material)


def seal_step(bytes chain_key not None, bytes plaintext not None,
              bytes associated_data not None, bytes info not None=_AEAD_KEY_INFO):
    """One sending step: ``(next chain key, ciphertext of plaintext under this step's key)``."""
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef bytes next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
            <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
    _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(info),
              PyBytes_GET_SIZE(info), material)
    memset(message_key, 0, KEY_SIZE)
    try:
        return next_key, _seal(material, plaintext,
                               <unsigned char *>PyBytes_AS_STRING(associated_data),
                               PyBytes_GET_SIZE(associated_data))
    finally:
        memset(material, 0, MATERIAL_SIZE)


def open_step(bytes chain_key not None, bytes ciphertext not None,
              bytes associated_data not None, bytes info not None=_AEAD_KEY_INFO,
              str what not None="ratchet message"):
    """One receiving step: ``(next chain key, plaintext)``, or DecryptionError."""
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef bytes next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
            <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
    _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(info),
              PyBytes_GET_SIZE(info), material)
    memset(message_key, 0, KEY_SIZE)
    try:
        return next_key, _open(material, ciphertext,
                               <unsigned char *>PyBytes_AS_STRING(associated_data),
                               PyBytes_GET_SIZE(associated_data), what)
    finally:
        memset(material, 0, MATERIAL_SIZE)


def message_key_material(bytes message_key not None, bytes info not None=_AEAD_KEY_INFO):
    """HKDF-SHA256(salt = 32 zero bytes, IKM = message key, info, 44 bytes): (key, nonce)."""
    cdef unsigned char output[MATERIAL_SIZE]
    _key_material(message_key, info, output)
    result = (PyBytes_FromStringAndSize(<char *>output, KEY_SIZE),
              PyBytes_FromStringAndSize(<char *>output + KEY_SIZE, NONCE_SIZE))
    memset(output, 0, MATERIAL_SIZE)
    return result


# --- AES-256-GCM ---------------------------------------------------------------------------


cdef bytes _seal(const unsigned char *material, bytes plaintext, const unsigned char *ad,
                 size_t ad_size):
    cdef Py_ssize_t size = PyBytes_GET_SIZE(plaintext)
    cdef unsigned long long written = 0
    cdef bytes ciphertext
    if not _native_gcm:
        key = PyBytes_FromStringAndSize(<char *>material, KEY_SIZE)
        nonce = PyBytes_FromStringAndSize(<char *>material + KEY_SIZE, NONCE_SIZE)
        return AESGCM(key).encrypt(nonce, plaintext, PyBytes_FromStringAndSize(<char *>ad, ad_size))
    ciphertext = PyBytes_FromStringAndSize(NULL, size + TAG_SIZE)
    _gcm_encrypt(<unsigned char *>PyBytes_AS_STRING(ciphertext), &written,
                 <unsigned char *>PyBytes_AS_STRING(plaintext), size, ad, ad_size,
                 NULL, material + KEY_SIZE, material)
    return ciphertext


cdef bytes _open(const unsigned char *material, bytes ciphertext, const unsigned char *ad,
                 size_t ad_size, str what):
    cdef Py_ssize_t size = PyBytes_GET_SIZE(ciphertext)
    cdef unsigned long long written = 0
    cdef bytes plaintext
    if not _native_gcm:
        key = PyBytes_FromStringAndSize(<char *>material, KEY_SIZE)
        nonce = PyBytes_FromStringAndSize(<char *>material + KEY_SIZE, NONCE_SIZE)
        try:
            return AESGCM(key).decrypt(
                nonce, ciphertext, PyBytes_FromStringAndSize(<char *>ad, ad_size)
            )
        except InvalidTag as exc:
            raise _authentication_failed(what, exc) from exc
    if size >= TAG_SIZE:
        plaintext = PyBytes_FromStringAndSize(NULL, size - TAG_SIZE)
        if _gcm_decrypt(<unsigned char *>PyBytes_AS_STRING(plaintext), &written, NULL,
                        <unsigned char *>PyBytes_AS_STRING(ciphertext), size, ad, ad_size,
                        material + KEY_SIZE, material) == 0:
            return plaintext
    exc = InvalidTag()
    raise _authentication_failed(what, exc) from exc


cdef object _authentication_failed(str what, object exc):
    # The message omega.errors.map_exceptions gives the reference, without a context manager.
    return DecryptionError(f"{what} failed authentication: {exc}")


def aead_encrypt(bytes message_key not None, bytes plaintext not None,
                 bytes associated_data not None, bytes info not None=_AEAD_KEY_INFO):
    """AES-256-GCM under the key and nonce expanded from ``message_key``."""
    cdef unsigned char material[MATERIAL_SIZE]
    _key_material(message_key, info, material)
    try:
        return _seal(material, plaintext, <unsigned char *>PyBytes_AS_STRING(associated_data),
                     PyBytes_GET_SIZE(associated_data))
    finally:
        memset(material, 0, MATERIAL_SIZE)


def aead_decrypt(bytes message_key not None, bytes ciphertext not None,
                 bytes associated_data not None, bytes info not None=_AEAD_KEY_INFO,
                 str what not None="ratchet message"):
    """AES-256-GCM decryption; :class:`~omega.errors.DecryptionError` on any mismatch."""
    cdef unsigned char material[MATERIAL_SIZE]
    _key_material(message_key, info, material)
    try:
        return _open(material, ciphertext, <unsigned char *>PyBytes_AS_STRING(associated_data),
                     PyBytes_GET_SIZE(associated_data), what)
    finally:
        memset(material, 0, MATERIAL_SIZE)


# --- a whole Double Ratchet sending step, encoded --------------------------------------------


cdef inline Py_ssize_t _varint_size(unsigned long long value) noexcept nogil:
    cdef Py_ssize_t size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


cdef inline unsigned char *_put_varint(unsigned char *out, unsigned long long value) noexcept nogil:
    while value >= 0x80:
        out[0] = <unsigned char>((value & 0x7F) | 0x80)
        value >>= 7
        out += 1
    out[0] = <unsigned char>value
    return out + 1


cdef inline bint _is_uint32(object value):
    if type(value) is not int:
        return False
    try:
        return PyLong_AsUnsignedLongLong(value) <= 0xFFFFFFFF
    except OverflowError:  # negative, or beyond 64 bits
        return False


def seal_ratchet_message(bytes chain_key not None, bytes plaintext not None,
                         bytes associated_data not None, version, bytes ratchet_key not None,
                         previous_chain_length, message_number):
    """One Double Ratchet sending step, encoded: ``(next chain key, RatchetMessage bytes)``."""
    cdef unsigned char header[80]
    cdef unsigned char ad_buffer[512]
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef unsigned char *ad = ad_buffer
    cdef unsigned char *out
    cdef unsigned char *p = header
    cdef Py_ssize_t key_size = PyBytes_GET_SIZE(ratchet_key)
    cdef Py_ssize_t ad_size = PyBytes_GET_SIZE(associated_data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(plaintext)
    cdef Py_ssize_t header_size, ciphertext_size, total
    cdef unsigned long long written = 0
    if not (_is_uint32(version) and _is_uint32(previous_chain_length)
            and _is_uint32(message_number) and key_size <= 32
            and ad_size <= 512 - 64 and _native_gcm):
        return _kdf.seal_ratchet_message(chain_key, plaintext, associated_data, version,
                                         ratchet_key, previous_chain_length, message_number)
    if version:
        p[0] = 0x08
        p = _put_varint(p + 1, version)
    if key_size:
        p[0] = 0x12
        p[1] = <unsigned char>key_size
        memcpy(p + 2, PyBytes_AS_STRING(ratchet_key), key_size)
        p += 2 + key_size
    if previous_chain_length:
        p[0] = 0x18
        p = _put_varint(p + 1, previous_chain_length)
    if message_number:
        p[0] = 0x20
        p = _put_varint(p + 1, message_number)
    header_size = p - header
    memcpy(ad, PyBytes_AS_STRING(associated_data), ad_size)
    memcpy(ad + ad_size, header, header_size)
    ciphertext_size = size + TAG_SIZE
    total = 1 + _varint_size(header_size) + header_size + 1 + _varint_size(ciphertext_size)
    total += ciphertext_size
    message = PyBytes_FromStringAndSize(NULL, total)
    out = <unsigned char *>PyBytes_AS_STRING(message)
    out[0] = 0x0A
    out = _put_varint(out + 1, header_size)
    memcpy(out, header, header_size)
    out += header_size
    out[0] = 0x12
    out = _put_varint(out + 1, ciphertext_size)
    cdef bytes next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
            <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
    _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(_AEAD_KEY_INFO),
              PyBytes_GET_SIZE(_AEAD_KEY_INFO), material)
    _gcm_encrypt(out, &written, <unsigned char *>PyBytes_AS_STRING(plaintext), size,
                 ad, ad_size + header_size, NULL, material + KEY_SIZE, material)
    memset(message_key, 0, KEY_SIZE)
    memset(material, 0, MATERIAL_SIZE)
    return next_key, message


# --- the common Double Ratchet receiving step, decoded -------------------------------------


cdef inline const unsigned char *_get_uint32(const unsigned char *p, const unsigned char *end,
                                             unsigned long long *value) noexcept nogil:
    """A minimal (canonical) varint of at most 32 bits at ``p``; NULL if it is anything else."""
    cdef unsigned long long result = 0
    cdef int shift = 0
    cdef unsigned char byte
    while p < end and shift < 35:
        byte = p[0]
        p += 1
        result |= <unsigned long long>(byte & 0x7F) << shift
        if not byte & 0x80:
            if (shift != 0 and byte == 0) or result > 0xFFFFFFFFULL:
                return NULL  # a padded varint, or beyond uint32
            value[0] = result
            return p
        shift += 7
    return NULL


def open_ratchet_message(bytes chain_key not None, data, bytes associated_data not None,
                         bytes ratchet_key not None, receiving_number,
                         Py_ssize_t max_message_size, Py_ssize_t max_plaintext_size):
    """The next message of the current receiving chain: ``(next chain key, plaintext)`` or None.

    Accepts only the canonical ``RatchetMessage`` encoding (fields in number
    order, minimal varints, zero values omitted, nothing unknown) of version
    1, carrying ``ratchet_key`` and ``message_number == receiving_number``,
    whose AEAD opens. Anything else, including a failed authentication, is
    declined with ``None`` for the caller's strict path to handle.
    """
    cdef unsigned char ad_buffer[512]
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef const unsigned char *start
    cdef const unsigned char *end
    cdef const unsigned char *p
    cdef const unsigned char *header
    cdef const unsigned char *header_end
    cdef unsigned long long header_size, ciphertext_size, value, number = 0
    cdef Py_ssize_t ad_size = PyBytes_GET_SIZE(associated_data)
    cdef Py_ssize_t size
    cdef unsigned long long written = 0
    cdef bytes plaintext, next_key
    if (type(data) is not bytes or not _is_uint32(receiving_number) or not _native_gcm
            or PyBytes_GET_SIZE(ratchet_key) != KEY_SIZE or ad_size > 512 - 64):
        return None
    size = PyBytes_GET_SIZE(data)
    if size > max_message_size or size < 2:
        return None
    start = <const unsigned char *>PyBytes_AS_STRING(data)
    end = start + size
    if start[0] != 0x0A:
        return None
    p = _get_uint32(start + 1, end, &header_size)
    if p == NULL or header_size > <unsigned long long>(end - p) or header_size < 36:
        return None
    header = p
    header_end = p + header_size
    if (header[0] != 0x08 or header[1] != 0x01 or header[2] != 0x12 or header[3] != KEY_SIZE
            or memcmp(header + 4, PyBytes_AS_STRING(ratchet_key), KEY_SIZE) != 0):
        return None
    p = header + 4 + KEY_SIZE
    if p < header_end and p[0] == 0x18:  # previous_chain_length, non-zero
        p = _get_uint32(p + 1, header_end, &value)
        if p == NULL or value == 0:
            return None
    if p < header_end and p[0] == 0x20:  # message_number, non-zero
        p = _get_uint32(p + 1, header_end, &number)
        if p == NULL or number == 0:
            return None
    if p != header_end or number != PyLong_AsUnsignedLongLong(receiving_number):
        return None
    if p >= end or p[0] != 0x12:
        return None
    p = _get_uint32(p + 1, end, &ciphertext_size)
    if (p == NULL or ciphertext_size != <unsigned long long>(end - p)
            or ciphertext_size < TAG_SIZE
            or ciphertext_size - TAG_SIZE > <unsigned long long>max_plaintext_size):
        return None
    memcpy(ad_buffer, PyBytes_AS_STRING(associated_data), ad_size)
    memcpy(ad_buffer + ad_size, header, header_size)
    next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
    plaintext = PyBytes_FromStringAndSize(NULL, ciphertext_size - TAG_SIZE)
    _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
            <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
    _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(_AEAD_KEY_INFO),
              PyBytes_GET_SIZE(_AEAD_KEY_INFO), material)
    memset(message_key, 0, KEY_SIZE)
    opened = _gcm_decrypt(<unsigned char *>PyBytes_AS_STRING(plaintext), &written, NULL,
                          p, ciphertext_size, ad_buffer, ad_size + header_size,
                          material + KEY_SIZE, material) == 0
    memset(material, 0, MATERIAL_SIZE)
    if not opened:
        return None
    return next_key, plaintext


include "_asymmetric_c.pxi"
include "_sender_keys_c.pxi"
