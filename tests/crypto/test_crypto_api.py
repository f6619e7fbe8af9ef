"""The public surface of omega.crypto is explicit and documented."""

from __future__ import annotations

import inspect

import omega.crypto

EXPECTED = {
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "AcceptedSession",
    "PrekeyConfig",
    "PrekeyRefresh",
    "PrekeyStore",
    "RatchetSession",
    "SessionConfig",
    "VerifiedPrekeyBundle",
    "accept_session",
    "initiate_session",
    "verify_prekey_bundle",
    "EncryptedMessage",
    "MessageKind",
    "PendingPrekey",
    "encrypt_message",
    "MAX_SENDER_KEY_SKIP",
    "MAX_SENDER_KEY_SKIPPED_KEYS",
    "MAX_SENDER_KEYS_PER_SENDER",
    "InboundSenderKeys",
    "OutboundSenderKey",
    "SenderKeyConfig",
    "SenderKeyDistributionInfo",
    "read_sender_key_distribution",
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "MAX_CERTIFICATE_SIZE",
    "MAX_CONTACT_NAME_BYTES",
    "MAX_DEVICES",
    "MAX_DEVICE_LIST_SIZE",
    "MAX_DEVICE_NAME_BYTES",
    "MAX_DISPLAY_NAME_BYTES",
    "MAX_EXPORT_SIZE",
    "MAX_MEMLIMIT",
    "MAX_OPSLIMIT",
    "MAX_REVOCATION_REASON_BYTES",
    "MAX_URI_LENGTH",
    "MIN_MEMLIMIT",
    "MIN_OPSLIMIT",
    "ContactUri",
    "DeviceCertificateInfo",
    "DeviceKeyPair",
    "Identity",
    "IdentityBackup",
    "IdentityKeyPair",
    "LocalDevice",
    "RandomSource",
    "RevokedDevice",
    "SafetyNumber",
    "VerifiedDeviceList",
    "certify_device",
    "check_public_key",
    "device_id",
    "export_identity",
    "import_identity",
    "public_key_from_user_id",
    "sign_device_list",
    "system_random",
    "user_id_from_public_key",
    "verify_device_certificate",
    "verify_device_list",
    "verify_signature",
}


def test_all_is_pinned() -> None:
    assert set(omega.crypto.__all__) == EXPECTED
    assert len(omega.crypto.__all__) == len(EXPECTED)


def test_every_public_callable_is_documented() -> None:
    assert omega.crypto.__doc__
    for name in omega.crypto.__all__:
        value = getattr(omega.crypto, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
        if inspect.isclass(value):
            for attribute, member in vars(value).items():
                function = member.__func__ if isinstance(member, classmethod) else member
                if not attribute.startswith("_") and inspect.isfunction(function):
                    assert inspect.getdoc(function), f"{name}.{attribute}"


def test_system_random_returns_the_requested_size() -> None:
    assert len(omega.crypto.system_random(24)) == 24
    assert omega.crypto.system_random(32) != omega.crypto.system_random(32)
