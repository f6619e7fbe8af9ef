"""The compiled one-call receiving step agrees with the strict pure path, input for input.

``omega.crypto._ratchet_c.open_ratchet_message`` opens the next message of
the current receiving chain when it is in the canonical encoding, and
declines (``None``) everything else to the strict path of
:meth:`RatchetSession.decrypt`. Each test decrypts the same bytes with two
copies of one session, once with the compiled step live and once with the
pure reference (which always declines), and requires the same plaintext or
the same error and the same state afterwards.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from omega.crypto import _kdf, _symmetric
from omega.crypto.double_ratchet import RatchetSession, SessionConfig
from omega.testing import wire
from omega.testing.random import SeededRandom


def _pair(
    seed: bytes, config: SessionConfig | None = None
) -> tuple[RatchetSession, RatchetSession]:
    rng = SeededRandom(seed)
    secret = rng(32)
    bob_private = rng(32)
    keys = {name: bytes(SigningKey(rng(32)).verify_key) for name in ("ai", "ad", "bi", "bd")}
    keys["base"] = _kdf.x25519_public(rng(32))
    alice = RatchetSession.for_initiator(
        shared_secret=secret,
        remote_ratchet_key=_kdf.x25519_public(bob_private),
        local_identity_key=keys["ai"],
        local_device_key=keys["ad"],
        remote_identity_key=keys["bi"],
        remote_device_key=keys["bd"],
        base_key=keys["base"],
        config=config,
        rng=rng,
    )
    bob = RatchetSession.for_responder(
        shared_secret=secret,
        ratchet_private_key=bob_private,
        local_identity_key=keys["bi"],
        local_device_key=keys["bd"],
        remote_identity_key=keys["ai"],
        remote_device_key=keys["ad"],
        base_key=keys["base"],
        config=config,
    )
    return alice, bob


def _outcome(session: RatchetSession, data: bytes) -> tuple[object, ...]:
    try:
        result: tuple[object, ...] = ("returned", session.decrypt(data))
    except Exception as exc:
        result = ("raised", type(exc), str(exc), getattr(exc, "details", None))
    return (*result, session.to_bytes())


def _both(
    state: bytes, data: bytes, config: SessionConfig | None = None
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    fast = _outcome(RatchetSession.from_bytes(state, config=config), data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_symmetric, "open_ratchet_message", _kdf.open_ratchet_message)
        strict = _outcome(RatchetSession.from_bytes(state, config=config), data)
    return fast, strict


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header, ciphertext) of a canonical RatchetMessage."""
    header_size = message[1]
    header = message[2 : 2 + header_size]
    rest = message[2 + header_size :]
    assert rest[0] == 0x12
    size_length = 1
    while rest[size_length] & 0x80:
        size_length += 1
    return header, rest[1 + size_length :]


# Rewrites of a valid message: some the strict decoder accepts (the fast path declines
# them and the strict path opens them), some it refuses.
def _variants(message: bytes) -> list[bytes]:
    header, ciphertext = _split(message)
    padded_header = header[:-1] + bytes([header[-1] | 0x80, 0x00]) if header[-2] == 0x20 else header
    return [
        message + b"\x18\x01",  # an unknown varint field
        message + wire.field(9, b"x"),  # an unknown length-delimited field
        wire.field(2, ciphertext) + wire.field(1, header),  # fields out of order
        wire.field(1, header)
        + wire.field(2, ciphertext)
        + wire.field(2, ciphertext),  # a repeated field
        b"\x0a"
        + bytes([0x80 | len(header), 0x00])
        + header
        + wire.field(2, ciphertext),  # padded len
        wire.field(1, header + b"\x28\x07") + wire.field(2, ciphertext),  # unknown header field
        wire.field(1, padded_header) + wire.field(2, ciphertext),  # padded message number
        wire.field(1, b"\x08\x02" + header[2:]) + wire.field(2, ciphertext),  # header version 2
        wire.field(1, header + b"\x08\x01") + wire.field(2, ciphertext),  # version repeated, last
        wire.field(1, header) + wire.field(2, ciphertext[:15]),  # shorter than the tag
        wire.field(1, header) + wire.field(2, b""),  # empty ciphertext
        wire.field(1, header),  # no ciphertext
        message[:-1],
        message[:1],
        b"",
    ]


@settings(max_examples=25)
@given(
    seed=st.binary(min_size=1, max_size=8),
    sent=st.integers(min_value=1, max_value=4),
    plaintexts=st.lists(st.binary(max_size=300), min_size=4, max_size=4),
    flip=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_every_message_and_tampering_gives_the_same_outcome(
    compiled: ModuleType,
    seed: bytes,
    sent: int,
    plaintexts: list[bytes],
    flip: int,
    bit: int,
) -> None:
    del compiled
    alice, bob = _pair(seed)
    bob.decrypt(alice.encrypt(b"hello"))  # the chain exists: the fast path can apply
    messages = [alice.encrypt(plaintext) for plaintext in plaintexts[:sent]]
    state = bob.to_bytes()
    for data in messages:  # the next one (fast), later ones (skips: declined)
        fast, strict = _both(state, data)
        assert fast == strict
    first = messages[0]
    fast, strict = _both(state, first)
    assert fast[:2] == ("returned", plaintexts[0])
    tampered = bytearray(first)
    tampered[flip % len(first)] ^= 1 << bit
    for data in [bytes(tampered), *_variants(first)]:
        fast, strict = _both(state, data)
        assert fast == strict


@settings(max_examples=40)
@given(data=st.binary(max_size=120), prefix=st.sampled_from([b"", b"\x0a\x24\x08\x01\x12\x20"]))
def test_random_bytes_give_the_same_outcome(
    compiled: ModuleType, data: bytes, prefix: bytes
) -> None:
    del compiled
    alice, bob = _pair(b"random")
    bob.decrypt(alice.encrypt(b"hello"))
    fast, strict = _both(bob.to_bytes(), prefix + data)
    assert fast == strict


def test_the_compiled_step_opens_the_canonical_next_message_only(compiled: ModuleType) -> None:
    alice, bob = _pair(b"direct")
    bob.decrypt(alice.encrypt(b"hello"))
    state = bob._state
    assert state.receiving_chain_key is not None
    assert state.receiving_ratchet_key is not None
    first, second = alice.encrypt(b"one"), alice.encrypt(b"two")
    limits = (bob._max_message_size, bob.config.max_plaintext_size)
    args = (state.receiving_chain_key, first, bob.associated_data, state.receiving_ratchet_key)
    opened = compiled.open_ratchet_message(*args, state.receiving_number, *limits)
    header, ciphertext = _split(first)
    assert opened == _kdf.open_step(
        state.receiving_chain_key, ciphertext, bob.associated_data + header
    )
    assert _kdf.open_ratchet_message(*args, state.receiving_number, *limits) is None
    # A skipped message, another counter, bytearray input, a tight size limit, a wrong key.
    assert compiled.open_ratchet_message(*args[:1], second, *args[2:], 1, *limits) is None
    assert compiled.open_ratchet_message(*args, state.receiving_number + 1, *limits) is None
    assert compiled.open_ratchet_message(*args, -1, *limits) is None
    bytearray_args = (args[0], bytearray(first), *args[2:])
    assert compiled.open_ratchet_message(*bytearray_args, state.receiving_number, *limits) is None
    assert (
        compiled.open_ratchet_message(*args, state.receiving_number, len(first) - 1, 1 << 20)
        is None
    )
    assert compiled.open_ratchet_message(*args, state.receiving_number, 1 << 20, 2) is None
    wrong_key = (*args[:3], bytes(32))
    assert compiled.open_ratchet_message(*wrong_key, state.receiving_number, *limits) is None
    wrong_chain = (bytes(32), *args[1:])
    assert compiled.open_ratchet_message(*wrong_chain, state.receiving_number, *limits) is None
    old = compiled._use_native_aead(False)
    try:
        assert compiled.open_ratchet_message(*args, state.receiving_number, *limits) is None
    finally:
        compiled._use_native_aead(old)


def test_sessions_with_skipped_keys_and_new_ratchet_keys_agree(compiled: ModuleType) -> None:
    del compiled
    alice, bob = _pair(b"skips", SessionConfig(max_skip=3, max_skipped_keys=3))
    bob.decrypt(alice.encrypt(b"hello"))
    late = alice.encrypt(b"late")
    for _ in range(2):
        bob.decrypt(alice.encrypt(b"skip me"))  # now bob holds no skipped keys yet
    skipped = [alice.encrypt(b"lost") for _ in range(2)]
    bob.decrypt(alice.encrypt(b"after the gap"))  # two skipped keys stored
    next_message = alice.encrypt(b"next")
    alice.decrypt(bob.encrypt(b"reply"))
    new_chain = alice.encrypt(b"new ratchet key")
    config = bob.config
    state = bob.to_bytes()
    for data in [next_message, *skipped, late, new_chain, new_chain + b"\x18\x01"]:
        fast, strict = _both(state, data, config)
        assert fast == strict
    fast, _ = _both(state, next_message, config)
    assert fast[:2] == ("returned", b"next")
