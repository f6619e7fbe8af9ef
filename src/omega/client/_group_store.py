"""How the client keeps its group sessions in the key store: in parts (docs/groups.md, "Storage").

A :class:`~omega.groups.GroupSession` is stored as a group record (log and
epoch), this device's outbound sender key, and one sender record per remote
sending device. :func:`write_changes` writes only the parts that changed
(:meth:`~omega.groups.GroupSession.take_changes`): a received group message
rewrites its sender's record, a sent one the outbound key, and the log is
rewritten only when it changed. A session stored by an older Omega (one
``GroupSessionState`` blob of version 1) loads as it is and is converted by
its first save.

:class:`Unconfirmed` covers the one writer that does not own its transaction:
a received group message is decrypted inside the inbound path's key-store
transaction, which may still fail after the sender's record was written (the
inbox write, the commit). The parts it wrote are remembered until the message
is known to be committed (right after the commit, or when its inbox entry is
applied); the next transaction using the group compares them
with the store, and where the store does not hold them, puts the stored
state back in memory, so the cached session never runs ahead of the store.
"""

from __future__ import annotations

import logging

from omega.crypto import LocalDevice
from omega.errors import MessageDecodeError
from omega.groups import GroupConfig, GroupSession, GroupSessionChanges
from omega.storage.base import KeyStoreTransaction

__all__ = ["Unconfirmed", "load_session", "stored_as_written", "write_changes"]

logger = logging.getLogger("omega.client")


async def load_session(
    tx: KeyStoreTransaction, group_id: str, device: LocalDevice, config: GroupConfig
) -> GroupSession | None:
    """The stored session of ``group_id`` rebuilt from its parts, or ``None`` if none is stored.

    Raises :class:`~omega.errors.MessageDecodeError` for a damaged one.
    """
    parts = await tx.load_group_parts(group_id)
    if parts is None:
        return None
    return GroupSession.from_parts(
        parts.record, parts.outbound, parts.senders, device, config=config
    )


async def write_changes(
    tx: KeyStoreTransaction, group_id: str, changes: GroupSessionChanges
) -> None:
    """Write ``changes`` (from :meth:`~omega.groups.GroupSession.take_changes`) in ``tx``."""
    if changes.record is not None:
        await tx.save_group_state(group_id, changes.record)
    if changes.outbound is not None:
        await tx.save_group_outbound(group_id, changes.outbound)
    for device_key, record in changes.senders.items():
        await tx.save_group_sender(group_id, device_key, record)
    for device_key in changes.removed_senders:
        await tx.delete_group_sender(group_id, device_key)


async def stored_as_written(
    tx: KeyStoreTransaction, group_id: str, changes: GroupSessionChanges
) -> bool:
    """True when the store holds exactly the parts ``changes`` wrote (their transaction
    committed, or wrote what was there already)."""
    if changes.record is not None and await tx.load_group_state(group_id) != changes.record:
        return False
    if changes.outbound is not None and await tx.load_group_outbound(group_id) != changes.outbound:
        return False
    for device_key, record in changes.senders.items():
        if await tx.load_group_sender(group_id, device_key) != record:
            return False
    for device_key in changes.removed_senders:
        if await tx.load_group_sender(group_id, device_key) is not None:
            return False
    return True


class Unconfirmed:
    """Parts written by received group messages whose transaction may not have committed."""

    def __init__(self) -> None:
        self._written: dict[str, tuple[tuple[bytes, str], GroupSessionChanges]] = {}

    def __bool__(self) -> bool:
        return bool(self._written)

    def group_ids(self) -> list[str]:
        """Groups with unconfirmed writes."""
        return list(self._written)

    def wrote(
        self, group_id: str, message: tuple[bytes, str], changes: GroupSessionChanges
    ) -> None:
        """Decrypting ``message`` (sender device key, message id) is about to write ``changes``
        in a transaction still open."""
        self._written[group_id] = (message, changes)

    def committed(self, group_id: str, message: tuple[bytes, str]) -> None:
        """The transaction that decrypted ``message`` committed."""
        held = self._written.get(group_id)
        if held is not None and held[0] == message:
            del self._written[group_id]

    async def settle(
        self, tx: KeyStoreTransaction, group_id: str, session: GroupSession | None
    ) -> bool:
        """Check ``group_id``'s unconfirmed write against the store in ``tx``.

        Puts the stored sender records back into ``session`` where the write
        did not commit. Returns False when that is not enough (the write
        included the record or the outbound key, or a record is damaged):
        the caller then reloads the whole session.
        """
        held = self._written.pop(group_id, None)
        if held is None or session is None:
            return True
        changes = held[1]
        if await stored_as_written(tx, group_id, changes):
            return True
        logger.info("event=group_write_not_committed group=%s", group_id[:16])
        if changes.record is not None or changes.outbound is not None:
            return False
        try:
            for device_key in (*changes.senders, *changes.removed_senders):
                session.restore_sender(device_key, await tx.load_group_sender(group_id, device_key))
        except MessageDecodeError:
            return False
        return True
