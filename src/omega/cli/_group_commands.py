"""``omega group``: create groups, change their members, list them, send to them.

Changes are made locally and queued for every member in the persistent
outbox; the command then runs the client until they left this device (at
most ``--wait`` seconds). What is still queued goes out the next time
``send``, ``listen``, ``chat`` or ``group`` runs. ``omega chat --group GROUP``
chats in a group (see :mod:`omega.cli._chat`). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, TextIO

import anyio

from omega.cli._common import (
    ContactNames,
    add_client_options,
    add_listen_options,
    format_message,
    open_client,
    resolve_contact,
)
from omega.errors import ConfigurationError, UnknownGroupError

if TYPE_CHECKING:
    from omega.client import Client, Group, GroupEvent

__all__ = ["register", "resolve_group"]

MIN_GROUP_ID_PREFIX = 6
"""Shortest group id prefix accepted to name a group."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``omega group`` to the parser."""
    from omega.cli._client_commands import _sync

    group = commands.add_parser(
        "group",
        help="create groups, add and remove members, list them, send to them",
        description="Groups of contacts: every member holds the group's signed log; "
        "messages are encrypted once for all (docs/groups.md). GROUP is a group id, a "
        f"prefix of one (at least {MIN_GROUP_ID_PREFIX} characters) or a unique name prefix.",
    )
    actions = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a group with contacts")
    create.add_argument("name", metavar="NAME", help="the group's name")
    create.add_argument("members", nargs="*", metavar="USER", help="contacts to add")
    _common(create)
    create.set_defaults(handler=_sync(_create))

    for name, summary in (
        ("add", "add a contact to a group"),
        ("remove", "remove a member (everyone else rotates their keys)"),
        ("promote", "make a member an admin (--owner: an owner)"),
        ("demote", "make an admin a plain member again"),
    ):
        action = actions.add_parser(name, help=summary)
        action.add_argument("group", metavar="GROUP")
        action.add_argument("user", metavar="USER", help="a user id or a unique name prefix")
        if name == "promote":
            action.add_argument("--owner", action="store_true", help="promote to owner")
        _common(action)
        action.set_defaults(handler=_sync(_change), change=name)

    leave = actions.add_parser("leave", help="leave a group")
    leave.add_argument("group", metavar="GROUP")
    _common(leave)
    leave.set_defaults(handler=_sync(_change), change="leave", user=None)

    send = actions.add_parser("send", help="send a text to a group")
    send.add_argument("group", metavar="GROUP")
    send.add_argument("text", metavar="TEXT")
    send.add_argument("--ttl", type=int, default=None, metavar="SECONDS", help="disappear after")
    _common(send)
    send.set_defaults(handler=_sync(_send))

    listing = actions.add_parser("list", help="list your groups and their members")
    listing.add_argument("--json", action="store_true", help="one JSON object per group")
    add_client_options(listing)
    listing.set_defaults(handler=_sync(_list), no_listen=True)

    history = actions.add_parser("history", help="show a group's messages, oldest first")
    history.add_argument("group", metavar="GROUP")
    history.add_argument("--limit", type=int, default=50, metavar="N", help="the last N (50)")
    history.add_argument("--json", action="store_true", help="one JSON object per message")
    add_client_options(history)
    history.set_defaults(handler=_sync(_history), no_listen=True)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="run until what was queued left this device, at most SECONDS (default 10)",
    )
    add_listen_options(parser, default=())
    add_client_options(parser)


def resolve_group(client: Client, text: str) -> Group:
    """The group ``text`` names: an id, an id prefix, or a unique name prefix (any case)."""
    wanted = text.strip()
    folded = wanted.casefold()
    groups = client.groups()
    by_id = [
        g for g in groups if len(folded) >= MIN_GROUP_ID_PREFIX and g.group_id.startswith(folded)
    ]
    exact = [g for g in groups if g.name.casefold() == folded]
    matches = (
        by_id or exact or [g for g in groups if folded and g.name.casefold().startswith(folded)]
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UnknownGroupError(
            f"no group matches {wanted!r}: see `omega group list`", details={"query": wanted}
        )
    names = ", ".join(f"{g.name} ({g.group_id[:12]})" for g in matches)
    raise UnknownGroupError(
        f"{wanted!r} matches several groups: {names}; give the id", details={"query": wanted}
    )


async def _drain(client: Client, wait: float) -> int:
    """Run until nothing waits to leave this device, at most ``wait`` seconds; what is left."""
    if wait < 0:
        raise ConfigurationError("--wait must not be negative")
    queued = await client.undelivered()
    with anyio.move_on_after(wait):
        while queued:
            await anyio.sleep(0.1)
            queued = await client.undelivered()
    return queued


def _report_queue(queued: int, out: TextIO) -> int:
    if not queued:
        return 0
    print(
        f"{queued} envelope(s) still queued: they go out the next time send, listen, chat "
        "or group runs.",
        file=out,
    )
    return 0


async def _create(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        members = [(await resolve_contact(client, user)).user_id for user in args.members]
        group = await client.create_group(args.name, members)
        print(f"Created group {group.name} ({group.group_id})", file=out)
        print(
            f"{len(group.members)} member(s); chat with `omega chat --group {group.group_id[:12]}`",
            file=out,
        )
        return _report_queue(await _drain(client, args.wait), out)


async def _change(args: argparse.Namespace, out: TextIO) -> int:
    from omega.protocol import MemberRole

    async with open_client(args, online=True) as client:
        group = resolve_group(client, args.group)
        change = args.change
        if change == "leave":
            await group.leave()
            print(f"You left {group.name}.", file=out)
            return _report_queue(await _drain(client, args.wait), out)
        names = ContactNames(client)
        user_id = (await resolve_contact(client, args.user)).user_id
        if change == "add":
            await group.add(user_id)
        elif change == "remove":
            await group.remove(user_id)
        elif change == "promote":
            await group.promote(user_id, MemberRole.OWNER if args.owner else MemberRole.ADMIN)
        else:
            await group.demote(user_id)
        role = group.state.role_of(user_id)
        where = f"now {role.name.lower()}" if role is not None else "no longer a member"
        print(f"{await names.name(user_id)} is {where} in {group.name}.", file=out)
        return _report_queue(await _drain(client, args.wait), out)


async def _send(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        group = resolve_group(client, args.group)
        sent = await group.send_text(args.text, ttl_seconds=args.ttl)
        print(f"Sent {sent.message_id} to {group.name}", file=out)
        return _report_queue(await _drain(client, args.wait), out)


async def _list(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=True) as client:
        names = ContactNames(client)
        groups = client.groups()
        for group in groups:
            state = group.state
            members = [
                {
                    "user_id": m.user_id,
                    "name": await names.name(m.user_id),
                    "role": m.role.name.lower(),
                }
                for m in group.members
            ]
            if args.json:
                record = {
                    "group_id": group.group_id,
                    "name": state.name,
                    "member": group.is_member,
                    "members": members,
                }
                print(json.dumps(record, ensure_ascii=False), file=out)
                continue
            left = "" if group.is_member else " [you are no longer a member]"
            print(f"{state.name}  {group.group_id}  ({len(members)} members){left}", file=out)
            for member in members:
                print(f"    {member['name']}  {member['role']}  {member['user_id']}", file=out)
        if not groups and not args.json:
            print("No groups yet: create one with `omega group create NAME USER...`.", file=out)
    return 0


async def _history(args: argparse.Namespace, out: TextIO) -> int:
    from omega.cli._client_commands import print_messages

    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    async with open_client(args, online=True) as client:
        group = resolve_group(client, args.group)
        messages = list(reversed(await group.history(limit=args.limit)))
        await print_messages(messages, ContactNames(client), args.json, out)
    if not messages and not args.json:
        print(f"No messages in {group.name} yet.", file=out)
    return 0


async def describe_group_event(event: GroupEvent, names: ContactNames) -> str | None:
    """One readable line for a group event (``[group name]`` first)."""
    from omega.client import (
        GroupCreated,
        GroupJoined,
        GroupMemberAdded,
        GroupMemberLeft,
        GroupMemberRemoved,
        GroupMentioned,
        GroupMessageReceived,
        GroupOperationRefused,
        GroupRenamed,
        GroupRoleChanged,
    )

    where = f"[group {event.group_id[:12]}]"
    if isinstance(event, GroupMessageReceived):
        sender = await names.name(event.message.sender_id)
        return f"{where} {format_message(event.message, sender)}"
    if isinstance(event, GroupCreated | GroupJoined):
        return f"{where} you are in {event.state.name} ({len(event.state.members)} members)"
    if isinstance(event, GroupMemberAdded):
        return f"{where} {await names.name(event.user_id)} was added"
    if isinstance(event, GroupMemberRemoved):
        return f"{where} {await names.name(event.user_id)} was removed"
    if isinstance(event, GroupMemberLeft):
        return f"{where} {await names.name(event.user_id)} left"
    if isinstance(event, GroupRoleChanged):
        return f"{where} {await names.name(event.user_id)} is now {event.role.name.lower()}"
    if isinstance(event, GroupRenamed):
        return f"{where} renamed to {event.name}"
    if isinstance(event, GroupMentioned):
        return f"{where} {await names.name(event.sender_id)} mentioned you"
    if isinstance(event, GroupOperationRefused):
        return f"{where} refused a change from {await names.name(event.sender_id)}: {event.reason}"
    return None
