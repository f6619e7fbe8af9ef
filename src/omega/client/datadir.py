"""A client's data directory: identity files and embedded databases.

Layout (``omega init`` / ``omega id new`` create it)::

    identity.omega   the identity export (Argon2id + XChaCha20-Poly1305,
                     docs/protocol.md "Identity export"), owner-only
    identity.pub     the public device list, an encoded SignedDeviceList
    identity.txt     the user id on the first line, the display name on the second
    keys.db          the key store (SQLiteKeyStore): sessions, prekeys, inbox
    messages.db      the message store (SQLiteMessageStore): contacts, history, outbox
    addresses.json   where contacts can be reached (address hints), owner-only

Both databases are encrypted at rest with keys derived from this device's
secret key (keyed BLAKE2b, one key per database), so they open only with the
passphrase that unlocks ``identity.omega``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from omega.crypto import (
    ContactUri,
    Identity,
    VerifiedDeviceList,
    export_identity,
    import_identity,
    public_key_from_user_id,
    user_id_from_public_key,
    verify_device_list,
)
from omega.errors import ConfigurationError, CorruptDataError, OmegaError, StorageError
from omega.transport.address import Address

__all__ = [
    "ADDRESS_BOOK_FILE",
    "ADDRESS_BOOK_FORMAT",
    "HOME_ENV",
    "KEY_STORE_FILE",
    "MESSAGE_STORE_FILE",
    "PROFILE_FILE",
    "PUBLIC_FILE",
    "SECRET_FILE",
    "DataDir",
    "default_data_dir",
    "store_key",
    "write_private",
]

HOME_ENV = "OMEGA_HOME"
SECRET_FILE = "identity.omega"  # noqa: S105 - a file name, not a secret
PUBLIC_FILE = "identity.pub"
PROFILE_FILE = "identity.txt"
KEY_STORE_FILE = "keys.db"
MESSAGE_STORE_FILE = "messages.db"
ADDRESS_BOOK_FILE = "addresses.json"
ADDRESS_BOOK_FORMAT = "omega-address-book/v1"
"""The ``format`` member of ``addresses.json``."""
MAX_ADDRESS_BOOK_SIZE = 1024 * 1024
"""Largest ``addresses.json`` read, in bytes."""
MAX_ADDRESSES_PER_CONTACT = 16
"""Addresses kept per contact (the most recently given first)."""


def default_data_dir() -> Path:
    """``$OMEGA_HOME``, else ``$XDG_DATA_HOME/omega``, else ``~/.local/share/omega``."""
    if home := os.environ.get(HOME_ENV):
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "omega"


def write_private(path: Path, data: bytes) -> None:
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
        write_private(self.path / SECRET_FILE, export)
        self.save_public(identity)
        if force:
            for name in (KEY_STORE_FILE, MESSAGE_STORE_FILE):
                for suffix in ("", "-wal", "-shm"):
                    (self.path / (name + suffix)).unlink(missing_ok=True)
            (self.path / ADDRESS_BOOK_FILE).unlink(missing_ok=True)

    def save_public(self, identity: Identity) -> None:
        """Rewrite the public device list and profile of ``identity``."""
        write_private(self.path / PUBLIC_FILE, bytes(identity.device_list.to_signed()))
        profile = f"{identity.user_id}\n{identity.display_name}\n"
        write_private(self.path / PROFILE_FILE, profile.encode("utf-8"))

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

    def load_address_book(self) -> dict[str, list[str]]:
        """The address hints of contacts: user id -> addresses (canonical text).

        Empty when ``addresses.json`` does not exist. Raises
        :class:`~omega.errors.CorruptDataError` for a damaged file (not JSON,
        another format, a malformed user id or address, too large), leaving it
        in place for the user to inspect.
        """
        path = self.path / ADDRESS_BOOK_FILE
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_ADDRESS_BOOK_SIZE + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        if len(data) > MAX_ADDRESS_BOOK_SIZE:
            raise CorruptDataError(
                f"{path} is damaged: larger than {MAX_ADDRESS_BOOK_SIZE} bytes",
                details={"path": str(path)},
            )
        try:
            document = json.loads(data.decode("utf-8"))
            return _parse_address_book(document)
        except (UnicodeDecodeError, json.JSONDecodeError, OmegaError, ValueError) as exc:
            reason = exc.message if isinstance(exc, OmegaError) else str(exc)
            raise CorruptDataError(
                f"{path} is damaged: {reason}; fix or delete it", details={"path": str(path)}
            ) from exc

    def save_address_book(self, book: dict[str, list[str]]) -> None:
        """Replace ``addresses.json`` atomically (owner-only) with ``book``.

        User ids and addresses are validated and written in canonical form,
        duplicates dropped, at most :data:`MAX_ADDRESSES_PER_CONTACT` kept per
        contact, contacts without addresses left out. Raises
        :class:`~omega.errors.InvalidUserIdError` or
        :class:`~omega.errors.InvalidAddressError` (nothing written).
        """
        document = {"format": ADDRESS_BOOK_FORMAT, "addresses": book}
        try:
            canonical = _parse_address_book(document, strict=False)
        except OmegaError:
            raise
        except ValueError as exc:
            raise ConfigurationError(f"not a valid address book: {exc}") from exc
        document["addresses"] = canonical
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        self.path.mkdir(parents=True, exist_ok=True)
        write_private(self.path / ADDRESS_BOOK_FILE, text.encode("utf-8"))


def _parse_address_book(document: object, *, strict: bool = True) -> dict[str, list[str]]:
    """Validate an address book document; return its canonical mapping.

    ``strict`` (reading a file) refuses more than the limit per contact;
    otherwise (saving) the list is cut to the limit.
    """
    if not isinstance(document, dict) or document.get("format") != ADDRESS_BOOK_FORMAT:
        raise ValueError(f"not an address book (expected format {ADDRESS_BOOK_FORMAT!r})")
    entries = document.get("addresses")
    if not isinstance(entries, dict):
        raise ValueError("'addresses' must be an object")
    book: dict[str, list[str]] = {}
    for user_id, addresses in entries.items():
        if not isinstance(user_id, str) or not isinstance(addresses, list):
            raise ValueError("each entry maps a user id to a list of addresses")
        canonical_id = user_id_from_public_key(public_key_from_user_id(user_id))
        texts: list[str] = []
        for address in addresses:
            if not isinstance(address, str):
                raise ValueError(f"the addresses of {user_id} must be strings")
            texts.append(str(Address.parse(address)))
        texts = list(dict.fromkeys(texts))
        if strict and len(texts) > MAX_ADDRESSES_PER_CONTACT:
            raise ValueError(f"more than {MAX_ADDRESSES_PER_CONTACT} addresses for {user_id}")
        if texts:
            book[canonical_id] = texts[:MAX_ADDRESSES_PER_CONTACT]
    return book


def store_key(identity: Identity, purpose: str) -> bytes:
    """The 32-byte at-rest encryption key of one of the device's databases."""
    return hashlib.blake2b(
        purpose.encode("ascii"),
        key=identity.device.key_pair.seed,
        digest_size=32,
        person=b"omega-store-key",
    ).digest()
