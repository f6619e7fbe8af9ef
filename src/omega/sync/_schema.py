"""What the sync documents may hold: one schema per document (docs/multi-device.md).

Every sync document is a Yjs document with a single root ``Y.Map`` named
``"entries"`` whose values are primitives (no nested shared types), so that
concurrent edits of different fields never conflict and every value has one
writer-wins rule. A schema checks each key and value a remote update brings;
anything else is refused before it reaches the local documents.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

from omega.crypto._text import label_problem
from omega.crypto.identity import public_key_from_user_id
from omega.errors import ConfigurationError, OmegaError
from omega.protocol import SyncedMessage, decode_message
from omega.session.content import MAX_CONTENT_SIZE, decode_content

__all__ = [
    "CONTACTS",
    "CONTACT_FIELDS",
    "CONVERSATIONS",
    "CONVERSATION_FIELDS",
    "HISTORY_PREFIX",
    "MAX_SETTING_BYTES",
    "ROOT",
    "SETTINGS",
    "DocumentSchema",
    "FieldSchema",
    "HistorySchema",
    "SettingsSchema",
    "SyncSchemas",
    "Value",
    "default_schemas",
    "history_document",
]

ROOT = "entries"
"""Name of the one root ``Y.Map`` of every sync document."""

CONTACTS = "contacts"
"""Document of contacts: ``"<user id>/<field>"`` -> value (:data:`CONTACT_FIELDS`)."""
CONVERSATIONS = "conversations"
"""Document of conversations: ``"<conversation id>/<field>"`` -> value."""
SETTINGS = "settings"
"""Document of application settings: ``"<name>"`` -> str, bool or number."""
HISTORY_PREFIX = "history/"
"""Prefix of the history documents, one per conversation: ``"history/<conversation id>"``."""

MAX_SETTING_BYTES = 4096
"""Longest setting string, in UTF-8 bytes."""

_MAX_ID_LENGTH = 256
_MAX_SAFE_INTEGER = (1 << 53) - 1  # every JavaScript number reads it exactly
_SETTING_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

Value = str | bool | float | int | bytes
"""A value of a sync document entry."""


def _is_bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _is_count(value: object) -> str | None:
    """Integral and 0..2**53-1 (Yjs stores numbers as doubles)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return "must be a whole number"
    if not 0 <= value <= _MAX_SAFE_INTEGER:
        return f"must be in 0..{_MAX_SAFE_INTEGER}"
    return None


def _is_name(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    return label_problem(value, max_bytes=64, allow_empty=True)


def _user_id_problem(text: str) -> str | None:
    try:
        public_key_from_user_id(text)
    except OmegaError:
        return "is not a user id"
    return None if text == text.lower() else "is not a canonical user id"


def _conversation_id_problem(text: str) -> str | None:
    """A conversation is named by a user id (groups: a group id of printable characters)."""
    if not 0 < len(text) <= _MAX_ID_LENGTH or "/" in text:
        return f"must be 1..{_MAX_ID_LENGTH} characters without '/'"
    if not text.isprintable() or text != text.strip():
        return "must be printable"
    return None


CONTACT_FIELDS: Mapping[str, Callable[[object], str | None]] = {
    "display_name": _is_name,
    "verified": _is_bool,
    "blocked": _is_bool,
    "read_receipts": _is_bool,
    "typing_notifications": _is_bool,
    "added_at": _is_count,
}
"""The fields of a contact in the ``contacts`` document, with their checks."""

CONVERSATION_FIELDS: Mapping[str, Callable[[object], str | None]] = {
    "archived": _is_bool,
    "muted_until": _is_count,
    "read_up_to": _is_count,
}
"""The fields of a conversation: ``muted_until`` and ``read_up_to`` are Unix milliseconds
(``read_up_to``: incoming messages up to that timestamp are read)."""


class DocumentSchema(ABC):
    """What one sync document may hold."""

    @abstractmethod
    def problem(self, document: str, key: str, value: object) -> str | None:
        """Why ``key`` = ``value`` is not allowed in ``document``, or ``None``."""


class FieldSchema(DocumentSchema):
    """Keys ``"<id>/<field>"``: an id checked by ``id_problem``, a known field, a valid value."""

    def __init__(
        self,
        fields: Mapping[str, Callable[[object], str | None]],
        id_problem: Callable[[str], str | None],
    ) -> None:
        self._fields = dict(fields)
        self._id_problem = id_problem

    def problem(self, document: str, key: str, value: object) -> str | None:
        item, separator, name = key.rpartition("/")
        if not separator or name not in self._fields:
            return f"key {key[:80]!r} is not '<id>/<field>' with a known field"
        if (why := self._id_problem(item)) is not None:
            return f"key {key[:80]!r}: the id {why}"
        if (why := self._fields[name](value)) is not None:
            return f"{name} {why}"
        return None


class SettingsSchema(DocumentSchema):
    """Names of 1..64 characters ``[a-z0-9._-]``; values str (<= 4 KiB), bool or number."""

    def problem(self, document: str, key: str, value: object) -> str | None:
        if not _SETTING_NAME.fullmatch(key):
            return f"setting name {key[:80]!r} must match [a-z0-9][a-z0-9._-]{{0,63}}"
        if isinstance(value, str):
            if len(value.encode("utf-8")) > MAX_SETTING_BYTES:
                return f"setting {key} is longer than {MAX_SETTING_BYTES} bytes"
            return None
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float) and math.isfinite(value):
            return None
        return f"setting {key} must be a string, a boolean or a finite number"


class HistorySchema(DocumentSchema):
    """Message id -> encoded :class:`~omega.protocol.SyncedMessage` (strictly decoded)."""

    def problem(self, document: str, key: str, value: object) -> str | None:
        if not 0 < len(key) <= _MAX_ID_LENGTH or not key.isprintable():
            return f"message id must be 1..{_MAX_ID_LENGTH} printable characters"
        if not isinstance(value, bytes | bytearray):
            return "a history entry is an encoded SyncedMessage"
        try:
            message = decode_message(SyncedMessage, bytes(value), max_size=MAX_CONTENT_SIZE + 1024)
            if message.content:
                decode_content(message.content)
        except OmegaError as exc:
            return f"history entry {key[:80]!r}: {exc.message}"
        if (why := _user_id_problem(message.sender_id)) is not None:
            return f"history entry {key[:80]!r}: the sender {why}"
        if len(message.sender_device_key) != 32:
            return f"history entry {key[:80]!r}: the sender device key is not 32 bytes"
        if min(message.received_at, message.edited_at, message.expires_at) < 0:
            return f"history entry {key[:80]!r}: a negative time"
        return None


class SyncSchemas:
    """The schemas of the sync documents: exact names and name prefixes.

    :func:`default_schemas` has contacts, conversations, settings and the
    history documents. A ``groups`` document (group membership views) is
    added with :meth:`register` by the code that owns groups.
    """

    def __init__(self) -> None:
        self._exact: dict[str, DocumentSchema] = {}
        self._prefixed: dict[str, tuple[DocumentSchema, Callable[[str], str | None]]] = {}

    def register(
        self,
        name: str,
        schema: DocumentSchema,
        *,
        suffix_problem: Callable[[str], str | None] | None = None,
    ) -> None:
        """Add the document ``name``; with ``suffix_problem``, every ``name + suffix``
        whose suffix it accepts. Raises :class:`~omega.errors.ConfigurationError` for a
        name taken already."""
        if name in self._exact or name in self._prefixed:
            raise ConfigurationError(f"sync document {name!r} is registered already")
        if suffix_problem is None:
            self._exact[name] = schema
        else:
            self._prefixed[name] = (schema, suffix_problem)

    def get(self, document: str) -> DocumentSchema | None:
        """The schema of ``document``, or ``None`` when no such document exists."""
        if (schema := self._exact.get(document)) is not None:
            return schema
        for prefix, (schema, suffix_problem) in self._prefixed.items():
            if document.startswith(prefix) and suffix_problem(document[len(prefix) :]) is None:
                return schema
        return None


def default_schemas() -> SyncSchemas:
    """Contacts, conversations, settings and ``history/<conversation id>``."""
    schemas = SyncSchemas()
    schemas.register(CONTACTS, FieldSchema(CONTACT_FIELDS, _user_id_problem))
    schemas.register(CONVERSATIONS, FieldSchema(CONVERSATION_FIELDS, _conversation_id_problem))
    schemas.register(SETTINGS, SettingsSchema())
    schemas.register(HISTORY_PREFIX, HistorySchema(), suffix_problem=_conversation_id_problem)
    return schemas


def history_document(conversation_id: str) -> str:
    """The name of the history document of ``conversation_id``."""
    return HISTORY_PREFIX + conversation_id
