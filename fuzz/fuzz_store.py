"""Fuzz the store's decoders of untrusted input: HTTP bodies, auth headers, challenges.

Run: ``python fuzz/fuzz_store.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first byte picks the decoder; anything but
an OmegaError escaping is a crash.
"""

from __future__ import annotations

import sys

from omega.errors import OmegaError, RequestRejectedError
from omega.mailbox._auth import AuthProof, open_challenge
from omega.mailbox._wire import (
    error_from_response,
    parse_auth_headers,
    parse_json_object,
    parse_message_ids,
    parse_messages,
    unb64,
)

_SECRET = bytes(range(32))


def _challenge(data: bytes) -> None:
    proof = AuthProof(device_key=data[:32], challenge=data[32:73], signature=data[73:137])
    open_challenge(_SECRET, proof, action="fetch", now=1)


def _headers(data: bytes) -> None:
    parsed = parse_json_object(data, RequestRejectedError)
    parse_auth_headers({str(k): str(v) for k, v in parsed.items()})


def _response(data: bytes) -> None:
    error = error_from_response(400 + data[0] % 200 if data else 400, data[1:])
    if not isinstance(error, OmegaError):
        raise AssertionError("error_from_response must return an OmegaError")


DECODERS = (
    lambda data: parse_json_object(data, RequestRejectedError),
    lambda data: parse_messages(data, "a" * 64, max_payload=1024),
    lambda data: unb64(data.decode("latin-1"), "x", max_bytes=64, error=RequestRejectedError),
    lambda data: parse_message_ids(data.decode("latin-1")),
    _challenge,
    _headers,
    _response,
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the decoder ``data[0]`` selects."""
    if not data:
        return
    try:
        DECODERS[data[0] % len(DECODERS)](data[1:])
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
