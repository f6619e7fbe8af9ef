# Included by _ratchet_c.pyx (one compiled module): the two one-call Sender Keys steps.
#
# seal_sender_key_message and open_sender_key_message are the compiled twins of
# omega.crypto._kdf's functions of the same names: the same bytes, signed and verified
# with libsodium's detached Ed25519, with no Python between the KDF, the AEAD and the
# signature. The sending step hands anything unusual to the reference; the receiving
# step reads only the canonical encoding the sending step writes and declines (None)
# everything else, including a refused signature or AEAD, to the caller's strict path
# (InboundSenderKeys.decrypt), which raises its own errors.

from cpython.mem cimport PyMem_Free, PyMem_Malloc

cdef bytes _SK_MESSAGE_INFO = _kdf.SENDER_KEY_MESSAGE_INFO
cdef bytes _SK_AD_CONTEXT = _kdf.SENDER_KEY_AD_CONTEXT
cdef bytes _SK_SIGNATURE_CONTEXT = _kdf.SENDER_KEY_SIGNATURE_CONTEXT

cdef enum:
    SIGNATURE_SIZE = 64
    SECRET_KEY_SIZE = 64
    SK_HEADER_MAX = 18  # three tagged uint32 varints


cdef inline unsigned char *_put_uint32_field(unsigned char *p, unsigned char tag,
                                             unsigned long long value) noexcept nogil:
    """A proto3 varint field, omitted when zero (as every protobuf encoder does)."""
    if value:
        p[0] = tag
        p = _put_varint(p + 1, value)
    return p


cdef inline unsigned char *_sender_key_layouts(
    unsigned char *buffer, const unsigned char *binding, Py_ssize_t binding_size,
    const unsigned char *header, Py_ssize_t header_size,
) noexcept:
    """Write AD then the signed prefix into ``buffer``; return where the ciphertext goes.

    AD = AD context || binding || header; signed = signature context ||
    binding || len(header) (2, big-endian) || header || ciphertext.
    """
    cdef Py_ssize_t context_size = PyBytes_GET_SIZE(_SK_AD_CONTEXT)
    cdef unsigned char *p = buffer
    memcpy(p, PyBytes_AS_STRING(_SK_AD_CONTEXT), context_size)
    p += context_size
    memcpy(p, binding, binding_size)
    p += binding_size
    memcpy(p, header, header_size)
    p += header_size
    context_size = PyBytes_GET_SIZE(_SK_SIGNATURE_CONTEXT)
    memcpy(p, PyBytes_AS_STRING(_SK_SIGNATURE_CONTEXT), context_size)
    p += context_size
    memcpy(p, binding, binding_size)
    p += binding_size
    p[0] = <unsigned char>(header_size >> 8)
    p[1] = <unsigned char>(header_size & 0xFF)
    memcpy(p + 2, header, header_size)
    return p + 2 + header_size


def seal_sender_key_message(bytes chain_key not None, bytes plaintext not None,
                            bytes binding not None, version, key_id, iteration, secret_key):
    """One Sender Keys sending step, signed and encoded: ``(next chain key, SenderKeyMessage)``."""
    cdef unsigned char header[SK_HEADER_MAX]
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef unsigned char signature[SIGNATURE_SIZE]
    cdef unsigned char *p = header
    cdef unsigned char *buffer
    cdef unsigned char *ciphertext
    cdef unsigned char *out
    cdef Py_ssize_t size = PyBytes_GET_SIZE(plaintext)
    cdef Py_ssize_t binding_size = PyBytes_GET_SIZE(binding)
    cdef Py_ssize_t header_size, ad_size, signed_size, ciphertext_size, total
    cdef unsigned long long written = 0
    cdef bytes next_key, message
    if not (_is_uint32(version) and _is_uint32(key_id) and _is_uint32(iteration)
            and type(secret_key) is bytes and PyBytes_GET_SIZE(secret_key) == SECRET_KEY_SIZE
            and _native_gcm):
        return _kdf.seal_sender_key_message(chain_key, plaintext, binding, version, key_id,
                                            iteration, secret_key)
    p = _put_uint32_field(p, 0x08, PyLong_AsUnsignedLongLong(version))
    p = _put_uint32_field(p, 0x10, PyLong_AsUnsignedLongLong(key_id))
    p = _put_uint32_field(p, 0x18, PyLong_AsUnsignedLongLong(iteration))
    header_size = p - header
    ciphertext_size = size + TAG_SIZE
    ad_size = PyBytes_GET_SIZE(_SK_AD_CONTEXT) + binding_size + header_size
    signed_size = (PyBytes_GET_SIZE(_SK_SIGNATURE_CONTEXT) + binding_size + 2 + header_size
                   + ciphertext_size)
    buffer = <unsigned char *>PyMem_Malloc(ad_size + signed_size)
    if buffer == NULL:
        raise MemoryError()
    try:
        ciphertext = _sender_key_layouts(buffer, <unsigned char *>PyBytes_AS_STRING(binding),
                                         binding_size, header, header_size)
        next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
        _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
                <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
        _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(_SK_MESSAGE_INFO),
                  PyBytes_GET_SIZE(_SK_MESSAGE_INFO), material)
        memset(message_key, 0, KEY_SIZE)
        _gcm_encrypt(ciphertext, &written, <unsigned char *>PyBytes_AS_STRING(plaintext), size,
                     buffer, ad_size, NULL, material + KEY_SIZE, material)
        memset(material, 0, MATERIAL_SIZE)
        _sign_detached(signature, NULL, buffer + ad_size, signed_size,
                       <const unsigned char *>PyBytes_AS_STRING(secret_key))
        total = (1 + _varint_size(header_size) + header_size
                 + 1 + _varint_size(ciphertext_size) + ciphertext_size + 2 + SIGNATURE_SIZE)
        message = PyBytes_FromStringAndSize(NULL, total)
        out = <unsigned char *>PyBytes_AS_STRING(message)
        out[0] = 0x0A
        out = _put_varint(out + 1, header_size)
        memcpy(out, header, header_size)
        out += header_size
        out[0] = 0x12
        out = _put_varint(out + 1, ciphertext_size)
        memcpy(out, ciphertext, ciphertext_size)
        out += ciphertext_size
        out[0] = 0x1A
        out[1] = SIGNATURE_SIZE
        memcpy(out + 2, signature, SIGNATURE_SIZE)
        return next_key, message
    finally:
        PyMem_Free(buffer)


cdef inline const unsigned char *_get_optional_uint32(
    const unsigned char *p, const unsigned char *end, unsigned char tag,
    unsigned long long *value,
) noexcept nogil:
    """An optional non-zero canonical uint32 field ``tag``; 0 when absent; NULL if malformed."""
    value[0] = 0
    if p < end and p[0] == tag:
        p = _get_uint32(p + 1, end, value)
        if p != NULL and value[0] == 0:
            return NULL  # a zero value is never written
    return p


def open_sender_key_message(bytes chain_key not None, data, bytes binding not None,
                            key_id, iteration, bytes signature_key not None,
                            Py_ssize_t max_message_size, Py_ssize_t max_plaintext_size):
    """The next message of the newest sender key: ``(next chain key, plaintext)`` or None.

    Accepts only the canonical ``SenderKeyMessage`` encoding (fields in
    number order, minimal varints, zero values omitted, nothing unknown, a
    64-byte signature) of version 1 under ``key_id`` at ``iteration``, whose
    signature verifies under ``signature_key`` and whose AEAD opens.
    Anything else is declined with ``None`` for the caller's strict path.
    """
    cdef unsigned char message_key[KEY_SIZE]
    cdef unsigned char material[MATERIAL_SIZE]
    cdef const unsigned char *start
    cdef const unsigned char *end
    cdef const unsigned char *p
    cdef const unsigned char *header
    cdef const unsigned char *header_end
    cdef const unsigned char *sealed
    cdef unsigned char *buffer
    cdef unsigned long long header_size, ciphertext_size, found_key_id, found_iteration
    cdef Py_ssize_t binding_size = PyBytes_GET_SIZE(binding)
    cdef Py_ssize_t size, ad_size, signed_size
    cdef unsigned long long written = 0
    cdef bint opened
    cdef bytes plaintext, next_key
    if (type(data) is not bytes or not _is_uint32(key_id) or not _is_uint32(iteration)
            or not _native_gcm or PyBytes_GET_SIZE(signature_key) != KEY_SIZE):
        return None
    size = PyBytes_GET_SIZE(data)
    if size > max_message_size or size < 2:
        return None
    start = <const unsigned char *>PyBytes_AS_STRING(data)
    end = start + size
    if start[0] != 0x0A:
        return None
    p = _get_uint32(start + 1, end, &header_size)
    if p == NULL or header_size > <unsigned long long>(end - p) or header_size < 2:
        return None
    header = p
    header_end = p + header_size
    if header[0] != 0x08 or header[1] != 0x01:
        return None
    p = _get_optional_uint32(header + 2, header_end, 0x10, &found_key_id)
    if p == NULL:
        return None
    p = _get_optional_uint32(p, header_end, 0x18, &found_iteration)
    if (p != header_end or found_key_id != PyLong_AsUnsignedLongLong(key_id)
            or found_iteration != PyLong_AsUnsignedLongLong(iteration)
            or found_iteration >= 0xFFFFFFFFULL):
        return None
    if p >= end or p[0] != 0x12:
        return None
    p = _get_uint32(p + 1, end, &ciphertext_size)
    if (p == NULL or ciphertext_size + 2 + SIGNATURE_SIZE != <unsigned long long>(end - p)
            or ciphertext_size < TAG_SIZE
            or ciphertext_size - TAG_SIZE > <unsigned long long>max_plaintext_size):
        return None
    sealed = p
    p += ciphertext_size
    if p[0] != 0x1A or p[1] != SIGNATURE_SIZE:
        return None
    ad_size = PyBytes_GET_SIZE(_SK_AD_CONTEXT) + binding_size + header_size
    signed_size = (PyBytes_GET_SIZE(_SK_SIGNATURE_CONTEXT) + binding_size + 2 + header_size
                   + ciphertext_size)
    buffer = <unsigned char *>PyMem_Malloc(ad_size + signed_size)
    if buffer == NULL:
        raise MemoryError()
    try:
        memcpy(_sender_key_layouts(buffer, <unsigned char *>PyBytes_AS_STRING(binding),
                                   binding_size, header, header_size),
               sealed, ciphertext_size)
        if _verify_detached(p + 2, buffer + ad_size, signed_size,
                            <const unsigned char *>PyBytes_AS_STRING(signature_key)) != 0:
            return None
        next_key = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
        plaintext = PyBytes_FromStringAndSize(NULL, ciphertext_size - TAG_SIZE)
        _kdf_ck(<unsigned char *>PyBytes_AS_STRING(chain_key), PyBytes_GET_SIZE(chain_key),
                <unsigned char *>PyBytes_AS_STRING(next_key), message_key)
        _material(message_key, KEY_SIZE, <unsigned char *>PyBytes_AS_STRING(_SK_MESSAGE_INFO),
                  PyBytes_GET_SIZE(_SK_MESSAGE_INFO), material)
        memset(message_key, 0, KEY_SIZE)
        opened = _gcm_decrypt(<unsigned char *>PyBytes_AS_STRING(plaintext), &written, NULL,
                              sealed, ciphertext_size, buffer, ad_size,
                              material + KEY_SIZE, material) == 0
        memset(material, 0, MATERIAL_SIZE)
        if not opened:
            return None
        return next_key, plaintext
    finally:
        PyMem_Free(buffer)
