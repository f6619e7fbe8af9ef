# Included by _ratchet_c.pyx (one compiled module): X25519 and detached Ed25519.
#
# The same libsodium functions PyNaCl calls, without its argument wrapping and buffer
# allocation; whatever the fast path does not handle (a key of another length, a
# non-canonical or refused X25519 key, a refused signature) is handed to the reference
# in omega.crypto._kdf, which raises its own error.

cdef inline bint _canonical_x25519(bytes public_key):
    """32 bytes with the little-endian value below 2**255 - 19 (the reference's check)."""
    cdef const unsigned char *key
    cdef int index
    if PyBytes_GET_SIZE(public_key) != KEY_SIZE:
        return False
    key = <const unsigned char *>PyBytes_AS_STRING(public_key)
    if key[31] & 0x80:
        return False
    if key[31] != 0x7F or key[0] < 0xED:
        return True
    for index in range(1, 31):
        if key[index] != 0xFF:
            return True
    return False  # 2**255 - 19 .. 2**255 - 1


def x25519(private_key, public_key):
    """The X25519 shared secret (libsodium ``crypto_scalarmult``); refusals as the reference."""
    cdef bytes shared
    if (type(private_key) is bytes and type(public_key) is bytes
            and PyBytes_GET_SIZE(private_key) == KEY_SIZE and _canonical_x25519(public_key)):
        shared = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
        if _scalarmult(<unsigned char *>PyBytes_AS_STRING(shared),
                       <const unsigned char *>PyBytes_AS_STRING(private_key),
                       <const unsigned char *>PyBytes_AS_STRING(public_key)) == 0:
            return shared
    return _kdf.x25519(private_key, public_key)


def x25519_public(private_key):
    """The X25519 public key of a 32-byte private key (libsodium ``crypto_scalarmult_base``)."""
    cdef bytes public
    if type(private_key) is bytes and PyBytes_GET_SIZE(private_key) == KEY_SIZE:
        public = PyBytes_FromStringAndSize(NULL, KEY_SIZE)
        if _scalarmult_base(<unsigned char *>PyBytes_AS_STRING(public),
                            <const unsigned char *>PyBytes_AS_STRING(private_key)) == 0:
            return public
    return _kdf.x25519_public(private_key)


def ed25519_sign(secret_key, message):
    """libsodium's detached Ed25519 signature (``crypto_sign_detached``)."""
    cdef bytes signature
    cdef unsigned long long written = 0
    if (type(secret_key) is bytes and type(message) is bytes
            and PyBytes_GET_SIZE(secret_key) == 64):
        signature = PyBytes_FromStringAndSize(NULL, 64)
        if _sign_detached(<unsigned char *>PyBytes_AS_STRING(signature), &written,
                          <const unsigned char *>PyBytes_AS_STRING(message),
                          PyBytes_GET_SIZE(message),
                          <const unsigned char *>PyBytes_AS_STRING(secret_key)) == 0:
            return signature
    return _kdf.ed25519_sign(secret_key, message)


def ed25519_verify(public_key, message, signature, str what not None):
    """Check a detached Ed25519 signature (``crypto_sign_verify_detached``)."""
    if (type(public_key) is bytes and type(message) is bytes and type(signature) is bytes
            and PyBytes_GET_SIZE(public_key) == KEY_SIZE and PyBytes_GET_SIZE(signature) == 64):
        if _verify_detached(<const unsigned char *>PyBytes_AS_STRING(signature),
                            <const unsigned char *>PyBytes_AS_STRING(message),
                            PyBytes_GET_SIZE(message),
                            <const unsigned char *>PyBytes_AS_STRING(public_key)) == 0:
            return None
    _kdf.ed25519_verify(public_key, message, signature, what)
