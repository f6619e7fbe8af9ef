"""The sync documents of one device: local edits, validated remote updates (pycrdt).

A :class:`SyncReplica` holds this device's copy of every sync document. Local
edits return the standard Yjs v1 update they made; remote updates are applied
only after they passed every check on a scratch copy (size, decoding, the one
root, the document's schema, the sender's device), so a refused update leaves
the replica exactly as it was. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from omega.crypto import VerifiedDeviceList
from omega.crypto.devices import device_id
from omega.errors import (
    CertificateError,
    ConfigurationError,
    CorruptDataError,
    InvalidSyncUpdateError,
    RevokedDeviceError,
)
from omega.sync._schema import ROOT, SyncSchemas, Value, default_schemas

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_ENTRIES",
    "MAX_UPDATE_SIZE",
    "Change",
    "SyncReplica",
    "decode_state_vector",
    "sync_client_id",
]

MAX_UPDATE_SIZE = 32 * 1024 * 1024
"""Largest remote update applied at once, in bytes."""

MAX_DOCUMENTS = 10_000
"""Most sync documents one replica holds."""

MAX_ENTRIES = 500_000
"""Most entries one sync document holds."""

_MAX_STATE_VECTOR_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Change:
    """One entry a remote update set (``value``) or removed (``value is None``)."""

    document: str
    key: str
    value: Value | None


def sync_client_id(device_key: bytes) -> int:
    """The Yjs client id of a device: the first 4 bytes of SHA-256 of a label and its key.

    Stable across restarts (the device keeps counting its own clock) and
    distinct between devices with overwhelming probability.
    """
    digest = hashlib.sha256(b"omega/sync/client-id/v1" + device_key).digest()
    return int.from_bytes(digest[:4], "big")


def _read_varuint(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise InvalidSyncUpdateError(
                "malformed state vector", details={"reason": "state_vector"}
            )
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Decode a Yjs state vector (client id -> clock); InvalidSyncUpdateError if malformed."""
    if len(data) > _MAX_STATE_VECTOR_SIZE:
        raise InvalidSyncUpdateError("state vector too large", details={"reason": "too_large"})
    if not data:
        return {}
    count, offset = _read_varuint(data, 0)
    clocks: dict[int, int] = {}
    for _ in range(count):
        client, offset = _read_varuint(data, offset)
        clock, offset = _read_varuint(data, offset)
        clocks[client] = clock
    if offset != len(data):
        raise InvalidSyncUpdateError("malformed state vector", details={"reason": "state_vector"})
    return clocks


def _first_block(update: bytes) -> tuple[int, int] | None:
    """(client, first clock) of the first struct block of a Yjs v1 update, if any.

    An update a device makes from its own edits has one block; if it starts
    beyond what we hold of that client, it builds on updates we lack.
    """
    clients, offset = _read_varuint(update, 0)
    if clients == 0:
        return None
    _, offset = _read_varuint(update, offset)  # number of structs
    client, offset = _read_varuint(update, offset)
    clock, _ = _read_varuint(update, offset)
    return client, clock


def _plain(value: object) -> Value | None:
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    raise TypeError(type(value).__name__)


def _refused(reason: str, message: str, document: str) -> InvalidSyncUpdateError:
    return InvalidSyncUpdateError(message, details={"reason": reason, "document": document[:300]})


class SyncReplica:
    """This device's sync documents; see the module docstring.

    ``device_key`` names this device (its Yjs client id derives from it);
    ``schemas`` says which documents exist and what they may hold.
    """

    def __init__(
        self,
        device_key: bytes,
        *,
        schemas: SyncSchemas | None = None,
        max_update_size: int = MAX_UPDATE_SIZE,
    ) -> None:
        if not 0 < max_update_size <= MAX_UPDATE_SIZE:
            raise ConfigurationError(f"max_update_size must be in 1..{MAX_UPDATE_SIZE}")
        self.client_id = sync_client_id(device_key)
        self._schemas = schemas if schemas is not None else default_schemas()
        self._max_update_size = max_update_size
        self._documents: dict[str, Doc[Any]] = {}

    # -- reading ------------------------------------------------------------
    def names(self) -> list[str]:
        """The documents this replica holds, sorted."""
        return sorted(self._documents)

    def entries(self, document: str) -> dict[str, Value]:
        """Every entry of ``document`` (empty for a document we do not hold)."""
        doc = self._documents.get(document)
        if doc is None:
            return {}
        root = doc.get(ROOT, type=Map)
        return {key: value for key, raw in root.items() if (value := _plain(raw)) is not None}

    def get(self, document: str, key: str) -> Value | None:
        """One entry of ``document``, or ``None``."""
        doc = self._documents.get(document)
        if doc is None:
            return None
        root = doc.get(ROOT, type=Map)
        return _plain(root.get(key)) if key in root else None

    def state_vector(self, document: str) -> bytes:
        """The Yjs state vector of ``document`` (of an empty one if we do not hold it)."""
        doc = self._documents.get(document)
        return doc.get_state() if doc is not None else b"\x00"

    def state_vectors(self) -> dict[str, bytes]:
        """The state vector of every document we hold."""
        return {name: doc.get_state() for name, doc in sorted(self._documents.items())}

    def snapshot(self, document: str) -> bytes:
        """The whole state of ``document`` as one Yjs update (what persistence keeps)."""
        doc = self._documents.get(document)
        return doc.get_update() if doc is not None else Doc().get_update()

    def missing(self, document: str, state_vector: bytes) -> bytes | None:
        """The update a replica at ``state_vector`` lacks, or ``None`` when it lacks nothing.

        Entries are only ever set, never removed, so comparing state vectors
        tells whether anything is missing.
        """
        doc = self._documents.get(document)
        if doc is None:
            return None
        theirs = decode_state_vector(state_vector)
        ours = decode_state_vector(doc.get_state())
        if all(theirs.get(client, 0) >= clock for client, clock in ours.items()):
            return None
        return doc.get_update(state_vector)

    def missing_all(self, state_vectors: Mapping[str, bytes]) -> dict[str, bytes]:
        """What a replica with ``state_vectors`` lacks, every document (those it does not
        list count as empty)."""
        found: dict[str, bytes] = {}
        for name in self.names():
            update = self.missing(name, state_vectors.get(name, b"\x00"))
            if update is not None:
                found[name] = update
        return found

    # -- local edits ----------------------------------------------------------
    def _document(self, document: str) -> Doc[Any]:
        doc = self._documents.get(document)
        if doc is None:
            if self._schemas.get(document) is None:
                raise ConfigurationError(f"no sync document {document[:80]!r}")
            if len(self._documents) >= MAX_DOCUMENTS:
                raise ConfigurationError(f"more than {MAX_DOCUMENTS} sync documents")
            doc = Doc(client_id=self.client_id)
            doc.get(ROOT, type=Map)
            self._documents[document] = doc
        return doc

    def set(self, document: str, changes: Mapping[str, Value]) -> bytes | None:
        """Set entries of ``document``; return the Yjs update made (``None``: no change).

        Entries that already hold the value are left alone. Raises
        :class:`~omega.errors.ConfigurationError` (nothing changed) for an
        unknown document or an entry its schema refuses.
        """
        schema = self._schemas.get(document)
        if schema is None:
            raise ConfigurationError(f"no sync document {document[:80]!r}")
        for key, value in changes.items():
            if (why := schema.problem(document, key, value)) is not None:
                raise ConfigurationError(f"sync document {document[:80]}: {why}")
        current = self.entries(document)
        fresh = {key: value for key, value in changes.items() if current.get(key) != value}
        if not fresh:
            return None
        doc = self._document(document)
        before = doc.get_state()
        root = doc.get(ROOT, type=Map)
        with doc.transaction(origin="local"):
            for key, value in fresh.items():
                root[key] = value
        update: bytes = doc.get_update(before)
        return update

    # -- remote updates --------------------------------------------------------
    def load(self, document: str, updates: Iterable[bytes]) -> None:
        """Restore ``document`` from persisted updates (raises CorruptDataError if damaged)."""
        try:
            for update in updates:
                self.apply(document, update)
        except (InvalidSyncUpdateError, ConfigurationError) as exc:
            raise CorruptDataError(
                f"the stored sync document {document[:80]!r} is damaged: {exc.message}"
            ) from exc

    def apply(
        self,
        document: str,
        update: bytes,
        *,
        sender: bytes | None = None,
        device_list: VerifiedDeviceList | None = None,
    ) -> list[Change]:
        """Apply a remote update to ``document``; return the entries it changed.

        With ``sender`` and ``device_list``, the sending device must be listed
        there: :class:`~omega.errors.RevokedDeviceError` for a revoked one,
        :class:`~omega.errors.CertificateError` for an unknown one. Raises
        :class:`~omega.errors.InvalidSyncUpdateError` for an update that is too
        large, malformed, names an unknown document, breaks its schema, or
        builds on updates this replica lacks (``details["reason"]`` is
        ``"out_of_order"``: ask the sender for what is missing). On any error
        the replica is unchanged.
        """
        if sender is not None and device_list is not None:
            _check_sender(sender, device_list)
        if not isinstance(update, bytes) or len(update) > self._max_update_size:
            raise _refused("too_large", "sync update too large", document)
        schema = self._schemas.get(document)
        if schema is None:
            raise _refused("unknown_document", f"no sync document {document[:80]!r}", document)
        existing = self._documents.get(document)
        if existing is None and len(self._documents) >= MAX_DOCUMENTS:
            raise _refused("too_many_documents", "too many sync documents", document)
        scratch: Doc[Any] = Doc(client_id=self.client_id)
        root = scratch.get(ROOT, type=Map)
        try:
            if existing is not None:
                scratch.apply_update(existing.get_update())
            touched: set[str] = set()
            subscription = root.observe(lambda event: touched.update(event.keys))
            have = decode_state_vector(scratch.get_state())
            scratch.apply_update(update)
            root.unobserve(subscription)
            first = _first_block(update)
        except Exception as exc:  # pycrdt raises ValueError, yrs panics surface as others
            raise _refused("malformed", f"malformed sync update: {exc}"[:300], document) from exc
        if first is not None and first[1] > have.get(first[0], 0):
            # Yjs would hold it back until what it builds on arrives; we refuse it
            # (nothing pending is kept) and the caller asks for a catch-up.
            raise _refused("out_of_order", "sync update builds on updates we lack", document)
        roots = set(scratch.keys())
        if roots - {ROOT}:
            raise _refused("unknown_root", "sync update adds an unknown root type", document)
        if len(root) > MAX_ENTRIES:
            raise _refused("too_many_entries", "sync document too large", document)
        changes: list[Change] = []
        for key in sorted(touched):
            try:
                value = _plain(root.get(key)) if key in root else None
            except TypeError:
                raise _refused(
                    "schema", f"entry {key[:80]!r} is not a plain value", document
                ) from None
            if value is not None and (why := schema.problem(document, key, value)) is not None:
                raise _refused("schema", f"sync document {document[:80]}: {why}", document)
            changes.append(Change(document=document, key=key, value=value))
        self._documents[document] = scratch
        return changes


def _check_sender(sender: bytes, device_list: VerifiedDeviceList) -> None:
    if device_list.is_revoked(sender):
        raise RevokedDeviceError(
            f"sync update from revoked device {device_id(sender)}",
            details={"device_id": device_id(sender)},
        )
    if not device_list.is_active(sender):
        raise CertificateError(
            f"sync update from device {device_id(sender)}, which is not ours",
            details={"device_id": device_id(sender)},
        )
