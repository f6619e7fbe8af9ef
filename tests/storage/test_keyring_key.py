"""Key store keys from the keyring, on a real keyring backend (keyrings.alt's file keyring)."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import keyring.errors
import pytest
from keyrings.alt.file import PlaintextKeyring

from omega.errors import ConfigurationError, CorruptDataError, StorageError
from omega.storage import SQLiteKeyStore
from omega.storage.keyring import key_from_keyring


@pytest.fixture
def backend(tmp_path: Path) -> PlaintextKeyring:
    ring = PlaintextKeyring()
    ring.file_path = str(tmp_path / "keyring.cfg")
    return ring


def test_first_call_creates_a_key_later_calls_return_it(backend: PlaintextKeyring) -> None:
    key = key_from_keyring(backend=backend)
    assert len(key) == 32
    assert key_from_keyring(backend=backend) == key
    assert key_from_keyring("omega", "another-device", backend=backend) != key


@pytest.mark.anyio
async def test_encrypts_a_key_store(backend: PlaintextKeyring, tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with (
        await SQLiteKeyStore.open(path, encryption_key=key_from_keyring(backend=backend)) as store,
        store.transaction() as tx,
    ):
        await tx.save_identity(b"secret identity")
    async with (
        await SQLiteKeyStore.open(path, encryption_key=key_from_keyring(backend=backend)) as store,
        store.transaction() as tx,
    ):
        assert await tx.load_identity() == b"secret identity"
    assert b"secret identity" not in path.read_bytes()


@pytest.mark.parametrize("stored", ["not base64!", "c2hvcnQ="])
def test_a_damaged_entry(backend: PlaintextKeyring, stored: str) -> None:
    backend.set_password("omega", "key-store", stored)
    with pytest.raises(CorruptDataError):
        key_from_keyring(backend=backend)


def test_bad_names(backend: PlaintextKeyring) -> None:
    with pytest.raises(ConfigurationError):
        key_from_keyring("", backend=backend)


class _LockedKeyring(PlaintextKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


def test_a_keyring_failure_is_a_storage_error(tmp_path: Path) -> None:
    ring = _LockedKeyring()
    ring.file_path = str(tmp_path / "keyring.cfg")
    with pytest.raises(StorageError, match="the OS keyring failed"):
        key_from_keyring(backend=ring)


def test_without_the_keyring_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_keyring(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("keyring"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_keyring)
    with pytest.raises(ConfigurationError, match="pip install"):
        key_from_keyring()
