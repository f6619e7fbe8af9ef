"""Fuzz every decoder of untrusted bytes in Sender Keys.

Run: ``python fuzz/fuzz_sender_keys.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks a target, the rest
is its input: a distribution to read or add, a group message for a fixed
receiver (raw, or XOR-ed onto a valid message so the fuzzer reaches the
signature and AEAD checks), serialized inbound and outbound states, or the
next message XOR-ed with noise decrypted twice, by the compiled receiving
step (when built) and by the strict path alone. Crashes: anything but an
OmegaError escaping, a failed decrypt or add that changed state, an accepted
state that does not re-serialize to exactly its input bytes, the two
receiving paths disagreeing (result, error or state).
"""

from __future__ import annotations

import sys

from omega.crypto import DeviceKeyPair, _kdf, _symmetric
from omega.crypto.sender_keys import (
    InboundSenderKeys,
    OutboundSenderKey,
    read_sender_key_distribution,
)
from omega.errors import OmegaError
from omega.testing.random import SeededRandom as _SeededRandom

SENDER_DEVICE = DeviceKeyPair.from_seed(bytes([12]) * 32).public_key
_outbound = OutboundSenderKey.generate(
    "fuzz-group", device_key=SENDER_DEVICE, rng=_SeededRandom(b"fuzz-sender-keys")
)
DISTRIBUTION = _outbound.distribution()
_inbound = InboundSenderKeys.from_distribution(DISTRIBUTION, sender_device_key=SENDER_DEVICE)
_in_flight = [_outbound.encrypt(b"message %d" % i) for i in range(4)]
_inbound.decrypt(_in_flight[3])  # leaves skipped keys for messages 0..2
MESSAGES = [*_in_flight[:3], _outbound.encrypt(b"next")]
INBOUND_STATE = _inbound.to_bytes()
OUTBOUND_STATE = _outbound.to_bytes()


def _xor_onto(template: bytes, noise: bytes) -> bytes:
    out = bytearray(template)
    for index, byte in enumerate(noise[: len(out)]):
        out[index] ^= byte
    return bytes(out) + noise[len(out) :]


def _decrypt(data: bytes) -> None:
    inbound = InboundSenderKeys.from_bytes(INBOUND_STATE)
    try:
        inbound.decrypt(data)
    except OmegaError:
        if inbound.to_bytes() != INBOUND_STATE:
            raise AssertionError("a failed decrypt changed the sender key state") from None
        raise


def _outcome(data: bytes) -> tuple[object, ...]:
    inbound = InboundSenderKeys.from_bytes(INBOUND_STATE)
    try:
        result: tuple[object, ...] = ("opened", inbound.decrypt(data))
    except OmegaError as exc:
        result = ("refused", type(exc), str(exc), exc.details)
    return (*result, inbound.to_bytes())


def _differential(data: bytes) -> None:
    """The compiled receiving step (when built) and the strict path agree on ``data``."""
    fast = _outcome(data)
    compiled = _symmetric.open_sender_key_message
    _symmetric.open_sender_key_message = _kdf.open_sender_key_message  # always declines
    try:
        strict = _outcome(data)
    finally:
        _symmetric.open_sender_key_message = compiled
    if fast != strict:
        raise AssertionError(f"the receiving paths disagree: {fast[:2]} != {strict[:2]}")


def _add(data: bytes) -> None:
    inbound = InboundSenderKeys.from_bytes(INBOUND_STATE)
    try:
        inbound.add_distribution(data)
    except OmegaError:
        if inbound.to_bytes() != INBOUND_STATE:
            raise AssertionError("a refused distribution changed the sender key state") from None
        raise


def _load_inbound(data: bytes) -> None:
    if InboundSenderKeys.from_bytes(data).to_bytes() != data:
        raise AssertionError("an accepted inbound state does not round-trip bit-exact")


def _load_outbound(data: bytes) -> None:
    if OutboundSenderKey.from_bytes(data).to_bytes() != data:
        raise AssertionError("an accepted outbound state does not round-trip bit-exact")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the decoder that ``data[0]`` selects."""
    if not data:
        return
    selector, payload = data[0] % 10, data[1:]
    try:
        if selector == 0:
            read_sender_key_distribution(payload)
        elif selector == 1:
            _add(_xor_onto(DISTRIBUTION, payload))
        elif selector == 2:
            _decrypt(payload)
        elif selector in (3, 4):
            _decrypt(_xor_onto(MESSAGES[data[0] // 10 % 4], payload))
        elif selector == 5:
            _load_inbound(payload)
        elif selector == 6:
            _load_inbound(_xor_onto(INBOUND_STATE, payload))
        elif selector == 7:
            _load_outbound(payload)
        elif selector == 8:
            _load_outbound(_xor_onto(OUTBOUND_STATE, payload))
        else:
            _differential(_xor_onto(MESSAGES[3], payload))
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
