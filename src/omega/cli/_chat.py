"""``omega chat USER``: an interactive conversation in the terminal.

Lines typed are sent; lines starting with ``/`` are commands (``/help``).
Incoming messages, reactions, edits, typing notices and delivery ticks of our
messages are printed as they arrive while the user types: in a terminal the
line being typed is redrawn under them (with GNU readline where Python has
it). Standard input is read by a daemon thread, so the chat also runs with a
pipe as input (one line per message; end of input leaves), which is how the
tests drive it.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.from_thread
import anyio.lowlevel

from omega.cli._common import (
    DEFAULT_LISTEN,
    ContactNames,
    EventQueue,
    add_client_options,
    add_listen_options,
    describe_event,
    format_message,
    open_client,
    resolve_contact,
    resolve_message_id,
    short_id,
)
from omega.errors import ConfigurationError, OmegaError

if TYPE_CHECKING:
    from anyio.abc import ObjectSendStream

    from omega.client import Client, Event
    from omega.storage.message_base import ContactRecord

__all__ = ["HELP_TEXT", "register", "run_chat"]

PROMPT = "> "
HISTORY_SHOWN = 10
"""Messages of the history shown when the chat opens."""

HELP_TEXT = """\
Type a message and press Enter to send it. Commands:
  /history [N]      the last N messages (default 20)
  /reply ID TEXT    answer message ID (any unique prefix of the id shown)
  /react ID EMOJI   react to a message (/react ID alone removes your reaction)
  /edit ID TEXT     change the text of one of your messages
  /delete ID        delete a message (yours: for everyone; theirs: here only)
  /typing           tell them you are typing
  /help             this help
  /quit             leave (also Ctrl-D)
Start a message with // to send a text beginning with /."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``omega chat`` to the parser."""
    chat = commands.add_parser(
        "chat",
        help="chat with a contact in the terminal",
        description="Chat with USER: type lines to send them; incoming messages and "
        "delivery ticks appear as they arrive. Shown messages are marked read. "
        "/help lists the commands.",
    )
    chat.add_argument("user", metavar="USER", nargs="?", help="a user id or a unique name prefix")
    chat.add_argument(
        "--group", default=None, metavar="GROUP", help="chat in a group instead (see `omega group`)"
    )
    add_listen_options(chat, default=(DEFAULT_LISTEN,))
    add_client_options(chat)
    chat.set_defaults(handler=cmd_chat)


def cmd_chat(args: argparse.Namespace, out: TextIO) -> int:
    """``omega chat``: run the chat on standard input until /quit, end of input or Ctrl-C."""
    try:
        status: int = anyio.run(run_chat, args, out, sys.stdin)
    except KeyboardInterrupt:
        print("\nBye.", file=out)
        return 0
    return status


class Screen:
    """Prints lines above the one being typed (in a terminal), or plainly (otherwise)."""

    def __init__(self, out: TextIO, *, interactive: bool) -> None:
        self.out = out
        self.interactive = interactive
        self.prompting = threading.Event()
        """Set while the input thread waits at the prompt (so it is on screen)."""

    def show(self, line: str) -> None:
        """Print ``line``; in a terminal, redraw the prompt and the text typed so far."""
        if not self.interactive:
            print(line, file=self.out, flush=True)
            return
        redraw = f"{PROMPT}{_typed_text()}" if self.prompting.is_set() else ""
        self.out.write(f"\r\x1b[K{line}\n{redraw}")
        self.out.flush()

    def close(self) -> None:
        """Clear the prompt line before leaving."""
        if self.interactive:
            self.out.write("\r\x1b[K")


def _typed_text() -> str:
    try:
        import readline
    except ImportError:  # pragma: no cover - Python without readline
        return ""
    return readline.get_line_buffer()


def _read_lines(
    stdin: TextIO,
    send: ObjectSendStream[str | None],
    token: anyio.lowlevel.EventLoopToken,
    prompting: threading.Event | None,
) -> None:
    """Read lines in a daemon thread and hand them to the event loop; None at the end.

    With ``prompting`` (a terminal), lines are read with :func:`input` (line
    editing by readline) and the event is set while the prompt is shown.
    """
    try:
        while True:
            if prompting is not None:
                prompting.set()
                try:
                    line: str | None = input(PROMPT)
                except EOFError:
                    line = None
                finally:
                    prompting.clear()
            else:
                text = stdin.readline()
                line = text.rstrip("\r\n") if text else None
            anyio.from_thread.run(send.send, line, token=token)
            if line is None:
                return
    except Exception:  # the chat has ended: nobody is left to tell
        return


async def run_chat(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    """Run the chat reading ``stdin`` and writing ``out``; return the exit status."""
    interactive = stdin.isatty() and out.isatty()
    lines_send, lines_receive = anyio.create_memory_object_stream[str | None](16)
    with EventQueue() as events, lines_send, lines_receive:
        async with open_client(args, online=True, on_event=events) as client:
            screen = Screen(out, interactive=interactive)
            chat = await _open_chat(client, args, screen)
            await chat.open()
            prompting = screen.prompting if interactive else None
            reader = threading.Thread(
                target=_read_lines,
                args=(stdin, lines_send, anyio.lowlevel.current_token(), prompting),
                name="omega-chat-input",
                daemon=True,
            )
            async with anyio.create_task_group() as group:
                group.start_soon(chat.show_events, events.receive)
                reader.start()
                async for line in lines_receive:
                    if line is None or not await chat.handle(line):
                        break
                group.cancel_scope.cancel()
            screen.close()
    print("Bye.", file=out, flush=True)
    return 0


async def _open_chat(client: Client, args: argparse.Namespace, screen: Screen) -> _Chat:
    """The chat with the contact USER, or in the group ``--group``."""
    if (args.user is None) == (args.group is None):
        raise ConfigurationError("name a contact (USER) or a group (--group GROUP), not both")
    if args.group is not None:
        from omega.cli._group_chat import GroupChat
        from omega.cli._group_commands import resolve_group

        return GroupChat(client, resolve_group(client, args.group), screen)
    return _Chat(client, await resolve_contact(client, args.user), screen)


class _Chat:
    """The state of one chat: whom we talk to, how to print, what the user typed."""

    def __init__(self, client: Client, contact: ContactRecord, screen: Screen) -> None:
        self.client = client
        self.contact = contact
        self.screen = screen
        self.names = ContactNames(client)
        self.name = contact.display_name or contact.user_id

    async def open(self) -> None:
        """Print the header and the end of the history; mark it read."""
        await self.names.refresh()
        where = ", ".join(str(address) for address in self.client.addresses) or "nowhere"
        self.screen.show(f"Chat with {self.name} ({self.contact.user_id}); listening on {where}.")
        if self.contact.blocked:
            self.screen.show(f"{self.name} is blocked: `omega contact unblock` first to write.")
        await self.show_history(HISTORY_SHOWN)
        self.screen.show("Type /help for the commands, /quit to leave.")

    async def show_history(self, count: int) -> None:
        """Print the last ``count`` messages and mark the incoming ones read."""
        messages = await self.client.history(self.contact.user_id, limit=count)
        for message in reversed(messages):
            self.screen.show(format_message(message, await self.names.name(message.sender_id)))
        if messages:
            await self.client.mark_read(self.contact.user_id)

    async def show_events(self, receive: anyio.abc.ObjectReceiveStream[Event]) -> None:
        """Print events as they arrive; mark the messages shown read."""
        from omega.client import DeliveryStateChanged, MessageReceived, TypingChanged
        from omega.storage.message_base import Direction

        mine = self.contact.user_id
        async for event in receive:
            if isinstance(event, MessageReceived) and event.message.conversation_id != mine:
                sender = await self.names.name(event.message.sender_id)
                self.screen.show(f"(new message from {sender}: `omega chat` them to answer)")
                continue
            if isinstance(event, TypingChanged) and event.user_id != mine:
                continue
            if isinstance(event, DeliveryStateChanged) and event.conversation_id != mine:
                continue
            line = await describe_event(event, self.names)
            if line is not None:
                self.screen.show(line)
            if isinstance(event, MessageReceived) and event.message.direction is Direction.INCOMING:
                await self._mark_read(event.message.message_id)

    async def _mark_read(self, message_id: str) -> None:
        try:
            await self.client.mark_read(self.contact.user_id, [message_id])
        except OmegaError as exc:  # pragma: no cover - a failing disk
            self.screen.show(f"could not mark {short_id(message_id)} read: {exc.message}")

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False to leave. Errors are shown, not fatal."""
        try:
            return await self._handle(line.strip())
        except OmegaError as exc:
            self.screen.show(f"error: {exc.message}")
            return True

    async def _handle(self, line: str) -> bool:
        if not line:
            return True
        if line.startswith("//"):
            await self._send(line[1:])
            return True
        if not line.startswith("/"):
            await self._send(line)
            return True
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        if command in ("/quit", "/exit", "/q"):
            return False
        handler = self._commands().get(command)
        if handler is None:
            self.screen.show(f"unknown command {command}: /help lists them")
            return True
        await handler(rest)
        return True

    def _commands(self) -> dict[str, _Command]:
        return {
            "/help": self._help,
            "/history": self._history,
            "/reply": self._reply,
            "/react": self._react,
            "/edit": self._edit,
            "/delete": self._delete,
            "/typing": self._typing,
        }

    async def _send(self, text: str, *, reply_to: str | None = None) -> None:
        sent = await self.client.send_text(self.contact.user_id, text, reply_to=reply_to)
        self.screen.show(format_message(sent, "me"))

    async def _help(self, rest: str) -> None:
        for line in HELP_TEXT.splitlines():
            self.screen.show(line)

    async def _history(self, rest: str) -> None:
        try:
            count = int(rest) if rest else 20
        except ValueError:
            count = 0
        if not 1 <= count <= 1000:
            self.screen.show("usage: /history [N], N from 1 to 1000")
            return
        await self.show_history(count)

    async def _target(self, rest: str, usage: str) -> tuple[str, str] | None:
        """The message id a command names and the rest of the line."""
        target, _, text = rest.partition(" ")
        if not target:
            self.screen.show(f"usage: {usage}")
            return None
        return await resolve_message_id(self.client, self.contact.user_id, target), text.strip()

    async def _reply(self, rest: str) -> None:
        found = await self._target(rest, "/reply ID TEXT")
        if found is not None and found[1]:
            await self._send(found[1], reply_to=found[0])
        elif found is not None:
            self.screen.show("usage: /reply ID TEXT")

    async def _react(self, rest: str) -> None:
        found = await self._target(rest, "/react ID EMOJI")
        if found is not None:
            await self.client.react(self.contact.user_id, found[0], found[1])
            done = f"reacted {found[1]} to" if found[1] else "removed your reaction to"
            self.screen.show(f"{done} {short_id(found[0])}")

    async def _edit(self, rest: str) -> None:
        found = await self._target(rest, "/edit ID TEXT")
        if found is None:
            return
        if not found[1]:
            self.screen.show("usage: /edit ID TEXT")
            return
        edited = await self.client.edit(self.contact.user_id, found[0], found[1])
        self.screen.show(format_message(edited, "me"))

    async def _delete(self, rest: str) -> None:
        from omega.storage.message_base import Direction

        found = await self._target(rest, "/delete ID")
        if found is None:
            return
        [message] = [
            m
            for m in await self.client.history(self.contact.user_id, limit=1000)
            if m.message_id == found[0]
        ]
        for_everyone = message.direction is Direction.OUTGOING
        await self.client.delete(self.contact.user_id, found[0], for_everyone=for_everyone)

    async def _typing(self, rest: str) -> None:
        await self.client.send_typing(self.contact.user_id, True)
        self.screen.show(f"{self.name} is told you are typing")


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    _Command = Callable[[str], Awaitable[None]]
