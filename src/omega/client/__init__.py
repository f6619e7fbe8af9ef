"""The high-level async API: :class:`Client`, its configuration and its events.

::

    async with await Client.from_data_dir(path, passphrase=...) as client:
        await client.add_contact("omega://...")
        await client.send_text(contact_id, "hello")
        async for event in client.events():
            ...

See docs/guide.md.
"""

from __future__ import annotations

from omega.client._client import Client, standard_registry
from omega.client._devices import DeviceInfo, DeviceLink
from omega.client._group import Group
from omega.client._group_events import (
    GroupCreated,
    GroupEvent,
    GroupJoined,
    GroupMemberAdded,
    GroupMemberLeft,
    GroupMemberRemoved,
    GroupMentioned,
    GroupMessageReceived,
    GroupOperationRefused,
    GroupRenamed,
    GroupRoleChanged,
    GroupUpdated,
)
from omega.client.config import ClientConfig
from omega.client.datadir import DataDir, default_data_dir
from omega.client.events import (
    ContactDevicesChanged,
    DecryptionFailed,
    DeliveryStateChanged,
    Event,
    MessageDeleted,
    MessageEdited,
    MessageExpired,
    MessageReceived,
    MessageRefused,
    OwnDevicesChanged,
    ReactionReceived,
    SessionReset,
    SyncApplied,
    TypingChanged,
)

__all__ = [
    "Client",
    "ClientConfig",
    "ContactDevicesChanged",
    "DataDir",
    "DecryptionFailed",
    "DeliveryStateChanged",
    "DeviceInfo",
    "DeviceLink",
    "Event",
    "Group",
    "GroupCreated",
    "GroupEvent",
    "GroupJoined",
    "GroupMemberAdded",
    "GroupMemberLeft",
    "GroupMemberRemoved",
    "GroupMentioned",
    "GroupMessageReceived",
    "GroupOperationRefused",
    "GroupRenamed",
    "GroupRoleChanged",
    "GroupUpdated",
    "MessageDeleted",
    "MessageEdited",
    "MessageExpired",
    "MessageReceived",
    "MessageRefused",
    "OwnDevicesChanged",
    "ReactionReceived",
    "SessionReset",
    "SyncApplied",
    "TypingChanged",
    "default_data_dir",
    "standard_registry",
]
