"""Testing helpers for bot authors: :class:`BotTestClient`, and :func:`check_bot_store`.

::

    async with BotTestClient(bot) as tester:
        reply = await tester.send("/ping")
        assert reply.text == "pong"

The tester runs the bot and a real :class:`~omega.client.Client` for a user
on an in-memory network (memory transport, memory stores): messages are end
to end encrypted exactly as in production, only faster.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from omega.bot._bot import Bot
from omega.bot.base import BotStore
from omega.client import Client, ClientConfig, MessageReceived
from omega.crypto import Identity
from omega.errors import ConfigurationError
from omega.protocol import MessageContent
from omega.session.content import content_kind
from omega.session.delivery import DeliveryConfig
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import StoredMessage
from omega.storage.message_memory import MemoryMessageStore
from omega.transport import MemoryNetwork, MemoryTransport, TransportRegistry

__all__ = ["FAST_CLIENT_CONFIG", "BotTestClient", "Reply", "TestUser", "check_bot_store"]

FAST_CLIENT_CONFIG = ClientConfig(
    delivery=DeliveryConfig(initial_backoff=0.05, max_backoff=0.2, ack_timeout=0.5, jitter=0.0),
    key_request_timeout=2.0,
    mailbox_poll_interval=0.2,
    sweep_interval=0.05,
)
"""Short retry timers for clients on a memory network."""

_addresses = itertools.count()


@dataclass(frozen=True, slots=True)
class Reply:
    """A message the bot sent to a test user."""

    message: StoredMessage
    content: MessageContent

    @property
    def text(self) -> str:
        """Its text ('' for other kinds)."""
        return self.content.text.text if self.content.text is not None else ""

    @property
    def kind(self) -> str:
        """Its content kind."""
        return content_kind(self.content)


class TestUser:
    """A user talking to the bot: a real client on the memory network."""

    __test__ = False  # not a pytest class

    def __init__(self, client: Client, bot_id: str) -> None:
        self.client = client
        self._bot_id = bot_id
        self._send: MemoryObjectSendStream[Reply]
        self._receive: MemoryObjectReceiveStream[Reply]
        self._send, self._receive = anyio.create_memory_object_stream[Reply](10_000)
        client.on(MessageReceived)(self._on_message)

    @property
    def user_id(self) -> str:
        """This user's id."""
        return self.client.user_id

    def close(self) -> None:
        """Release the reply queue (the tester does this on exit)."""
        self._send.close()
        self._receive.close()

    async def _on_message(self, event: MessageReceived) -> None:
        if event.message.sender_id == self._bot_id:
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                self._send.send_nowait(Reply(event.message, event.content))

    async def send(
        self,
        content: MessageContent | str,
        *,
        timeout: float = 10.0,
        reply_to: str | None = None,
    ) -> Reply:
        """Send to the bot and return its next message."""
        await self.say(content, reply_to=reply_to)
        return await self.receive(timeout=timeout)

    async def say(self, content: MessageContent | str, *, reply_to: str | None = None) -> str:
        """Send to the bot without waiting; return the message id."""
        sent = await self.client.send(self._bot_id, content, reply_to=reply_to)
        return sent.message_id

    async def receive(self, *, timeout: float = 10.0) -> Reply:
        """The bot's next message to this user (TimeoutError after ``timeout`` s)."""
        with anyio.fail_after(timeout):
            return await self._receive.receive()

    def pending(self) -> list[Reply]:
        """Messages from the bot received and not yet read with :meth:`receive`."""
        replies: list[Reply] = []
        while True:
            try:
                replies.append(self._receive.receive_nowait())
            except anyio.WouldBlock:
                return replies

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Fail if the bot sends anything within ``seconds``."""
        with anyio.move_on_after(seconds):
            reply = await self._receive.receive()
            raise AssertionError(f"the bot unexpectedly said {reply.text!r}")


class BotTestClient:
    """Runs ``bot`` and test users on one in-memory network.

    The bot must not be running and must not have transports of its own: the
    tester gives it the memory transport. The tester itself is the first
    user (:meth:`send`, :meth:`receive`); :meth:`new_user` adds more.
    """

    def __init__(
        self, bot: Bot, *, network: MemoryNetwork | None = None, user_name: str = "Tester"
    ) -> None:
        if bot.transports is not None:
            raise ConfigurationError("BotTestClient gives the bot its transport; pass none")
        self.bot = bot
        self.network = network or MemoryNetwork()
        bot.transports = self.registry()
        bot.listen = (f"/memory/bot-{next(_addresses)}",)
        if bot.client_config is None:
            bot.client_config = FAST_CLIENT_CONFIG
        self._stack: AsyncExitStack | None = None
        self._user: TestUser | None = None
        self._user_name = user_name

    def registry(self) -> TransportRegistry:
        """A transport registry on the tester's memory network."""
        registry = TransportRegistry()
        registry.register("memory", lambda: MemoryTransport(self.network))
        return registry

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.bot)
            self._stack = stack
            self._user = await self.new_user(self._user_name)
        except BaseException:
            self._stack = None
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def new_user(self, name: str, *, identity: Identity | None = None) -> TestUser:
        """Another user, running until the tester exits, with the bot as a contact."""
        assert self._stack is not None, "use the BotTestClient in 'async with'"
        identity = identity or Identity.create(
            display_name=name, device_name="phone", created_at=self.bot.wall_clock()
        )
        client = Client(
            identity=identity,
            key_store=MemoryKeyStore(),
            message_store=MemoryMessageStore(),
            transports=self.registry(),
            listen=[f"/memory/user-{next(_addresses)}"],
            config=FAST_CLIENT_CONFIG,
        )
        user = TestUser(client, self.bot.user_id)
        self._stack.callback(user.close)
        await self._stack.enter_async_context(client)
        await client.add_contact(str(self.bot.contact_uri), addresses=self.bot.client.addresses)
        await self.bot.client.add_contact(str(client.contact_uri), addresses=client.addresses)
        return user

    @property
    def user(self) -> TestUser:
        """The first user."""
        assert self._user is not None, "use the BotTestClient in 'async with'"
        return self._user

    async def send(
        self, content: MessageContent | str, *, timeout: float = 10.0, reply_to: str | None = None
    ) -> Reply:
        """Send as the first user and return the bot's next message."""
        return await self.user.send(content, timeout=timeout, reply_to=reply_to)

    async def receive(self, *, timeout: float = 10.0) -> Reply:
        """The bot's next message to the first user."""
        return await self.user.receive(timeout=timeout)


async def check_bot_store(factory: Callable[[], Awaitable[BotStore]]) -> None:
    """The conformance suite every :class:`~omega.bot.base.BotStore` passes."""
    store = await factory()
    async with store:
        assert await store.checkpoint() is None
        await store.set_checkpoint(1000)
        assert await store.checkpoint() == 1000
        assert not await store.is_handled("conv", "m1")
        await store.mark_handled("conv", "m1", at=2000)
        await store.mark_handled("conv", "m2", at=3000, checkpoint=2500)
        assert await store.is_handled("conv", "m1")
        assert not await store.is_handled("other", "m1")
        assert await store.checkpoint() == 2500
        assert await store.prune_handled(2500) == 1
        assert not await store.is_handled("conv", "m1")
        assert await store.is_handled("conv", "m2")
        assert await store.load_state("conv") == {}
        await store.save_state("conv", {"step": 2, "items": ["a", "b"], "name": "Zoë"})
        assert await store.load_state("conv") == {"step": 2, "items": ["a", "b"], "name": "Zoë"}
        for bad in ({"x": object()}, {"x": "y" * 70_000}):
            try:
                await store.save_state("conv", bad)
            except ConfigurationError:
                pass
            else:
                raise AssertionError("invalid state was accepted")
        assert (await store.load_state("conv"))["step"] == 2
        await store.save_state("conv", {})
        assert await store.load_state("conv") == {}
        assert await store.handoffs() == {}
        await store.set_handoff("customer", "human")
        assert await store.handoffs() == {"customer": "human"}
        await store.set_handoff("customer", None)
        await store.set_handoff("customer", None)
        assert await store.handoffs() == {}
