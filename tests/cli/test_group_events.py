"""How ``omega`` shows group events, and ``omega chat --group`` showing what members do."""

from __future__ import annotations

import io
import sys

import anyio
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "client"))

from group_client_helpers import trio, wait_until

from omega.cli._chat import Screen
from omega.cli._common import ContactNames, describe_event
from omega.cli._group_chat import GroupChat
from omega.client import (
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
from omega.protocol import MemberRole

pytestmark = pytest.mark.anyio


async def test_group_events_read_well_and_the_group_chat_shows_them() -> None:
    async with trio() as t:
        names = ContactNames(t.alice)
        group_id = t.group.group_id
        message = await t.group.send_text("hello")
        bob = t.bob.user_id
        lines = {
            GroupMemberAdded(group_id=group_id, user_id=bob, by=bob): "was added",
            GroupMemberRemoved(group_id=group_id, user_id=bob, by=bob): "was removed",
            GroupMemberLeft(group_id=group_id, user_id=bob): "left",
            GroupRoleChanged(
                group_id=group_id,
                user_id=bob,
                previous=MemberRole.MEMBER,
                role=MemberRole.ADMIN,
                by=bob,
            ): "is now admin",
            GroupRenamed(group_id=group_id, name="x", previous="y", by=bob): "renamed to x",
            GroupMentioned(group_id=group_id, message=message, sender_id=bob): "mentioned you",
            GroupOperationRefused(group_id=group_id, sender_id=bob, code="c", reason="no"): "no",
        }
        for event, expected in lines.items():
            line = await describe_event(event, names)
            assert line is not None
            assert line.startswith(f"[group {group_id[:12]}]")
            assert expected in line
        assert (
            await describe_event(GroupUpdated(group_id=group_id, state=t.group.state), names)
            is None
        )

        out = io.StringIO()
        chat = GroupChat(t.bob, t.of(t.bob), Screen(out, interactive=False))
        await chat.open()
        stream = t.bob._core.subscribe(100)
        async with stream, anyio.create_task_group() as group:
            group.start_soon(chat.show_events, stream)
            await wait_until(
                t.bob,
                lambda e: isinstance(e, GroupMessageReceived) and e.message.text == "to the chat",
                lambda: t.group.send_text("to the chat"),
            )
            await chat.handle("from bob")
            history = await t.of(t.bob).history()
            alice_message = next(m for m in history if m.text == "to the chat")
            own = next(m for m in history if m.text == "from bob")
            await chat.handle(f"/react {alice_message.message_id[:8]} 👍")
            await chat.handle(f"/edit {own.message_id[:8]} from bob, edited")
            await chat.handle(f"/edit {own.message_id[:8]}")
            await chat.handle(f"/delete {alice_message.message_id[:8]}")
            await chat.handle("/typing")
            await chat.handle("/react")
            await t.group.rename("Renamed")
            await t.group.remove(t.carol.user_id)
            with anyio.fail_after(10):
                while "was removed" not in out.getvalue():
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()
        text = out.getvalue()
        assert "Group Friends" in text
        assert "Alice: to the chat" in text
        assert "me: from bob" in text
        assert "reacted 👍" in text
        assert "from bob, edited" in text
        assert "typing notices are not sent to groups" in text
        assert "the group is now called Renamed" in text
