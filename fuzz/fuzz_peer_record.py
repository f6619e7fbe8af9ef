"""Fuzz every decoder of untrusted discovery input with arbitrary bytes.

Run: ``python fuzz/fuzz_peer_record.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first byte picks the decoder, the rest is
its input:

0. a received ``SignedPeerRecord`` (``verify_peer_record``);
1. the body of a peer record re-signed by a fixed device with its valid
   certificate, so that the checks behind the signature are reached too;
2. a DHT value for a fixed key (``read_dht_value``);
3. a UDP datagram handed to a fresh DHT node protocol (requests, answers,
   stores), which must never raise;
4. a static resolver table as JSON.

Anything but an OmegaError escaping, or an accepted record whose fields do
not survive signing them again, is a crash.
"""

from __future__ import annotations

import json
import sys

from kademlia.node import Node

from omega.crypto import Identity
from omega.discovery import (
    PEER_RECORD_CONTEXT,
    StaticResolver,
    WallClock,
    sign_peer_record,
    verify_peer_record,
)
from omega.discovery._protocol import OmegaKademliaProtocol, ProtocolLimits
from omega.discovery._storage import SHARED_CACHE, RecordStorage, StorageLimits
from omega.discovery.dht_values import peer_record_key, read_dht_value
from omega.discovery.static import _table_from_document
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


KEY = peer_record_key(ALICE.device.device_key)
LIMITS = ProtocolLimits(
    rpc_timeout=1.0, store_rate=1.0, store_burst=5, store_rate_per_ip=1.0, store_burst_per_ip=5
)
STORAGE_LIMITS = StorageLimits(
    max_records=10, max_bytes=1 << 16, max_record_lifetime_ms=1 << 40, device_list_ttl_ms=1 << 40
)


class _Transport:
    """Collects what the protocol sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, address: object) -> None:
        self.sent.append((data, address))


def _datagram(data: bytes) -> None:
    storage = RecordStorage(STORAGE_LIMITS, WallClock(), SHARED_CACHE)
    protocol = OmegaKademliaProtocol(Node(bytes(20)), storage, 20, LIMITS)
    protocol.connection_made(_Transport())
    protocol.datagram_received(data, ("127.0.0.1", 4000))


def _static_table(data: bytes) -> None:
    try:
        document = json.loads(data.decode("utf-8", "replace"))
        StaticResolver(_table_from_document(document, "fuzz"))
    except (ValueError, RecursionError):
        return


def _signed_body(data: bytes) -> None:
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


def _dht_value(data: bytes) -> None:
    try:
        read_dht_value(KEY, data, now=NOW)
    except OmegaError:
        return


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data[1:]`` to the decoder ``data[0]`` selects."""
    if not data:
        return
    mode, rest = data[0] % 5, data[1:]
    if mode == 0:
        _check(rest, None)
    elif mode == 1:
        _signed_body(rest)
    elif mode == 2:
        _dht_value(rest)
    elif mode == 3:
        _datagram(rest)
    else:
        _static_table(rest)


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
