"""Multi-device: linking a new device, and CRDT sync between the devices of one user.

* :class:`DeviceLinkCode`, :class:`LinkOffer`, :class:`LinkRequest`: the
  sans-I/O device link protocol (docs/multi-device.md, "Linking").
* :class:`SyncReplica`: this device's sync documents (pycrdt, standard Yjs
  updates), with validated remote updates.
* :func:`pack_sync`, :class:`Reassembler`: sync messages on the wire.
* :class:`SyncSchemas`, :func:`default_schemas`: what each document may hold
  (contacts, conversations, settings, history; a ``groups`` document is added
  with :meth:`SyncSchemas.register`).
"""

from __future__ import annotations

from omega.sync._link import (
    DEFAULT_LINK_LIFETIME_MS,
    LINK_CODE_PREFIX,
    MAX_LINK_ADDRESSES,
    MAX_LINK_ATTEMPTS,
    MAX_LINK_MESSAGE_SIZE,
    DeviceLinkCode,
    LinkedDevice,
    LinkOffer,
    LinkRequest,
    decode_link_message,
)
from omega.sync._replica import (
    MAX_DOCUMENTS,
    MAX_ENTRIES,
    MAX_UPDATE_SIZE,
    Change,
    SyncReplica,
    decode_state_vector,
    sync_client_id,
)
from omega.sync._schema import (
    CONTACT_FIELDS,
    CONTACTS,
    CONVERSATION_FIELDS,
    CONVERSATIONS,
    HISTORY_PREFIX,
    MAX_SETTING_BYTES,
    ROOT,
    SETTINGS,
    DocumentSchema,
    FieldSchema,
    HistorySchema,
    SettingsSchema,
    SyncSchemas,
    Value,
    default_schemas,
    history_document,
)
from omega.sync._wire import (
    MAX_PENDING_TRANSFERS,
    SYNC_PAYLOAD_SIZE,
    Reassembler,
    check_sync_content,
    pack_sync,
)

__all__ = [
    "CONTACTS",
    "CONTACT_FIELDS",
    "CONVERSATIONS",
    "CONVERSATION_FIELDS",
    "DEFAULT_LINK_LIFETIME_MS",
    "HISTORY_PREFIX",
    "LINK_CODE_PREFIX",
    "MAX_DOCUMENTS",
    "MAX_ENTRIES",
    "MAX_LINK_ADDRESSES",
    "MAX_LINK_ATTEMPTS",
    "MAX_LINK_MESSAGE_SIZE",
    "MAX_PENDING_TRANSFERS",
    "MAX_SETTING_BYTES",
    "MAX_UPDATE_SIZE",
    "ROOT",
    "SETTINGS",
    "SYNC_PAYLOAD_SIZE",
    "Change",
    "DeviceLinkCode",
    "DocumentSchema",
    "FieldSchema",
    "HistorySchema",
    "LinkOffer",
    "LinkRequest",
    "LinkedDevice",
    "Reassembler",
    "SettingsSchema",
    "SyncReplica",
    "SyncSchemas",
    "Value",
    "check_sync_content",
    "decode_link_message",
    "decode_state_vector",
    "default_schemas",
    "history_document",
    "pack_sync",
    "sync_client_id",
]
