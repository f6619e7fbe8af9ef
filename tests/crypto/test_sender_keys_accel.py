"""The compiled one-call Sender Keys steps agree with the pure reference, input for input.

``omega.crypto._ratchet_c.seal_sender_key_message`` must write exactly the
bytes of :func:`omega.crypto._kdf.seal_sender_key_message` (or raise its
error). ``open_sender_key_message`` opens the next message of the newest
sender key when it is in the canonical encoding and declines (``None``)
everything else to the strict path of :meth:`InboundSenderKeys.decrypt`.
Each receiving test decrypts the same bytes with two copies of one state,
once with the compiled step live and once with the pure reference (which
always declines), and requires the same plaintext or the same error and the
same state afterwards.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from omega.crypto import _kdf, _symmetric
from omega.crypto._sender_key_chain import group_binding, signed_bytes
from omega.crypto.sender_keys import InboundSenderKeys, OutboundSenderKey, SenderKeyConfig
from omega.errors import DecryptionError
from omega.protocol import SenderKeyMessage, decode_message
from omega.testing import wire
from omega.testing.random import SeededRandom


def _outcome(function: object, *args: object) -> tuple[object, ...]:
    try:
        return ("returned", function(*args))  # type: ignore[operator]
    except Exception as exc:
        return ("raised", type(exc), str(exc), getattr(exc, "details", None))


def _pair(seed: bytes, group_id: str = "group") -> tuple[OutboundSenderKey, InboundSenderKeys]:
    rng = SeededRandom(seed)
    device_key = bytes(SigningKey(rng(32)).verify_key)
    outbound = OutboundSenderKey.generate(group_id, device_key=device_key, rng=rng)
    inbound = InboundSenderKeys.from_distribution(
        outbound.distribution(), sender_device_key=device_key
    )
    return outbound, inbound


def _decrypt(state: bytes, data: bytes, config: SenderKeyConfig | None) -> tuple[object, ...]:
    keys = InboundSenderKeys.from_bytes(state, config=config)
    return (*_outcome(keys.decrypt, data), keys.to_bytes())


def _both(
    state: bytes, data: bytes, config: SenderKeyConfig | None = None
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    fast = _decrypt(state, data, config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_symmetric, "open_sender_key_message", _kdf.open_sender_key_message)
        strict = _decrypt(state, data, config)
    return fast, strict


# --- the sending step ----------------------------------------------------------------------

uint32ish = st.one_of(
    st.integers(0, 300),
    st.integers(0, 2**32 - 1),
    st.sampled_from([2**32 - 1, 2**32, 2**64 + 5, -1, True]),
)


@settings(max_examples=40)
@given(
    chain_key=st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=80)),
    plaintext=st.binary(max_size=600),
    binding=st.binary(max_size=1100),
    version=st.one_of(st.just(1), uint32ish),
    key_id=uint32ish,
    iteration=uint32ish,
    secret_seed=st.binary(min_size=32, max_size=32),
    secret_size=st.sampled_from([64, 64, 64, 32, 0]),
)
def test_sealed_sender_key_messages_are_identical(
    compiled: ModuleType,
    chain_key: bytes,
    plaintext: bytes,
    binding: bytes,
    version: int,
    key_id: int,
    iteration: int,
    secret_seed: bytes,
    secret_size: int,
) -> None:
    signer = SigningKey(secret_seed)
    secret_key = (bytes(signer) + bytes(signer.verify_key))[:secret_size]
    args = (chain_key, plaintext, binding, version, key_id, iteration, secret_key)
    expected = _outcome(_kdf.seal_sender_key_message, *args)
    for native_aead in (True, False):  # libsodium's AES-256-GCM, and pyca's (no AES-NI)
        old = compiled._use_native_aead(native_aead)
        try:
            assert _outcome(compiled.seal_sender_key_message, *args) == expected
        finally:
            compiled._use_native_aead(old)
    if expected[0] != "returned" or not all(0 <= v < 2**32 for v in (version, key_id, iteration)):
        return  # out-of-range numbers and bad keys: the same refusal, tested just above
    next_chain_key, encoded = expected[1]  # type: ignore[misc]
    message = decode_message(SenderKeyMessage, encoded)
    signed = signed_bytes(binding, message.header, message.ciphertext)
    signer.verify_key.verify(signed, message.signature)  # raises if the signature is wrong
    ad = _kdf.SENDER_KEY_AD_CONTEXT + binding + message.header
    assert compiled.open_step(chain_key, message.ciphertext, ad, _kdf.SENDER_KEY_MESSAGE_INFO) == (
        next_chain_key,
        plaintext,
    )


# --- the receiving step --------------------------------------------------------------------


def _variants(data: bytes) -> list[bytes]:
    """Rewrites of a valid message: some the strict decoder accepts, some it refuses."""
    message = decode_message(SenderKeyMessage, data)
    header, ciphertext, signature = message.header, message.ciphertext, message.signature
    body = wire.field(2, ciphertext) + wire.field(3, signature)
    padded = b"\x0a" + bytes([0x80 | len(header), 0x00]) + header
    return [
        data + b"\x20\x01",  # an unknown varint field
        data + wire.field(9, b"x"),  # an unknown length-delimited field
        wire.field(2, ciphertext)
        + wire.field(1, header)
        + wire.field(3, signature),  # out of order
        wire.field(1, header)
        + wire.field(3, signature)
        + wire.field(2, ciphertext),  # out of order
        wire.field(1, header) + body + wire.field(3, signature),  # a repeated field
        padded + body,  # a padded length
        wire.field(1, header + b"\x20\x07") + body,  # an unknown header field
        wire.field(1, b"\x08\x02" + header[2:]) + body,  # version 2
        wire.field(1, b"\x08\x81\x00" + header[2:]) + body,  # a padded version
        wire.field(1, header + b"\x08\x01") + body,  # version repeated
        wire.field(1, header[:2] + b"\x10\x00" + header[2:]) + body,  # a zero key id written
        wire.field(1, header + b"\x18\x00") + body,  # iteration written again as zero
        wire.field(1, header) + wire.field(2, ciphertext[:15]) + wire.field(3, signature),  # < tag
        wire.field(1, header) + wire.field(2, b"") + wire.field(3, signature),  # empty ciphertext
        wire.field(1, header)
        + wire.field(2, ciphertext)
        + wire.field(3, signature[:63]),  # short sig
        wire.field(1, header) + wire.field(2, ciphertext) + wire.field(3, signature + b"\x00"),
        wire.field(1, header) + wire.field(2, ciphertext),  # no signature
        wire.field(1, b"") + body,  # an empty header
        data[:-1],
        data[:1],
        b"",
    ]


def _resigned(outbound: OutboundSenderKey, data: bytes, ciphertext: bytes) -> bytes:
    """``data`` with another ciphertext, correctly signed: only the AEAD can refuse it."""
    message = decode_message(SenderKeyMessage, data)
    binding = group_binding(outbound.group_id, outbound.device_key)
    signature = _kdf.ed25519_sign(
        outbound._signer._secret_key, signed_bytes(binding, message.header, ciphertext)
    )
    return wire.field(1, message.header) + wire.field(2, ciphertext) + wire.field(3, signature)


@settings(max_examples=25)
@given(
    seed=st.binary(min_size=1, max_size=8),
    plaintexts=st.lists(st.binary(max_size=300), min_size=3, max_size=3),
    flip=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_every_message_and_tampering_gives_the_same_outcome(
    compiled: ModuleType, seed: bytes, plaintexts: list[bytes], flip: int, bit: int
) -> None:
    del compiled
    outbound, inbound = _pair(seed)
    inbound.decrypt(outbound.encrypt(b"hello"))  # past iteration 0: the header has 3 fields
    messages = [outbound.encrypt(plaintext) for plaintext in plaintexts]
    state = inbound.to_bytes()
    for data in messages:  # the next one (fast), later ones (skips: declined)
        fast, strict = _both(state, data)
        assert fast == strict
    first = messages[0]
    fast, _ = _both(state, first)
    assert fast[:2] == ("returned", plaintexts[0])
    tampered = bytearray(first)
    tampered[flip % len(first)] ^= 1 << bit
    ciphertext = decode_message(SenderKeyMessage, first).ciphertext
    forged = bytearray(ciphertext)
    forged[flip % len(forged)] ^= 1 << bit
    for data in [bytes(tampered), _resigned(outbound, first, bytes(forged)), *_variants(first)]:
        fast, strict = _both(state, data)
        assert fast == strict


def test_a_correctly_signed_message_the_aead_refuses_leaves_the_state(compiled: ModuleType) -> None:
    del compiled
    outbound, inbound = _pair(b"aead")
    data = outbound.encrypt(b"secret")
    ciphertext = bytearray(decode_message(SenderKeyMessage, data).ciphertext)
    ciphertext[0] ^= 1
    state = inbound.to_bytes()
    fast, strict = _both(state, _resigned(outbound, data, bytes(ciphertext)))
    assert fast == strict
    assert fast[1] is DecryptionError
    assert fast[-1] == state
    assert inbound.decrypt(data) == b"secret"


@settings(max_examples=40)
@given(data=st.binary(max_size=160), prefix=st.sampled_from([b"", b"\x0a\x02\x08\x01\x12"]))
def test_random_bytes_give_the_same_outcome(
    compiled: ModuleType, data: bytes, prefix: bytes
) -> None:
    del compiled
    _, inbound = _pair(b"random")
    fast, strict = _both(inbound.to_bytes(), prefix + data)
    assert fast == strict


def test_older_keys_skips_and_limits_take_the_strict_path(compiled: ModuleType) -> None:
    del compiled
    outbound, inbound = _pair(b"older")
    old = [outbound.encrypt(b"old-0"), outbound.encrypt(b"old-1")]
    inbound.add_distribution(outbound.rotate(rng=SeededRandom(b"rotate")))
    new = [outbound.encrypt(b"new-0"), outbound.encrypt(b"new-1"), outbound.encrypt(b"new-2")]
    state = inbound.to_bytes()
    small = SenderKeyConfig(max_plaintext_size=4)
    for data, config in [
        (old[1], None),  # an older key, skipping one message
        (old[0], None),  # an older key, in order
        (new[2], None),  # the newest key, skipping two
        (new[0], small),  # the plaintext would be too large
        (new[0], None),  # the common case
    ]:
        fast, strict = _both(state, data, config)
        assert fast == strict
    assert _both(state, new[0])[0][:2] == ("returned", b"new-0")


def test_the_compiled_step_opens_the_canonical_next_message_only(compiled: ModuleType) -> None:
    outbound, inbound = _pair(b"direct")
    inbound.decrypt(outbound.encrypt(b"hello"))
    chain = inbound._keys[0]
    first, second = outbound.encrypt(b"one"), outbound.encrypt(b"two")
    binding = group_binding(outbound.group_id, outbound.device_key)
    limits = (1 << 20, 1 << 20)

    def call(
        data: object, *, key_id: object = None, iteration: object = None, **kw: object
    ) -> object:
        return compiled.open_sender_key_message(
            kw.get("chain_key", chain.chain_key),
            data,
            kw.get("binding", binding),
            chain.key_id if key_id is None else key_id,
            chain.iteration if iteration is None else iteration,
            kw.get("signature_key", chain.signature_key),
            *kw.get("limits", limits),  # type: ignore[misc]
        )

    opened = call(first)
    assert opened is not None
    assert opened[1] == b"one"
    assert opened[0] == _kdf.kdf_ck(chain.chain_key)[0]
    args = (chain.chain_key, first, binding, chain.key_id, chain.iteration, chain.signature_key)
    assert _kdf.open_sender_key_message(*args, *limits) is None
    assert call(second) is None  # a skip
    assert call(first, iteration=chain.iteration + 1) is None
    assert call(first, iteration=-1) is None
    assert call(first, iteration=2**32 - 1) is None
    assert call(first, key_id=chain.key_id ^ 1) is None
    assert call(bytearray(first)) is None
    assert call(first, limits=(len(first) - 1, 1 << 20)) is None
    assert call(first, limits=(1 << 20, 2)) is None
    assert call(first, signature_key=outbound.device_key) is None  # another signer
    assert call(first, signature_key=bytes(31)) is None
    assert call(first, binding=binding + b"x") is None  # another group or device
    assert call(first, chain_key=bytes(32)) is None  # the AEAD refuses
    old = compiled._use_native_aead(False)
    try:
        assert call(first) is None
    finally:
        compiled._use_native_aead(old)
    assert call(first) == opened
