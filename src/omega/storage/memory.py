"""An in-memory :class:`~omega.storage.base.KeyStore`, for tests, bots and simulations.

Nothing survives the process. A transaction works on a private copy of the
state and swaps it in on commit, so a transaction that raises leaves the
store exactly as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from omega.errors import LocalProtocolError
from omega.storage.base import (
    InboxEntry,
    KeyStore,
    KeyStoreTransaction,
    check_blob_name,
    check_device_key,
    check_group_id,
    check_limit,
    check_message_ids,
    check_value,
)

__all__ = ["MemoryKeyStore"]


@dataclass
class _State:
    identity: bytes | None = None
    prekeys: bytes | None = None
    sessions: dict[bytes, bytes] = field(default_factory=dict)
    sender_keys: dict[tuple[str, bytes], bytes] = field(default_factory=dict)
    inbox: dict[str, InboxEntry] = field(default_factory=dict)  # insertion order = age
    blobs: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, bytes] = field(default_factory=dict)
    group_outbound: dict[str, bytes] = field(default_factory=dict)
    group_senders: dict[tuple[str, bytes], bytes] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            identity=self.identity,
            prekeys=self.prekeys,
            sessions=dict(self.sessions),
            sender_keys=dict(self.sender_keys),
            inbox=dict(self.inbox),
            blobs=dict(self.blobs),
            groups=dict(self.groups),
            group_outbound=dict(self.group_outbound),
            group_senders=dict(self.group_senders),
        )


class _MemoryTransaction(KeyStoreTransaction):
    def __init__(self, state: _State) -> None:
        self._state = state
        self.live = True

    def _live_state(self) -> _State:
        if not self.live:
            raise LocalProtocolError("this transaction has ended")
        return self._state

    async def load_identity(self) -> bytes | None:
        return self._live_state().identity

    async def save_identity(self, data: bytes) -> None:
        self._live_state().identity = check_value(data, "identity")

    async def load_prekeys(self) -> bytes | None:
        return self._live_state().prekeys

    async def save_prekeys(self, data: bytes) -> None:
        self._live_state().prekeys = check_value(data, "prekeys")

    async def load_session(self, device_key: bytes) -> bytes | None:
        return self._live_state().sessions.get(check_device_key(device_key))

    async def save_session(self, device_key: bytes, state: bytes) -> None:
        check_device_key(device_key)
        self._live_state().sessions[device_key] = check_value(state, "session state")

    async def delete_session(self, device_key: bytes) -> bool:
        check_device_key(device_key)
        return self._live_state().sessions.pop(device_key, None) is not None

    async def session_device_keys(self) -> list[bytes]:
        return sorted(self._live_state().sessions)

    async def load_sender_key(self, group_id: str, device_key: bytes) -> bytes | None:
        key = (check_group_id(group_id), check_device_key(device_key))
        return self._live_state().sender_keys.get(key)

    async def save_sender_key(self, group_id: str, device_key: bytes, state: bytes) -> None:
        key = (check_group_id(group_id), check_device_key(device_key))
        self._live_state().sender_keys[key] = check_value(state, "sender key state")

    async def delete_sender_keys(self, group_id: str) -> int:
        check_group_id(group_id)
        sender_keys = self._live_state().sender_keys
        doomed = [key for key in sender_keys if key[0] == group_id]
        for key in doomed:
            del sender_keys[key]
        return len(doomed)

    async def add_to_inbox(self, entry: InboxEntry) -> bool:
        inbox = self._live_state().inbox
        if entry.message_id in inbox:
            return False
        inbox[entry.message_id] = entry
        return True

    async def inbox(self, limit: int = 100) -> list[InboxEntry]:
        entries = self._live_state().inbox.values()
        return list(entries)[: check_limit(limit)]

    async def remove_from_inbox(self, message_ids: Sequence[str]) -> int:
        check_message_ids(message_ids)
        inbox = self._live_state().inbox
        return sum(inbox.pop(message_id, None) is not None for message_id in set(message_ids))

    async def load_blob(self, name: str) -> bytes | None:
        return self._live_state().blobs.get(check_blob_name(name))

    async def save_blob(self, name: str, data: bytes) -> None:
        check_blob_name(name)
        self._live_state().blobs[name] = check_value(data, "blob")

    async def delete_blob(self, name: str) -> bool:
        return self._live_state().blobs.pop(check_blob_name(name), None) is not None

    async def load_group_state(self, group_id: str) -> bytes | None:
        return self._live_state().groups.get(check_group_id(group_id))

    async def save_group_state(self, group_id: str, state: bytes) -> None:
        check_group_id(group_id)
        self._live_state().groups[group_id] = check_value(state, "group state")

    async def delete_group_state(self, group_id: str) -> bool:
        check_group_id(group_id)
        state = self._live_state()
        found = state.groups.pop(group_id, None) is not None
        found |= state.group_outbound.pop(group_id, None) is not None
        doomed = [key for key in state.group_senders if key[0] == group_id]
        for key in doomed:
            del state.group_senders[key]
        return found or bool(doomed)

    async def group_state_ids(self) -> list[str]:
        return sorted(self._live_state().groups)

    async def load_group_outbound(self, group_id: str) -> bytes | None:
        return self._live_state().group_outbound.get(check_group_id(group_id))

    async def save_group_outbound(self, group_id: str, state: bytes) -> None:
        check_group_id(group_id)
        self._live_state().group_outbound[group_id] = check_value(state, "outbound sender key")

    async def load_group_sender(self, group_id: str, device_key: bytes) -> bytes | None:
        key = (check_group_id(group_id), check_device_key(device_key))
        return self._live_state().group_senders.get(key)

    async def save_group_sender(self, group_id: str, device_key: bytes, state: bytes) -> None:
        key = (check_group_id(group_id), check_device_key(device_key))
        self._live_state().group_senders[key] = check_value(state, "sender record")

    async def delete_group_sender(self, group_id: str, device_key: bytes) -> bool:
        key = (check_group_id(group_id), check_device_key(device_key))
        return self._live_state().group_senders.pop(key, None) is not None

    async def load_group_senders(self, group_id: str) -> dict[bytes, bytes]:
        check_group_id(group_id)
        senders = self._live_state().group_senders
        return {key[1]: senders[key] for key in sorted(k for k in senders if k[0] == group_id)}


class MemoryKeyStore(KeyStore):
    """A :class:`~omega.storage.base.KeyStore` that lives in memory only."""

    def __init__(self) -> None:
        super().__init__()
        self._state = _State()
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[KeyStoreTransaction]:
        async with self._lock:
            transaction = _MemoryTransaction(self._state.copy())
            try:
                yield transaction
            finally:
                transaction.live = False
            self._state = transaction._state  # commit: reached only without an exception

    async def _close(self) -> None:
        self._state = _State()
