"""The Noise spec's invariants for our CipherState, SymmetricState and crypto functions."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from omega.errors import CryptoError, DecryptionError, InvalidKeyError, LocalProtocolError
from omega.transport._noise_cipher import (
    MAX_NONCE,
    CipherState,
    SymmetricState,
    dh,
    generate_private_key,
    public_key_of,
)

KEY = bytes(range(32))


def spec_hkdf(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """Noise section 4.3, written out with HMAC-SHA256."""
    temp_key = hmac.digest(chaining_key, input_key_material, "sha256")
    output1 = hmac.digest(temp_key, b"\x01", "sha256")
    output2 = hmac.digest(temp_key, output1 + b"\x02", "sha256")
    return output1, output2


def test_initialize_symmetric_pads_short_names_and_hashes_long_ones() -> None:
    name = b"Noise_XX_25519_ChaChaPoly_SHA256"
    assert SymmetricState(name).handshake_hash == name
    assert SymmetricState(b"Noise_NN").handshake_hash == b"Noise_NN".ljust(32, b"\x00")
    long_name = b"Noise_XXfallback+psk0_25519_ChaChaPoly_SHA256"
    assert SymmetricState(long_name).handshake_hash == hashlib.sha256(long_name).digest()


def test_mix_key_and_split_follow_the_spec_hkdf() -> None:
    state = SymmetricState(b"Noise_XX_25519_ChaChaPoly_SHA256")
    chaining_key = state.handshake_hash
    state.mix_key(b"input key material")
    chaining_key, temp_key = spec_hkdf(chaining_key, b"input key material")
    # The cipher now holds temp_key: EncryptAndHash uses it with h as associated data.
    h = state.handshake_hash
    ciphertext = state.encrypt_and_hash(b"payload")
    nonce = bytes(12)
    assert ciphertext == ChaCha20Poly1305(temp_key).encrypt(nonce, b"payload", h)
    assert state.handshake_hash == hashlib.sha256(h + ciphertext).digest()
    first, second = state.split()
    expected_first, expected_second = spec_hkdf(chaining_key, b"")
    assert first.encrypt_with_ad(b"", b"x") == ChaCha20Poly1305(expected_first).encrypt(
        nonce, b"x", b""
    )
    assert second.encrypt_with_ad(b"", b"x") == ChaCha20Poly1305(expected_second).encrypt(
        nonce, b"x", b""
    )


def test_without_a_key_encryption_is_the_identity() -> None:
    state = SymmetricState(b"Noise_XX_25519_ChaChaPoly_SHA256")
    before = state.handshake_hash
    assert state.encrypt_and_hash(b"clear") == b"clear"
    assert state.handshake_hash == hashlib.sha256(before + b"clear").digest()
    assert state.decrypt_and_hash(b"clear") == b"clear"
    assert not CipherState().has_key


def test_nonces_are_32_zero_bits_then_a_little_endian_counter_and_never_repeat() -> None:
    cipher = CipherState(KEY)
    aead = ChaCha20Poly1305(KEY)
    seen = set()
    for counter in range(3):
        nonce = bytes(4) + counter.to_bytes(8, "little")
        ciphertext = cipher.encrypt_with_ad(b"ad", b"same plaintext")
        assert ciphertext == aead.encrypt(nonce, b"same plaintext", b"ad")
        seen.add(ciphertext)
    assert len(seen) == 3
    assert cipher.nonce == 3


def test_a_failed_decryption_does_not_advance_the_nonce() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    good = sender.encrypt_with_ad(b"", b"hello")
    with pytest.raises(DecryptionError):
        receiver.decrypt_with_ad(b"", good[:-1] + bytes([good[-1] ^ 1]))
    assert receiver.nonce == 0
    assert receiver.decrypt_with_ad(b"", good) == b"hello"
    assert receiver.nonce == 1


def test_the_reserved_nonce_is_never_used() -> None:
    cipher = CipherState(KEY)
    cipher.nonce = MAX_NONCE
    with pytest.raises(LocalProtocolError, match="exhausted"):
        cipher.encrypt_with_ad(b"", b"x")
    with pytest.raises(CryptoError, match="exhausted"):
        cipher.decrypt_with_ad(b"", bytes(16))
    cipher.nonce = MAX_NONCE - 1
    cipher.encrypt_with_ad(b"", b"last one")
    assert cipher.nonce == MAX_NONCE


def test_rekey_is_the_spec_formula_and_keeps_the_nonce() -> None:
    cipher = CipherState(KEY)
    cipher.encrypt_with_ad(b"", b"x")
    cipher.rekey()
    new_key = ChaCha20Poly1305(KEY).encrypt(
        bytes(4) + MAX_NONCE.to_bytes(8, "little"), bytes(32), b""
    )[:32]
    assert cipher.nonce == 1
    nonce = bytes(4) + (1).to_bytes(8, "little")
    assert cipher.encrypt_with_ad(b"", b"y") == ChaCha20Poly1305(new_key).encrypt(nonce, b"y", b"")
    with pytest.raises(LocalProtocolError):
        CipherState().rekey()


def test_dh_agrees_and_refuses_small_order_points() -> None:
    first = generate_private_key(lambda size: bytes([1]) * size)
    second = generate_private_key(lambda size: bytes([2]) * size)
    assert dh(first, public_key_of(second)) == dh(second, public_key_of(first))
    with pytest.raises(InvalidKeyError):
        dh(first, bytes(32))
    with pytest.raises(InvalidKeyError):
        public_key_of(b"short")
