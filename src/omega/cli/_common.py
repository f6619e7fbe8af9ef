"""What the client commands share: opening the client, naming contacts, printing events."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc

from omega.client.datadir import DataDir
from omega.errors import ConfigurationError, StorageError, UnknownContactError

if TYPE_CHECKING:
    from omega.client import Client, Event
    from omega.storage.message_base import ContactRecord, StoredMessage

__all__ = [
    "DEFAULT_LISTEN",
    "ContactNames",
    "add_client_options",
    "add_listen_options",
    "event_json",
    "EventQueue",
    "format_time",
    "open_client",
    "resolve_contact",
    "short_id",
]

DEFAULT_LISTEN = "/ip4/0.0.0.0/tcp/7447"
"""Where ``omega listen`` and ``omega chat`` listen unless told otherwise."""

MIN_USER_ID_PREFIX = 10
"""Shortest user-id prefix accepted to name a contact."""

SHORT_ID_LENGTH = 8
"""Characters of a message id shown in readable output (any unique prefix is accepted)."""


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The passphrase option every command that unlocks the identity takes."""
    from omega.cli import PASSPHRASE_ENV

    parser.add_argument(
        "--passphrase-file",
        default=None,
        metavar="FILE",
        help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else a prompt)",
    )


def add_listen_options(parser: argparse.ArgumentParser, *, default: Sequence[str]) -> None:
    """``--listen ADDR`` (repeatable) and ``--no-listen``."""
    shown = ", ".join(default) if default else "none"
    parser.add_argument(
        "--listen",
        action="append",
        default=None,
        metavar="ADDR",
        help=f"listen on this address, repeatable (default: {shown}); port 0 picks a free port",
    )
    parser.add_argument(
        "--no-listen", action="store_true", help="do not listen (outgoing connections only)"
    )
    parser.set_defaults(default_listen=tuple(default))


def listen_addresses(args: argparse.Namespace) -> tuple[str, ...]:
    """The addresses to listen on according to ``--listen`` / ``--no-listen``."""
    if getattr(args, "no_listen", False):
        return ()
    given: list[str] | None = getattr(args, "listen", None)
    if given:
        return tuple(given)
    return tuple(getattr(args, "default_listen", ()))


class EventQueue:
    """Events of a client, queued for one reader.

    Pass the queue as :func:`open_client`'s ``on_event``; read ``receive``;
    use it in ``with`` so both ends are closed. When ``size`` events wait
    unread, newer ones are dropped rather than stalling the client.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._send, self.receive = anyio.create_memory_object_stream["Event"](size)

    def __call__(self, event: Event) -> None:
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._send.send_nowait(event)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self.receive.close()


@asynccontextmanager
async def open_client(
    args: argparse.Namespace,
    *,
    online: bool,
    on_event: Callable[[Event], object] | None = None,
) -> AsyncIterator[Client]:
    """The client of ``--data-dir``, unlocked with the passphrase.

    ``online``: the client runs (listens on :func:`listen_addresses`, delivers
    the outbox, receives) until the block ends. Otherwise only its stores are
    open: enough for contacts and history, and nothing touches the network.
    The contacts' saved address hints are given to the client before it starts;
    ``on_event`` is registered for every event before it starts too, so
    nothing received while starting is missed.
    """
    from omega.cli import _read_passphrase
    from omega.client import Client
    from omega.client import Event as AnyEvent
    from omega.client.datadir import store_key
    from omega.storage.message_sqlite import SQLiteMessageStore
    from omega.storage.sqlite import SQLiteKeyStore

    directory = DataDir(Path(args.data_dir))
    if not directory.exists():  # say so before asking for a passphrase that cannot help
        raise StorageError(
            f"no identity in {directory.path}: create one with `omega init`",
            details={"data_dir": str(directory.path)},
        )
    book = directory.load_address_book()
    passphrase = _read_passphrase(args, confirm=False)
    identity = await anyio.to_thread.run_sync(directory.load_identity, passphrase)
    async with AsyncExitStack() as stack:
        key_store = await SQLiteKeyStore.open(
            directory.key_store_path, encryption_key=store_key(identity, "keys")
        )
        stack.push_async_callback(key_store.aclose)
        message_store = await SQLiteMessageStore.open(
            directory.message_store_path, encryption_key=store_key(identity, "messages")
        )
        stack.push_async_callback(message_store.aclose)
        client = Client(
            identity=identity,
            key_store=key_store,
            message_store=message_store,
            listen=listen_addresses(args) if online else (),
        )
        if online:
            if own := book.get(identity.user_id):
                client.add_device_addresses(own)  # where our other devices are
            for contact in await client.contacts():
                if hints := book.get(contact.user_id):
                    await client.add_contact(contact.user_id, addresses=hints)
            if on_event is not None:
                client.on(AnyEvent)(on_event)
            await stack.enter_async_context(client)
        yield client


async def resolve_contact(client: Client, text: str) -> ContactRecord:
    """The contact ``text`` names: a user id, a unique prefix of one (at least 10
    characters), or a unique display-name prefix (any case; an exact name wins).

    Raises :class:`~omega.errors.UnknownContactError` saying what matched.
    """
    wanted = text.strip()
    contacts = await client.contacts()
    for contact in contacts:
        if contact.user_id == wanted.lower():
            return contact
    folded = wanted.casefold()
    if folded.startswith("omega1") and len(folded) >= MIN_USER_ID_PREFIX:
        matches = [c for c in contacts if c.user_id.startswith(folded)]
    else:
        exact = [c for c in contacts if c.display_name.casefold() == folded]
        matches = exact or [c for c in contacts if c.display_name.casefold().startswith(folded)]
    if len(matches) == 1 and folded:
        return matches[0]
    if not matches or not folded:
        raise UnknownContactError(
            f"no contact matches {wanted!r}: see `omega contact list`, "
            "or add one with `omega contact add URI`",
            details={"query": wanted},
        )
    names = ", ".join(f"{c.display_name} ({c.user_id})" for c in matches)
    raise UnknownContactError(
        f"{wanted!r} matches several contacts: {names}; give more of the name or the user id",
        details={"query": wanted},
    )


class ContactNames:
    """Display names of user ids for printing, ``me`` for our own."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._names: dict[str, str] = {client.user_id: "me"}

    async def refresh(self) -> None:
        """Reload the names from the contacts."""
        for contact in await self._client.contacts():
            self._names[contact.user_id] = contact.display_name or short_user(contact.user_id)

    async def name(self, user_id: str) -> str:
        """The name of ``user_id`` (the contacts are reloaded for a new one)."""
        if user_id not in self._names:
            await self.refresh()
        return self._names.get(user_id) or short_user(user_id)


def short_user(user_id: str) -> str:
    """A user id shortened for display."""
    return user_id[:14] + "…"


def short_id(message_id: str) -> str:
    """A message id shortened for display."""
    return message_id[:SHORT_ID_LENGTH]


def format_time(milliseconds: int) -> str:
    """Local wall-clock time of a Unix-milliseconds timestamp, ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(milliseconds / 1000))


def format_message(message: StoredMessage, sender: str) -> str:
    """One readable line for a stored message."""
    from omega.storage.message_base import Direction

    text = "(deleted)" if message.deleted else message.text or _kind(message)
    suffix = "" if message.edited_at is None else " (edited)"
    state = f" [{message.state.value}]" if message.direction is Direction.OUTGOING else ""
    reply = f" ↪{short_id(message.reply_to)}" if message.reply_to else ""
    return (
        f"[{format_time(message.timestamp)}] {short_id(message.message_id)}{reply} "
        f"{sender}: {text}{suffix}{state}"
    )


def _kind(message: StoredMessage) -> str:
    from omega.protocol import MessageContent, decode_message
    from omega.session.content import content_kind

    if not message.content:
        return "(empty)"
    return f"({content_kind(decode_message(MessageContent, message.content))})"


def event_name(event: Event) -> str:
    """``MessageReceived`` -> ``message_received``."""
    name = type(event).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def event_json(event: Event) -> str:
    """One event as a JSON object on one line (``event`` names its kind)."""
    record: dict[str, object] = {"event": event_name(event)}
    for field in dataclasses.fields(event):
        record[field.name] = _jsonable(getattr(event, field.name))
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def _jsonable(value: object) -> object:
    from omega.protocol import MessageContent

    if isinstance(value, MessageContent):
        loaded: object = json.loads(value.to_json())
        return loaded
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.name != "content"  # the encoded content: see the decoded one
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


async def resolve_message_id(client: Client, conversation_id: str, text: str) -> str:
    """The full id of the message of this conversation whose id starts with ``text``.

    Looks through the latest 1000 messages. Raises
    :class:`~omega.errors.ConfigurationError` when none or several match.
    """
    prefix = text.strip().lower()
    if len(prefix) < 4:
        raise ConfigurationError(f"give at least 4 characters of the message id, not {text!r}")
    matches = {
        message.message_id
        for message in await client.history(conversation_id, limit=1000)
        if message.message_id.startswith(prefix)
    }
    if len(matches) == 1:
        return matches.pop()
    if not matches:
        raise ConfigurationError(f"no message {text!r} in this conversation")
    raise ConfigurationError(f"{text!r} matches several messages: give more of the id")


async def describe_event(event: Event, names: ContactNames) -> str | None:
    """One readable line for an event (None for events not worth a line)."""
    from omega.client import (
        ContactDevicesChanged,
        DecryptionFailed,
        DeliveryStateChanged,
        MessageDeleted,
        MessageEdited,
        MessageExpired,
        MessageReceived,
        MessageRefused,
        ReactionReceived,
        SessionReset,
        TypingChanged,
    )

    if isinstance(event, MessageReceived):
        return format_message(event.message, await names.name(event.message.sender_id))
    if isinstance(event, MessageEdited):
        sender = await names.name(event.message.sender_id)
        return f"{sender} edited {short_id(event.message.message_id)}: {event.message.text}"
    if isinstance(event, MessageDeleted):
        who = await names.name(event.deleted_by)
        scope = " for everyone" if event.for_everyone else ""
        return f"{who} deleted {short_id(event.message_id)}{scope}"
    if isinstance(event, MessageExpired):
        return f"{short_id(event.message_id)} expired and was deleted"
    if isinstance(event, ReactionReceived):
        who = await names.name(event.sender_id)
        if not event.emoji:
            return f"{who} removed their reaction to {short_id(event.target_message_id)}"
        return f"{who} reacted {event.emoji} to {short_id(event.target_message_id)}"
    if isinstance(event, DeliveryStateChanged):
        return f"{TICKS[event.state.value]} {short_id(event.message_id)} {event.state.value}"
    if isinstance(event, TypingChanged):
        who = await names.name(event.user_id)
        return f"{who} is typing…" if event.typing else f"{who} stopped typing"
    if isinstance(event, ContactDevicesChanged):
        who = await names.name(event.user_id)
        line = f"{who}'s devices changed: {len(event.added)} added, {len(event.removed)} removed"
        if event.held:
            line += "; messages to the new devices wait for `omega contact accept-devices`"
        return line
    if isinstance(event, MessageRefused):
        who = await names.name(event.sender_id) if event.sender_id else "someone"
        return f"refused something from {who}: {event.reason} ({event.code})"
    if isinstance(event, DecryptionFailed):
        who = await names.name(event.sender_id)
        return f"could not decrypt a message from {who}: asked for a new session (it comes again)"
    if isinstance(event, SessionReset):
        who = await names.name(event.user_id)
        return f"{who} started a new session: re-sending {event.resent} message(s)"
    from omega.client import GroupEvent

    if isinstance(event, GroupEvent):
        from omega.cli._group_commands import describe_group_event

        return await describe_group_event(event, names)
    return None  # pragma: no cover - an event kind added later


TICKS = {"pending": "…", "sent": "✓", "delivered": "✓✓", "read": "✓✓", "failed": "✗"}
"""The mark printed before a delivery state."""


def message_json(message: StoredMessage) -> dict[str, object]:
    """A stored message as JSON-ready data, its content decoded."""
    from omega.protocol import MessageContent, decode_message
    from omega.session.content import content_kind

    record = _jsonable(message)
    assert isinstance(record, dict)
    if message.content:
        content = decode_message(MessageContent, message.content)
        record["kind"] = content_kind(content)
        record["content"] = _jsonable(content)
    return record
