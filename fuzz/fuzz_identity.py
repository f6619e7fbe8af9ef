"""Fuzz every decoder of untrusted identity and device input in omega.crypto.

Run: ``python fuzz/fuzz_identity.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). Each input is fed to: the user id parser and
the contact URI parser (as UTF-8 with replacement and as Latin-1), device
certificate and device list verification (as received, and re-signed by a
fixed identity so that the checks behind the signature are reached too),
safety number QR verification, and the identity export decoder and decrypted
secret validator. Anything but an OmegaError escaping, or an accepted value
that does not survive a round trip, is a crash.

The Argon2id key derivation only runs for exports whose parameters are the
minimum (1 pass, 8 KiB), so a fuzzed file cannot make a run slow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from omega.crypto import (
    ContactUri,
    DeviceKeyPair,
    IdentityKeyPair,
    SafetyNumber,
    certify_device,
    import_identity,
    public_key_from_user_id,
    sign_device_list,
    user_id_from_public_key,
    verify_device_certificate,
    verify_device_list,
)
from omega.crypto import backup as backup_module
from omega.crypto.devices import DEVICE_CERTIFICATE_CONTEXT, DEVICE_LIST_CONTEXT
from omega.errors import OmegaError
from omega.protocol import (
    DeviceRevocation,
    EncryptedIdentity,
    SignedDeviceCertificate,
    SignedDeviceList,
)

IDENTITY = IdentityKeyPair.from_seed(bytes(range(32)))
USER_ID = IDENTITY.user_id
OTHER = IdentityKeyPair.from_seed(bytes(range(32, 64)))
_DEVICES = [DeviceKeyPair.from_seed(bytes([200 + i]) * 32) for i in range(3)]
PREVIOUS = verify_device_list(
    sign_device_list(
        IDENTITY,
        sequence=7,
        devices=[
            certify_device(IDENTITY, device.public_key, name=f"d{i}", created_at=i)
            for i, device in enumerate(_DEVICES[:2])
        ],
        revocations=[DeviceRevocation(device_key=_DEVICES[2].public_key, revoked_at=5)],
        issued_at=9,
    ),
    user_id=USER_ID,
)
SAFETY_NUMBER = SafetyNumber.compute(IDENTITY.public_key, OTHER.public_key)
PASSPHRASE = "fuzz"


def _guard(action: Callable[[], object]) -> object | None:
    """Run ``action``; an OmegaError means a clean refusal, anything else is a crash."""
    try:
        return action()
    except OmegaError:
        return None


def _texts(data: bytes) -> set[str]:
    return {data.decode("utf-8", errors="replace"), data.decode("latin-1")}


def _check_text_parsers(text: str) -> None:
    key = _guard(lambda: public_key_from_user_id(text))
    if isinstance(key, bytes) and user_id_from_public_key(key) != text.lower():
        raise AssertionError(f"user id {text!r} does not round-trip")
    uri = _guard(lambda: ContactUri.parse(text))
    if isinstance(uri, ContactUri) and ContactUri.parse(str(uri)) != uri:
        raise AssertionError(f"contact URI {text!r} does not round-trip")


def _check_signed_structures(data: bytes) -> None:
    _guard(lambda: verify_device_certificate(data, identity_key=IDENTITY.public_key))
    _guard(lambda: verify_device_list(data, user_id=USER_ID, previous=PREVIOUS))
    certificate = SignedDeviceCertificate(
        certificate=data, signature=IDENTITY.sign(DEVICE_CERTIFICATE_CONTEXT + data)
    )
    _guard(lambda: verify_device_certificate(certificate, identity_key=IDENTITY.public_key))
    device_list = SignedDeviceList(
        device_list=data, signature=IDENTITY.sign(DEVICE_LIST_CONTEXT + data)
    )
    _guard(lambda: verify_device_list(device_list, user_id=USER_ID))
    _guard(lambda: verify_device_list(device_list, user_id=USER_ID, previous=PREVIOUS))


def _check_export(data: bytes) -> None:
    envelope = _guard(lambda: backup_module._decode_export(data))
    if (
        isinstance(envelope, EncryptedIdentity)
        and envelope.opslimit == backup_module.MIN_OPSLIMIT
        and envelope.memlimit == backup_module.MIN_MEMLIMIT
    ):
        _guard(lambda: import_identity(data, PASSPHRASE))
    _guard(lambda: backup_module._backup_from_secret(data))


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Feed ``data`` to every decoder of untrusted identity and device input."""
    for text in _texts(data):
        _check_text_parsers(text)
    _check_signed_structures(data)
    _guard(lambda: SAFETY_NUMBER.verify_scanned(data))
    _check_export(data)


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
