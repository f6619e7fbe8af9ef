"""Conformance suite for :class:`~omega.storage.base.KeyStore` implementations.

A backend proves itself by passing :func:`check_key_store`::

    @pytest.mark.anyio
    async def test_my_store_conforms(tmp_path):
        await check_key_store(lambda: MyKeyStore.open(tmp_path / "keys"), durable=True)

``open_store`` must return a store over the *same* data each time it is
called when ``durable`` is true (the suite closes and reopens it to check
that commits persist), and a fresh empty store otherwise. The first store it
returns must be empty. Failures raise :class:`AssertionError` naming the rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from omega.errors import ConfigurationError, LocalProtocolError, StorageError
from omega.storage.base import MAX_VALUE_SIZE, InboxEntry, KeyStore

__all__ = ["check_key_store"]

_ALICE = bytes(range(32))
_BOB = bytes(range(32, 64))
_CAROL = bytes(range(64, 96))


class _RollbackErrorError(Exception):
    """Raised inside a transaction to force a rollback."""


def _entry(message_id: str, sender: bytes = _ALICE, plaintext: bytes = b"hi") -> InboxEntry:
    return InboxEntry(
        message_id=message_id, sender_device_key=sender, plaintext=plaintext, received_at=1
    )


async def check_key_store(open_store: Callable[[], Awaitable[KeyStore]], *, durable: bool) -> None:
    """Run every conformance check against stores made by ``open_store``."""
    store = await open_store()
    try:
        await _check_empty(store)
        await _check_singletons(store)
        await _check_sessions(store)
        await _check_sender_keys(store)
        await _check_inbox(store)
        await _check_rollback(store)
        await _check_transaction_rules(store)
        await _check_bad_arguments(store)
        await _check_blobs(store)
        await _check_group_states(store)
        await _check_group_parts(store)
    finally:
        await store.aclose()
    try:
        async with store.transaction():
            raise AssertionError("a closed store must refuse transactions")
    except StorageError:
        pass
    await store.aclose()  # idempotent
    if durable:
        await _check_persistence(open_store)


async def _check_empty(store: KeyStore) -> None:
    async with store.transaction() as tx:
        assert await tx.load_identity() is None, "a new store has no identity"
        assert await tx.load_prekeys() is None, "a new store has no prekeys"
        assert await tx.session_device_keys() == [], "a new store has no sessions"
        assert await tx.load_sender_key("g", _ALICE) is None, "a new store has no sender keys"
        assert await tx.inbox() == [], "a new store has an empty inbox"


async def _check_singletons(store: KeyStore) -> None:
    async with store.transaction() as tx:
        await tx.save_identity(b"identity-1")
        await tx.save_prekeys(b"")
        assert await tx.load_identity() == b"identity-1", "a write is visible in its transaction"
    async with store.transaction() as tx:
        assert await tx.load_prekeys() == b"", "empty values round-trip"
        await tx.save_identity(b"identity-2")
    async with store.transaction() as tx:
        assert await tx.load_identity() == b"identity-2", "a save replaces the identity"


async def _check_sessions(store: KeyStore) -> None:
    big = bytes(range(256)) * (MAX_VALUE_SIZE // 256)
    async with store.transaction() as tx:
        await tx.save_session(_BOB, b"bob-1")
        await tx.save_session(_ALICE, big)
        await tx.save_session(_BOB, b"bob-2")
    async with store.transaction() as tx:
        assert await tx.load_session(_BOB) == b"bob-2", "a save replaces the session"
        assert await tx.load_session(_ALICE) == big, "a value of the maximum size round-trips"
        assert await tx.load_session(_CAROL) is None, "unknown devices have no session"
        assert await tx.session_device_keys() == [_ALICE, _BOB], "sessions are listed sorted"
        assert await tx.delete_session(_ALICE) is True, "deleting a session reports it"
        assert await tx.delete_session(_ALICE) is False, "deleting twice reports nothing"
        assert await tx.session_device_keys() == [_BOB], "a deleted session is gone"


async def _check_sender_keys(store: KeyStore) -> None:
    async with store.transaction() as tx:
        await tx.save_sender_key("group-a", _ALICE, b"a-alice")
        await tx.save_sender_key("group-a", _BOB, b"a-bob")
        await tx.save_sender_key("group-b", _ALICE, b"b-alice")
        await tx.save_sender_key("group-a", _ALICE, b"a-alice-2")
    async with store.transaction() as tx:
        assert await tx.load_sender_key("group-a", _ALICE) == b"a-alice-2", "replaced"
        assert await tx.load_sender_key("group-b", _ALICE) == b"b-alice", "groups are separate"
        assert await tx.delete_sender_keys("group-a") == 2, "deleting a group's keys counts them"
        assert await tx.load_sender_key("group-a", _BOB) is None, "a group's keys are deleted"
        assert await tx.load_sender_key("group-b", _ALICE) == b"b-alice", "other groups stay"
        assert await tx.delete_sender_keys("group-a") == 0, "nothing left to delete"


async def _check_inbox(store: KeyStore) -> None:
    async with store.transaction() as tx:
        assert await tx.add_to_inbox(_entry("m1")) is True, "a new entry is added"
        assert await tx.add_to_inbox(_entry("m2", _BOB, b"")) is True, "a second entry is added"
        assert await tx.add_to_inbox(_entry("m1", plaintext=b"other")) is False, "dedupe by id"
        assert await tx.add_to_inbox(_entry("m3")) is True, "a third entry is added"
    async with store.transaction() as tx:
        entries = await tx.inbox()
        assert [e.message_id for e in entries] == ["m1", "m2", "m3"], "oldest first"
        assert entries[0] == _entry("m1"), "a duplicate never replaces the original"
        assert entries[1] == _entry("m2", _BOB, b""), "entries round-trip exactly"
        assert [e.message_id for e in await tx.inbox(limit=2)] == ["m1", "m2"], "limit"
        assert await tx.remove_from_inbox(["m1", "m3", "m1", "nope"]) == 2, "removal counts"
        assert [e.message_id for e in await tx.inbox()] == ["m2"], "removed entries are gone"
        assert await tx.remove_from_inbox(["m2"]) == 1, "the last entry is removed"


async def _check_rollback(store: KeyStore) -> None:
    async with store.transaction() as tx:
        before = (await tx.load_identity(), await tx.load_session(_BOB), await tx.inbox())
    try:
        async with store.transaction() as tx:
            await tx.save_identity(b"doomed")
            await tx.save_session(_BOB, b"doomed")
            await tx.save_session(_CAROL, b"doomed")
            await tx.add_to_inbox(_entry("doomed"))
            raise _RollbackErrorError
    except _RollbackErrorError:
        pass
    async with store.transaction() as tx:
        after = (await tx.load_identity(), await tx.load_session(_BOB), await tx.inbox())
        assert after == before, "a transaction that raises changes nothing"
        assert await tx.load_session(_CAROL) is None, "a rolled-back insert is gone"


async def _check_transaction_rules(store: KeyStore) -> None:
    async with store.transaction() as tx:
        leaked = tx
        try:
            async with store.transaction():
                raise AssertionError("a nested transaction must be refused")
        except LocalProtocolError:
            pass
    try:
        await leaked.load_identity()
    except LocalProtocolError:
        pass
    else:
        raise AssertionError("a transaction must refuse use after its block")


async def _check_bad_arguments(store: KeyStore) -> None:
    too_big = bytes(MAX_VALUE_SIZE + 1)
    attempts: list[tuple[str, Callable[..., Awaitable[object]], tuple[object, ...]]] = []
    async with store.transaction() as tx:
        attempts = [
            ("short device key", tx.save_session, (b"short", b"x")),
            ("str device key", tx.load_session, ("x" * 32,)),
            ("oversized value", tx.save_session, (_CAROL, too_big)),
            ("non-bytes value", tx.save_identity, ("text",)),
            ("empty group id", tx.save_sender_key, ("", _ALICE, b"x")),
            ("oversized group id", tx.load_sender_key, ("g" * 257, _ALICE)),
            ("bare string of ids", tx.remove_from_inbox, ("m1",)),
            ("zero limit", tx.inbox, (0,)),
        ]
        for what, method, arguments in attempts:
            try:
                await method(*arguments)
            except ConfigurationError:
                continue
            raise AssertionError(f"{what} must raise ConfigurationError")
        assert await tx.load_session(_CAROL) is None, "a refused write changes nothing"


async def _check_blobs(store: KeyStore) -> None:
    async with store.transaction() as tx:
        assert await tx.load_blob("sync/contacts") is None, "no blob at first"
        await tx.save_blob("sync/contacts", b"one")
        await tx.save_blob("sync/settings", b"")
        assert await tx.load_blob("sync/contacts") == b"one", "a blob reads back"
        assert await tx.load_blob("sync/settings") == b"", "an empty blob is a blob"
        await tx.save_blob("sync/contacts", b"two")
    async with store.transaction() as tx:
        assert await tx.load_blob("sync/contacts") == b"two", "a blob is replaced"
        assert await tx.delete_blob("sync/settings"), "deleting reports the blob"
        assert not await tx.delete_blob("sync/settings"), "deleting twice finds nothing"
        assert await tx.load_identity() != b"two", "blobs are not the identity"
        for name in ("", "x" * 257):
            try:
                await tx.save_blob(name, b"x")
            except ConfigurationError:
                continue
            raise AssertionError("a bad blob name must raise ConfigurationError")
    try:
        async with store.transaction() as tx:
            await tx.save_blob("sync/contacts", b"rolled back")
            raise _RollbackError
    except _RollbackError:
        pass
    async with store.transaction() as tx:
        assert await tx.load_blob("sync/contacts") == b"two", "a rolled back blob write is undone"


class _RollbackError(Exception):
    pass


async def _check_persistence(open_store: Callable[[], Awaitable[KeyStore]]) -> None:
    async with await open_store() as store, store.transaction() as tx:
        await tx.save_session(_CAROL, b"carol")
        await tx.add_to_inbox(_entry("persisted"))
    async with await open_store() as store, store.transaction() as tx:
        assert await tx.load_identity() == b"identity-2", "commits survive reopening"
        assert await tx.load_session(_CAROL) == b"carol", "sessions survive reopening"
        assert await tx.session_device_keys() == [_BOB, _CAROL], "listing survives reopening"
        assert [e.message_id for e in await tx.inbox()] == ["persisted"], "inbox survives"
        assert await tx.load_sender_key("group-b", _ALICE) == b"b-alice", "sender keys survive"
        assert await tx.load_blob("sync/contacts") == b"two", "blobs survive reopening"
        assert await tx.group_state_ids() == ["group-kept", "group-p"], "groups survive reopening"
        assert await tx.load_group_state("group-kept") == b"kept", "group states survive"
        parts = await tx.load_group_parts("group-p")
        assert parts is not None, "group parts survive reopening"
        assert parts.record == b"p-record", "a group record survives reopening"
        assert parts.outbound == b"p-out-2", "an outbound sender key survives reopening"
        assert parts.senders == {_ALICE: b"p-alice-2"}, "sender records survive reopening"


async def _check_group_states(store: KeyStore) -> None:
    async with store.transaction() as tx:
        assert await tx.group_state_ids() == [], "a new store holds no group state"
        assert await tx.load_group_state("group-x") is None, "an unknown group has no state"
        await tx.save_group_state("group-x", b"x1")
        await tx.save_group_state("group-kept", b"kept")
        await tx.save_group_state("group-x", b"x2")
        assert await tx.load_group_state("group-x") == b"x2", "saving replaces a group state"
        assert await tx.group_state_ids() == ["group-kept", "group-x"], "ids are listed sorted"
    try:
        async with store.transaction() as tx:
            await tx.save_group_state("group-y", b"y")
            assert await tx.delete_group_state("group-x"), "deleting a held state says True"
            raise _RollbackError
    except _RollbackError:
        pass
    async with store.transaction() as tx:
        assert await tx.group_state_ids() == ["group-kept", "group-x"], "a rollback undoes"
        assert await tx.delete_group_state("group-x"), "deleting a held state says True"
        assert not await tx.delete_group_state("group-x"), "deleting twice says False"
        assert await tx.load_group_state("group-x") is None, "a deleted state is gone"
        for what, arguments in (("empty group id", ("", b"x")), ("non-bytes", ("g", "x"))):
            try:
                await tx.save_group_state(*arguments)
            except ConfigurationError:
                continue
            raise AssertionError(f"a group state with {what} must raise ConfigurationError")


async def _check_group_parts(store: KeyStore) -> None:
    async with store.transaction() as tx:
        assert await tx.load_group_parts("group-p") is None, "no record, no parts"
        assert await tx.load_group_outbound("group-p") is None, "no outbound key at first"
        assert await tx.load_group_senders("group-p") == {}, "no sender records at first"
        await tx.save_group_state("group-p", b"p-record")
        await tx.save_group_outbound("group-p", b"p-out-1")
        await tx.save_group_sender("group-p", _BOB, b"p-bob")
        await tx.save_group_sender("group-p", _ALICE, b"p-alice-1")
        await tx.save_group_state("group-q", b"q-record")
        await tx.save_group_outbound("group-q", b"q-out")
        await tx.save_group_sender("group-q", _ALICE, b"q-alice")
        await tx.save_group_sender("group-q", _CAROL, b"")
    async with store.transaction() as tx:
        parts = await tx.load_group_parts("group-p")
        assert parts is not None, "a group with a record has parts"
        assert (parts.record, parts.outbound) == (b"p-record", b"p-out-1"), "parts round-trip"
        assert list(parts.senders.items()) == [(_ALICE, b"p-alice-1"), (_BOB, b"p-bob")], (
            "sender records are listed in device key order"
        )
        await tx.save_group_outbound("group-p", b"p-out-2")
        await tx.save_group_sender("group-p", _ALICE, b"p-alice-2")
        assert await tx.load_group_sender("group-p", _ALICE) == b"p-alice-2", "a save replaces"
        assert await tx.load_group_sender("group-q", _ALICE) == b"q-alice", "groups are separate"
        assert await tx.load_group_sender("group-p", _CAROL) is None, "an unknown sender"
        assert await tx.delete_group_sender("group-p", _BOB), "deleting a sender record says True"
        assert not await tx.delete_group_sender("group-p", _BOB), "deleting twice says False"
    await _check_group_deletion(store)


async def _check_group_deletion(store: KeyStore) -> None:
    try:
        async with store.transaction() as tx:
            await tx.save_group_sender("group-p", _ALICE, b"doomed")
            await tx.save_group_outbound("group-p", b"doomed")
            assert await tx.delete_group_state("group-q"), "deleting a group says True"
            raise _RollbackError
    except _RollbackError:
        pass
    async with store.transaction() as tx:
        parts = await tx.load_group_parts("group-p")
        assert parts is not None, "a rollback keeps the record"
        assert parts.outbound == b"p-out-2", "a rollback undoes parts"
        assert parts.senders == {_ALICE: b"p-alice-2"}, "a rollback undoes sender records"
        assert await tx.load_group_senders("group-q") == {_ALICE: b"q-alice", _CAROL: b""}, (
            "a rolled-back group deletion keeps every part"
        )
        assert await tx.delete_group_state("group-q"), "deleting a group says True"
        assert await tx.load_group_parts("group-q") is None, "a deleted group has no record"
        assert await tx.load_group_outbound("group-q") is None, "its outbound key is deleted"
        assert await tx.load_group_senders("group-q") == {}, "its sender records are deleted"
        assert not await tx.delete_group_state("group-q"), "deleting twice says False"
        assert await tx.load_group_senders("group-p") == {_ALICE: b"p-alice-2"}, "others stay"
        assert "group-p" in await tx.group_state_ids(), "other groups stay listed"
        await tx.save_group_sender("group-r", _BOB, b"orphan")
        assert await tx.load_group_parts("group-r") is None, "parts without a record: no group"
        assert await tx.delete_group_state("group-r"), "deleting removes parts without a record"
        assert await tx.load_group_senders("group-r") == {}, "orphan parts are deleted"
    async with store.transaction() as tx:
        attempts: list[tuple[str, Callable[..., Awaitable[object]], tuple[object, ...]]] = [
            ("empty group id", tx.save_group_outbound, ("", b"x")),
            ("non-bytes outbound", tx.save_group_outbound, ("g", "x")),
            ("short device key", tx.save_group_sender, ("g", b"short", b"x")),
            (
                "oversized sender record",
                tx.save_group_sender,
                ("g", _BOB, bytes(MAX_VALUE_SIZE + 1)),
            ),
            ("oversized group id", tx.load_group_senders, ("g" * 257,)),
            ("str device key", tx.delete_group_sender, ("g", "x" * 32)),
        ]
        for what, method, arguments in attempts:
            try:
                await method(*arguments)
            except ConfigurationError:
                continue
            raise AssertionError(f"{what} must raise ConfigurationError")
        assert await tx.load_group_senders("g") == {}, "a refused write changes nothing"
