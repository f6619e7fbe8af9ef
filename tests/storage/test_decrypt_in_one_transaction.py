"""The pattern docs/storage.md prescribes: decrypt and persist in one transaction.

A crash after the ratchet advanced in memory but before the commit must
leave the stored session able to decrypt the same ciphertext again (nothing
lost), and a committed decrypt must make a replay fail (no key reused).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.crypto import (
    Identity,
    PrekeyStore,
    RatchetSession,
    accept_session,
    encrypt_message,
    initiate_session,
)
from omega.errors import DuplicateMessageError
from omega.storage import InboxEntry, KeyStore, SQLiteKeyStore

pytestmark = pytest.mark.anyio
NOW = 1_764_000_000_000


class CrashError(Exception):
    """Stands for the process dying between decrypt and commit."""


async def receive(store: KeyStore, sender: bytes, message_id: str, data: bytes) -> None:
    async with store.transaction() as tx:
        state = await tx.load_session(sender)
        assert state is not None
        session = RatchetSession.from_bytes(state)
        plaintext = session.decrypt(data)
        await tx.save_session(sender, session.to_bytes())
        await tx.add_to_inbox(
            InboxEntry(
                message_id=message_id,
                sender_device_key=sender,
                plaintext=plaintext,
                received_at=NOW,
            )
        )


async def decrypt_then_crash(store: KeyStore, sender: bytes, data: bytes) -> None:
    async with store.transaction() as tx:
        state = await tx.load_session(sender)
        assert state is not None
        session = RatchetSession.from_bytes(state)
        assert session.decrypt(data) == b"the message that must not be lost"
        raise CrashError


async def test_crash_before_commit_loses_nothing_and_commit_prevents_reuse(
    tmp_path: Path,
) -> None:
    alice = Identity.create(device_name="a", created_at=NOW)
    bob = Identity.create(device_name="b", created_at=NOW)
    prekeys = PrekeyStore.generate(bob.device.key_pair, now=NOW)
    bundle = prekeys.build_bundle(bob.device.certificate)
    alice_session, first = initiate_session(alice.device, bundle, b"hello", user_id=bob.user_id)
    accepted = accept_session(bob.device, prekeys, first, now=NOW)
    reply = encrypt_message(accepted.session, b"ack")
    alice_session.decrypt(reply.data)  # the session is established both ways
    message = encrypt_message(alice_session, b"the message that must not be lost").data
    sender = alice.device.device_key

    path = tmp_path / "bob.db"
    async with await SQLiteKeyStore.open(path) as store:
        async with store.transaction() as tx:
            await tx.save_session(sender, accepted.session.to_bytes())
        with pytest.raises(CrashError):
            await decrypt_then_crash(store, sender, message)

    async with await SQLiteKeyStore.open(path) as store:
        await receive(store, sender, "m1", message)  # the ciphertext still decrypts
        async with store.transaction() as tx:
            [entry] = await tx.inbox()
            assert entry.plaintext == b"the message that must not be lost"
        with pytest.raises(DuplicateMessageError):
            await receive(store, sender, "m1-again", message)
        async with store.transaction() as tx:
            assert [e.message_id for e in await tx.inbox()] == ["m1"]
