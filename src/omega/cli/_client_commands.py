"""``omega init``, ``contact``, ``send``, ``listen`` and ``history``: the client in a terminal.

Every command works on the data directory (``--data-dir``) and unlocks the
identity with the passphrase (``--passphrase-file``, ``$OMEGA_PASSPHRASE`` or
a prompt). Commands about contacts and history only open the local stores;
``send``, ``listen`` and ``chat`` run the client on the network. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from omega.cli._common import (
    DEFAULT_LISTEN,
    ContactNames,
    EventQueue,
    add_client_options,
    add_listen_options,
    describe_event,
    event_json,
    format_message,
    open_client,
    resolve_contact,
    resolve_message_id,
)
from omega.client.datadir import SECRET_FILE, DataDir, write_private
from omega.errors import ConfigurationError, InvalidAddressError

if TYPE_CHECKING:
    from omega.client import Client, Event
    from omega.storage.message_base import DeliveryState, StoredMessage

__all__ = ["QUEUED_STATUS", "cmd_init", "register"]

LINGER = 0.5
"""Seconds ``omega listen`` keeps running after its ``--count`` or ``--timeout``."""

QUEUED_STATUS = 3
"""Exit status of ``omega send`` when the message is still queued at the end of ``--wait``."""


def _cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    """``omega init`` (and ``omega id new``): create an identity and its first device."""
    from omega.cli import _describe, _now_ms, _read_passphrase
    from omega.crypto import ContactUri, Identity

    directory = DataDir(Path(args.data_dir))
    if directory.exists() and not args.force:  # before asking for a passphrase
        raise ConfigurationError(
            f"{directory.path / SECRET_FILE} already exists; pass --force to replace it "
            "(the old identity is lost unless you kept an export)"
        )
    identity = Identity.create(
        display_name=args.name, device_name=args.device, created_at=_now_ms()
    )
    passphrase = _read_passphrase(args, confirm=True)
    directory.save_identity(identity, passphrase, force=args.force)
    print(f"Created identity in {directory.path}", file=out)
    uri = ContactUri(user_id=identity.user_id, display_name=identity.display_name or None)
    _describe(identity.device_list, uri, out, qr=False)
    print(
        "Share your contact URI (`omega id` shows it as a QR code); "
        "add contacts with `omega contact add URI`.",
        file=out,
    )
    return 0


cmd_init = _cmd_init


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client commands to the ``omega`` parser."""
    init = commands.add_parser(
        "init", help="create your identity (the same as `omega id new`)", description=_INIT
    )
    configure_init(init)
    init.set_defaults(handler=cmd_init)
    _register_contact(commands)
    _register_messaging(commands)
    _register_history(commands)
    from omega.cli._chat import register as register_chat
    from omega.cli._group_commands import register as register_groups

    register_chat(commands)
    register_groups(commands)


_INIT = "Create a new identity with its first device and print your contact URI."


def configure_init(parser: argparse.ArgumentParser) -> None:
    """The options of ``omega init`` and ``omega id new``."""
    parser.add_argument("--name", default="", help="your display name (shared with contacts)")
    parser.add_argument("--device", default="primary", help="this device's name (default: primary)")
    parser.add_argument("--force", action="store_true", help="replace an existing identity")
    add_client_options(parser)


def _register_contact(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contact = commands.add_parser("contact", help="add, list, verify and block contacts")
    actions = contact.add_subparsers(dest="contact_command", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="add a contact from their contact URI or user id",
        description="Add (or update) a contact. Addresses given are remembered in "
        "addresses.json and used to reach them by send, listen and chat.",
    )
    add.add_argument("uri", metavar="URI", help="an omega:// contact URI or a user id")
    add.add_argument("--name", default=None, help="the name you give them")
    add.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="ADDR",
        help="where they can be reached, e.g. /ip4/192.0.2.7/tcp/7447 (repeatable)",
    )
    add_client_options(add)
    add.set_defaults(handler=_sync(_contact_add))

    listing = actions.add_parser("list", help="list your contacts")
    listing.add_argument("--json", action="store_true", help="one JSON object per contact")
    add_client_options(listing)
    listing.set_defaults(handler=_sync(_contact_list))

    verify = actions.add_parser(
        "verify",
        help="compare safety numbers and mark a contact verified",
        description="Print the safety number you share with USER. Compare it with the "
        "one their device shows (in person or on a call); confirm with --yes or at the "
        "prompt to mark them verified. --scan checks their QR payload instead.",
    )
    verify.add_argument("user", metavar="USER", help="a user id or a unique name prefix")
    verify.add_argument(
        "--scan", default=None, metavar="HEX", help="their safety-number QR payload, in hex"
    )
    verify.add_argument("--yes", action="store_true", help="the numbers match: mark verified")
    add_client_options(verify)
    verify.set_defaults(handler=_sync(_contact_verify))

    for name, summary in (
        ("block", "block a contact: drop their messages, send them nothing"),
        ("unblock", "unblock a contact"),
        ("accept-devices", "deliver to a verified contact's newly added devices"),
    ):
        action = actions.add_parser(name, help=summary)
        action.add_argument("user", metavar="USER", help="a user id or a unique name prefix")
        add_client_options(action)
        action.set_defaults(handler=_sync(_contact_change), change=name)


def _register_messaging(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="send one message and wait until it is delivered",
        description="Send TEXT to USER, then wait until their device acknowledges it. "
        f"Exit status 0 when delivered, {QUEUED_STATUS} when it is still queued after "
        "--wait (it stays in the outbox and is retried the next time send, listen or "
        "chat runs), 1 on an error.",
    )
    send.add_argument("user", metavar="USER", help="a user id or a unique name prefix")
    send.add_argument("text", metavar="TEXT", help="the message")
    send.add_argument("--reply-to", default=None, metavar="ID", help="the message answered")
    send.add_argument("--ttl", type=int, default=None, metavar="SECONDS", help="disappear after")
    send.add_argument(
        "--wait", type=float, default=30.0, metavar="SECONDS", help="wait at most (default 30)"
    )
    add_listen_options(send, default=())
    add_client_options(send)
    send.set_defaults(handler=_sync(_send))

    listen = commands.add_parser(
        "listen",
        help="receive messages until Ctrl-C",
        description="Run the client: listen for contacts, deliver queued messages and "
        "print what happens, until Ctrl-C.",
    )
    listen.add_argument("--json", action="store_true", help="one JSON object per event")
    listen.add_argument(
        "--count", type=int, default=None, metavar="N", help="stop after N new messages"
    )
    listen.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="stop after SECONDS"
    )
    add_listen_options(listen, default=(DEFAULT_LISTEN,))
    add_client_options(listen)
    listen.set_defaults(handler=_sync(_listen, interrupt_status=0))


def _register_history(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history",
        help="show, search or export the message history",
        usage="omega history USER [--limit N] [--json]\n"
        "       omega history search QUERY [--user USER] [--limit N] [--json]\n"
        "       omega history export USER FILE",
        description="Show the latest messages with USER (oldest first), search every "
        'conversation (full-text: words, "phrases", prefix*), or export a conversation '
        "as JSON to FILE ('-' for standard output).",
    )
    history.add_argument("words", nargs="+", metavar="USER", help=argparse.SUPPRESS)
    history.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (50)")
    history.add_argument("--json", action="store_true", help="one JSON object per message")
    history.add_argument("--user", default=None, help="search only the conversation with USER")
    add_client_options(history)
    history.set_defaults(handler=_sync(_history))


def _sync(handler: _AsyncHandler, *, interrupt_status: int | None = None) -> _SyncHandler:
    """Run an async command handler with anyio; Ctrl-C ends it with ``interrupt_status``."""

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            status: int = anyio.run(handler, args, out)
        except KeyboardInterrupt:
            if interrupt_status is None:
                raise
            print("Stopped.", file=out)
            return interrupt_status
        return status

    return run


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    _AsyncHandler = Callable[[argparse.Namespace, TextIO], Awaitable[int]]
    _SyncHandler = Callable[[argparse.Namespace, TextIO], int]


# -- contacts ---------------------------------------------------------------------
async def _contact_add(args: argparse.Namespace, out: TextIO) -> int:
    from omega.crypto import ContactUri, user_id_from_public_key
    from omega.crypto.identity import public_key_from_user_id
    from omega.errors import InvalidUriError, OmegaError
    from omega.transport.address import Address

    # Check everything before anything is stored.
    text = args.uri.strip()
    try:
        if text.lower().startswith("omega://"):
            user_id = ContactUri.parse(text).user_id
        else:
            user_id = user_id_from_public_key(public_key_from_user_id(text))
    except OmegaError as exc:
        raise InvalidUriError(f"not a contact URI or user id: {text[:80]!r}") from exc
    parsed = [Address.parse(address) for address in args.address]
    for address in parsed:
        if address.peer is not None and address.peer != user_id:
            raise InvalidAddressError(f"{address} belongs to another user ({address.peer})")
    addresses = [str(address) for address in parsed]
    directory = DataDir(Path(args.data_dir))
    book = directory.load_address_book()
    async with open_client(args, online=False) as client:
        contact = await client.add_contact(text, display_name=args.name)
    if addresses:
        book[contact.user_id] = addresses + book.get(contact.user_id, [])
        directory.save_address_book(book)
    name = contact.display_name or "(no name)"
    print(f"Added {name} ({contact.user_id})", file=out)
    if addresses:
        print(f"Reachable at {', '.join(addresses)}", file=out)
    print(f"Compare safety numbers with `omega contact verify {contact.user_id}`.", file=out)
    return 0


async def _contact_list(args: argparse.Namespace, out: TextIO) -> int:
    book = DataDir(Path(args.data_dir)).load_address_book()
    async with open_client(args, online=False) as client:
        contacts = await client.contacts()
    for contact in contacts:
        addresses = book.get(contact.user_id, [])
        if args.json:
            record = {
                "user_id": contact.user_id,
                "name": contact.display_name,
                "verified": contact.verified,
                "blocked": contact.blocked,
                "addresses": addresses,
            }
            print(json.dumps(record, ensure_ascii=False), file=out)
            continue
        states = (("verified", contact.verified), ("blocked", contact.blocked))
        flags = [name for name, on in states if on]
        marks = f" [{', '.join(flags)}]" if flags else ""
        print(f"{contact.display_name or '(no name)'}  {contact.user_id}{marks}", file=out)
        for address in addresses:
            print(f"    {address}", file=out)
    if not contacts and not args.json:
        print("No contacts yet: add one with `omega contact add URI`.", file=out)
    return 0


async def _contact_verify(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=False) as client:
        contact = await resolve_contact(client, args.user)
        number = client.safety_number(contact.user_id)
        groups = number.display().split(" ")
        print(f"Safety number with {contact.display_name or contact.user_id}:", file=out)
        for row in range(0, len(groups), 4):
            print("    " + " ".join(groups[row : row + 4]), file=out)
        print(f"Your QR payload for them to scan: {number.qr_payload().hex()}", file=out)
        if args.scan is not None:
            try:
                scanned = bytes.fromhex(args.scan)
            except ValueError as exc:
                raise ConfigurationError("--scan takes the QR payload in hex") from exc
            await client.verify_contact(contact.user_id, scanned_qr=scanned)
            print("The scanned code matches.", file=out)
        elif not args.yes and not _confirm("Do these numbers match theirs exactly? [y/N] ", out):
            print("Not marked verified.", file=out)
            return 0
        else:
            await client.verify_contact(contact.user_id)
    print(f"{contact.display_name or contact.user_id} is now verified.", file=out)
    return 0


def _confirm(question: str, out: TextIO) -> bool:
    if not sys.stdin.isatty():
        print("(no terminal to ask: run again with --yes once you compared)", file=out)
        return False
    print(question, end="", file=out, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def _contact_change(args: argparse.Namespace, out: TextIO) -> int:
    async with open_client(args, online=False) as client:
        contact = await resolve_contact(client, args.user)
        name = contact.display_name or contact.user_id
        if args.change == "block":
            await client.block(contact.user_id)
            print(f"Blocked {name}.", file=out)
        elif args.change == "unblock":
            await client.unblock(contact.user_id)
            print(f"Unblocked {name}.", file=out)
        else:
            await client.accept_devices(contact.user_id)
            print(f"Messages held for {name}'s new devices will be delivered.", file=out)
    return 0


# -- messaging --------------------------------------------------------------------
async def _send(args: argparse.Namespace, out: TextIO) -> int:
    from omega.client import DeliveryStateChanged
    from omega.storage.message_base import DeliveryState, Direction

    if args.wait < 0:
        raise ConfigurationError("--wait must not be negative")
    states: dict[str, DeliveryState] = {}
    changed = anyio.Event()

    def advance(message_id: str, state: DeliveryState) -> None:
        old = states.get(message_id, DeliveryState.PENDING)
        if _STATE_ORDER.index(state) >= _STATE_ORDER.index(old):
            states[message_id] = state

    def on_event(event: Event) -> None:
        nonlocal changed
        if isinstance(event, DeliveryStateChanged):
            advance(event.message_id, event.state)
            changed.set()
            changed = anyio.Event()

    async with open_client(args, online=True, on_event=on_event) as client:
        contact = await resolve_contact(client, args.user)
        name = contact.display_name or contact.user_id
        reply_to = None
        if args.reply_to is not None:
            reply_to = await resolve_message_id(client, contact.user_id, args.reply_to)
        earlier = [
            message
            for message in await client.history(contact.user_id, limit=_EARLIER_LOOKED_AT)
            if message.direction is Direction.OUTGOING
            and message.state in (DeliveryState.PENDING, DeliveryState.SENT)
        ]
        for message in earlier:
            advance(message.message_id, message.state)
        if earlier:
            print(f"{len(earlier)} earlier message(s) to {name} still queued: sending", file=out)
        sent = await client.send_text(
            contact.user_id, args.text, reply_to=reply_to, ttl_seconds=args.ttl
        )
        print(f"Queued {sent.message_id} for {name}", file=out)
        waited = [sent.message_id, *(message.message_id for message in earlier)]
        with anyio.move_on_after(args.wait):
            while any(states.get(m, DeliveryState.PENDING) not in _FINAL for m in waited):
                await changed.wait()
        state = states.get(sent.message_id, DeliveryState.PENDING)
    late = [m for m in waited[1:] if states[m] not in _FINAL]
    if late:
        print(f"{len(late)} earlier message(s) still queued", file=out)
    print(f"{sent.message_id} {state.value}", file=out)
    if state is DeliveryState.FAILED:
        raise ConfigurationError(f"message {sent.message_id} could not be delivered")
    if state in _FINAL:
        return 0
    print(
        f"Not delivered within {args.wait:g} s: the message stays in the outbox and is "
        "retried the next time send, listen or chat runs.",
        file=out,
    )
    return QUEUED_STATUS


_EARLIER_LOOKED_AT = 200
"""Latest messages of the conversation ``omega send`` looks through for queued ones."""


def _state_order() -> tuple[DeliveryState, ...]:
    from omega.storage.message_base import DeliveryState

    return (
        DeliveryState.PENDING,
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.READ,
        DeliveryState.FAILED,
    )


_STATE_ORDER = _state_order()
_FINAL = frozenset(_STATE_ORDER[2:])


async def _listen(args: argparse.Namespace, out: TextIO) -> int:

    if args.count is not None and args.count < 1:
        raise ConfigurationError("--count must be at least 1")
    with EventQueue() as queue:
        return await _listen_with(args, out, queue)


async def _listen_with(args: argparse.Namespace, out: TextIO, queue: EventQueue) -> int:
    from omega.client import GroupMessageReceived, MessageReceived

    async with open_client(args, online=True, on_event=queue) as client:
        names = ContactNames(client)
        await names.refresh()
        _announce(client, args, out)
        received = 0
        with anyio.move_on_after(args.timeout if args.timeout is not None else float("inf")):
            async for event in queue.receive:
                await _print_event(event, names, args.json, out)
                if isinstance(event, MessageReceived | GroupMessageReceived):
                    received += 1
                    if args.count is not None and received >= args.count:
                        break
        # The last message is acknowledged just after it is reported: linger so
        # that the acknowledgement (and anything else in flight) goes out.
        with anyio.move_on_after(LINGER):
            async for event in queue.receive:
                await _print_event(event, names, args.json, out)
    return 0


async def _print_event(event: Event, names: ContactNames, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(event_json(event), file=out, flush=True)
    elif (line := await describe_event(event, names)) is not None:
        print(line, file=out, flush=True)


def _announce(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    addresses = [str(address) for address in client.addresses]
    if args.json:
        record = {
            "event": "listening",
            "user_id": client.user_id,
            "contact_uri": str(client.contact_uri),
            "addresses": addresses,
        }
        print(json.dumps(record, ensure_ascii=False), file=out, flush=True)
        return
    print(f"Contact URI: {client.contact_uri}", file=out)
    if not addresses:
        print("Not listening: only outgoing connections.", file=out)
    for address in addresses:
        print(f"Listening on {address}", file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)


# -- history ----------------------------------------------------------------------
async def _history(args: argparse.Namespace, out: TextIO) -> int:
    words: list[str] = args.words
    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    if words[0] == "search" and len(words) >= 2:
        return await _history_search(args, " ".join(words[1:]), out)
    if words[0] == "export" and len(words) == 3:
        return await _history_export(args, words[1], Path(words[2]), out)
    if len(words) != 1 or args.user is not None:
        raise ConfigurationError(
            "usage: omega history USER | history search QUERY | history export USER FILE"
        )
    async with open_client(args, online=False) as client:
        contact = await resolve_contact(client, words[0])
        messages = await client.history(contact.user_id, limit=args.limit)
        names = ContactNames(client)
        await print_messages(list(reversed(messages)), names, args.json, out)
    if not messages and not args.json:
        print(f"No messages with {contact.display_name or contact.user_id} yet.", file=out)
    return 0


async def _history_search(args: argparse.Namespace, query: str, out: TextIO) -> int:
    async with open_client(args, online=False) as client:
        conversation = None
        if args.user is not None:
            conversation = (await resolve_contact(client, args.user)).user_id
        found = await client.search(query, conversation_id=conversation, limit=args.limit)
        await print_messages(found, ContactNames(client), args.json, out)
    if not found and not args.json:
        print(f"Nothing matches {query!r}.", file=out)
    return 0


async def print_messages(
    messages: list[StoredMessage], names: ContactNames, as_json: bool, out: TextIO
) -> None:
    """Print ``messages`` as text lines (``Name: text``) or as one JSON object each."""
    from omega.cli._common import message_json

    for message in messages:
        if as_json:
            print(json.dumps(message_json(message), ensure_ascii=False), file=out)
        else:
            print(format_message(message, await names.name(message.sender_id)), file=out)


async def _history_export(args: argparse.Namespace, user: str, target: Path, out: TextIO) -> int:

    async with open_client(args, online=False) as client:
        contact = await resolve_contact(client, user)
        export = await client.export_conversation(contact.user_id)
    text = json.dumps(export, ensure_ascii=False, indent=2) + "\n"
    if str(target) == "-":
        out.write(text)
        return 0
    try:
        write_private(target, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot write {target}: {exc}") from exc
    count = len(export["messages"])  # type: ignore[arg-type]
    print(f"Exported {count} message(s) with {contact.display_name or user} to {target}", file=out)
    return 0
