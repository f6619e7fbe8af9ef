"""Fuzz every decoder of untrusted bytes in omega.groups.

Run: ``python fuzz/fuzz_groups.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks a target, the rest
is its input: one signed operation (raw, or XOR-ed onto a valid one so the
fuzzer reaches the signature and rule checks) received by a fixed group, a
batch received by it, or a batch loaded as a whole log. Crashes: anything but
an OmegaError escaping, or a refused input that changed the group state.
"""

from __future__ import annotations

import contextlib
import sys

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.errors import OmegaError
from omega.groups import GroupLog
from omega.testing.random import SeededRandom as _SeededRandom

_NOW = 1_700_000_000_000


def _device(seed: int) -> tuple[str, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([seed + 1]) * 32)
    signed = certify_device(identity, key_pair.public_key, name="fuzz", created_at=_NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity.user_id, LocalDevice(key_pair=key_pair, certificate=certificate)


_OWNER_ID, _OWNER = _device(20)
_MEMBER_ID, _MEMBER = _device(30)
_source, _ = GroupLog.create(_OWNER, name="fuzz", now=_NOW, rng=_SeededRandom(b"fuzz-groups"))
_source.add_member(_OWNER, _MEMBER_ID, now=_NOW)
LOG_BYTES = _source.to_bytes()
TEMPLATE = _source.rename(_OWNER, "renamed", now=_NOW)


def _xor_onto(template: bytes, noise: bytes) -> bytes:
    out = bytearray(template)
    for index, byte in enumerate(noise[: len(out)]):
        out[index] ^= byte
    return bytes(out) + noise[len(out) :]


def _fresh() -> GroupLog:
    log, _ = GroupLog.from_batch(LOG_BYTES)
    return log


def _receive(data: bytes) -> None:
    log = _fresh()
    before = log.state
    try:
        log.receive(data)
    except OmegaError:
        if log.state != before or log.pending_count:
            raise AssertionError("a refused operation changed the group state") from None


def _batch(data: bytes) -> None:
    with contextlib.suppress(OmegaError):
        _fresh().receive_batch(data)


def _load(data: bytes) -> None:
    with contextlib.suppress(OmegaError):
        GroupLog.from_batch(data)


TARGETS = (
    _receive,
    lambda data: _receive(_xor_onto(TEMPLATE, data)),
    _batch,
    _load,
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the target ``data[0]`` selects."""
    if not data:
        return
    TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
