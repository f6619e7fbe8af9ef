"""The client's group storage helpers: parts written, read back, and unconfirmed writes settled."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "groups"))  # group_helpers

from group_helpers import NOW, device, new_group, user

from omega.client._group_store import (
    Unconfirmed,
    load_session,
    stored_as_written,
    write_changes,
)
from omega.groups import GroupConfig, GroupSession, GroupSessionChanges
from omega.storage.memory import MemoryKeyStore
from omega.testing.random import SeededRandom

pytestmark = pytest.mark.anyio

GROUP_MESSAGE = (bytes(32), "m1")


def _pair() -> tuple[GroupSession, GroupSession]:
    log, _ = new_group(2)
    alice = GroupSession.start(log, device(0), rng=SeededRandom(b"a"))
    bob = GroupSession.start(copy.deepcopy(log), device(1), rng=SeededRandom(b"b"))
    bob.add_distribution(user(0), device(0).device_key, alice.rekey_all().distribution)
    return alice, bob


async def _stored(store: MemoryKeyStore, bob: GroupSession) -> GroupSession:
    async with store.transaction() as tx:
        await write_changes(tx, bob.log.group_id, bob.take_changes())
        loaded = await load_session(tx, bob.log.group_id, device(1), GroupConfig())
    assert loaded is not None
    return loaded


async def test_parts_written_and_compared() -> None:
    store = MemoryKeyStore()
    alice, bob = _pair()
    group_id = bob.log.group_id
    assert (await _stored(store, bob)).to_bytes() == bob.to_bytes()
    async with store.transaction() as tx:
        assert await load_session(tx, "f" * 64, device(1), GroupConfig()) is None
        bob.decrypt(user(0), device(0).device_key, alice.encrypt(b"hi"))
        changes = bob.take_changes()
        assert not await stored_as_written(tx, group_id, changes), "not written yet"
        await write_changes(tx, group_id, changes)
        assert await stored_as_written(tx, group_id, changes), "written"
        for other in (
            GroupSessionChanges(record=b"other"),
            GroupSessionChanges(outbound=b"other"),
            GroupSessionChanges(removed_senders=frozenset({device(0).device_key})),
        ):
            assert not await stored_as_written(tx, group_id, other)


async def test_an_unconfirmed_write_that_committed_is_dropped() -> None:
    store = MemoryKeyStore()
    alice, bob = _pair()
    group_id = bob.log.group_id
    await _stored(store, bob)
    unconfirmed = Unconfirmed()
    async with store.transaction() as tx:
        assert await unconfirmed.settle(tx, group_id, bob), "nothing to settle"
        bob.decrypt(user(0), device(0).device_key, alice.encrypt(b"hi"))
        changes = bob.take_changes()
        unconfirmed.wrote(group_id, GROUP_MESSAGE, changes)
        await write_changes(tx, group_id, changes)
    assert unconfirmed.group_ids() == [group_id]
    unconfirmed.committed(group_id, (bytes(32), "another"))
    assert unconfirmed, "only the message that wrote confirms it"
    async with store.transaction() as tx:
        assert await unconfirmed.settle(tx, group_id, bob)
    assert not unconfirmed
    unconfirmed.wrote(group_id, GROUP_MESSAGE, changes)
    unconfirmed.committed(group_id, GROUP_MESSAGE)
    assert not unconfirmed


async def test_an_unconfirmed_write_that_failed_puts_the_stored_sender_back() -> None:
    store = MemoryKeyStore()
    alice, bob = _pair()
    group_id = bob.log.group_id
    await _stored(store, bob)
    before = bob.to_bytes()
    unconfirmed = Unconfirmed()
    ciphertext = alice.encrypt(b"hi")

    async def receive_and_fail() -> None:
        async with store.transaction() as tx:
            bob.decrypt(user(0), device(0).device_key, ciphertext)
            changes = bob.take_changes()
            unconfirmed.wrote(group_id, GROUP_MESSAGE, changes)
            await write_changes(tx, group_id, changes)
            raise RuntimeError("the inbox write failed")

    with pytest.raises(RuntimeError):
        await receive_and_fail()
    assert bob.to_bytes() != before, "the cached session ran ahead"
    async with store.transaction() as tx:
        assert await unconfirmed.settle(tx, group_id, bob)
    assert bob.to_bytes() == before, "and is back as stored"
    assert bob.decrypt(user(0), device(0).device_key, ciphertext) == b"hi"


async def test_what_settling_cannot_mend_asks_for_a_reload() -> None:
    store = MemoryKeyStore()
    alice, bob = _pair()
    group_id = bob.log.group_id
    await _stored(store, bob)
    unconfirmed = Unconfirmed()
    removal = alice.log.remove_member(device(0), user(1), now=NOW)
    bob.receive_operation(removal)
    unconfirmed.wrote(group_id, GROUP_MESSAGE, bob.take_changes())  # never written
    async with store.transaction() as tx:
        assert not await unconfirmed.settle(tx, group_id, bob), "a record: reload everything"
        await tx.save_group_sender(group_id, device(0).device_key, b"\xff")
    unconfirmed.wrote(
        group_id, GROUP_MESSAGE, GroupSessionChanges(senders={device(0).device_key: b"new"})
    )
    async with store.transaction() as tx:
        assert not await unconfirmed.settle(tx, group_id, bob), "a damaged record: reload"
