"""Identity key pairs, signature checks and Bech32m user ids."""

from __future__ import annotations

import dataclasses
import string
from collections import OrderedDict

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    RandomSource,
    _ed25519,
    check_public_key,
    public_key_from_user_id,
    user_id_from_public_key,
    verify_signature,
)
from omega.crypto._ed25519 import Ed25519KeyPair
from omega.crypto.bech32 import bech32m_encode, convert_bits
from omega.errors import (
    ConfigurationError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidUserIdError,
)

# RFC 8032, section 7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# The example of the identity module's docstring.
ZERO_SEED_PUBLIC = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
ZERO_SEED_USER_ID = "omega18d4z00xwk6jz6c4r4rgz5mcdwdjny9thrh3y8f36cpy2rz6emg5skcfwc7"
# The neutral element (order 1) and a point of order 8 that is a valid encoding.
IDENTITY_POINT = bytes([1]) + bytes(31)
ORDER_8_POINT = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
NON_CANONICAL = bytes([0xED]) + bytes([0xFF]) * 30 + bytes([0x7F])  # y = p

seeds = st.binary(min_size=32, max_size=32)


def test_rfc8032_vector() -> None:
    key_pair = IdentityKeyPair.from_seed(RFC8032_SEED)
    assert key_pair.public_key == RFC8032_PUBLIC
    assert key_pair.seed == RFC8032_SEED
    assert key_pair.sign(b"") == RFC8032_SIGNATURE
    verify_signature(RFC8032_PUBLIC, b"", RFC8032_SIGNATURE)


def test_documented_user_id_example() -> None:
    key_pair = IdentityKeyPair.from_seed(bytes(32))
    assert key_pair.public_key == ZERO_SEED_PUBLIC
    assert key_pair.user_id == ZERO_SEED_USER_ID
    assert len(ZERO_SEED_USER_ID) == 64


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "x" * 32, None])
def test_seed_must_be_32_bytes(seed: object) -> None:
    with pytest.raises(InvalidKeyError):
        IdentityKeyPair.from_seed(seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        DeviceKeyPair(seed)  # type: ignore[arg-type]


def test_generate_uses_the_injected_random_source(rng: RandomSource) -> None:
    drawn: list[int] = []

    def source(size: int) -> bytes:
        drawn.append(size)
        return bytes([7]) * size

    key_pair = IdentityKeyPair.generate(source)
    assert drawn == [32]
    assert key_pair == IdentityKeyPair.from_seed(bytes([7]) * 32)
    assert IdentityKeyPair.generate(rng) != IdentityKeyPair.generate(rng)
    assert isinstance(DeviceKeyPair.generate(rng), DeviceKeyPair)


@pytest.mark.parametrize("answer", [b"short", bytes(33), "not bytes"])
def test_a_misbehaving_random_source_is_refused(answer: object) -> None:
    with pytest.raises(ConfigurationError, match="random source"):
        IdentityKeyPair.generate(lambda size: answer)  # type: ignore[arg-type,return-value]


def test_repr_never_shows_the_seed() -> None:
    key_pair = IdentityKeyPair.from_seed(RFC8032_SEED)
    text = repr(key_pair) + str(key_pair)
    assert RFC8032_SEED.hex() not in text
    assert repr(RFC8032_SEED) not in text
    assert key_pair.user_id in text
    device = DeviceKeyPair.from_seed(RFC8032_SEED)
    assert RFC8032_SEED.hex() not in repr(device)
    assert device.device_id in repr(device)


def test_base_repr_shows_only_the_public_key() -> None:
    key_pair = Ed25519KeyPair.from_seed(RFC8032_SEED)
    assert repr(key_pair) == f"Ed25519KeyPair(public_key={RFC8032_PUBLIC.hex()!r})"


def test_equality_and_hash() -> None:
    a = IdentityKeyPair.from_seed(bytes(32))
    assert a == IdentityKeyPair.from_seed(bytes(32))
    assert hash(a) == hash(IdentityKeyPair.from_seed(bytes(32)))
    assert a != IdentityKeyPair.from_seed(bytes([1]) * 32)
    assert a != DeviceKeyPair.from_seed(bytes(32))  # same seed, different role
    assert a != bytes(32)


def test_key_pairs_are_immutable() -> None:
    key_pair = IdentityKeyPair.from_seed(bytes(32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        key_pair.seed = bytes([1]) * 32  # type: ignore[misc]


def test_verify_signature_accepts_good_and_refuses_tampered(identity: IdentityKeyPair) -> None:
    signature = identity.sign(b"hello")
    verify_signature(identity.public_key, b"hello", signature)
    with pytest.raises(InvalidSignatureError):
        verify_signature(identity.public_key, b"hellO", signature)
    with pytest.raises(InvalidSignatureError):
        verify_signature(identity.public_key, b"hello", signature[:-1] + bytes([signature[-1] ^ 1]))
    other = IdentityKeyPair.from_seed(bytes(32))
    with pytest.raises(InvalidSignatureError):
        verify_signature(other.public_key, b"hello", signature)


@pytest.mark.parametrize("signature", [b"", bytes(63), bytes(65), "x" * 64])
def test_verify_signature_refuses_malformed_signatures(
    identity: IdentityKeyPair, signature: object
) -> None:
    with pytest.raises(InvalidSignatureError):
        verify_signature(identity.public_key, b"hello", signature)  # type: ignore[arg-type]


def _mixed_order_point(public_key: bytes) -> bytes:
    result: bytes = nacl.bindings.crypto_core_ed25519_add(public_key, ORDER_8_POINT)
    return result


@pytest.mark.parametrize(
    "key",
    [b"", bytes(31), bytes(33), IDENTITY_POINT, ORDER_8_POINT, NON_CANONICAL, "k" * 32],
    ids=["empty", "short", "long", "neutral", "order-8", "non-canonical", "str"],
)
def test_unusable_public_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        check_public_key(key)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        verify_signature(key, b"", bytes(64))  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        user_id_from_public_key(key)  # type: ignore[arg-type]


def test_points_outside_the_prime_order_subgroup_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        check_public_key(_mixed_order_point(RFC8032_PUBLIC))


def test_user_id_round_trip_and_case(identity: IdentityKeyPair) -> None:
    user_id = identity.user_id
    assert user_id.startswith("omega1")
    assert len(user_id) == 64
    assert user_id == user_id.lower()
    assert public_key_from_user_id(user_id) == identity.public_key
    assert public_key_from_user_id(user_id.upper()) == identity.public_key


def _replace(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


def test_user_id_errors_say_what_is_wrong(identity: IdentityKeyPair) -> None:
    user_id = identity.user_id
    cases = {
        "must start with 'omega1'": [
            "bc1" + user_id[6:],
            "omegb1" + user_id[6:],
            "",
            " " + user_id,
        ],
        "64": [user_id[:-1], user_id + "q", user_id + " "],
        "mixes uppercase and lowercase": [user_id[:32] + user_id[32:].upper()],
        "invalid data character 'b'": [_replace(user_id, 10, "b")],
        "invalid character": [_replace(user_id, 10, " "), _replace(user_id, 10, "é")],
        "checksum mismatch, possibly mistyped": [
            _replace(user_id, 10, "q" if user_id[10] != "q" else "p"),
            user_id[:10] + user_id[11] + user_id[10] + user_id[12:],
        ],
    }
    for reason, texts in cases.items():
        for text in texts:
            if text == user_id:
                continue
            with pytest.raises(InvalidUserIdError, match=reason):
                public_key_from_user_id(text)


def test_user_id_of_a_non_point_is_refused() -> None:
    for key in (IDENTITY_POINT, ORDER_8_POINT, NON_CANONICAL):
        text = bech32m_encode("omega", convert_bits(key, 8, 5, pad=True))
        with pytest.raises(InvalidUserIdError, match="valid Ed25519 public key"):
            public_key_from_user_id(text)


def test_user_id_with_non_zero_padding_is_refused(identity: IdentityKeyPair) -> None:
    data = convert_bits(identity.public_key, 8, 5, pad=True)
    data[-1] |= 1  # one of the 4 padding bits
    text = bech32m_encode("omega", data)
    assert len(text) == 64
    with pytest.raises(InvalidUserIdError, match="padding"):
        public_key_from_user_id(text)


def test_user_id_must_be_a_string() -> None:
    with pytest.raises(InvalidUserIdError):
        public_key_from_user_id(b"omega1")  # type: ignore[arg-type]


@settings(max_examples=50)
@given(seed=seeds)
def test_user_id_round_trip_property(seed: bytes) -> None:
    key_pair = IdentityKeyPair.from_seed(seed)
    assert public_key_from_user_id(key_pair.user_id) == key_pair.public_key
    assert user_id_from_public_key(key_pair.public_key) == key_pair.user_id


@settings(max_examples=300)
@given(seed=seeds, position=st.integers(0, 63), char=st.characters())
def test_any_single_character_substitution_is_rejected(
    seed: bytes, position: int, char: str
) -> None:
    user_id = IdentityKeyPair.from_seed(seed).user_id
    if user_id[position] == char:
        return
    with pytest.raises(InvalidUserIdError):
        public_key_from_user_id(_replace(user_id, position, char))


def test_every_printable_ascii_substitution_is_rejected(identity: IdentityKeyPair) -> None:
    user_id = identity.user_id
    for position in range(len(user_id)):
        for char in string.printable:
            if char == user_id[position]:
                continue
            with pytest.raises(InvalidUserIdError):
                public_key_from_user_id(_replace(user_id, position, char))


def test_remembered_signatures_are_exact_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ed25519, "_VERIFIED_SIZE", 4)
    monkeypatch.setattr(_ed25519, "_verified", OrderedDict())
    key = IdentityKeyPair.from_seed(bytes([9]) * 32)
    other = IdentityKeyPair.from_seed(bytes([10]) * 32)
    signature = key.sign(b"hello")
    verify_signature(key.public_key, b"hello", signature)
    verify_signature(key.public_key, b"hello", signature)  # remembered
    assert len(_ed25519._verified) == 1
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    for public_key, message, sig in [
        (key.public_key, b"hellO", signature),
        (key.public_key, b"hello", forged),
        (other.public_key, b"hello", signature),
    ]:
        with pytest.raises(InvalidSignatureError):
            verify_signature(public_key, message, sig)
    assert len(_ed25519._verified) == 1  # failures are never remembered
    for index in range(10):
        verify_signature(key.public_key, bytes([index]), key.sign(bytes([index])))
    assert len(_ed25519._verified) == 4


def test_user_ids_are_remembered_only_for_valid_keys() -> None:
    key = IdentityKeyPair.from_seed(bytes([11]) * 32)
    assert user_id_from_public_key(key.public_key) == key.user_id == key.user_id
    with pytest.raises(InvalidKeyError):
        user_id_from_public_key(bytes(32))
    with pytest.raises(InvalidKeyError):
        user_id_from_public_key(bytearray(key.public_key))  # type: ignore[arg-type]
