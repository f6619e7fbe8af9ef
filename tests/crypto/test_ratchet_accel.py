"""The compiled symmetric step agrees with the pure reference, byte for byte, error for error.

``omega.crypto._ratchet_c`` (Cython) and :mod:`omega.crypto._kdf` (pure)
must give the same chain steps, key material and ciphertexts, open each
other's ciphertexts, and refuse tampered ones with the same error. A whole
scripted conversation (Double Ratchet in both directions, out of order, and
Sender Keys) run once on each path in a subprocess must produce the same
bytes. The compiled side is skipped, with the reason, when it is not built,
unless ``OMEGA_REQUIRE_ACCELERATED=1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import omega
from omega.crypto import _kdf, _symmetric
from omega.crypto._sender_key_chain import MESSAGE_KEY_INFO
from omega.crypto._session_state import SessionState
from omega.errors import DecryptionError
from omega.protocol import RatchetHeader, RatchetMessage, decode_message

keys = st.binary(min_size=32, max_size=32)
infos = st.sampled_from([_kdf.AEAD_KEY_INFO, MESSAGE_KEY_INFO])


@pytest.fixture(scope="module", params=[True, False], ids=["libsodium-aead", "pyca-aead"])
def aead_path(request: pytest.FixtureRequest, compiled: ModuleType) -> Iterator[bool]:
    """Run a test with libsodium's AES-256-GCM and again with pyca's (CPUs without AES-NI)."""
    old = compiled._use_native_aead(request.param)
    yield request.param
    compiled._use_native_aead(old)


def _outcome(function: object, *args: object) -> tuple[object, ...]:
    """What a call returned, or the error it raised: type, message, details, cause type."""
    assert callable(function)
    try:
        return ("returned", function(*args))
    except Exception as exc:
        details = getattr(exc, "details", None)
        return ("raised", type(exc), str(exc), details, type(exc.__cause__))


def test_the_live_path_is_reported() -> None:
    live = omega.accelerator_status()["ratchet"]
    assert (_symmetric.seal_step is not _kdf.seal_step) == live


@settings(max_examples=50)
@given(chain_key=keys, info=infos)
def test_chain_steps_and_key_material_agree(
    compiled: ModuleType, chain_key: bytes, info: bytes
) -> None:
    assert compiled.kdf_ck(chain_key) == _kdf.kdf_ck(chain_key)
    assert compiled.message_key_material(chain_key, info) == _kdf.message_key_material(
        chain_key, info=info
    )


@settings(max_examples=50)
@given(root_key=keys, dh_output=keys)
def test_root_steps_agree(compiled: ModuleType, root_key: bytes, dh_output: bytes) -> None:
    assert compiled.kdf_rk(root_key, dh_output) == _kdf.kdf_rk(root_key, dh_output)


def test_a_state_copy_holds_every_field_and_new_containers() -> None:
    state = SessionState(
        initiator=True,
        local_identity_key=b"a",
        local_device_key=b"b",
        remote_identity_key=b"c",
        remote_device_key=b"d",
        base_key=b"e",
        root_key=b"f",
        sending_private=b"g",
        sending_public=b"h",
        sending_chain_key=b"i",
        receiving_ratchet_key=b"j",
        receiving_chain_key=b"k",
        sending_number=1,
        receiving_number=2,
        previous_sending_length=3,
        skipped={(b"l", 4): b"m"},
        previous_receiving_keys=[b"n"],
        pending=None,
    )
    copy = state.copy()
    for field in dataclasses.fields(SessionState):
        assert getattr(copy, field.name) == getattr(state, field.name), field.name
    assert copy.skipped is not state.skipped
    assert copy.previous_receiving_keys is not state.previous_receiving_keys


@settings(max_examples=50)
@given(
    chain_key=keys,
    plaintext=st.binary(max_size=600),
    ad=st.binary(max_size=300),
    info=infos,
)
def test_seal_and_open_agree_and_interoperate(
    compiled: ModuleType,
    aead_path: bool,
    chain_key: bytes,
    plaintext: bytes,
    ad: bytes,
    info: bytes,
) -> None:
    sealed = compiled.seal_step(chain_key, plaintext, ad, info)
    assert sealed == _kdf.seal_step(chain_key, plaintext, ad, info)
    next_chain_key, ciphertext = sealed
    assert _kdf.open_step(chain_key, ciphertext, ad, info) == (next_chain_key, plaintext)
    assert compiled.open_step(chain_key, ciphertext, ad, info) == (next_chain_key, plaintext)
    message_key = _kdf.kdf_ck(chain_key)[1]
    assert compiled.aead_encrypt(message_key, plaintext, ad, info) == ciphertext
    assert compiled.aead_decrypt(message_key, ciphertext, ad, info) == plaintext


@settings(max_examples=50)
@given(
    chain_key=keys,
    plaintext=st.binary(max_size=100),
    ad=st.binary(max_size=50),
    flip=st.integers(0, 10_000),
    what=st.sampled_from(["ratchet message", "group message"]),
)
def test_tampering_fails_the_same_way(
    compiled: ModuleType,
    aead_path: bool,
    chain_key: bytes,
    plaintext: bytes,
    ad: bytes,
    flip: int,
    what: str,
) -> None:
    _, ciphertext = _kdf.seal_step(chain_key, plaintext, ad)
    tampered = bytearray(ciphertext)
    tampered[flip % len(tampered)] ^= 1 << (flip % 8)
    errors = []
    for open_step in (_kdf.open_step, compiled.open_step):
        with pytest.raises(DecryptionError) as caught:
            open_step(chain_key, bytes(tampered), ad, _kdf.AEAD_KEY_INFO, what)
        errors.append((type(caught.value), caught.value.message, type(caught.value.__cause__)))
    assert errors[0] == errors[1]
    assert errors[0][1].startswith(what)


def test_wrong_key_and_short_ciphertexts(compiled: ModuleType, aead_path: bool) -> None:
    for module in (_kdf, compiled):
        with pytest.raises(DecryptionError):
            module.aead_decrypt(bytes(32), b"short", b"")
        with pytest.raises(DecryptionError):
            module.open_step(bytes(32), _kdf.seal_step(b"\x01" * 32, b"x", b"")[1], b"")


# --- whole encoded sending steps, X25519 and Ed25519 ---------------------------------------

uint32ish = st.one_of(
    st.integers(0, 300),
    st.integers(0, 2**32 - 1),
    st.integers(-2, 2**32 + 2),
    st.sampled_from([2**32 - 1, 2**32, 2**64 + 5, -(2**64), True]),
)


@settings(max_examples=40)
@given(
    chain_key=st.one_of(keys, st.binary(max_size=80)),
    plaintext=st.binary(max_size=600),
    ad=st.one_of(st.binary(min_size=128, max_size=128), st.binary(max_size=600)),
    version=st.one_of(st.just(1), uint32ish),
    ratchet_key=st.one_of(keys, st.binary(max_size=40)),
    previous=uint32ish,
    number=uint32ish,
)
def test_sealed_ratchet_messages_are_identical(
    compiled: ModuleType,
    aead_path: bool,
    chain_key: bytes,
    plaintext: bytes,
    ad: bytes,
    version: int,
    ratchet_key: bytes,
    previous: int,
    number: int,
) -> None:
    args = (chain_key, plaintext, ad, version, ratchet_key, previous, number)
    expected = _outcome(_kdf.seal_ratchet_message, *args)
    assert _outcome(compiled.seal_ratchet_message, *args) == expected
    in_range = all(0 <= value < 2**32 for value in (version, previous, number))
    if expected[0] != "returned" or not in_range:
        return  # the reference encoder wraps numbers out of range (callers never pass them)
    next_chain_key, encoded = expected[1]  # type: ignore[misc]
    message = decode_message(RatchetMessage, encoded)
    header = decode_message(RatchetHeader, message.header)
    assert (header.version, header.ratchet_key) == (version, ratchet_key)
    assert (header.previous_chain_length, header.message_number) == (previous, number)
    opened = compiled.open_step(chain_key, message.ciphertext, ad + message.header)
    assert opened == (next_chain_key, plaintext)


LOW_ORDER_AND_EDGE_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    *((2**255 - 19 + delta).to_bytes(32, "little") for delta in (-1, 0, 1)),
    b"\xed" + b"\xff" * 31,
    b"\xff" * 32,
    b"\x09" + bytes(31),
]


@settings(max_examples=40)
@given(
    private_key=st.one_of(keys, st.binary(max_size=40), st.none()),
    public_key=st.one_of(keys, st.sampled_from(LOW_ORDER_AND_EDGE_POINTS), st.binary(max_size=40)),
)
def test_x25519_agrees_and_refuses_alike(
    compiled: ModuleType, private_key: bytes, public_key: bytes
) -> None:
    assert _outcome(compiled.x25519, private_key, public_key) == _outcome(
        _kdf.x25519, private_key, public_key
    )
    assert _outcome(compiled.x25519_public, private_key) == _outcome(
        _kdf.x25519_public, private_key
    )


def test_low_order_points_are_refused_on_both_paths(compiled: ModuleType) -> None:
    for point in LOW_ORDER_AND_EDGE_POINTS[:5]:
        outcome = _outcome(compiled.x25519, bytes(range(32)), point)
        assert outcome[0] == "raised", point.hex()
        assert "X25519" in str(outcome[2])
        assert outcome == _outcome(_kdf.x25519, bytes(range(32)), point)


@settings(max_examples=40)
@given(
    seed=keys,
    message=st.binary(max_size=300),
    flip=st.integers(0, 10_000),
    size=st.sampled_from([64, 64, 63, 65, 0]),
    key_size=st.sampled_from([32, 32, 31]),
)
def test_ed25519_signatures_agree_and_refuse_alike(
    compiled: ModuleType, seed: bytes, message: bytes, flip: int, size: int, key_size: int
) -> None:
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    signature = compiled.ed25519_sign(secret_key, message)
    assert signature == _kdf.ed25519_sign(secret_key, message)
    assert signature == nacl.bindings.crypto_sign(message, secret_key)[:64]
    for module in (_kdf, compiled):
        assert module.ed25519_verify(public_key, message, signature, "group message") is None
    tampered = bytearray(signature + message)
    tampered[flip % len(tampered)] ^= 1 << (flip % 8)
    cases = [
        (public_key, bytes(tampered[64:]), bytes(tampered[:64])),
        (public_key, message, (signature * 2)[:size]),
        (public_key[:key_size], message, signature),
    ]
    for case in cases:
        assert _outcome(compiled.ed25519_verify, *case, "group message") == _outcome(
            _kdf.ed25519_verify, *case, "group message"
        )
    assert _outcome(compiled.ed25519_sign, secret_key[:key_size], message) == _outcome(
        _kdf.ed25519_sign, secret_key[:key_size], message
    )


# --- a whole conversation on each path ----------------------------------------------------

CONVERSATION = r"""
import json, sys
import omega
from omega.crypto import (
    DeviceKeyPair, IdentityKeyPair, InboundSenderKeys, OutboundSenderKey, RatchetSession,
)
from omega.testing.random import SeededRandom

def public(seed):
    return IdentityKeyPair.from_seed(bytes([seed]) * 32).public_key

def device(seed):
    return DeviceKeyPair.from_seed(bytes([seed]) * 32).public_key

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
spk = bytes([5]) * 32
spk_public = X25519PrivateKey.from_private_bytes(spk).public_key().public_bytes_raw()
base = X25519PrivateKey.from_private_bytes(bytes([7]) * 32).public_key().public_bytes_raw()
common = dict(shared_secret=bytes([9]) * 32, base_key=base)
alice = RatchetSession.for_initiator(
    remote_ratchet_key=spk_public, local_identity_key=public(1), local_device_key=device(2),
    remote_identity_key=public(3), remote_device_key=device(4), rng=SeededRandom(b"a"), **common)
bob = RatchetSession.for_responder(
    ratchet_private_key=spk, local_identity_key=public(3), local_device_key=device(4),
    remote_identity_key=public(1), remote_device_key=device(2), **common)
out = {"status": omega.accelerator_status(), "messages": [], "states": []}
rng = {"alice": SeededRandom(b"A"), "bob": SeededRandom(b"B")}
held = []
for index in range(40):
    sender, receiver, name = (alice, bob, "alice") if index % 7 < 4 else (bob, alice, "bob")
    plaintext = bytes([index]) * (index * 13 % 300)
    message = sender.encrypt(plaintext, rng=rng[name])
    out["messages"].append(message.hex())
    if index % 5 == 2:
        held.append((receiver, message, plaintext))  # delivered late, out of order
    else:
        assert receiver.decrypt(message) == plaintext
    out["states"].append([alice.to_bytes().hex(), bob.to_bytes().hex()])
for receiver, message, plaintext in reversed(held):
    assert receiver.decrypt(message) == plaintext
out["states"].append([alice.to_bytes().hex(), bob.to_bytes().hex()])
outbound = OutboundSenderKey.generate("g", device_key=device(2), rng=SeededRandom(b"g"))
inbound = InboundSenderKeys.from_distribution(outbound.distribution(), sender_device_key=device(2))
group = [outbound.encrypt(bytes([i]) * i * 11) for i in range(12)]
for i in (0, 1, 5, 3, 2, 4, 11, 6, 7, 8, 9, 10):
    assert inbound.decrypt(group[i]) == bytes([i]) * i * 11
out["group"] = [message.hex() for message in group]
out["group_states"] = [outbound.to_bytes().hex(), inbound.to_bytes().hex()]
json.dump(out, sys.stdout)
"""


def _run_conversation(pure: bool) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if key != "OMEGA_PURE_PYTHON"}
    if pure:
        env["OMEGA_PURE_PYTHON"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", CONVERSATION],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    decoded: dict[str, object] = json.loads(result.stdout)
    return decoded


def test_a_whole_conversation_is_byte_identical_on_both_paths(compiled: ModuleType) -> None:
    pure = _run_conversation(pure=True)
    accelerated = _run_conversation(pure=False)
    assert pure.pop("status") == {"framing": False, "codec": False, "ratchet": False}
    assert accelerated.pop("status") == {"framing": True, "codec": True, "ratchet": True}
    assert pure == accelerated
