"""Fuzz every decoder of untrusted bytes in omega.sync.

Run: ``python fuzz/fuzz_sync.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks a target, the rest
is its input: a link code's text, a link hello received by a fixed offer, a
link welcome received by a fixed request, a Yjs update applied to a fixed
replica (raw, or appended to a valid update so the fuzzer reaches the schema
checks), a state vector, a sync message's shape checks and chunk reassembly.
Crashes: anything but an OmegaError escaping, or a refused update that
changed the replica.
"""

from __future__ import annotations

import sys

from omega.crypto import Identity
from omega.errors import OmegaError
from omega.protocol import SyncContent, decode_message
from omega.sync import (
    CONTACTS,
    SETTINGS,
    DeviceLinkCode,
    LinkOffer,
    LinkRequest,
    Reassembler,
    SyncReplica,
    check_sync_content,
    decode_state_vector,
    history_document,
)
from omega.testing.random import SeededRandom as _SeededRandom
from omega.transport.address import Address

_NOW = 1_700_000_000_000
_RNG = _SeededRandom(b"omega fuzz sync")
_IDENTITY = Identity.create(device_name="phone", created_at=1, rng=_RNG)
_BOB = Identity.create(device_name="phone", created_at=1, rng=_RNG).user_id
_OFFER = LinkOffer.create(
    _IDENTITY, link_addresses=(Address.parse("/memory/link"),), now=_NOW, rng=_RNG
)
_CODE = _OFFER.code
_SOURCE = SyncReplica(bytes(range(32)))
_VALID = _SOURCE.set(CONTACTS, {f"{_BOB}/display_name": "Bob"}) or b""


def _code(data: bytes) -> None:
    DeviceLinkCode.parse(data.decode("utf-8", "replace"))


def _hello(data: bytes) -> None:
    offer = LinkOffer(_IDENTITY, _CODE, rng=_RNG)
    offer.receive_hello(data, now=_NOW + 1)


def _welcome(data: bytes) -> None:
    request = LinkRequest(_CODE, device_name="laptop", now=_NOW, rng=_RNG)
    request.receive_welcome(data)


def _update(data: bytes, prefix: bytes = b"") -> None:
    replica = SyncReplica(bytes(32))
    replica.apply(SETTINGS, replica.set(SETTINGS, {"theme": "dark"}) or b"")
    before = {name: replica.snapshot(name) for name in replica.names()}
    document = (CONTACTS, SETTINGS, history_document(_BOB))[len(data) % 3]
    try:
        replica.apply(document, prefix + data)
    except OmegaError:
        after = {name: replica.snapshot(name) for name in replica.names()}
        if after != before:
            raise AssertionError("a refused update changed the replica") from None
        raise


def _valid_then(data: bytes) -> None:
    _update(data, _VALID)


def _content(data: bytes) -> None:
    content = decode_message(SyncContent, data)
    check_sync_content(content)
    if content.chunk is not None:
        Reassembler().add(bytes(32), content.chunk)


TARGETS = (_code, _hello, _welcome, _update, _valid_then, decode_state_vector, _content)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the target ``data[0]`` selects; only OmegaError may escape."""
    if not data:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    try:
        target(data[1:])
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
