"""The :class:`Client`: Omega's high-level async API for one device."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from omega.client._background import (
    mailbox_loop,
    message_json,
    prepare_prekeys,
    publish,
    sweep_loop,
)
from omega.client._contacts_api import ContactsMixin
from omega.client._core import Core, system_wall_clock
from omega.client._devices import DeviceManager
from omega.client._event_api import EventsMixin
from omega.client._group import Group
from omega.client._group_inbound import GroupInbound
from omega.client._groups import Groups
from omega.client._inbound import Inbound
from omega.client._links import Links
from omega.client._multidevice import MultiDeviceMixin
from omega.client._outbox import Outbox
from omega.client._records import outgoing_record
from omega.client._sync import SyncService
from omega.client.config import ClientConfig
from omega.client.datadir import DataDir, store_key
from omega.client.events import MessageDeleted
from omega.crypto import ContactUri, Identity
from omega.crypto.random import RandomSource, system_random
from omega.discovery.base import Publisher, Resolver
from omega.errors import (
    ConfigurationError,
    LocalProtocolError,
    UnknownContactError,
)
from omega.groups import GroupConfig, Permissions
from omega.mailbox.base import KeyDirectory, Mailbox
from omega.protocol import (
    ContactContent,
    DeleteContent,
    DeleteScope,
    EditContent,
    LocationContent,
    MediaContent,
    MessageContent,
    ReactionContent,
    ReceiptContent,
    ReceiptType,
    StickerContent,
    TextContent,
    TextEntity,
    TypingContent,
)
from omega.session.content import (
    MAX_RECEIPT_IDS,
    content_kind,
    encode_content,
)
from omega.storage.base import KeyStore
from omega.storage.message_base import (
    ConversationRecord,
    DeliveryState,
    Direction,
    MessageStore,
    StoredMessage,
)
from omega.storage.message_sqlite import SQLiteMessageStore
from omega.storage.sqlite import SQLiteKeyStore
from omega.transport.address import Address
from omega.transport.clock import Clock
from omega.transport.manager import ConnectionManager
from omega.transport.noise import NoiseCredentials
from omega.transport.registry import TransportRegistry
from omega.transport.tcp import TcpTransport
from omega.transport.websocket import WebSocketTransport

__all__ = ["Client", "standard_registry"]

logger = logging.getLogger("omega.client")


def standard_registry() -> TransportRegistry:
    """A registry with the transports every client can use: TCP and WebSocket (and QUIC
    when ``aioquic`` is installed)."""
    registry = TransportRegistry()
    registry.register("tcp", TcpTransport)
    registry.register("ws", WebSocketTransport)
    try:
        from omega.transport.quic import QuicTransport
    except ImportError:  # pragma: no cover - the quic extra is missing
        return registry
    registry.register("quic-v1", QuicTransport)
    return registry


class Client(ContactsMixin, EventsMixin, MultiDeviceMixin):
    """One device of an Omega user: contacts, end-to-end encrypted messages, history.

    Build one from a data directory (:meth:`from_data_dir`) or from injected
    parts, then use it in ``async with``: entering opens the stores, starts
    listening on ``listen``, publishes this device (prekeys to the key
    directory, device list and peer record to the publisher) and starts
    delivering; leaving stops everything cleanly (nothing is lost: the outbox
    and inbox are persistent).
    """

    def __init__(
        self,
        *,
        identity: Identity,
        key_store: KeyStore,
        message_store: MessageStore,
        transports: TransportRegistry | None = None,
        listen: Sequence[Address | str] = (),
        resolver: Resolver | None = None,
        publisher: Publisher | None = None,
        mailbox: Mailbox | None = None,
        key_directory: KeyDirectory | None = None,
        mailbox_urls: Sequence[str] = (),
        config: ClientConfig | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], int] = system_wall_clock,
        rng: RandomSource = system_random,
        owns_stores: bool = False,
        group_config: GroupConfig | None = None,
    ) -> None:
        config = config or ClientConfig()
        transports = transports if transports is not None else standard_registry()
        self._listen = tuple(a if isinstance(a, Address) else Address.parse(a) for a in listen)
        manager = ConnectionManager(
            transports,
            NoiseCredentials.from_identity(identity, rng=rng),
            config=config.connections,
            clock=clock,
            rng=rng,
        )
        self._core = Core(
            identity=identity,
            key_store=key_store,
            message_store=message_store,
            manager=manager,
            config=config,
            resolver=resolver,
            mailbox=mailbox,
            key_directory=key_directory,
            wall_clock=wall_clock,
            rng=rng,
        )
        self._publisher = publisher
        self._mailbox_urls = tuple(mailbox_urls)
        self._links = Links(self._core, on_frame=self._on_frame, on_connected=self._on_connected)
        self._outbox = Outbox(self._core, self._links)
        self._inbound = Inbound(self._core, self._links, self._outbox)
        self._sync = SyncService(self._core)
        self._inbound.sync_handler = self._sync.receive
        self._devices = DeviceManager(
            self._core,
            self._sync,
            registry=transports,
            publish=lambda: publish(self._core, publisher, self.addresses, self._mailbox_urls),
        )
        self._groups = Groups(self._core, config=group_config)
        self._inbound.groups = GroupInbound(self._groups)
        self._owns_stores = owns_stores
        self._stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self._addresses: tuple[Address, ...] = ()
        self._closed = False

    # -- construction -----------------------------------------------------
    @classmethod
    async def from_data_dir(
        cls, data_dir: str | PathLike[str], *, passphrase: str, **options: Any
    ) -> Self:
        """Open the client of the identity in ``data_dir`` (see :mod:`omega.client.datadir`).

        The key and message stores are the SQLite files beside the identity,
        encrypted at rest with keys derived from the device key; the client
        closes them. ``options`` are the other constructor arguments.
        Raises :class:`~omega.errors.WrongPassphraseError` for a bad passphrase.
        """
        directory = DataDir(Path(data_dir))
        identity = directory.load_identity(passphrase)
        key_store = await SQLiteKeyStore.open(
            directory.key_store_path, encryption_key=store_key(identity, "keys")
        )
        try:
            message_store = await SQLiteMessageStore.open(
                directory.message_store_path, encryption_key=store_key(identity, "messages")
            )
        except BaseException:
            await key_store.aclose()
            raise
        return cls(
            identity=identity,
            key_store=key_store,
            message_store=message_store,
            owns_stores=True,
            **options,
        )

    # -- lifecycle ----------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._stack is not None or self._closed:
            raise LocalProtocolError("a Client is entered once")
        core = self._core
        stack = AsyncExitStack()
        try:
            if self._owns_stores:
                stack.push_async_callback(core.keys.aclose)
                stack.push_async_callback(core.db.aclose)
            stack.callback(core.close_subscribers)
            await stack.enter_async_context(core.manager)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._task_group.cancel_scope.cancel)
            await prepare_prekeys(core)
            await self._groups.load()
            listeners = [await core.manager.listen(address) for address in self._listen]
            self._addresses = tuple(a for listener in listeners for a in listener.addresses)
            self._links.start(self._task_group)
            await self._devices.load()
            await self._inbound.drain_inbox()
            await self._sync.load()
            self._task_group.start_soon(self._outbox.run, self._task_group)
            self._task_group.start_soon(sweep_loop, core)
            if core.mailbox is not None:
                self._task_group.start_soon(mailbox_loop, core, self._inbound)
            await publish(core, self._publisher, self.addresses, self._mailbox_urls)
            await self._sync.request_catch_up()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop delivering, close connections and listeners, close owned stores."""
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
        self._closed = True

    def _running(self) -> Core:
        if self._stack is None:
            raise LocalProtocolError("use the Client in an 'async with' block")
        return self._core

    # -- who we are -----------------------------------------------------------
    @property
    def identity(self) -> Identity:
        """This device's identity."""
        return self._core.identity

    @property
    def user_id(self) -> str:
        """Our user id."""
        return self._core.user_id

    @property
    def device_id(self) -> str:
        """This device's short id."""
        return self._core.identity.device.device_id

    @property
    def contact_uri(self) -> ContactUri:
        """Our ``omega://`` contact URI (share it, or its QR code)."""
        name = self._core.identity.display_name
        return ContactUri(user_id=self.user_id, display_name=name or None)

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Where this client listens (ports resolved), each ending in our user id."""
        return tuple(dataclasses.replace(address, peer=self.user_id) for address in self._addresses)

    # -- sending ----------------------------------------------------------------
    async def send(
        self,
        user_id: str,
        content: MessageContent | str,
        *,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        ttl_seconds: int | None = None,
    ) -> StoredMessage:
        """Send ``content`` (or a text) to a contact; return the stored outgoing message.

        When this returns the message is in the persistent outbox (state
        PENDING); :class:`~omega.client.events.DeliveryStateChanged` events
        follow as it is sent, delivered and read. Raises
        :class:`~omega.errors.UnknownContactError` for a user who is not a
        contact or is blocked, :class:`~omega.errors.ConfigurationError` for
        invalid content and :class:`~omega.errors.MessageTooLargeError`.
        """
        core = self._running()
        if isinstance(content, str):
            content = MessageContent(text=TextContent(text=content))
        else:
            content = dataclasses.replace(content)
        if reply_to is not None:
            content.reply_to = reply_to
        if mentions:
            content.mentions = list(mentions)
        if ttl_seconds is not None:
            content.ttl_seconds = ttl_seconds
        contact = await self.contact(user_id)
        if contact.blocked:
            raise UnknownContactError(
                f"{user_id} is blocked; unblock them first", details={"user_id": user_id}
            )
        kind = content_kind(content)
        if kind in ("typing", "receipt"):
            raise ConfigurationError(f"use send_typing or mark_read for {kind} content")
        data = encode_content(content)
        message_id = core.new_message_id()
        now = core.now()
        history: StoredMessage | None = None
        if kind not in ("edit", "delete"):
            history = outgoing_record(
                content,
                data,
                message_id=message_id,
                conversation_id=contact.user_id,
                user_id=core.user_id,
                device_key=core.device_key,
                now=now,
                state=DeliveryState.PENDING,
                ttl_seconds=ttl_seconds,
            )
        await core.queue(contact.user_id, content, history=history, message_id=message_id, now=now)
        if history is not None:
            await self._sync.message_stored(history)
            return history
        return await self._apply_own_change(contact.user_id, content, message_id, now)

    async def _apply_own_change(
        self, conversation_id: str, content: MessageContent, message_id: str, now: int
    ) -> StoredMessage:
        """Apply our own edit or delete locally; return the changed message."""
        change = content.edit if content.edit is not None else content.delete
        assert change is not None
        async with self._core.db.transaction() as tx:
            target = await tx.get_message(conversation_id, change.target_message_id)
            if target is None:
                raise ConfigurationError("no such message in this conversation")
            if content.edit is not None and content.edit.text is not None:
                updated = dataclasses.replace(
                    target,
                    content=encode_content(
                        MessageContent(text=content.edit.text, reply_to=target.reply_to)
                    ),
                    text=content.edit.text.text,
                    edited_at=now,
                )
            else:
                updated = dataclasses.replace(target, content=b"", text="", deleted=True)
            await tx.replace_message(updated)
        await self._sync.message_stored(updated)
        return updated

    async def send_text(
        self,
        user_id: str,
        text: str,
        *,
        entities: Sequence[TextEntity] = (),
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        ttl_seconds: int | None = None,
    ) -> StoredMessage:
        """Send a text with optional entities (mentions, links, formatting)."""
        content = MessageContent(text=TextContent(text=text, entities=list(entities)))
        return await self.send(
            user_id, content, reply_to=reply_to, mentions=mentions, ttl_seconds=ttl_seconds
        )

    async def react(self, user_id: str, message_id: str, emoji: str) -> StoredMessage:
        """React to a message (an empty ``emoji`` removes our reaction)."""
        content = MessageContent(
            reaction=ReactionContent(target_message_id=message_id, emoji=emoji)
        )
        return await self.send(user_id, content)

    async def edit(self, user_id: str, message_id: str, text: str) -> StoredMessage:
        """Replace the text of one of our messages, for both sides."""
        message = await self.message(user_id, message_id)
        if message.direction is not Direction.OUTGOING:
            raise ConfigurationError("only your own messages can be edited")
        content = MessageContent(
            edit=EditContent(target_message_id=message_id, text=TextContent(text=text))
        )
        return await self.send(user_id, content)

    async def delete(self, user_id: str, message_id: str, *, for_everyone: bool = False) -> None:
        """Delete a message for us only, or (our own messages) for everyone."""
        core = self._running()
        message = await self.message(user_id, message_id)
        if for_everyone:
            if message.direction is not Direction.OUTGOING:
                raise ConfigurationError("only your own messages can be deleted for everyone")
            content = MessageContent(
                delete=DeleteContent(target_message_id=message_id, scope=DeleteScope.FOR_EVERYONE)
            )
            await self.send(user_id, content)
        else:
            async with core.db.transaction() as tx:
                await tx.delete_message(message.conversation_id, message_id)
        await core.emit(
            MessageDeleted(
                conversation_id=message.conversation_id,
                message_id=message_id,
                for_everyone=for_everyone,
                deleted_by=core.user_id,
            )
        )

    async def message(self, conversation_id: str, message_id: str) -> StoredMessage:
        """One message of a conversation (a contact's user id or a group id) by its id.

        Raises :class:`~omega.errors.ConfigurationError` when there is none.
        """
        async with self._core.db.transaction() as tx:
            message = await tx.get_message(conversation_id.lower(), message_id)
        if message is None:
            raise ConfigurationError(f"no message {message_id} in this conversation")
        return message

    async def send_location(
        self, user_id: str, latitude: float, longitude: float, *, name: str = "", address: str = ""
    ) -> StoredMessage:
        """Share a location."""
        location = LocationContent(
            latitude=latitude, longitude=longitude, name=name, address=address
        )
        return await self.send(user_id, MessageContent(location=location))

    async def send_contact_card(self, user_id: str, card: ContactUri) -> StoredMessage:
        """Share another user's contact card."""
        contact = ContactContent(
            display_name=card.display_name or "", user_id=card.user_id, uri=str(card)
        )
        return await self.send(user_id, MessageContent(contact=contact))

    async def send_sticker(
        self, user_id: str, *, pack_id: str, sticker_id: str, emoji: str = ""
    ) -> StoredMessage:
        """Send a sticker from a sticker pack."""
        sticker = StickerContent(pack_id=pack_id, sticker_id=sticker_id, emoji=emoji)
        return await self.send(user_id, MessageContent(sticker=sticker))

    async def send_media(self, user_id: str, media: MediaContent) -> StoredMessage:
        """Send media metadata (the file itself travels separately)."""
        return await self.send(user_id, MessageContent(media=media))

    async def send_typing(self, user_id: str, typing: bool = True) -> None:
        """Tell a contact we are typing (if they accept typing notifications: never stored)."""
        core = self._running()
        contact = await self.contact(user_id)
        if contact.blocked or not contact.typing_notifications:
            return
        await core.queue(
            contact.user_id, MessageContent(typing=TypingContent(typing=typing)), ephemeral=True
        )

    async def mark_read(
        self, conversation_id: str, message_ids: Sequence[str] | None = None
    ) -> int:
        """Mark incoming messages read (all unread when ``message_ids`` is None).

        Sends a read receipt when the contact has read receipts on. Returns how
        many messages changed.
        """
        core = self._running()
        conversation_id = conversation_id.lower()
        changed: list[str] = []
        read_up_to = 0
        async with core.db.transaction() as tx:
            if message_ids is None:
                candidates = [
                    message
                    for message in await tx.messages(conversation_id, limit=1000)
                    if message.direction is Direction.INCOMING
                    and message.state is DeliveryState.DELIVERED
                ]
            else:
                found = [await tx.get_message(conversation_id, mid) for mid in message_ids]
                candidates = [
                    m for m in found if m is not None and m.direction is Direction.INCOMING
                ]
            for message in candidates:
                if await tx.set_message_state(
                    conversation_id, message.message_id, DeliveryState.READ
                ):
                    changed.append(message.message_id)
                    read_up_to = max(read_up_to, message.timestamp)
            contact = await tx.get_contact(conversation_id)
        if changed:
            await self._sync.conversation_changed(conversation_id, read_up_to=read_up_to)
        if changed and contact is not None and contact.read_receipts and not contact.blocked:
            for start in range(0, len(changed), MAX_RECEIPT_IDS):
                receipt = ReceiptContent(
                    type=ReceiptType.READ,
                    message_ids=changed[start : start + MAX_RECEIPT_IDS],
                    timestamp=core.now(),
                )
                await core.queue(conversation_id, MessageContent(receipt=receipt))
        return len(changed)

    # -- groups -------------------------------------------------------------------
    async def create_group(
        self,
        name: str,
        members: Sequence[str] = (),
        *,
        permissions: Permissions | None = None,
        avatar_hash: bytes = b"",
    ) -> Group:
        """Create a group we own with ``members`` (user ids of contacts); see :class:`Group`.

        Each member gets the group's log and our sender key over the pairwise
        sessions. Raises :class:`~omega.errors.UnknownContactError` for a
        member who is not a contact and
        :class:`~omega.errors.GroupPermissionError` beyond the member limit.
        """
        self._running()
        state = await self._groups.create(
            name, members, permissions=permissions, avatar_hash=avatar_hash
        )
        return Group(self._groups, state.group_id)

    def groups(self) -> list[Group]:
        """Every group we are or were in, by name."""
        handles = [Group(self._groups, group_id) for group_id in self._groups.sessions]
        return sorted(handles, key=lambda group: (group.name, group.group_id))

    def group(self, group_id: str) -> Group:
        """The group ``group_id``; :class:`~omega.errors.UnknownGroupError` if we hold none."""
        self._groups.require(group_id)
        return Group(self._groups, group_id.lower())

    async def undelivered(self) -> int:
        """How many outbox entries (one per message and device) have not left this device."""
        async with self._core.db.transaction() as tx:
            entries = await tx.pending_outbox()
        return sum(entry.state is DeliveryState.PENDING for entry in entries)

    # -- history ------------------------------------------------------------------
    async def history(
        self, conversation_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[StoredMessage]:
        """Messages of a conversation, newest first."""
        async with self._core.db.transaction() as tx:
            return await tx.messages(conversation_id.lower(), limit=limit, before=before)

    async def search(
        self, query: str, *, conversation_id: str | None = None, limit: int = 50
    ) -> list[StoredMessage]:
        """Full-text search over the decrypted local history, newest first."""
        async with self._core.db.transaction() as tx:
            return await tx.search(
                query,
                conversation_id=conversation_id.lower() if conversation_id else None,
                limit=limit,
            )

    async def conversations(self, *, archived: bool | None = None) -> list[ConversationRecord]:
        """Conversations, most recent activity first."""
        async with self._core.db.transaction() as tx:
            return await tx.conversations(archived=archived)

    async def archive(self, conversation_id: str, archived: bool = True) -> None:
        """Archive (or unarchive) a conversation."""
        async with self._core.db.transaction() as tx:
            conversation = await tx.get_conversation(conversation_id.lower())
            if conversation is None:
                raise ConfigurationError(f"no conversation {conversation_id}")
            await tx.put_conversation(dataclasses.replace(conversation, archived=archived))
        await self._sync.conversation_changed(conversation_id.lower(), archived=archived)

    async def export_conversation(self, conversation_id: str) -> dict[str, object]:
        """A conversation as a JSON-ready dict (oldest message first)."""
        conversation_id = conversation_id.lower()
        messages: list[StoredMessage] = []
        before: int | None = None
        async with self._core.db.transaction() as tx:
            while True:
                page = await tx.messages(conversation_id, limit=500, before=before)
                messages.extend(page)
                if len(page) < 500:
                    break
                before = page[-1].timestamp
        return {
            "format": "omega-conversation-export/v1",
            "conversation_id": conversation_id,
            "exported_by": self.user_id,
            "messages": [message_json(message) for message in reversed(messages)],
        }

    # -- internals ------------------------------------------------------------------------
    async def _on_frame(self, connection: Any, frame: Any) -> None:
        await self._inbound.on_frame(connection, frame)

    async def _on_connected(self, connection: Any) -> None:
        await self._inbound.on_connected(connection)
