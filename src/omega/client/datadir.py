"""A client's data directory: identity files and embedded databases.

Layout (``omega init`` / ``omega id new`` create it)::

    identity.omega   the identity export (Argon2id + XChaCha20-Poly1305,
                     docs/protocol.md "Identity export"), owner-only
    identity.pub     the public device list, an encoded SignedDeviceList
    identity.txt     the user id on the first line, the display name on the second
    keys.db          the key store (SQLiteKeyStore): sessions, prekeys, inbox
    messages.db      the message store (SQLiteMessageStore): contacts, history, outbox

Both databases are encrypted at rest with keys derived from this device's
secret key (keyed BLAKE2b, one key per database), so they open only with the
passphrase that unlocks ``identity.omega``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from omega.crypto import (
    ContactUri,
    Identity,
    VerifiedDeviceList,
    export_identity,
    import_identity,
    verify_device_list,
)
from omega.errors import ConfigurationError, CorruptDataError, OmegaError, StorageError

__all__ = [
    "HOME_ENV",
    "KEY_STORE_FILE",
    "MESSAGE_STORE_FILE",
    "PROFILE_FILE",
    "PUBLIC_FILE",
    "SECRET_FILE",
    "DataDir",
    "default_data_dir",
]

HOME_ENV = "OMEGA_HOME"
SECRET_FILE = "identity.omega"  # noqa: S105 - a file name, not a secret
PUBLIC_FILE = "identity.pub"
PROFILE_FILE = "identity.txt"
KEY_STORE_FILE = "keys.db"
MESSAGE_STORE_FILE = "messages.db"


def default_data_dir() -> Path:
    """``$OMEGA_HOME``, else ``$XDG_DATA_HOME/omega``, else ``~/.local/share/omega``."""
    if home := os.environ.get(HOME_ENV):
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "omega"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, replacing ``path`` atomically."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(path)


@dataclass(frozen=True, slots=True)
class DataDir:
    """The files of one device's client under ``path``."""

    path: Path
    """The directory."""

    @property
    def key_store_path(self) -> Path:
        """Where the key store lives."""
        return self.path / KEY_STORE_FILE

    @property
    def message_store_path(self) -> Path:
        """Where the message store lives."""
        return self.path / MESSAGE_STORE_FILE

    def exists(self) -> bool:
        """True when an identity was created here."""
        return (self.path / SECRET_FILE).exists()

    def save_identity(self, identity: Identity, passphrase: str, *, force: bool = False) -> None:
        """Write ``identity`` (encrypted under ``passphrase``) and its public files.

        Raises :class:`~omega.errors.ConfigurationError` when an identity
        exists already and ``force`` is false.
        """
        if self.exists() and not force:
            raise ConfigurationError(
                f"{self.path / SECRET_FILE} already exists; pass --force to replace it "
                "(the old identity is lost unless you kept an export)"
            )
        export = export_identity(identity, passphrase)
        self.path.mkdir(parents=True, exist_ok=True)
        _write_private(self.path / SECRET_FILE, export)
        self.save_public(identity)
        if force:
            for name in (KEY_STORE_FILE, MESSAGE_STORE_FILE):
                for suffix in ("", "-wal", "-shm"):
                    (self.path / (name + suffix)).unlink(missing_ok=True)

    def save_public(self, identity: Identity) -> None:
        """Rewrite the public device list and profile of ``identity``."""
        _write_private(self.path / PUBLIC_FILE, bytes(identity.device_list.to_signed()))
        profile = f"{identity.user_id}\n{identity.display_name}\n"
        _write_private(self.path / PROFILE_FILE, profile.encode("utf-8"))

    def load_identity(self, passphrase: str) -> Identity:
        """Decrypt the identity; raise :class:`~omega.errors.WrongPassphraseError` on a bad one."""
        try:
            data = (self.path / SECRET_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(
                f"no identity in {self.path}: create one with `omega init`",
                details={"data_dir": str(self.path)},
            ) from exc
        except OSError as exc:
            raise StorageError(f"cannot read the identity in {self.path}: {exc}") from exc
        return import_identity(data, passphrase).to_identity()

    def load_public(self) -> tuple[VerifiedDeviceList, ContactUri]:
        """The public device list and contact URI, verified, without the passphrase."""
        try:
            profile = (self.path / PROFILE_FILE).read_text(encoding="utf-8").split("\n")
            signed_list = (self.path / PUBLIC_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(
                f"no identity in {self.path}: create one with `omega init`",
                details={"data_dir": str(self.path)},
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptDataError(f"cannot read the identity in {self.path}: {exc}") from exc
        user_id, display_name = [*profile, "", ""][:2]
        try:
            device_list = verify_device_list(signed_list, user_id=user_id)
            return device_list, ContactUri(user_id=user_id, display_name=display_name or None)
        except OmegaError as exc:
            raise CorruptDataError(
                f"the identity files in {self.path} are damaged or were tampered with: "
                f"{exc.message}",
                details={"data_dir": str(self.path), "cause": exc.code},
            ) from exc


def store_key(identity: Identity, purpose: str) -> bytes:
    """The 32-byte at-rest encryption key of one of the device's databases."""
    return hashlib.blake2b(
        purpose.encode("ascii"),
        key=identity.device.key_pair.seed,
        digest_size=32,
        person=b"omega-store-key",
    ).digest()
