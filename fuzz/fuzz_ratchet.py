"""Fuzz every decoder of untrusted bytes in X3DH and the Double Ratchet.

Run: ``python fuzz/fuzz_ratchet.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks a target, the rest
is its input: a prekey bundle to verify, a prekey message for a fixed
responder, a ratchet message for a fixed established session (raw, or
XOR-ed onto a valid message so the fuzzer reaches the cryptographic checks),
a repeated prekey message routed to the responder's existing session, or
serialized session and prekey store states; and, differentially, a ratchet
message opened with the compiled one-call receiving step live and with the
strict path alone. Crashes: anything but an OmegaError escaping, a failed
decrypt or accept that changed state, an accepted state that does not
re-serialize to exactly its input bytes (a version 1 state is upgraded: only
its version field may change), the two receiving paths disagreeing (result,
error or state).
"""

from __future__ import annotations

import sys

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    _kdf,
    _symmetric,
    certify_device,
    verify_device_certificate,
)
from omega.crypto.double_ratchet import RatchetSession
from omega.crypto.prekeys import PrekeyConfig, PrekeyStore
from omega.crypto.x3dh import (
    accept_session,
    encrypt_message,
    initiate_session,
    verify_prekey_bundle,
)
from omega.errors import OmegaError
from omega.protocol import PrekeyStoreState, RatchetSessionState, decode_message, encode_message
from omega.testing.random import SeededRandom as _SeededRandom

NOW = 1_700_000_000_000


def _device(identity_seed: int, device_seed: int) -> tuple[IdentityKeyPair, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([identity_seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([device_seed]) * 32)
    signed = certify_device(identity, key_pair.public_key, name="fuzz", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity, LocalDevice(key_pair=key_pair, certificate=certificate)


_RNG = _SeededRandom(b"fuzz-ratchet")
ALICE_IDENTITY, ALICE = _device(11, 12)
BOB_IDENTITY, BOB = _device(21, 22)
_store = PrekeyStore.generate(
    BOB.key_pair,
    now=NOW,
    config=PrekeyConfig(one_time_prekey_target=4, one_time_prekey_low_water=0),
    rng=_RNG,
)
BUNDLE = encode_message(_store.build_bundle(BOB.certificate, one_time_prekey_id=1))
_alice_session, PREKEY_MESSAGE = initiate_session(
    ALICE, BUNDLE, b"hello", user_id=BOB_IDENTITY.user_id, rng=_RNG
)
REPEATED_PREKEY_MESSAGE = encrypt_message(_alice_session, b"again", rng=_RNG).data
STORE_STATE = _store.to_bytes()  # before the prekey message was accepted
_bob_session = accept_session(BOB, _store, PREKEY_MESSAGE, now=NOW).session
ACCEPTED_STORE_STATE = _store.to_bytes()
FRESH_SESSION_STATE = _bob_session.to_bytes()  # can open REPEATED_PREKEY_MESSAGE
_alice_session.decrypt(_bob_session.encrypt(b"reply", rng=_RNG))
_in_flight = [_alice_session.encrypt(b"message %d" % i, rng=_RNG) for i in range(4)]
_bob_session.decrypt(_in_flight[3])  # leaves skipped keys for messages 0..2
RATCHET_MESSAGES = [*_in_flight[:3], _alice_session.encrypt(b"next", rng=_RNG)]
SESSION_STATE = _bob_session.to_bytes()


def _xor_onto(template: bytes, noise: bytes) -> bytes:
    out = bytearray(template)
    for index, byte in enumerate(noise[: len(out)]):
        out[index] ^= byte
    return bytes(out) + noise[len(out) :]


def _decrypt(data: bytes) -> None:
    session = RatchetSession.from_bytes(SESSION_STATE)
    try:
        session.decrypt(data)
    except OmegaError:
        if session.to_bytes() != SESSION_STATE:
            raise AssertionError("a failed decrypt changed the session state") from None
        raise


def _outcome(data: bytes) -> tuple[object, ...]:
    session = RatchetSession.from_bytes(SESSION_STATE)
    try:
        result: tuple[object, ...] = ("opened", session.decrypt(data))
    except OmegaError as exc:
        result = ("refused", type(exc), str(exc), exc.details)
    return (*result, session.to_bytes())


def _differential(data: bytes) -> None:
    """The compiled receiving step (when built) and the strict path agree on ``data``."""
    fast = _outcome(data)
    compiled = _symmetric.open_ratchet_message
    _symmetric.open_ratchet_message = _kdf.open_ratchet_message  # always declines
    try:
        strict = _outcome(data)
    finally:
        _symmetric.open_ratchet_message = compiled
    if fast != strict:
        raise AssertionError(f"the receiving paths disagree: {fast[:2]} != {strict[:2]}")


def _accept(data: bytes) -> None:
    store = PrekeyStore.from_bytes(STORE_STATE)
    try:
        accept_session(BOB, store, data, now=NOW)
    except OmegaError:
        if store.to_bytes() != STORE_STATE:
            raise AssertionError("a failed accept changed the prekey store") from None
        raise


def _route(data: bytes) -> None:
    store = PrekeyStore.from_bytes(ACCEPTED_STORE_STATE)
    session = RatchetSession.from_bytes(FRESH_SESSION_STATE)
    try:
        accept_session(BOB, store, data, now=NOW, existing_session=session)
    except OmegaError:
        if (store.to_bytes(), session.to_bytes()) != (ACCEPTED_STORE_STATE, FRESH_SESSION_STATE):
            raise AssertionError("a failed accept changed the store or the session") from None
        raise


def _upgraded(cls: type[RatchetSessionState | PrekeyStoreState], data: bytes) -> bytes:
    """``data`` as the current version would write it: version 1 becomes 2, nothing else."""
    state = decode_message(cls, data, max_size=len(data))
    if state.version == 1:
        state.version = 2
    return encode_message(state)


def _load_session(data: bytes) -> None:
    if RatchetSession.from_bytes(data).to_bytes() != _upgraded(RatchetSessionState, data):
        raise AssertionError("an accepted session state does not round-trip bit-exact")


def _load_store(data: bytes) -> None:
    if PrekeyStore.from_bytes(data).to_bytes() != _upgraded(PrekeyStoreState, data):
        raise AssertionError("an accepted prekey store state does not round-trip bit-exact")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the decoder that ``data[0]`` selects."""
    if not data:
        return
    selector, payload = data[0] % 12, data[1:]
    try:
        if selector == 0:
            verify_prekey_bundle(payload, user_id=BOB_IDENTITY.user_id)
        elif selector == 1:
            verify_prekey_bundle(_xor_onto(BUNDLE, payload), user_id=BOB_IDENTITY.user_id)
        elif selector == 2:
            _accept(payload)
        elif selector == 3:
            _accept(_xor_onto(PREKEY_MESSAGE, payload))
        elif selector == 4:
            _decrypt(payload)
        elif selector in (5, 6):
            _decrypt(_xor_onto(RATCHET_MESSAGES[data[0] // 12 % 4], payload))
        elif selector == 7:
            _load_session(payload)
        elif selector == 8:
            _load_session(_xor_onto(SESSION_STATE, payload))
        elif selector == 9:
            _load_store(_xor_onto(STORE_STATE, payload) if data[0] & 0x80 else payload)
        elif selector == 10:
            _route(_xor_onto(REPEATED_PREKEY_MESSAGE, payload))
        else:
            # The next message of the receiving chain: the one the compiled step opens.
            _differential(_xor_onto(RATCHET_MESSAGES[3], payload) if data[0] & 0x80 else payload)
    except OmegaError:
        return


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
