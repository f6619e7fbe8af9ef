"""Bad group input through real clients: typed errors or events, state unchanged everywhere."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import of_type
from group_client_helpers import Trio, eventually, trio, wait_until

from omega.client import Client, GroupMessageReceived, GroupOperationRefused, MessageRefused
from omega.client._inbound import Receipt
from omega.crypto import Identity, OutboundSenderKey
from omega.errors import GroupPermissionError, UnknownGroupError
from omega.groups import GROUP_OPERATION_VERSION
from omega.groups._operations import sign_operation
from omega.protocol import (
    DeleteContent,
    DeleteScope,
    EditContent,
    EncryptionKind,
    Frame,
    GroupOperation,
    GroupOperationBatch,
    GroupRemoveMember,
    GroupRename,
    GroupSetRole,
    GroupSyncRequest,
    GroupUpdate,
    MemberRole,
    MessageContent,
    SignedGroupOperation,
    TextContent,
    decode_message,
    encode_message,
)
from omega.session.content import encode_content
from omega.session.envelope import bind_content, seal_envelope

pytestmark = pytest.mark.anyio


def _operation(t: Trio, author: Client, **change: object) -> bytes:
    operation = GroupOperation(
        version=GROUP_OPERATION_VERSION,
        group_id=t.group.group_id,
        parents=list(t.group.state.heads),
        author_id=author.user_id,
        timestamp=author._core.now(),
        **change,  # type: ignore[arg-type]
    )
    return sign_operation(operation, author.identity.device)


async def _push(t: Trio, sender: Client, recipient: Client, *operations: bytes) -> None:
    """``sender`` sends ``operations`` to ``recipient`` in a GroupUpdate, pairwise."""
    batch = GroupOperationBatch(
        operations=[decode_message(SignedGroupOperation, op) for op in operations]
    )
    update = GroupUpdate(group_id=t.group.group_id, operations=encode_message(batch), heads=[])
    await sender._core.queue(recipient.user_id, MessageContent(group_update=update))


async def test_operations_without_the_right_are_refused_and_change_nothing() -> None:
    async with trio() as t:
        before = t.of(t.carol).state
        with pytest.raises(GroupPermissionError):
            await t.of(t.bob).remove(t.carol.user_id)  # a MEMBER may not remove
        assert t.of(t.bob).state == before
        forged_remove = _operation(
            t, t.bob, remove_member=GroupRemoveMember(user_id=t.carol.user_id)
        )
        refused = await wait_until(
            t.carol, of_type(GroupOperationRefused), lambda: _push(t, t.bob, t.carol, forged_remove)
        )
        assert isinstance(refused, GroupOperationRefused)
        assert refused.code == "unauthorized_group_operation"
        assert t.of(t.carol).state == before
        # The client keeps working.
        got = await wait_until(
            t.carol, of_type(GroupMessageReceived), lambda: t.group.send_text("ok")
        )
        assert isinstance(got, GroupMessageReceived)


async def test_a_non_member_operation_and_a_forged_signature_are_refused() -> None:
    async with trio() as t:
        before = t.of(t.bob).state
        async with t.world.client(t.world.identity("Mallory")) as mallory:
            await mallory.add_contact(str(t.bob.contact_uri), addresses=t.bob.addresses)
            rename = _operation(t, mallory, rename=GroupRename(name="pwned"))
            refused = await wait_until(
                t.bob, of_type(GroupOperationRefused), lambda: _push(t, mallory, t.bob, rename)
            )
            assert isinstance(refused, GroupOperationRefused)
            assert refused.sender_id == mallory.user_id
            assert "not a member" in refused.reason
        # Alice's genuine promotion of Bob, with one bit of its signature flipped, sent by Carol.
        genuine = _operation(
            t, t.alice, set_role=GroupSetRole(user_id=t.bob.user_id, role=MemberRole.ADMIN)
        )
        signed = decode_message(SignedGroupOperation, genuine)
        signed.signature = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
        forged = await wait_until(
            t.bob,
            of_type(GroupOperationRefused),
            lambda: _push(t, t.carol, t.bob, encode_message(signed)),
        )
        assert isinstance(forged, GroupOperationRefused)
        assert forged.code == "invalid_group_operation"
        assert t.of(t.bob).state == before


async def test_replayed_and_reordered_operations_change_nothing() -> None:
    async with trio() as t:
        first = _operation(t, t.alice, rename=GroupRename(name="one"))
        t.alice._groups.sessions[t.group.group_id].log.receive(first)
        second = GroupOperation(
            version=GROUP_OPERATION_VERSION,
            group_id=t.group.group_id,
            parents=list(t.alice._groups.sessions[t.group.group_id].log.state.heads),
            author_id=t.alice.user_id,
            timestamp=1,
            rename=GroupRename(name="two"),
        )
        second_signed = sign_operation(second, t.alice.identity.device)
        # Child before parent: held, then applied once the parent arrives; then replayed.
        await _push(t, t.alice, t.bob, second_signed, first)
        await eventually(lambda: t.of(t.bob).name == "two")
        state = t.of(t.bob).state
        await _push(t, t.alice, t.bob, first, second_signed)
        got = await wait_until(t.bob, of_type(GroupMessageReceived), lambda: t.group.send_text("x"))
        assert isinstance(got, GroupMessageReceived)
        assert t.of(t.bob).state == state


async def test_a_message_under_a_stale_sender_key_is_refused() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        old_key = OutboundSenderKey.from_bytes(
            t.alice._groups.sessions[group_id].outbound.to_bytes()
        )
        await t.group.remove(t.carol.user_id)
        await eventually(lambda: _bob_has_new_alice_key(t))
        message_id, now = t.alice._core.new_message_id(), t.alice._core.now()
        content = bind_content(
            MessageContent(text=TextContent(text="stale")),
            message_id=message_id,
            timestamp=now,
            conversation_id=group_id,
        )
        envelope = seal_envelope(
            t.alice.identity.device,
            message_id=message_id,
            sender_id=t.alice.user_id,
            recipient_id=group_id,
            recipient_device_key=t.bob.identity.device.device_key,
            timestamp=now,
            encryption=EncryptionKind.SENDER_KEY,
            encrypted_content=old_key.encrypt(encode_content(content)),
        )
        before = t.of(t.bob).state
        refused = await wait_until(
            t.bob,
            of_type(MessageRefused),
            lambda: t.bob._inbound.receive_envelope(envelope, connection=None),
        )
        assert isinstance(refused, MessageRefused)
        assert refused.code == "stale_sender_key"
        assert t.of(t.bob).state == before
        got = await wait_until(
            t.bob, of_type(GroupMessageReceived), lambda: t.group.send_text("new")
        )
        assert isinstance(got, GroupMessageReceived)
        assert [m.text for m in await t.of(t.bob).history()] == ["new"]


def _bob_has_new_alice_key(t: Trio) -> bool:
    alice = t.alice._groups.sessions[t.group.group_id]
    held = t.bob._groups.sessions[t.group.group_id]._inbound[t.alice.identity.device.device_key]
    return alice.outbound.key_id in held[1].key_ids


async def test_the_member_limit_holds() -> None:
    async with trio() as t:
        strangers = [Identity.create(device_name="x", created_at=1).user_id for _ in range(256)]
        for user_id in strangers:
            await t.alice.add_contact(user_id)
        with pytest.raises(GroupPermissionError):
            await t.alice.create_group("too big", strangers)  # 257 with Alice
        assert len(t.alice.groups()) == 1
        # Adding the 257th member to a full group: tests/client/test_groups_fanout.py.
        with pytest.raises(UnknownGroupError):
            t.alice.group("0" * 64)


async def test_forged_and_misaddressed_group_traffic_is_refused() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        session = t.alice._groups.sessions[group_id]
        message_id, now = t.alice._core.new_message_id(), t.alice._core.now()
        content = bind_content(
            MessageContent(text=TextContent(text="forged")),
            message_id=message_id,
            timestamp=now,
            conversation_id=group_id,
        )
        ciphertext = bytearray(session.outbound.encrypt(encode_content(content)))
        ciphertext[-1] ^= 1  # the sender key's signature no longer verifies
        bob_device = t.bob.identity.device.device_key
        envelope = decode_message(
            Frame,
            t.alice._groups.envelope(group_id, message_id, bob_device, now, bytes(ciphertext)),
        ).message
        assert envelope is not None
        refused = await wait_until(
            t.bob,
            of_type(MessageRefused),
            lambda: t.bob._inbound.receive_envelope(envelope, connection=None),
        )
        assert isinstance(refused, MessageRefused)
        assert refused.code == "invalid_envelope"
        # A group we are not in: left unacknowledged, refused five minutes later.
        unknown = decode_message(
            Frame,
            t.alice._groups.envelope("f" * 64, message_id, bob_device, now, bytes(ciphertext)),
        ).message
        assert unknown is not None
        assert await t.bob._inbound.receive_envelope(unknown, connection=None) is Receipt.RETRY
        t.world.frozen_at = t.world.wall_clock() + 6 * 60_000
        assert await t.bob._inbound.receive_envelope(unknown, connection=None) is Receipt.REFUSED
        # Updates naming a malformed group, or another group's log, change nothing.
        bad = GroupUpdate(group_id="not-a-group", operations=b"", heads=[])
        refusal = await wait_until(
            t.bob,
            of_type(GroupOperationRefused),
            lambda: t.alice._core.queue(t.bob.user_id, MessageContent(group_update=bad)),
        )
        assert isinstance(refusal, GroupOperationRefused)
        other = t.alice._groups.sessions[group_id].log.export()
        wrong = GroupUpdate(group_id="e" * 64, operations=other, heads=[])
        refusal = await wait_until(
            t.bob,
            of_type(GroupOperationRefused),
            lambda: t.alice._core.queue(t.bob.user_id, MessageContent(group_update=wrong)),
        )
        assert isinstance(refusal, GroupOperationRefused)
        assert [g.group_id for g in t.bob.groups()] == [group_id]


async def test_a_lost_sender_key_is_asked_for_after_a_while() -> None:
    async with trio() as t:
        group_id = t.group.group_id
        alice = t.alice._groups
        async with alice.changing(group_id) as (_, session):
            session.outbound.rotate(rng=t.alice._core.rng)  # its distribution is "lost"
        message_id, now = t.alice._core.new_message_id(), t.alice._core.now()
        content = bind_content(
            MessageContent(text=TextContent(text="lost")),
            message_id=message_id,
            timestamp=now,
            conversation_id=group_id,
        )
        ciphertext = session.outbound.encrypt(encode_content(content))
        bob_device = t.bob.identity.device.device_key
        envelope = decode_message(
            Frame, alice.envelope(group_id, message_id, bob_device, now, ciphertext)
        ).message
        assert envelope is not None
        assert await t.bob._inbound.receive_envelope(envelope, connection=None) is Receipt.RETRY
        t.world.frozen_at = t.world.wall_clock() + 31_000
        assert await t.bob._inbound.receive_envelope(envelope, connection=None) is Receipt.RETRY
        # Alice answers with her current key: Bob reads her next message, not the lost one.
        await eventually(lambda: _bob_has_new_alice_key(t))
        got = await wait_until(
            t.bob, of_type(GroupMessageReceived), lambda: t.group.send_text("next")
        )
        assert isinstance(got, GroupMessageReceived)
        assert got.message.text == "next"


async def test_members_may_not_edit_or_delete_others_messages() -> None:
    async with trio() as t:
        first = await wait_until(
            t.carol, of_type(GroupMessageReceived), lambda: t.group.send_text("alice wrote")
        )
        assert isinstance(first, GroupMessageReceived)
        target = first.message.message_id
        await eventually(lambda: _bob_has(t, target))
        bob_group = t.of(t.bob)
        edit = MessageContent(
            edit=EditContent(target_message_id=target, text=TextContent(text="x"))
        )
        refused = await wait_until(t.carol, of_type(MessageRefused), lambda: bob_group.send(edit))
        assert isinstance(refused, MessageRefused)
        delete = MessageContent(
            delete=DeleteContent(target_message_id=target, scope=DeleteScope.FOR_EVERYONE)
        )
        refused = await wait_until(t.carol, of_type(MessageRefused), lambda: bob_group.send(delete))
        assert isinstance(refused, MessageRefused)
        [kept] = await t.of(t.carol).history()
        assert kept.text == "alice wrote"
        assert not kept.deleted
        # A sync request from someone who is not a member is ignored.
        async with t.world.client(t.world.identity("Mallory")) as mallory:
            await mallory.add_contact(str(t.alice.contact_uri), addresses=t.alice.addresses)
            request = GroupSyncRequest(group_id=t.group.group_id, heads=[], sender_key=True)
            await mallory._core.queue(t.alice.user_id, MessageContent(group_sync=request))
            await anyio.sleep(0.3)
        assert t.of(t.alice).state.is_member(t.bob.user_id)


async def _bob_has(t: Trio, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await t.of(t.bob).history())
