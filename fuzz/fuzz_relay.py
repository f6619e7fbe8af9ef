"""Fuzz the relay frame decoder and the registration check with arbitrary bytes.

Run: ``python fuzz/fuzz_relay.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first byte picks a target: the
RelayFrame decoder both ends of a relay session use, or the relay's check of
a RelayRegister. Anything but an OmegaError escaping, or an accepted frame
that does not survive re-encoding, is a crash.
"""

from __future__ import annotations

import sys

from omega.errors import OmegaError
from omega.protocol import RelayRegister
from omega.transport._relay_protocol import (
    decode_relay_frame,
    encode_relay_frame,
    verify_registration,
)

_MAX_SIZE = 1 << 16
_NONCE = bytes(range(32))


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data[1:]`` as a relay frame (even first byte) or check it as a registration."""
    if not data:
        return
    payload = data[1:]
    try:
        kind, body = decode_relay_frame(payload, max_size=_MAX_SIZE)
    except OmegaError:
        return
    again = decode_relay_frame(encode_relay_frame(body), max_size=_MAX_SIZE)
    if again != (kind, body):
        raise AssertionError(f"a relay frame changed across a re-encode: {body!r}")
    if data[0] % 2 and isinstance(body, RelayRegister):
        try:
            verify_registration(
                body, relay_id="fuzz", nonce=_NONCE, now_ms=body.timestamp, max_clock_skew_ms=1
            )
        except OmegaError:
            return
        raise AssertionError("a registration over a fixed nonce was accepted")


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
