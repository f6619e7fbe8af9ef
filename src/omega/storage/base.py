"""The key store interface: where a device keeps its secrets and session state.

A :class:`KeyStore` holds, for one device:

* its identity (the encoded identity export or any bytes the caller chooses),
* its prekey state (signed and one-time prekeys, serialized by ``omega.crypto``),
* one ratchet session per remote device, keyed by that device's 32-byte key,
* one sender-key state per (group, sending device),
* per group, the device's group session in parts (docs/groups.md, "Storage"):
  the **group record** (operation log and epoch, rewritten only when they
  change), this device's **outbound** sender key (rewritten per sent message)
  and one **sender record** per remote sending device (rewritten per message
  received from it), so what a message writes is proportional to what it changed,
* the **inbox**: plaintexts of messages already decrypted but not yet taken by
  the application.

Values are opaque bytes (the crypto layer serializes its state to versioned
protobuf); the store never interprets them.

Everything happens in a transaction::

    async with store.transaction() as tx:
        state = await tx.load_session(device_key)
        ...  # decrypt with the session
        await tx.save_session(device_key, new_state)
        await tx.add_to_inbox(InboxEntry(...))

A transaction commits when its block exits normally and rolls back, leaving
the store exactly as it was, when the block raises. Because the advanced
ratchet state and the plaintext it produced commit together, a crash can
neither lose a decrypted message nor let a message key be used twice.
Transactions of one store run one at a time; opening a transaction inside
another on the same store raises :class:`~omega.errors.LocalProtocolError`.

Implementations: :class:`~omega.storage.memory.MemoryKeyStore` and
:class:`~omega.storage.sqlite.SQLiteKeyStore`. A new backend proves itself by
passing :func:`omega.testing.check_key_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from omega.errors import ConfigurationError
from omega.storage._transactional import TransactionalStore

__all__ = [
    "DEVICE_KEY_SIZE",
    "MAX_GROUP_ID_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_BLOB_NAME_LENGTH",
    "MAX_VALUE_SIZE",
    "GroupParts",
    "InboxEntry",
    "KeyStore",
    "KeyStoreTransaction",
]

DEVICE_KEY_SIZE = 32
"""Length of a device key, the identifier of sessions and sender keys."""

MAX_VALUE_SIZE = 4 * 1024 * 1024
"""Largest value (state blob or plaintext) a key store accepts, in bytes."""

MAX_GROUP_ID_LENGTH = 256
"""Longest group id, in characters."""

MAX_MESSAGE_ID_LENGTH = 256
"""Longest message id, in characters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxEntry:
    """A decrypted message waiting for the application to take it."""

    message_id: str
    """The message's id (unique in the inbox: a second entry with it is refused)."""
    sender_device_key: bytes
    """The 32-byte key of the device that sent it."""
    plaintext: bytes
    """The decrypted content."""
    received_at: int
    """When it was decrypted, Unix milliseconds."""

    def __post_init__(self) -> None:
        check_message_id(self.message_id)
        check_device_key(self.sender_device_key)
        check_value(self.plaintext, "plaintext")
        if isinstance(self.received_at, bool) or not isinstance(self.received_at, int):
            raise ConfigurationError("received_at must be Unix milliseconds as an int")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupParts:
    """Everything a key store holds for one group (:meth:`KeyStoreTransaction.load_group_parts`)."""

    record: bytes
    """The group record (:meth:`KeyStoreTransaction.save_group_state`)."""
    outbound: bytes | None
    """This device's outbound sender-key state, or ``None`` if none was saved."""
    senders: dict[bytes, bytes]
    """Sender records by remote device key, in ascending key order."""


def check_device_key(device_key: object) -> bytes:
    """Return ``device_key`` if it is 32 bytes, else raise ConfigurationError."""
    if not isinstance(device_key, bytes) or len(device_key) != DEVICE_KEY_SIZE:
        raise ConfigurationError(f"a device key is {DEVICE_KEY_SIZE} bytes")
    return device_key


def check_value(value: object, what: str = "value") -> bytes:
    """Return ``value`` if it is bytes of at most MAX_VALUE_SIZE, else raise ConfigurationError."""
    if not isinstance(value, bytes):
        raise ConfigurationError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_VALUE_SIZE:
        raise ConfigurationError(f"{what} of {len(value)} bytes exceeds {MAX_VALUE_SIZE} bytes")
    return value


def check_group_id(group_id: object) -> str:
    """Return ``group_id`` if it is a non-empty str of at most MAX_GROUP_ID_LENGTH characters."""
    if not isinstance(group_id, str) or not 0 < len(group_id) <= MAX_GROUP_ID_LENGTH:
        raise ConfigurationError(f"a group id is 1..{MAX_GROUP_ID_LENGTH} characters")
    return group_id


def check_message_id(message_id: object) -> str:
    """Return ``message_id`` if it is a str of 1..MAX_MESSAGE_ID_LENGTH characters."""
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise ConfigurationError(f"a message id is 1..{MAX_MESSAGE_ID_LENGTH} characters")
    return message_id


def check_message_ids(message_ids: object) -> list[str]:
    """Return ``message_ids`` as a list if it is a sequence of valid message ids."""
    if isinstance(message_ids, str | bytes) or not isinstance(message_ids, Sequence):
        raise ConfigurationError("message_ids must be a sequence of message ids")
    return [check_message_id(message_id) for message_id in message_ids]


class KeyStoreTransaction(ABC):
    """Reads and writes inside one transaction of a :class:`KeyStore`.

    Only valid inside its ``async with`` block; using it afterwards raises
    :class:`~omega.errors.LocalProtocolError`. Arguments are validated:
    a device key that is not 32 bytes, a value that is not bytes or is larger
    than :data:`MAX_VALUE_SIZE`, an empty or over-long group or message id
    raise :class:`~omega.errors.ConfigurationError` and change nothing.
    """

    @abstractmethod
    async def load_identity(self) -> bytes | None:
        """The stored identity, or ``None``."""

    @abstractmethod
    async def save_identity(self, data: bytes) -> None:
        """Store the identity, replacing any previous one."""

    @abstractmethod
    async def load_prekeys(self) -> bytes | None:
        """The stored prekey state, or ``None``."""

    @abstractmethod
    async def save_prekeys(self, data: bytes) -> None:
        """Store the prekey state, replacing any previous one."""

    @abstractmethod
    async def load_session(self, device_key: bytes) -> bytes | None:
        """The session state with the remote device ``device_key``, or ``None``."""

    @abstractmethod
    async def save_session(self, device_key: bytes, state: bytes) -> None:
        """Store the session state with ``device_key``, replacing any previous one."""

    @abstractmethod
    async def delete_session(self, device_key: bytes) -> bool:
        """Delete the session with ``device_key``; return whether there was one."""

    @abstractmethod
    async def session_device_keys(self) -> list[bytes]:
        """Keys of every remote device we hold a session with, sorted."""

    @abstractmethod
    async def load_sender_key(self, group_id: str, device_key: bytes) -> bytes | None:
        """The sender-key state of ``device_key`` in ``group_id``, or ``None``."""

    @abstractmethod
    async def save_sender_key(self, group_id: str, device_key: bytes, state: bytes) -> None:
        """Store the sender-key state of ``device_key`` in ``group_id``."""

    @abstractmethod
    async def delete_sender_keys(self, group_id: str) -> int:
        """Delete every sender-key state of ``group_id``; return how many there were."""

    @abstractmethod
    async def add_to_inbox(self, entry: InboxEntry) -> bool:
        """Add ``entry``; return False (and change nothing) if its message id is there already."""

    @abstractmethod
    async def inbox(self, limit: int = 100) -> list[InboxEntry]:
        """Up to ``limit`` (1..10000) inbox entries, oldest first."""

    @abstractmethod
    async def remove_from_inbox(self, message_ids: Sequence[str]) -> int:
        """Remove the entries with these ids; return how many were removed."""

    @abstractmethod
    async def load_blob(self, name: str) -> bytes | None:
        """The blob stored under ``name`` (1..256 characters), or ``None``.

        Blobs are opaque state of higher layers (multi-device sync documents),
        kept as secret as the rest of the store.
        """

    @abstractmethod
    async def save_blob(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing any previous blob."""

    @abstractmethod
    async def delete_blob(self, name: str) -> bool:
        """Delete the blob ``name``; return whether there was one."""

    # -- groups: one record, one outbound key, one record per remote sending device ---------
    @abstractmethod
    async def load_group_state(self, group_id: str) -> bytes | None:
        """The group record of ``group_id`` (log and epoch), or ``None``.

        A store written by Omega before the split holds the whole group
        session here instead (a ``GroupSessionState`` of version 1).
        """

    @abstractmethod
    async def save_group_state(self, group_id: str, state: bytes) -> None:
        """Store the group record of ``group_id``, replacing any previous one."""

    @abstractmethod
    async def delete_group_state(self, group_id: str) -> bool:
        """Delete everything of ``group_id``: its record, outbound key and sender records.

        Returns whether there was anything to delete.
        """

    @abstractmethod
    async def group_state_ids(self) -> list[str]:
        """Ids of every group with a stored group record, sorted."""

    @abstractmethod
    async def load_group_outbound(self, group_id: str) -> bytes | None:
        """This device's outbound sender-key state in ``group_id``, or ``None``."""

    @abstractmethod
    async def save_group_outbound(self, group_id: str, state: bytes) -> None:
        """Store this device's outbound sender-key state in ``group_id``, replacing it."""

    @abstractmethod
    async def load_group_sender(self, group_id: str, device_key: bytes) -> bytes | None:
        """The sender record of remote device ``device_key`` in ``group_id``, or ``None``."""

    @abstractmethod
    async def save_group_sender(self, group_id: str, device_key: bytes, state: bytes) -> None:
        """Store the sender record of ``device_key`` in ``group_id``, replacing any previous one.

        Only this one record is written: the cost of a received group message.
        """

    @abstractmethod
    async def delete_group_sender(self, group_id: str, device_key: bytes) -> bool:
        """Delete the sender record of ``device_key`` in ``group_id``; whether there was one."""

    @abstractmethod
    async def load_group_senders(self, group_id: str) -> dict[bytes, bytes]:
        """Every sender record of ``group_id`` by device key, in ascending key order."""

    async def load_group_parts(self, group_id: str) -> GroupParts | None:
        """Everything stored for ``group_id``, or ``None`` when it has no group record."""
        record = await self.load_group_state(group_id)
        if record is None:
            return None
        return GroupParts(
            record=record,
            outbound=await self.load_group_outbound(group_id),
            senders=await self.load_group_senders(group_id),
        )


class KeyStore(TransactionalStore[KeyStoreTransaction]):
    """A device's durable secrets and session state; see the module docstring."""

    _kind = "key store"


MAX_BLOB_NAME_LENGTH = 256
"""Longest blob name of :meth:`KeyStoreTransaction.save_blob`, in characters."""


def check_blob_name(name: object) -> str:
    """Return ``name`` if it is a str of 1..256 characters, else raise ConfigurationError."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_BLOB_NAME_LENGTH:
        raise ConfigurationError(f"a blob name is 1..{MAX_BLOB_NAME_LENGTH} characters")
    return name


def check_limit(limit: object) -> int:
    """Return ``limit`` if it is an int in 1..10000, else raise ConfigurationError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ConfigurationError("limit must be an int in 1..10000")
    return limit
