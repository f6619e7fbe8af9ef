"""Add a contact by URI and verify them: the flow a messenger's "add contact" screen runs.

Run: ``python examples/contact_exchange.py [OUTPUT_DIR]``. Two users create
identities; Alice shows her contact URI as a QR code (written as a PNG to
OUTPUT_DIR, a temporary folder by default); Bob parses it, checks Alice's
signed device list, and both compare safety numbers by scanning each other's
QR payloads. Finally a tampered device list is shown to be refused.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import segno

from omega.crypto import ContactUri, Identity, SafetyNumber, verify_device_list
from omega.errors import InvalidSignatureError


def main(output_dir: Path) -> None:
    now = time.time_ns() // 1_000_000
    alice = Identity.create(display_name="Alice", device_name="laptop", created_at=now)
    bob = Identity.create(display_name="Bob", device_name="phone", created_at=now)

    # Alice's screen: her contact URI, as text and as a QR code.
    uri = str(ContactUri(alice.user_id, "Alice"))
    qr_path = output_dir / "alice-contact.png"
    segno.make(uri, error="m").save(qr_path, scale=8)
    print(f"Alice's contact URI: {uri}\nQR code: {qr_path}")

    # Bob's app scans it and fetches Alice's signed device list (here: handed over directly).
    contact = ContactUri.parse(uri)
    published = bytes(alice.device_list.to_signed())
    devices = verify_device_list(published, user_id=contact.user_id)
    print(
        f"Bob added {contact.display_name} with devices:", [d.device_name for d in devices.devices]
    )

    # In person, each scans the other's safety-number QR code.
    on_alice = SafetyNumber.compute(alice.identity_key, bob.identity_key)
    on_bob = SafetyNumber.compute(bob.identity_key, contact.identity_key)
    assert on_bob.verify_scanned(on_alice.qr_payload())
    assert on_alice.verify_scanned(on_bob.qr_payload())
    print(f"Safety number (both screens): {on_bob.display()}  -> verified")

    # A relay that swaps bytes in the device list is caught by the signature.
    tampered = bytearray(published)
    tampered[10] ^= 0x01
    try:
        verify_device_list(bytes(tampered), user_id=contact.user_id)
    except InvalidSignatureError as exc:
        print(f"Tampered device list refused: {exc.message}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
