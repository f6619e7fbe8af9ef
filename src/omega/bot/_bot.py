"""The :class:`Bot`: an Omega peer that answers messages with handlers."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, nullcontext
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio

from omega.bot._dispatch import Dispatcher, Incoming
from omega.bot._recovery import recover
from omega.bot.base import BotStore
from omega.bot.commands import Arg, Command, call_arguments, split_command
from omega.bot.config import BotConfig
from omega.bot.context import CommandContext, MessageContext
from omega.bot.filters import ALL, Filter
from omega.bot.handoff import Handoff
from omega.bot.memory import MemoryBotStore
from omega.bot.middleware import Middleware
from omega.bot.sqlite import SQLiteBotStore
from omega.bot.webhooks import InboundEndpoint, OutboundWebhook, WebhookConfig
from omega.client import Client, ClientConfig, DataDir, MessageReceived
from omega.client.datadir import store_key
from omega.crypto import ContactUri, Identity
from omega.discovery.base import Publisher, Resolver
from omega.errors import CommandSyntaxError, LocalProtocolError, UnknownContactError
from omega.mailbox.base import KeyDirectory, Mailbox
from omega.protocol import MessageContent
from omega.session.content import content_kind
from omega.storage.base import KeyStore
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import Direction, MessageStore, StoredMessage
from omega.storage.message_memory import MemoryMessageStore
from omega.storage.message_sqlite import SQLiteMessageStore
from omega.storage.sqlite import SQLiteKeyStore
from omega.transport.address import Address
from omega.transport.registry import TransportRegistry

__all__ = ["BOT_STORE_FILE", "Bot", "MessageHandler"]

logger = logging.getLogger("omega.bot")

BOT_STORE_FILE = "bot.db"
"""The bot store's file name in a data directory."""

MessageHandler = Callable[[MessageContext], Awaitable[None]]
H = TypeVar("H", bound=Callable[..., Awaitable[None]])


def system_wall_clock() -> int:
    """The system's wall clock, Unix milliseconds."""
    return time.time_ns() // 1_000_000


_HANDLED_KINDS = frozenset({"text", "media", "location", "contact", "sticker"})


class Bot:
    """A bot: one Omega device whose incoming messages run handlers.

    ::

        bot = Bot(identity)

        @bot.command("ping")
        async def ping(ctx: CommandContext) -> None:
            await ctx.reply("pong")

        await bot.run()

    The client parts (stores, transports, listen addresses, resolver,
    store server as ``mailbox``/``key_directory``) are those of
    :class:`~omega.client.Client`; missing stores are in memory.
    ``store`` is the :class:`~omega.bot.base.BotStore` (handled messages,
    conversation state, handoffs). :meth:`from_data_dir` opens all of them
    from a data directory.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        key_store: KeyStore | None = None,
        message_store: MessageStore | None = None,
        store: BotStore | None = None,
        transports: TransportRegistry | None = None,
        listen: Sequence[Address | str] = (),
        resolver: Resolver | None = None,
        publisher: Publisher | None = None,
        mailbox: Mailbox | None = None,
        key_directory: KeyDirectory | None = None,
        mailbox_urls: Sequence[str] = (),
        client_config: ClientConfig | None = None,
        config: BotConfig | None = None,
        wall_clock: Callable[[], int] = system_wall_clock,
        owns_stores: bool = False,
    ) -> None:
        self.identity = identity
        self.config = config or BotConfig()
        self.store: BotStore = store if store is not None else MemoryBotStore()
        self.key_store: KeyStore = key_store if key_store is not None else MemoryKeyStore()
        self.message_store: MessageStore = (
            message_store if message_store is not None else MemoryMessageStore()
        )
        self.transports = transports
        self.listen: tuple[Address | str, ...] = tuple(listen)
        self.resolver = resolver
        self.publisher = publisher
        self.mailbox = mailbox
        self.key_directory = key_directory
        self.mailbox_urls = tuple(mailbox_urls)
        self.client_config = client_config
        self.wall_clock = wall_clock
        self._owns_stores = owns_stores
        self._commands: dict[str, Command] = {}
        self._aliases: dict[str, str] = {}
        self._handlers: list[tuple[Filter, MessageHandler]] = []
        self._middleware: list[Middleware] = []
        self._webhooks: list[OutboundWebhook] = []
        self._endpoints: list[InboundEndpoint] = []
        self.handoff = Handoff(self)
        """Human handoff of conversations (see :mod:`omega.bot.handoff`)."""
        self._client: Client | None = None
        self._dispatcher: Dispatcher | None = None
        self._stack: AsyncExitStack | None = None
        self._stop = anyio.Event()
        self.started = anyio.Event()
        """Set once the bot runs (after recovery was queued)."""
        self._used = False

    @classmethod
    async def from_data_dir(
        cls, data_dir: str | PathLike[str], *, passphrase: str, **options: Any
    ) -> Self:
        """The bot of the identity in ``data_dir``: the client's encrypted SQLite stores
        and the bot store ``bot.db`` beside them (state values encrypted at rest with a
        key derived from the device key). The bot closes them."""
        directory = DataDir(Path(data_dir))
        identity = directory.load_identity(passphrase)
        async with AsyncExitStack() as stack:
            keys = await SQLiteKeyStore.open(
                directory.key_store_path, encryption_key=store_key(identity, "keys")
            )
            stack.push_async_callback(keys.aclose)
            messages = await SQLiteMessageStore.open(
                directory.message_store_path, encryption_key=store_key(identity, "messages")
            )
            stack.push_async_callback(messages.aclose)
            store = await SQLiteBotStore.open(
                directory.path / BOT_STORE_FILE, encryption_key=store_key(identity, "bot")
            )
            stack.pop_all()
        return cls(
            identity,
            key_store=keys,
            message_store=messages,
            store=store,
            owns_stores=True,
            **options,
        )

    # -- registration ------------------------------------------------------
    def command(
        self,
        name: str,
        *,
        description: str | None = None,
        args: Sequence[Arg] | None = None,
        aliases: Sequence[str] = (),
        hidden: bool = False,
    ) -> Callable[[H], H]:
        """Decorator: run the handler for ``/name ...`` (see :mod:`omega.bot.commands`)."""

        def register(handler: H) -> H:
            command = Command.build(
                name, handler, description=description, args=args, aliases=aliases, hidden=hidden
            )
            for label in (command.name, *command.aliases):
                if label in self._commands or label in self._aliases:
                    raise LocalProtocolError(f"the command /{label} is registered twice")
            self._commands[command.name] = command
            for alias in command.aliases:
                self._aliases[alias] = command.name
            return handler

        return register

    def on_message(self, filter: Filter | None = None) -> Callable[[H], H]:
        """Decorator: run the handler for messages ``filter`` accepts (all by default).

        Handlers are tried in the order registered; the first match runs.
        """

        def register(handler: H) -> H:
            self._handlers.append((filter or ALL, handler))
            return handler

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware (see :mod:`omega.bot.middleware`); usable as a decorator."""
        self._middleware.append(middleware)
        return middleware

    def add_webhook(self, url: str, *, secret: bytes | str, **options: Any) -> OutboundWebhook:
        """POST every incoming message to ``url``, signed (see docs/bots.md)."""
        webhook = OutboundWebhook(WebhookConfig(url=url, secret=secret, **options), self)
        self._webhooks.append(webhook)
        return webhook

    def serve_http(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        secret: bytes | str | None = None,
    ) -> InboundEndpoint:
        """Accept authenticated ``POST /v1/messages`` to send messages (see docs/bots.md)."""
        endpoint = InboundEndpoint(self, host=host, port=port, token=token, secret=secret)
        self._endpoints.append(endpoint)
        return endpoint

    @property
    def commands(self) -> dict[str, Command]:
        """The registered commands by name."""
        return dict(self._commands)

    # -- who we are ----------------------------------------------------------
    @property
    def client(self) -> Client:
        """The bot's running client."""
        if self._client is None:
            raise LocalProtocolError("the bot is not running")
        return self._client

    @property
    def user_id(self) -> str:
        """The bot's user id."""
        return self.identity.user_id

    @property
    def contact_uri(self) -> ContactUri:
        """The bot's ``omega://`` contact URI."""
        return ContactUri(user_id=self.user_id, display_name=self.identity.display_name or None)

    @property
    def pending(self) -> int:
        """Messages queued or running."""
        return self._dispatcher.pending if self._dispatcher is not None else 0

    @property
    def handled_count(self) -> int:
        """Messages handled since the bot started."""
        return self._dispatcher.handled_count if self._dispatcher is not None else 0

    # -- lifecycle --------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._used:
            raise LocalProtocolError("a Bot runs once; make a new one to run again")
        self._used = True
        self._add_help()
        stack = AsyncExitStack()
        try:
            if self._owns_stores:
                stack.push_async_callback(self.store.aclose)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)
            dispatcher = self._dispatcher = Dispatcher(
                self._process,
                self.store,
                limit=self.config.max_concurrent_handlers,
                max_pending=self.config.max_pending,
                wall_clock=self.wall_clock,
            )
            dispatcher.start(task_group)
            client = self._client = self._build_client()
            client.on(MessageReceived)(self._on_received)
            await stack.enter_async_context(client)
            stack.push_async_callback(self._drain, task_group)
            await self.handoff.load()
            for webhook in self._webhooks:
                webhook.start(task_group)
                stack.push_async_callback(webhook.stop)
            for endpoint in self._endpoints:
                await endpoint.start(task_group)
                stack.push_async_callback(endpoint.stop)
            recovered = await recover(self, dispatcher)
            if recovered:
                logger.info("event=bot_recovered messages=%d", recovered)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.started.set()
        logger.info("event=bot_started user=%s", self.user_id[:20])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop gracefully: take no new messages, let running handlers finish (up to
        ``shutdown_timeout``), close the client and owned stores."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
            logger.info("event=bot_stopped handled=%d", self.handled_count)

    async def _drain(self, task_group: anyio.abc.TaskGroup) -> None:
        dispatcher = self._dispatcher
        assert dispatcher is not None
        dispatcher.stop_accepting()
        with anyio.move_on_after(self.config.shutdown_timeout) as scope:
            await dispatcher.wait_idle()
        if scope.cancelled_caught:
            logger.warning("event=bot_shutdown_timeout unfinished=%d", dispatcher.pending)
        task_group.cancel_scope.cancel()

    def stop(self) -> None:
        """Ask :meth:`run` to stop (as SIGINT/SIGTERM do)."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until :meth:`stop` (or SIGINT/SIGTERM when ``handle_signals``)."""
        async with anyio.create_task_group() as task_group:
            if handle_signals:
                await task_group.start(self._watch_signals)
            async with self:
                await self._stop.wait()
            task_group.cancel_scope.cancel()

    async def _watch_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    logger.info("event=bot_shutdown_requested signal=%d", signum)
                    self.stop()
                    return
        except (RuntimeError, ValueError, NotImplementedError) as exc:  # pragma: no cover
            logger.warning("event=bot_no_signal_handlers reason=%s", exc)
            task_status.started()

    def _build_client(self) -> Client:
        return Client(
            identity=self.identity,
            key_store=self.key_store,
            message_store=self.message_store,
            transports=self.transports,
            listen=self.listen,
            resolver=self.resolver,
            publisher=self.publisher,
            mailbox=self.mailbox,
            key_directory=self.key_directory,
            mailbox_urls=self.mailbox_urls,
            config=self.client_config,
            wall_clock=self.wall_clock,
            owns_stores=self._owns_stores,
        )

    # -- sending --------------------------------------------------------------------
    async def send(
        self, user_id: str, content: MessageContent | str, *, reply_to: str | None = None
    ) -> StoredMessage:
        """Send to ``user_id``, adding them as a contact first when they are not one."""
        client = self.client
        try:
            return await client.send(user_id, content, reply_to=reply_to)
        except UnknownContactError:
            try:
                await client.contact(user_id)
            except UnknownContactError:
                await client.add_contact(user_id)
                return await client.send(user_id, content, reply_to=reply_to)
            raise

    # -- receiving ----------------------------------------------------------------
    async def _on_received(self, event: MessageReceived) -> None:
        message = event.message
        if message.direction is not Direction.INCOMING or self._dispatcher is None:
            return
        if content_kind(event.content) not in _HANDLED_KINDS:
            return
        await self._dispatcher.submit(Incoming(message, event.content))

    async def _process(self, item: Incoming) -> None:
        ctx = MessageContext(self, item.message, item.content)
        timeout = self.config.handler_timeout
        try:
            with anyio.fail_after(timeout) if timeout is not None else nullcontext():
                await self._run_middleware(ctx, 0)
        except Exception:
            logger.exception(
                "event=bot_handler_failed sender=%s message=%s",
                ctx.sender_id[:20],
                ctx.message_id,
            )
            await self._reply_quietly(ctx, self.config.error_reply)
        if self.config.mark_read:
            try:
                await self.client.mark_read(ctx.conversation_id, [ctx.message_id])
            except Exception:
                logger.exception("event=bot_mark_read_failed message=%s", ctx.message_id)

    async def _reply_quietly(self, ctx: MessageContext, text: str | None) -> None:
        if text is None:
            return
        try:
            await ctx.reply(text)
        except Exception:
            logger.exception("event=bot_reply_failed sender=%s", ctx.sender_id[:20])

    async def _run_middleware(self, ctx: MessageContext, index: int) -> None:
        if index < len(self._middleware):
            await self._middleware[index](ctx, lambda: self._run_middleware(ctx, index + 1))
        else:
            await self._route(ctx)

    async def _route(self, ctx: MessageContext) -> None:
        for webhook in self._webhooks:
            webhook.enqueue(ctx)
        if await self.handoff.route(ctx):
            return
        parsed = split_command(ctx.text, self.config.command_prefix) if ctx.kind == "text" else None
        if parsed is not None:
            name, rest = parsed
            command = self._commands.get(self._aliases.get(name, name))
            if command is not None:
                await self._run_command(ctx, command, rest)
                return
        for accepts, handler in self._handlers:
            if accepts(ctx):
                await handler(ctx)
                return
        if parsed is not None and self.config.unknown_command_reply is not None:
            reply = self.config.unknown_command_reply.replace("{name}", parsed[0][:40])
            await ctx.reply(reply)

    async def _run_command(self, ctx: MessageContext, command: Command, rest: str) -> None:
        try:
            parsed = command.parse(rest)
        except CommandSyntaxError as exc:
            if self.config.syntax_error_reply is not None:
                await ctx.reply(self.config.syntax_error_reply.replace("{error}", exc.message))
            return
        command_ctx = CommandContext(
            self,
            ctx.message,
            ctx.content,
            command=command.name,
            words=parsed.words,
            arguments=parsed.arguments,
        )
        command_ctx.extras.update(ctx.extras)
        positional, keywords = call_arguments(command, parsed)
        await command.handler(command_ctx, *positional, **keywords)

    def _add_help(self) -> None:
        if not self.config.help_command or "help" in self._commands or "help" in self._aliases:
            return

        async def help_command(ctx: CommandContext, name: str | None = None) -> None:
            """List the commands, or explain one."""
            await ctx.reply(self.help_text(name))

        self.command("help")(help_command)

    def help_text(self, name: str | None = None) -> str:
        """The generated help: every visible command, or one command in detail."""
        prefix = self.config.command_prefix
        if name is not None:
            key = name.removeprefix(prefix).lower()
            command = self._commands.get(self._aliases.get(key, key))
            if command is None:
                return f"No command {prefix}{key}. Send {prefix}help for the list."
            return command.help_text().replace("/", prefix, 1)
        lines = [self.config.help_header] if self.config.help_header else []
        for command in sorted(self._commands.values(), key=lambda c: c.name):
            if not command.hidden:
                usage = command.usage.replace("/", prefix, 1)
                lines.append(f"{usage} - {command.description}" if command.description else usage)
        return "\n".join(lines)
