"""Omega's sans-I/O cryptography: identities, devices, sessions, safety numbers, exports.

Nothing in this package performs I/O, reads a clock or draws global
randomness: times are ``int`` Unix milliseconds passed in by the caller, and
every function that needs random bytes takes ``rng`` (a
:data:`~omega.crypto.random.RandomSource`, by default
:func:`~omega.crypto.random.system_random`). Primitives come from libsodium
through PyNaCl, and HKDF, HMAC and AES-GCM from pyca/cryptography; this
package only composes them.

* :mod:`omega.crypto.identity`: identity key pairs and Bech32m user ids.
* :mod:`omega.crypto.devices`: device keys, certificates, signed device lists.
* :mod:`omega.crypto.account`: the :class:`Identity` aggregate.
* :mod:`omega.crypto.contact_uri`: ``omega://`` contact URIs.
* :mod:`omega.crypto.safety_number`: safety numbers and their QR payload.
* :mod:`omega.crypto.backup`: passphrase-protected identity export.
* :mod:`omega.crypto.bech32`: the Bech32m encoding (BIP-350).
* :mod:`omega.crypto.prekeys`: signed and one-time prekeys of a device.
* :mod:`omega.crypto.x3dh`: X3DH key agreement between two devices.
* :mod:`omega.crypto.double_ratchet`: the Double Ratchet session.
* :mod:`omega.crypto.sender_keys`: Sender Keys for group messages.
"""

from __future__ import annotations

from omega.crypto.account import MAX_DISPLAY_NAME_BYTES, Identity, LocalDevice
from omega.crypto.backup import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_EXPORT_SIZE,
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    MIN_MEMLIMIT,
    MIN_OPSLIMIT,
    IdentityBackup,
    export_identity,
    import_identity,
)
from omega.crypto.contact_uri import MAX_CONTACT_NAME_BYTES, MAX_URI_LENGTH, ContactUri
from omega.crypto.devices import (
    MAX_CERTIFICATE_SIZE,
    MAX_DEVICE_LIST_SIZE,
    MAX_DEVICE_NAME_BYTES,
    MAX_DEVICES,
    MAX_REVOCATION_REASON_BYTES,
    DeviceCertificateInfo,
    DeviceKeyPair,
    RevokedDevice,
    VerifiedDeviceList,
    certify_device,
    device_id,
    sign_device_list,
    verify_device_certificate,
    verify_device_list,
)
from omega.crypto.double_ratchet import (
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    PendingPrekey,
    RatchetSession,
    SessionConfig,
)
from omega.crypto.identity import (
    IdentityKeyPair,
    check_public_key,
    public_key_from_user_id,
    user_id_from_public_key,
    verify_signature,
)
from omega.crypto.prekeys import PrekeyConfig, PrekeyRefresh, PrekeyStore
from omega.crypto.random import RandomSource, system_random
from omega.crypto.safety_number import SafetyNumber
from omega.crypto.sender_keys import (
    MAX_SENDER_KEY_SKIP,
    MAX_SENDER_KEY_SKIPPED_KEYS,
    MAX_SENDER_KEYS_PER_SENDER,
    InboundSenderKeys,
    OutboundSenderKey,
    SenderKeyConfig,
    SenderKeyDistributionInfo,
    read_sender_key_distribution,
)
from omega.crypto.x3dh import (
    AcceptedSession,
    EncryptedMessage,
    MessageKind,
    VerifiedPrekeyBundle,
    accept_session,
    encrypt_message,
    initiate_session,
    verify_prekey_bundle,
)

__all__ = [
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
    "MAX_SENDER_KEYS_PER_SENDER",
    "MAX_SENDER_KEY_SKIP",
    "MAX_SENDER_KEY_SKIPPED_KEYS",
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "MAX_URI_LENGTH",
    "MIN_MEMLIMIT",
    "MIN_OPSLIMIT",
    "AcceptedSession",
    "ContactUri",
    "DeviceCertificateInfo",
    "DeviceKeyPair",
    "EncryptedMessage",
    "Identity",
    "IdentityBackup",
    "IdentityKeyPair",
    "InboundSenderKeys",
    "LocalDevice",
    "MessageKind",
    "OutboundSenderKey",
    "PendingPrekey",
    "PrekeyConfig",
    "PrekeyRefresh",
    "PrekeyStore",
    "RandomSource",
    "RatchetSession",
    "RevokedDevice",
    "SafetyNumber",
    "SenderKeyConfig",
    "SenderKeyDistributionInfo",
    "SessionConfig",
    "VerifiedDeviceList",
    "VerifiedPrekeyBundle",
    "accept_session",
    "certify_device",
    "check_public_key",
    "device_id",
    "encrypt_message",
    "export_identity",
    "import_identity",
    "initiate_session",
    "public_key_from_user_id",
    "read_sender_key_distribution",
    "sign_device_list",
    "system_random",
    "user_id_from_public_key",
    "verify_device_certificate",
    "verify_device_list",
    "verify_prekey_bundle",
    "verify_signature",
]
