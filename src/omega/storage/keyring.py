"""Key store encryption keys kept in the operating system's keyring.

``SQLiteKeyStore.open(path, encryption_key=key_from_keyring())`` encrypts a
device's key store under a random 32-byte key that lives in the OS keyring
(macOS Keychain, Windows Credential Manager, Secret Service on Linux, or any
backend of the `keyring` package), so no passphrase is typed and the key
never sits in a file next to the store. Needs the ``keyring`` extra
(``pip install 'omega-p2p[keyring]'``).

The key is stored base64-encoded under (``service``, ``account``). The first
call creates it; later calls return the same key. Losing the keyring entry
means losing the key store: keep an identity export.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import nacl.utils

from omega.errors import ConfigurationError, CorruptDataError, StorageError, map_exceptions

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_SERVICE", "key_from_keyring"]

DEFAULT_SERVICE = "omega"
"""Keyring service name used unless told otherwise."""

DEFAULT_ACCOUNT = "key-store"
"""Keyring account name used unless told otherwise."""

_KEY_SIZE = 32


def key_from_keyring(
    service: str = DEFAULT_SERVICE, account: str = DEFAULT_ACCOUNT, *, backend: Any = None
) -> bytes:
    """Return the 32-byte key store key kept in the keyring, creating it the first time.

    ``backend`` is a `keyring` backend object; by default the one the
    `keyring` package selects for this system. Raises
    :class:`~omega.errors.ConfigurationError` when `keyring` is not
    installed, :class:`~omega.errors.StorageError` when the keyring fails
    (locked, no backend), and :class:`~omega.errors.CorruptDataError` when
    the entry holds something that is not a key.
    """
    try:
        import keyring
        import keyring.errors
    except ImportError as exc:
        raise ConfigurationError(
            "the OS keyring needs the keyring package: pip install 'omega-p2p[keyring]'"
        ) from exc
    if not service or not account:
        raise ConfigurationError("the keyring service and account must not be empty")
    store = backend if backend is not None else keyring.get_keyring()
    with map_exceptions({keyring.errors.KeyringError: StorageError}, "the OS keyring failed"):
        stored = store.get_password(service, account)
        if stored is None:
            fresh = base64.b64encode(nacl.utils.random(_KEY_SIZE)).decode("ascii")
            store.set_password(service, account, fresh)
            # Read back: if another process created the entry at the same time, its key wins.
            stored = store.get_password(service, account)
    if stored is None:
        raise StorageError("the OS keyring did not keep the key store key")
    try:
        key = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptDataError(f"the keyring entry {service}/{account} is not a key") from exc
    if len(key) != _KEY_SIZE:
        raise CorruptDataError(f"the keyring entry {service}/{account} is not a 32-byte key")
    return key
