"""Passphrase-protected export and import of an identity.

Format (version 1)
------------------
An export is the encoded protobuf ``EncryptedIdentity``:

* ``version`` = 1;
* ``salt``: 16 random bytes; ``opslimit``, ``memlimit``: the Argon2id time
  cost and memory cost in bytes (defaults 3 and 64 MiB);
* ``nonce``: 24 random bytes; ``ciphertext``: the encoded ``IdentitySecret``
  sealed with XChaCha20-Poly1305-IETF (``ciphertext || 16-byte tag``);
* key = Argon2id v1.3 (libsodium ``crypto_pwhash``, ``ALG_ARGON2ID13``),
  32 bytes, over the passphrase normalised to Unicode NFC and encoded as
  UTF-8 (RFC 8265's OpaqueString profile normalises passwords to NFC too), with
  that salt, opslimit and memlimit;
* associated data = ``b"omega/identity-export/v1" || version (4 bytes
  big-endian) || salt || opslimit (8 bytes big-endian) || memlimit (8 bytes
  big-endian)``, so the parameters cannot be changed without detection.

The ``IdentitySecret`` holds the 32-byte identity seed, the display name
(0..64 UTF-8 bytes), the identity's creation time, zero or more
``DeviceSecret`` (a device's 32-byte seed and its signed certificate), and the
current signed device list.

Import checks, in order
-----------------------
1. The file is at most :data:`MAX_EXPORT_SIZE` bytes and decodes strictly as
   ``EncryptedIdentity`` (else :class:`~omega.errors.MessageDecodeError`,
   "not an Omega identity export: ...").
2. ``version`` is 1; salt is 16 bytes; nonce 24; the ciphertext at least
   the 16-byte tag; ``opslimit`` in 1..10 and ``memlimit`` in 8 KiB..1 GiB
   (else :class:`~omega.errors.MessageDecodeError`). These bounds are checked
   *before* the key derivation runs, so a hostile file cannot make us spend
   more than 10 passes over 1 GiB.
3. Decryption fails for a wrong passphrase or any change to the file:
   :class:`~omega.errors.WrongPassphraseError` ("wrong passphrase or
   corrupted file"); the two cannot be told apart.
4. The decrypted ``IdentitySecret`` decodes strictly (else
   :class:`~omega.errors.MessageDecodeError`); its seeds are 32 bytes (else
   :class:`~omega.errors.InvalidKeyError`); display name and creation time
   follow :class:`~omega.crypto.account.Identity`'s rules (else
   :class:`~omega.errors.MessageDecodeError`); the device list verifies for
   the identity (see :func:`~omega.crypto.devices.verify_device_list`); every
   device's certificate verifies, is for the key its seed derives, and that
   device is active in the list (else :class:`~omega.errors.CertificateError`
   or :class:`~omega.errors.RevokedDeviceError`).

Exporting with an empty passphrase is refused
(:class:`~omega.errors.ConfigurationError`): an export is a copy of the
identity's private key and must never sit unprotected in a file.
"""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id

from omega.crypto.account import Identity, LocalDevice, _identity_fields_problem
from omega.crypto.devices import (
    DeviceKeyPair,
    VerifiedDeviceList,
    verify_device_certificate,
    verify_device_list,
)
from omega.crypto.identity import IdentityKeyPair
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    CertificateError,
    ConfigurationError,
    MessageDecodeError,
    WrongPassphraseError,
)
from omega.protocol import (
    DeviceSecret,
    EncryptedIdentity,
    IdentitySecret,
    decode_message,
    encode_message,
)

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "EXPORT_CONTEXT",
    "EXPORT_VERSION",
    "MAX_EXPORT_SIZE",
    "MAX_MEMLIMIT",
    "MAX_OPSLIMIT",
    "MIN_MEMLIMIT",
    "MIN_OPSLIMIT",
    "IdentityBackup",
    "export_identity",
    "import_identity",
]

EXPORT_VERSION = 1
"""The only export format version this module writes and reads."""

EXPORT_CONTEXT = b"omega/identity-export/v1"
"""Domain-separation prefix of the export's associated data."""

DEFAULT_OPSLIMIT = 3
"""Default Argon2id time cost of an export."""

DEFAULT_MEMLIMIT = 64 * 1024 * 1024
"""Default Argon2id memory cost of an export, in bytes (64 MiB)."""

MIN_OPSLIMIT = 1
"""Lowest Argon2id time cost accepted (libsodium's minimum)."""

MAX_OPSLIMIT = 10
"""Highest Argon2id time cost accepted."""

MIN_MEMLIMIT = 8 * 1024
"""Lowest Argon2id memory cost accepted, in bytes (libsodium's minimum, 8 KiB)."""

MAX_MEMLIMIT = 1024 * 1024 * 1024
"""Highest Argon2id memory cost accepted, in bytes (1 GiB)."""

MAX_EXPORT_SIZE = 256 * 1024
"""Largest export accepted, in bytes."""

_SALT_SIZE = nacl.pwhash.argon2id.SALTBYTES
_NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_TAG_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_KEY_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES


@dataclass(frozen=True, slots=True)
class IdentityBackup:
    """The content of an identity export: what restoring an identity needs.

    Construction checks that the pieces belong together (raising
    :class:`~omega.errors.ConfigurationError` otherwise).
    """

    identity: IdentityKeyPair
    """The user's identity key pair."""
    display_name: str
    """The user's display name (may be empty)."""
    created_at: int
    """When the identity was created, Unix milliseconds."""
    devices: tuple[LocalDevice, ...]
    """Devices whose secret keys the export carries (may be empty)."""
    device_list: VerifiedDeviceList
    """The identity's current device list."""

    def __post_init__(self) -> None:
        identity_key = self.identity.public_key
        if not hmac.compare_digest(self.device_list.identity_key, identity_key):
            raise ConfigurationError("the device list belongs to another identity")
        keys = [device.device_key for device in self.devices]
        if len(set(keys)) != len(keys):
            raise ConfigurationError("the same device appears twice")
        for device in self.devices:
            if not hmac.compare_digest(device.certificate.identity_key, identity_key):
                raise ConfigurationError("a device certificate belongs to another identity")
            if not self.device_list.is_active(device.device_key):
                raise ConfigurationError(f"device {device.device_id} is not in the device list")
        problem = _identity_fields_problem(self.display_name, self.created_at)
        if problem is not None:
            raise ConfigurationError(problem)

    @classmethod
    def from_identity(cls, identity: Identity) -> IdentityBackup:
        """Return the backup of ``identity``, carrying its own device only."""
        return cls(
            identity=identity.key_pair,
            display_name=identity.display_name,
            created_at=identity.created_at,
            devices=(identity.device,),
            device_list=identity.device_list,
        )

    def to_identity(self, device_key: bytes | None = None) -> Identity:
        """Return the :class:`~omega.crypto.account.Identity` of one device in the backup.

        ``device_key`` picks the device; it may be omitted when the backup
        holds exactly one. Raises :class:`~omega.errors.ConfigurationError`
        when no device matches.
        """
        if device_key is None:
            if len(self.devices) != 1:
                raise ConfigurationError(
                    f"the backup holds {len(self.devices)} devices: pass the device key to use"
                )
            device = self.devices[0]
        else:
            matches = [d for d in self.devices if hmac.compare_digest(d.device_key, device_key)]
            if not matches:
                raise ConfigurationError("the backup holds no such device")
            device = matches[0]
        return Identity(
            key_pair=self.identity,
            device=device,
            device_list=self.device_list,
            display_name=self.display_name,
            created_at=self.created_at,
        )


def _passphrase_bytes(passphrase: str) -> bytes:
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError("the passphrase is not valid Unicode") from exc


def _associated_data(version: int, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return (
        EXPORT_CONTEXT
        + version.to_bytes(4, "big")
        + salt
        + opslimit.to_bytes(8, "big")
        + memlimit.to_bytes(8, "big")
    )


def _derive_key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        _KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )


def export_identity(
    identity: Identity | IdentityBackup,
    passphrase: str,
    *,
    rng: RandomSource = system_random,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> bytes:
    """Encrypt ``identity`` under ``passphrase`` and return the export file's bytes.

    An :class:`~omega.crypto.account.Identity` is exported with its own device
    (see :meth:`IdentityBackup.from_identity`). Raises
    :class:`~omega.errors.ConfigurationError` for an empty passphrase and for
    Argon2id parameters outside the bounds :func:`import_identity` accepts.
    """
    backup = IdentityBackup.from_identity(identity) if isinstance(identity, Identity) else identity
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise ConfigurationError(f"opslimit must be in {MIN_OPSLIMIT}..{MAX_OPSLIMIT}")
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise ConfigurationError(f"memlimit must be in {MIN_MEMLIMIT}..{MAX_MEMLIMIT} bytes")
    password = _passphrase_bytes(passphrase)
    if not password:
        raise ConfigurationError("refusing to export an identity with an empty passphrase")
    plaintext = encode_message(
        IdentitySecret(
            identity_seed=backup.identity.seed,
            display_name=backup.display_name,
            created_at=backup.created_at,
            devices=[
                DeviceSecret(device_seed=d.key_pair.seed, certificate=d.certificate.to_signed())
                for d in backup.devices
            ],
            device_list=backup.device_list.to_signed(),
        )
    )
    salt = random_bytes(rng, _SALT_SIZE)
    nonce = random_bytes(rng, _NONCE_SIZE)
    key = _derive_key(password, salt, opslimit, memlimit)
    associated_data = _associated_data(EXPORT_VERSION, salt, opslimit, memlimit)
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, associated_data, nonce, key
    )
    export = encode_message(
        EncryptedIdentity(
            version=EXPORT_VERSION,
            salt=salt,
            opslimit=opslimit,
            memlimit=memlimit,
            nonce=nonce,
            ciphertext=ciphertext,
        )
    )
    if len(export) > MAX_EXPORT_SIZE:
        raise ConfigurationError("the identity is too large to export")
    return export


def _decode_export(data: bytes) -> EncryptedIdentity:
    """Decode and sanity-check an export without running the key derivation."""
    try:
        envelope = decode_message(EncryptedIdentity, data, max_size=MAX_EXPORT_SIZE)
    except MessageDecodeError as exc:
        raise MessageDecodeError(f"not an Omega identity export: {exc}") from exc
    if envelope.version != EXPORT_VERSION:
        raise MessageDecodeError(
            f"unsupported identity export version {envelope.version} "
            f"(this version of Omega reads version {EXPORT_VERSION})",
            details={"version": envelope.version},
        )
    if len(envelope.salt) != _SALT_SIZE or len(envelope.nonce) != _NONCE_SIZE:
        raise MessageDecodeError("identity export has a salt or nonce of the wrong size")
    if len(envelope.ciphertext) < _TAG_SIZE:
        raise MessageDecodeError("identity export is truncated")
    if not (
        MIN_OPSLIMIT <= envelope.opslimit <= MAX_OPSLIMIT
        and MIN_MEMLIMIT <= envelope.memlimit <= MAX_MEMLIMIT
    ):
        raise MessageDecodeError(
            f"identity export asks for Argon2id parameters outside the accepted bounds "
            f"(opslimit {envelope.opslimit}, memlimit {envelope.memlimit} bytes)",
            details={"opslimit": envelope.opslimit, "memlimit": envelope.memlimit},
        )
    return envelope


def _backup_from_secret(plaintext: bytes) -> IdentityBackup:
    """Decode and validate a decrypted ``IdentitySecret``."""
    try:
        secret = decode_message(IdentitySecret, plaintext, max_size=MAX_EXPORT_SIZE)
    except MessageDecodeError as exc:
        raise MessageDecodeError(f"identity export holds a malformed identity: {exc}") from exc
    identity = IdentityKeyPair.from_seed(secret.identity_seed)
    problem = _identity_fields_problem(secret.display_name, secret.created_at)
    if problem is not None:
        raise MessageDecodeError(f"identity export has an invalid {problem}")
    if secret.device_list is None:
        raise CertificateError("identity export holds no device list")
    device_list = verify_device_list(secret.device_list, user_id=identity.user_id)
    devices: list[LocalDevice] = []
    for device_secret in secret.devices:
        key_pair = DeviceKeyPair.from_seed(device_secret.device_seed)
        if device_secret.certificate is None:
            raise CertificateError(f"device {key_pair.device_id} has no certificate")
        certificate = verify_device_certificate(
            device_secret.certificate, identity_key=identity.public_key
        )
        if not hmac.compare_digest(certificate.device_key, key_pair.public_key):
            raise CertificateError(
                f"device {key_pair.device_id} holds another device's certificate"
            )
        device_list.device(key_pair.public_key)  # raises unless the device is active
        if any(hmac.compare_digest(d.device_key, key_pair.public_key) for d in devices):
            raise CertificateError(f"device {key_pair.device_id} appears twice")
        devices.append(LocalDevice(key_pair=key_pair, certificate=certificate))
    return IdentityBackup(
        identity=identity,
        display_name=secret.display_name,
        created_at=secret.created_at,
        devices=tuple(devices),
        device_list=device_list,
    )


def import_identity(data: bytes, passphrase: str) -> IdentityBackup:
    """Decrypt and validate an identity export; see the module docstring for the checks.

    Raises :class:`~omega.errors.MessageDecodeError` for a file that is not a
    (supported) export, :class:`~omega.errors.WrongPassphraseError` for a
    wrong passphrase or a modified file, and the key and certificate errors
    listed in the module docstring for an export whose content is invalid.
    """
    envelope = _decode_export(data)
    key = _derive_key(
        _passphrase_bytes(passphrase), envelope.salt, envelope.opslimit, envelope.memlimit
    )
    associated_data = _associated_data(
        envelope.version, envelope.salt, envelope.opslimit, envelope.memlimit
    )
    try:
        plaintext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            envelope.ciphertext, associated_data, envelope.nonce, key
        )
    except nacl.exceptions.CryptoError as exc:
        raise WrongPassphraseError("wrong passphrase or corrupted file") from exc
    return _backup_from_secret(plaintext)
