"""Fuzz signed peer record verification with arbitrary bytes.

Run: ``python fuzz/fuzz_peer_record.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). Each input is verified as a received
``SignedPeerRecord``, and again as the body of a record re-signed by a fixed
device (with its valid certificate), so that the checks behind the
signature are reached too. Anything but an OmegaError escaping, or an
accepted record whose fields do not survive signing them again, is a crash.
"""

from __future__ import annotations

import sys

from omega.crypto import Identity
from omega.discovery import PEER_RECORD_CONTEXT, sign_peer_record, verify_peer_record
from omega.errors import OmegaError
from omega.protocol import SignedPeerRecord
from omega.testing.random import SeededRandom

NOW = 1_800_000_000_000
ALICE = Identity.create(device_name="fuzz", created_at=0, rng=SeededRandom(b"fuzz-peer-record"))
CERTIFICATE = ALICE.device.certificate.to_signed()


def _check(data: bytes, user_id: str | None) -> None:
    try:
        info = verify_peer_record(data, now=NOW, user_id=user_id)
    except OmegaError:
        return
    again = verify_peer_record(
        sign_peer_record(
            ALICE.device,
            addresses=info.addresses,
            relays=info.relays,
            mailboxes=info.mailboxes,
            sequence=info.sequence,
            expires_at=info.expires_at,
        ),
        now=NOW,
    )
    if (again.addresses, again.relays, again.mailboxes) != (
        info.addresses,
        info.relays,
        info.mailboxes,
    ):
        raise AssertionError(f"a verified record changed when signed again: {info!r}")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Verify ``data`` as received, then as a record body signed by a valid device."""
    _check(data, None)
    signed = SignedPeerRecord(
        peer_record=data,
        signature=ALICE.device.key_pair.sign(PEER_RECORD_CONTEXT + data),
        certificate=CERTIFICATE,
    )
    try:
        info = verify_peer_record(signed, now=NOW, user_id=ALICE.user_id)
    except OmegaError:
        return
    if info.user_id != ALICE.user_id or info.device_key != ALICE.device.device_key:
        raise AssertionError("a record verified for another user or device")


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
