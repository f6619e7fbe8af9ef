"""Conformance suite for :class:`~omega.storage.message_base.MessageStore` implementations.

A backend proves itself by passing :func:`check_message_store`::

    @pytest.mark.anyio
    async def test_my_store_conforms(tmp_path):
        async def open_store(name: str) -> MyMessageStore:
            return await MyMessageStore.open(tmp_path / f"{name}.db")

        await check_message_store(open_store, durable=True)

``open_store(name)`` returns a store: a new name must give an empty store, and
when ``durable`` is true the same name must give a store over the same data
(the suite closes and reopens stores to check that commits persist). Failures
raise :class:`AssertionError` naming the rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from omega.crypto import IdentityKeyPair
from omega.errors import ConfigurationError, LocalProtocolError, StorageError
from omega.storage.message_base import (
    MAX_CONTENT_SIZE,
    ContactRecord,
    ConversationRecord,
    DeliveryState,
    Direction,
    MessageStore,
    MessageStoreTransaction,
    OutboxEntry,
    StoredMessage,
    advances,
)
from omega.testing._message_store_search import (
    HOSTILE_QUERIES,
    check_search,
    check_search_rollback,
)

__all__ = ["HOSTILE_QUERIES", "check_message_store", "sample_message", "user_id"]

OpenStore = Callable[[str], Awaitable[MessageStore]]

_IDENTITIES = [IdentityKeyPair.from_seed(bytes([index + 1]) * 32) for index in range(4)]
_ME, _ALICE, _BOB, _CAROL = (identity.user_id for identity in _IDENTITIES)
_DEVICE_A = bytes(range(32))
_DEVICE_B = bytes(range(32, 64))
_DEVICE_C = bytes(range(64, 96))


def user_id(index: int) -> str:
    """A valid user id for tests (index 0..3)."""
    return _IDENTITIES[index].user_id


class _RollbackError(Exception):
    """Raised inside a transaction to force a rollback."""


def sample_message(
    message_id: str,
    *,
    conversation_id: str = _ALICE,
    timestamp: int = 1_000,
    incoming: bool = True,
    text: str = "",
    state: DeliveryState | None = None,
    **changes: object,
) -> StoredMessage:
    """A valid message for tests: incoming from the conversation's user, or outgoing from us."""
    sender = conversation_id if incoming and conversation_id.startswith("omega1") else _ME
    message = StoredMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_id=sender,
        sender_device_key=_DEVICE_A if incoming else _DEVICE_B,
        direction=Direction.INCOMING if incoming else Direction.OUTGOING,
        timestamp=timestamp,
        received_at=timestamp + 5 if incoming else None,
        content=b"content:" + message_id.encode(),
        text=text,
        state=state or (DeliveryState.DELIVERED if incoming else DeliveryState.PENDING),
    )
    return dataclasses.replace(message, **changes)  # type: ignore[arg-type]


def _contact(index: int, name: str, **changes: object) -> ContactRecord:
    contact = ContactRecord(
        user_id=_IDENTITIES[index].user_id,
        display_name=name,
        identity_key=_IDENTITIES[index].public_key,
        added_at=10 * index,
    )
    return dataclasses.replace(contact, **changes)  # type: ignore[arg-type]


def _outbox(
    message_id: str, device: bytes = _DEVICE_A, *, created_at: int = 100, **changes: object
) -> OutboxEntry:
    entry = OutboxEntry(
        message_id=message_id,
        recipient_id=_ALICE,
        recipient_device_key=device,
        content=b"plain:" + message_id.encode(),
        created_at=created_at,
        expires_at=created_at + 1_000_000,
    )
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


async def check_message_store(open_store: OpenStore, *, durable: bool) -> None:
    """Run every conformance check against stores made by ``open_store``."""
    checks: list[Callable[[MessageStore], Awaitable[None]]] = [
        _check_empty,
        _check_contacts,
        _check_messages,
        _check_message_order,
        _check_states,
        _check_conversations,
        _check_expiry,
        check_search,
        check_search_rollback,
        _check_outbox,
        _check_due_outbox,
        _check_seen,
        _check_rollback,
        _check_transaction_rules,
        _check_bad_arguments,
    ]
    for check in checks:
        store = await open_store(check.__name__.strip("_"))
        try:
            await check(store)
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


async def _check_empty(store: MessageStore) -> None:
    async with store.transaction() as tx:
        assert await tx.contacts() == [], "a new store has no contacts"
        assert await tx.get_contact(_ALICE) is None, "a new store has no contacts"
        assert await tx.conversations() == [], "a new store has no conversations"
        assert await tx.get_conversation(_ALICE) is None, "a new store has no conversations"
        assert await tx.messages(_ALICE) == [], "a new store has no messages"
        assert await tx.get_message(_ALICE, "m") is None, "a new store has no messages"
        assert await tx.expired_messages(2**62) == [], "a new store has nothing expired"
        assert await tx.search("hello") == [], "a new store finds nothing"
        assert await tx.pending_outbox() == [], "a new store has an empty outbox"
        assert await tx.due_outbox(2**62) == [], "a new store has an empty outbox"
        assert await tx.outbox_for_message("m") == [], "a new store has an empty outbox"
        assert await tx.forget_seen_before(2**62) == 0, "a new store has seen nothing"


async def _check_contacts(store: MessageStore) -> None:
    full = _contact(
        1,
        "Zoë 🙂",
        verified=True,
        blocked=True,
        read_receipts=False,
        typing_notifications=False,
        device_list=b"\x00signed list\xff",
        device_list_sequence=7,
        pending_identity_key=_IDENTITIES[3].public_key,
    )
    async with store.transaction() as tx:
        await tx.put_contact(_contact(2, "Bob"))
        await tx.put_contact(full)
        await tx.put_contact(_contact(3, "Bob"))
        assert await tx.get_contact(_ALICE) == full, "a contact round-trips in its transaction"
    async with store.transaction() as tx:
        assert await tx.get_contact(_ALICE) == full, "every contact field round-trips"
        listed = [(c.display_name, c.user_id) for c in await tx.contacts()]
        expected = sorted([("Bob", _BOB), ("Bob", _CAROL), ("Zoë 🙂", _ALICE)])
        assert listed == expected, "contacts are sorted by display name, then user id"
        renamed = _contact(2, "Alpha")
        await tx.put_contact(renamed)
        assert await tx.get_contact(_BOB) == renamed, "put_contact replaces"
        assert next(c.user_id for c in await tx.contacts()) == _BOB, "a rename re-sorts"
        assert await tx.delete_contact(_BOB) is True, "deleting a contact reports it"
        assert await tx.delete_contact(_BOB) is False, "deleting twice reports nothing"
        assert await tx.get_contact(_BOB) is None, "a deleted contact is gone"
        assert len(await tx.contacts()) == 2, "other contacts stay"


async def _check_messages(store: MessageStore) -> None:
    full = sample_message(
        "m1",
        text="Hello there",
        reply_to="m0",
        expires_at=9_999,
        edited_at=1_500,
        content=bytes(range(256)) * (MAX_CONTENT_SIZE // 256),
    )
    outgoing = sample_message("m2", incoming=False, timestamp=2_000)
    async with store.transaction() as tx:
        assert await tx.add_message(full) is True, "a new message is added"
        assert await tx.add_message(outgoing) is True, "a second message is added"
        duplicate = dataclasses.replace(full, content=b"other", text="other")
        assert await tx.add_message(duplicate) is False, "a duplicate id is refused"
        elsewhere = sample_message("m1", conversation_id=_BOB)
        assert await tx.add_message(elsewhere) is True, "ids are unique per conversation only"
    async with store.transaction() as tx:
        assert await tx.get_message(_ALICE, "m1") == full, "every message field round-trips"
        assert await tx.get_message(_ALICE, "m2") == outgoing, "outgoing messages round-trip"
        assert await tx.get_message(_BOB, "m1") == elsewhere, "conversations are separate"
        assert await tx.get_message(_ALICE, "m3") is None, "unknown messages are None"
        edited = dataclasses.replace(full, content=b"edited", text="edited", edited_at=3_000)
        await tx.replace_message(edited)
        assert await tx.get_message(_ALICE, "m1") == edited, "replace_message stores an edit"
        tombstone = dataclasses.replace(outgoing, content=b"", text="", deleted=True)
        await tx.replace_message(tombstone)
        assert await tx.get_message(_ALICE, "m2") == tombstone, "a tombstone is kept"
        try:
            await tx.replace_message(sample_message("missing"))
        except StorageError:
            pass
        else:
            raise AssertionError("replacing a missing message must raise StorageError")
        assert await tx.get_message(_ALICE, "missing") is None, "a failed replace adds nothing"
        assert await tx.delete_message(_ALICE, "m1") is True, "deleting reports it"
        assert await tx.delete_message(_ALICE, "m1") is False, "deleting twice reports nothing"
        assert await tx.get_message(_ALICE, "m1") is None, "a deleted message is gone"
        assert await tx.get_message(_BOB, "m1") == elsewhere, "other conversations stay"
        assert await tx.add_message(full) is True, "a deleted id can be added again"


async def _check_message_order(store: MessageStore) -> None:
    stamps = {"a": 500, "b": 100, "c": 300, "d": 300, "e": 900, "f": 300}
    async with store.transaction() as tx:
        for message_id, timestamp in stamps.items():
            await tx.add_message(sample_message(message_id, timestamp=timestamp))
        await tx.add_message(sample_message("other", conversation_id=_BOB, timestamp=950))

    async def ids(tx: MessageStoreTransaction, **options: object) -> list[str]:
        listed = await tx.messages(_ALICE, **options)  # type: ignore[arg-type]
        return [message.message_id for message in listed]

    async with store.transaction() as tx:
        newest_first = ["e", "a", "f", "d", "c", "b"]
        assert await ids(tx) == newest_first, "newest first; equal times newest-added first"
        assert await ids(tx, limit=2) == ["e", "a"], "limit keeps the newest"
        assert await ids(tx, before=500) == ["f", "d", "c", "b"], "before is exclusive"
        assert await ids(tx, before=300, limit=1) == ["b"], "before and limit combine"
        assert await ids(tx, before=100) == [], "nothing before the oldest"
        # replacing keeps a message's place among equal timestamps
        await tx.replace_message(sample_message("d", timestamp=300, text="edited"))
        assert await ids(tx, before=500) == ["f", "d", "c", "b"], "a replace keeps the order"


async def _check_states(store: MessageStore) -> None:
    states = list(DeliveryState)
    async with store.transaction() as tx:
        for current in states:
            for new in states:
                message_id = f"{current.value}-{new.value}"
                await tx.add_message(sample_message(message_id, incoming=False, state=current))
                moved = await tx.set_message_state(_ALICE, message_id, new)
                assert moved is advances(current, new), f"{current} -> {new}: {moved}"
                stored = await tx.get_message(_ALICE, message_id)
                assert stored is not None
                assert stored.state is (new if moved else current), "the state is stored"
        await tx.add_message(sample_message("in"))
        assert await tx.set_message_state(_ALICE, "in", DeliveryState.FAILED) is False
        assert await tx.set_message_state(_ALICE, "in", DeliveryState.READ) is True
        assert await tx.set_message_state(_ALICE, "in", DeliveryState.DELIVERED) is False
        assert await tx.set_message_state(_ALICE, "nope", DeliveryState.READ) is False
    async with store.transaction() as tx:
        stored = await tx.get_message(_ALICE, "pending-read")
        assert stored is not None
        assert stored.state is DeliveryState.READ, "state changes persist"
        assert not advances(DeliveryState.READ, DeliveryState.READ), "a state never repeats"


async def _check_conversations(store: MessageStore) -> None:
    async with store.transaction() as tx:
        await tx.add_message(sample_message("a1", timestamp=100))
        await tx.add_message(sample_message("a2", timestamp=300))
        await tx.add_message(sample_message("a3", timestamp=200, state=DeliveryState.READ))
        await tx.add_message(sample_message("a4", timestamp=250, incoming=False))
        await tx.add_message(sample_message("b1", conversation_id=_BOB, timestamp=400))
        alice = await tx.get_conversation(_ALICE)
        assert alice == ConversationRecord(
            conversation_id=_ALICE, last_message_at=300, unread_count=2
        ), "add_message creates the conversation and maintains its figures"
        listed = [c.conversation_id for c in await tx.conversations()]
        assert listed == [_BOB, _ALICE], "newest activity first"
    async with store.transaction() as tx:
        assert await tx.set_message_state(_ALICE, "a1", DeliveryState.READ) is True
        conversation = await tx.get_conversation(_ALICE)
        assert conversation is not None
        assert conversation.unread_count == 1, "reading a message lowers unread_count"
        await tx.replace_message(sample_message("a2", timestamp=300, content=b"", deleted=True))
        conversation = await tx.get_conversation(_ALICE)
        assert conversation is not None
        assert conversation.unread_count == 0, "a tombstone is not unread"
        assert await tx.delete_message(_ALICE, "a2") is True
        conversation = await tx.get_conversation(_ALICE)
        assert conversation is not None
        assert conversation.last_message_at == 250, "deleting the newest message"
        await tx.put_conversation(
            ConversationRecord(
                conversation_id=_ALICE,
                archived=True,
                muted_until=5_000,
                last_read_message_id="a4",
                last_message_at=1,
                unread_count=99,
            )
        )
        expected = ConversationRecord(
            conversation_id=_ALICE,
            archived=True,
            muted_until=5_000,
            last_read_message_id="a4",
            last_message_at=250,
            unread_count=0,
        )
        assert await tx.get_conversation(_ALICE) == expected, "put sets only the settings"
        await tx.put_conversation(ConversationRecord(conversation_id="group:x", unread_count=3))
        assert await tx.get_conversation("group:x") == ConversationRecord(
            conversation_id="group:x"
        ), "a conversation without messages has zero figures"
    async with store.transaction() as tx:
        assert await tx.get_conversation(_ALICE) == expected, "conversations persist"
        every = [c.conversation_id for c in await tx.conversations()]
        assert every == [_BOB, _ALICE, "group:x"], "ordered by activity, then id"
        archived = [c.conversation_id for c in await tx.conversations(archived=True)]
        assert archived == [_ALICE], "archived=True lists archived ones"
        active = [c.conversation_id for c in await tx.conversations(archived=False)]
        assert active == [_BOB, "group:x"], "archived=False lists the others"
        for message_id in ("a1", "a3", "a4"):
            await tx.delete_message(_ALICE, message_id)
        conversation = await tx.get_conversation(_ALICE)
        assert conversation is not None, "a conversation outlives its messages"
        assert conversation.last_message_at == 0, "no messages: last_message_at is 0"
        await tx.add_message(sample_message("z1", timestamp=700, state=DeliveryState.READ))
        await tx.add_message(sample_message("z2", timestamp=900))
        await tx.replace_message(sample_message("z2", timestamp=100, state=DeliveryState.READ))
        assert await tx.get_conversation(_ALICE) == dataclasses.replace(
            expected, last_message_at=700
        ), "re-dating the newest message, and reading it by replacing it"
        await tx.replace_message(sample_message("z1", timestamp=1_000))
        assert await tx.get_conversation(_ALICE) == dataclasses.replace(
            expected, last_message_at=1_000, unread_count=1
        ), "re-dating an older message past the newest, and replacing it unread"


async def _check_expiry(store: MessageStore) -> None:
    async with store.transaction() as tx:
        await tx.add_message(sample_message("keep"))
        await tx.add_message(sample_message("late", expires_at=5_000))
        await tx.add_message(sample_message("soon", expires_at=2_000))
        await tx.add_message(sample_message("b", conversation_id=_BOB, expires_at=3_000))
        assert await tx.expired_messages(1_999) == [], "nothing expired yet"
        expired = [m.message_id for m in await tx.expired_messages(3_000)]
        assert expired == ["soon", "b"], "expires_at <= now, soonest first, every conversation"
        assert len(await tx.expired_messages(10_000, limit=1)) == 1, "limit"
        for message in await tx.expired_messages(10_000):
            await tx.delete_message(message.conversation_id, message.message_id)
        assert await tx.expired_messages(2**62) == [], "deleted messages are not expired"
        assert await tx.get_message(_ALICE, "keep") is not None, "others stay"


async def _check_outbox(store: MessageStore) -> None:
    first = _outbox("m1", _DEVICE_A, ciphertext=b"\x0aframe", ephemeral=True)
    async with store.transaction() as tx:
        assert await tx.add_outbox(first) is True, "a new entry is added"
        assert await tx.add_outbox(_outbox("m1", _DEVICE_C)) is True, "one per device"
        assert await tx.add_outbox(_outbox("m1", _DEVICE_B)) is True, "one per device"
        assert await tx.add_outbox(_outbox("m1", _DEVICE_A)) is False, "a duplicate is refused"
        assert await tx.add_outbox(_outbox("m2", _DEVICE_A, created_at=50)) is True
    async with store.transaction() as tx:
        assert await tx.outbox_entry("m1", _DEVICE_A) == first, "every field round-trips"
        assert await tx.outbox_entry("m1", bytes(32)) is None, "unknown entries are None"
        devices = [e.recipient_device_key for e in await tx.outbox_for_message("m1")]
        assert devices == [_DEVICE_A, _DEVICE_C, _DEVICE_B], "entries in the order added"
        sent = dataclasses.replace(
            first, state=DeliveryState.SENT, attempts=1, next_attempt_at=5_000
        )
        await tx.update_outbox(sent)
        assert await tx.outbox_entry("m1", _DEVICE_A) == sent, "update_outbox replaces"
        try:
            await tx.update_outbox(_outbox("m9"))
        except StorageError:
            pass
        else:
            raise AssertionError("updating a missing entry must raise StorageError")
        assert await tx.outbox_entry("m9", _DEVICE_A) is None, "a failed update adds nothing"
        for device, state in ((_DEVICE_C, DeliveryState.DELIVERED), (_DEVICE_B, "failed")):
            entry = await tx.outbox_entry("m1", device)
            assert entry is not None
            await tx.update_outbox(dataclasses.replace(entry, state=DeliveryState(state)))
        pending = [(e.message_id, e.recipient_device_key) for e in await tx.pending_outbox()]
        assert pending == [("m2", _DEVICE_A), ("m1", _DEVICE_A)], "oldest first, unacked only"
        assert len(await tx.pending_outbox(limit=1)) == 1, "limit"
        assert await tx.remove_outbox("m1", _DEVICE_C) is True, "removal reports it"
        assert await tx.remove_outbox("m1", _DEVICE_C) is False, "removing twice reports nothing"
        assert len(await tx.outbox_for_message("m1")) == 2, "other entries stay"


async def _check_due_outbox(store: MessageStore) -> None:
    rows = [
        ("late", DeliveryState.PENDING, 900, 1),
        ("sent", DeliveryState.SENT, 100, 5),
        ("tie-new", DeliveryState.PENDING, 100, 9),
        ("tie-old", DeliveryState.PENDING, 100, 2),
        ("future", DeliveryState.PENDING, 2_000, 1),
        ("done", DeliveryState.DELIVERED, 0, 1),
        ("read", DeliveryState.READ, 0, 1),
        ("failed", DeliveryState.FAILED, 0, 1),
        ("same-a", DeliveryState.SENT, 500, 7),
        ("same-b", DeliveryState.SENT, 500, 7),
    ]
    async with store.transaction() as tx:
        for message_id, state, next_attempt_at, created_at in rows:
            entry = _outbox(
                message_id, state=state, next_attempt_at=next_attempt_at, created_at=created_at
            )
            assert await tx.add_outbox(entry) is True
    async with store.transaction() as tx:
        due = [e.message_id for e in await tx.due_outbox(1_000)]
        expected = ["tie-old", "sent", "tie-new", "same-a", "same-b", "late"]
        assert due == expected, "PENDING or SENT, next_attempt_at <= now, by time then age"
        assert [e.message_id for e in await tx.due_outbox(100, limit=2)] == expected[:2]
        assert await tx.due_outbox(99) == [], "nothing due before its time"


async def _check_seen(store: MessageStore) -> None:
    async with store.transaction() as tx:
        assert await tx.mark_seen(_DEVICE_A, "m1", 100) is True, "first sight"
        assert await tx.mark_seen(_DEVICE_A, "m1", 200) is False, "second sight is a duplicate"
        assert await tx.mark_seen(_DEVICE_B, "m1", 300) is True, "ids are per sender device"
        assert await tx.mark_seen(_DEVICE_A, "m2", 400) is True
    async with store.transaction() as tx:
        assert await tx.mark_seen(_DEVICE_A, "m1", 500) is False, "seen ids persist"
        assert await tx.forget_seen_before(300) == 1, "strictly before the cutoff"
        assert await tx.mark_seen(_DEVICE_A, "m1", 600) is True, "forgotten ids are new again"
        assert await tx.mark_seen(_DEVICE_B, "m1", 700) is False, "others are remembered"
        assert await tx.forget_seen_before(2**62) == 3, "everything forgotten"


async def _snapshot(tx: MessageStoreTransaction) -> tuple[object, ...]:
    return (
        await tx.contacts(),
        await tx.conversations(),
        await tx.messages(_ALICE),
        await tx.messages(_BOB),
        await tx.pending_outbox(),
        await tx.outbox_for_message("m1"),
        await tx.search("hello"),
    )


async def _check_rollback(store: MessageStore) -> None:
    async with store.transaction() as tx:
        await tx.put_contact(_contact(1, "Alice"))
        await tx.add_message(sample_message("m1", text="hello world"))
        await tx.add_outbox(_outbox("m1"))
        await tx.mark_seen(_DEVICE_A, "seen", 1)
    async with store.transaction() as tx:
        before = await _snapshot(tx)
    try:
        async with store.transaction() as tx:
            await tx.put_contact(_contact(1, "Renamed"))
            await tx.put_contact(_contact(2, "Bob"))
            await tx.delete_message(_ALICE, "m1")
            await tx.add_message(sample_message("m2", text="hello again"))
            await tx.add_message(sample_message("b1", conversation_id=_BOB, text="hello bob"))
            await tx.put_conversation(ConversationRecord(conversation_id=_ALICE, archived=True))
            await tx.update_outbox(_outbox("m1", state=DeliveryState.SENT))
            await tx.add_outbox(_outbox("m1", _DEVICE_B))
            await tx.mark_seen(_DEVICE_A, "doomed", 1)
            await tx.forget_seen_before(100)
            raise _RollbackError
    except _RollbackError:
        pass
    async with store.transaction() as tx:
        assert await _snapshot(tx) == before, "a transaction that raises changes nothing"
        assert await tx.get_conversation(_BOB) is None, "a rolled-back conversation is gone"
        assert await tx.mark_seen(_DEVICE_A, "doomed", 2) is True, "rolled-back seen ids"
        assert await tx.mark_seen(_DEVICE_A, "seen", 2) is False, "rolled-back forgetting"


async def _check_transaction_rules(store: MessageStore) -> None:
    async with store.transaction() as tx:
        leaked = tx
        try:
            async with store.transaction():
                raise AssertionError("a nested transaction must be refused")
        except LocalProtocolError:
            pass
    try:
        await leaked.contacts()
    except LocalProtocolError:
        pass
    else:
        raise AssertionError("a transaction must refuse use after its block")


async def _check_bad_arguments(store: MessageStore) -> None:
    async with store.transaction() as tx:
        attempts: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("a malformed user id", lambda: tx.get_contact("omega1nope")),
            ("an uppercase user id", lambda: tx.get_contact(_ALICE.upper())),
            ("an empty conversation id", lambda: tx.messages("")),
            ("an over-long message id", lambda: tx.get_message(_ALICE, "m" * 257)),
            ("a lone surrogate", lambda: tx.get_message(_ALICE, "\ud800")),
            ("a short device key", lambda: tx.outbox_entry("m", b"short")),
            ("a zero limit", lambda: tx.expired_messages(1, limit=0)),
            ("a huge limit", lambda: tx.messages(_ALICE, limit=10_001)),
            ("a float before", lambda: tx.messages(_ALICE, before=1.5)),  # type: ignore[arg-type]
            ("a negative time", lambda: tx.due_outbox(-1)),
            ("a bool time", lambda: tx.forget_seen_before(True)),
            ("a str state", lambda: tx.set_message_state(_ALICE, "m", "read")),  # type: ignore[arg-type]
            ("a non-record", lambda: tx.add_message({"message_id": "m"})),  # type: ignore[arg-type]
            ("a non-str query", lambda: tx.search(b"bytes")),  # type: ignore[arg-type]
            ("an over-long query", lambda: tx.search("q" * 1001)),
            ("a bool archived filter", lambda: tx.conversations(archived=1)),  # type: ignore[arg-type]
        ]
        for what, attempt in attempts:
            try:
                await attempt()
            except ConfigurationError:
                continue
            raise AssertionError(f"{what} must raise ConfigurationError")
    bad_records: list[tuple[str, Callable[[], object]]] = [
        ("content over 256 KiB", lambda: sample_message("m", content=bytes(MAX_CONTENT_SIZE + 1))),
        ("an incoming PENDING message", lambda: sample_message("m", state=DeliveryState.PENDING)),
        ("an outgoing received_at", lambda: sample_message("m", incoming=False, received_at=1)),
        ("a tombstone with content", lambda: sample_message("m", deleted=True)),
        ("a bad sender id", lambda: sample_message("m", sender_id="bob")),
        ("a str direction", lambda: sample_message("m", direction="incoming")),
        ("a key not matching", lambda: _contact(1, "A", identity_key=_IDENTITIES[2].public_key)),
        ("a control character", lambda: _contact(1, "A\u202e")),
        ("a sequence below -1", lambda: _contact(1, "A", device_list_sequence=-2)),
        ("a short pending key", lambda: _contact(1, "A", pending_identity_key=b"x")),
        ("a negative attempt count", lambda: _outbox("m", attempts=-1)),
        ("a str ciphertext", lambda: _outbox("m", ciphertext="frame")),
        ("a bool archived", lambda: ConversationRecord(conversation_id="c", archived=1)),  # type: ignore[arg-type]
    ]
    for what, build in bad_records:
        try:
            build()
        except ConfigurationError:
            continue
        raise AssertionError(f"{what} must raise ConfigurationError")


async def _check_persistence(open_store: OpenStore) -> None:
    contact = _contact(1, "Alice", device_list=b"list", device_list_sequence=3)
    message = sample_message("m1", text="persisted words", expires_at=50_000)
    entry = _outbox("m1", ciphertext=b"frame")
    async with await open_store("persistence") as store, store.transaction() as tx:
        await tx.put_contact(contact)
        await tx.add_message(message)
        await tx.put_conversation(ConversationRecord(conversation_id=_ALICE, muted_until=7))
        await tx.add_outbox(entry)
        await tx.mark_seen(_DEVICE_A, "m1", 5)
    async with await open_store("persistence") as store, store.transaction() as tx:
        assert await tx.get_contact(_ALICE) == contact, "contacts survive reopening"
        assert await tx.messages(_ALICE) == [message], "messages survive reopening"
        assert await tx.search("persisted wor") == [message], "the search index survives"
        conversation = await tx.get_conversation(_ALICE)
        assert conversation == ConversationRecord(
            conversation_id=_ALICE, muted_until=7, last_message_at=1_000, unread_count=1
        ), "conversations survive reopening"
        assert await tx.pending_outbox() == [entry], "the outbox survives reopening"
        assert await tx.mark_seen(_DEVICE_A, "m1", 6) is False, "seen ids survive reopening"
