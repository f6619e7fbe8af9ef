"""Fuzz the secure channel's untrusted-input parsers: handshake messages, records, addresses.

Run: ``python fuzz/fuzz_noise.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks the target; the
rest is what a hostile peer (or a pasted string) delivers:

* 0, 1, 2: handshake message 1, 2 or 3, given to an engine that reached that
  point of a real handshake between two fixed identities;
* 3: record plaintexts (each after a 2-byte length), sealed as a peer would
  and opened by a record receiver: every record type, size and sequence;
* 4: an address string.

Anything but an :class:`~omega.errors.OmegaError` escaping is a crash, and
so is a forged handshake message that an engine accepts.
"""

from __future__ import annotations

import sys

from omega.crypto import Identity
from omega.errors import OmegaError
from omega.testing.random import SeededRandom as _Seeded
from omega.transport._noise_cipher import CipherState
from omega.transport._records import RecordReceiver
from omega.transport.address import Address
from omega.transport.noise import NoiseCredentials, NoiseHandshake, Role


def _credentials(name: str) -> NoiseCredentials:
    identity = Identity.create(device_name=name, created_at=0, rng=_Seeded(name.encode()))
    return NoiseCredentials.from_identity(identity, rng=_Seeded(name.encode() + b"/static"))


ALICE = _credentials("alice")
BOB = _credentials("bob")


def _engines(stage: int) -> tuple[NoiseHandshake, list[bytes]]:
    """The engine that receives message ``stage + 1``, and the genuine messages so far."""
    initiator = NoiseHandshake(Role.INITIATOR, ALICE, rng=_Seeded(b"i"))
    responder = NoiseHandshake(Role.RESPONDER, BOB, rng=_Seeded(b"r"))
    initiator.start()
    genuine = initiator.messages_to_send()
    if stage == 0:
        return responder, genuine
    responder.receive_message(genuine[0])
    genuine += responder.messages_to_send()
    if stage == 1:
        return initiator, genuine
    initiator.receive_message(genuine[1])
    genuine += initiator.messages_to_send()
    return responder, genuine


def _handshake(stage: int, message: bytes) -> None:
    engine, genuine = _engines(stage)
    try:
        engine.receive_message(message)
    except OmegaError:
        return
    # Message 1 carries no authentication of its own; messages 2 and 3 do.
    if stage > 0 and message != genuine[stage]:
        raise AssertionError(f"a forged handshake message {stage + 1} was accepted")


def _records(stream: bytes) -> None:
    """Seal each plaintext of the stream (2-byte big-endian length, then the bytes)."""
    sealer = CipherState(bytes(32))
    receiver = RecordReceiver(CipherState(bytes(32)), max_frame_size=1 << 17)
    position = 0
    while position + 2 <= len(stream):
        size = int.from_bytes(stream[position : position + 2], "big")
        plaintext = stream[position + 2 : position + 2 + size]
        position += 2 + size
        message = sealer.encrypt_with_ad(b"", plaintext)
        try:
            receiver.open(message)
        except OmegaError:
            return
        if plaintext[:1] == b"\x02":  # a KEY_UPDATE the receiver accepted: follow it
            sealer.rekey()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Give ``data[1:]`` to the target ``data[0]`` selects."""
    if not data:
        return
    target, rest = data[0] % 5, data[1:]
    if target < 3:
        _handshake(target, rest)
    elif target == 3:
        _records(rest)
    else:
        try:
            Address.parse(rest.decode("utf-8", "replace"))
        except OmegaError:
            return


def main() -> None:
    """Run under atheris."""
    import atheris  # optional: TestOneInput must run without it

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
