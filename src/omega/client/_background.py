"""What a running client does besides answering calls: prekeys, announcements, the
store's mailbox, disappearing messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import anyio

from omega.client._core import Core
from omega.client._inbound import Inbound
from omega.client.events import MessageExpired
from omega.crypto import ContactUri, PrekeyStore
from omega.crypto.identity import public_key_from_user_id
from omega.discovery.base import Publisher
from omega.discovery.records import sign_peer_record
from omega.errors import InvalidUriError, OmegaError
from omega.protocol import MessageContent, decode_message
from omega.session.content import content_kind
from omega.storage.message_base import StoredMessage
from omega.transport.address import Address

__all__ = [
    "mailbox_loop",
    "message_json",
    "parse_contact",
    "prepare_prekeys",
    "publish",
    "sweep_loop",
    "sweep_once",
]

logger = logging.getLogger("omega.client")


async def prepare_prekeys(core: Core) -> None:
    """Create this device's prekeys, or run their rotation and replenishing schedule."""
    async with core.keys.transaction() as tx:
        state = await tx.load_prekeys()
        if state is None:
            prekeys = PrekeyStore.generate(
                core.identity.device.key_pair, now=core.now(), rng=core.rng
            )
        else:
            prekeys = PrekeyStore.from_bytes(state)
            prekeys.refresh(core.identity.device.key_pair, now=core.now(), rng=core.rng)
        await tx.save_prekeys(prekeys.to_bytes())


async def publish(
    core: Core,
    publisher: Publisher | None,
    addresses: Sequence[Address],
    mailbox_urls: Sequence[str],
) -> None:
    """Announce this device: device list, peer record, prekeys. Failures are logged."""
    if core.key_directory is not None:
        try:
            await core.key_directory.publish_device_list(core.identity.device_list.to_signed())
            async with core.keys.transaction() as tx:
                state = await tx.load_prekeys()
            if state is None:  # pragma: no cover - prepared at start
                return
            prekeys = PrekeyStore.from_bytes(state)
            one_time = prekeys.one_time_prekeys[: core.config.one_time_prekeys_to_publish]
            await core.key_directory.publish_prekeys(
                core.identity.device, signed_prekey=prekeys.signed_prekey, one_time_prekeys=one_time
            )
        except OmegaError as exc:
            logger.warning("event=publish_prekeys_failed error=%s", exc.code)
    if publisher is not None:
        now = core.now()
        try:
            await publisher.publish_device_list(core.identity.device_list.to_signed())
            record = sign_peer_record(
                core.identity.device,
                addresses=addresses,
                mailboxes=mailbox_urls,
                sequence=now,
                expires_at=now + int(core.config.peer_record_lifetime * 1000),
            )
            await publisher.publish_peer_record(record)
        except OmegaError as exc:
            logger.warning("event=publish_record_failed error=%s", exc.code)


async def mailbox_loop(core: Core, inbound: Inbound) -> None:
    """Fetch what the store holds for this device, then wait to be told of more."""
    mailbox = core.mailbox
    if mailbox is None:  # pragma: no cover - started only with a mailbox
        return
    device = core.identity.device
    delay = 1.0
    while True:
        try:
            stored = await mailbox.fetch(device, limit=100)
            done = [env.message_id for env in stored if await inbound.receive_stored(env)]
            if done:
                await mailbox.acknowledge(device, done)
            delay = 1.0
            if len(done) < len(stored):
                # Some stay in the store to be tried again (a group message whose sender
                # key is on the way, a disk error): not at once, the store would hand
                # them straight back.
                await anyio.sleep(min(1.0, core.config.mailbox_poll_interval))
            elif len(stored) < 100:
                await mailbox.wait_for_messages(device, timeout=core.config.mailbox_poll_interval)
        except OmegaError as exc:
            logger.warning("event=mailbox_failed error=%s retry_in=%.1f", exc.code, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, core.config.mailbox_poll_interval)


async def sweep_loop(core: Core) -> None:
    """Delete disappearing messages as they expire."""
    while True:
        try:
            await sweep_once(core)
        except OmegaError as exc:  # pragma: no cover - a failing disk
            logger.error("event=sweep_failed error=%s", exc.code)
        await anyio.sleep(core.config.sweep_interval)


async def sweep_once(core: Core) -> None:
    """Delete the disappearing messages whose time has come; report each."""
    async with core.db.transaction() as tx:
        expired = await tx.expired_messages(core.now(), limit=500)
        for message in expired:
            await tx.delete_message(message.conversation_id, message.message_id)
    for message in expired:
        await core.emit(
            MessageExpired(conversation_id=message.conversation_id, message_id=message.message_id)
        )


def parse_contact(text: str) -> ContactUri:
    """A contact from an ``omega://`` URI (QR text) or a bare user id."""
    text = text.strip()
    if text.lower().startswith("omega://"):
        return ContactUri.parse(text)
    try:
        public_key_from_user_id(text)
    except OmegaError as exc:
        raise InvalidUriError(f"not a contact URI or user id: {text[:80]!r}") from exc
    return ContactUri(user_id=text)


def message_json(message: StoredMessage) -> dict[str, object]:
    """A stored message as a JSON-ready dict (the conversation export format)."""
    record: dict[str, object] = {
        "message_id": message.message_id,
        "sender_id": message.sender_id,
        "direction": message.direction.value,
        "timestamp": message.timestamp,
        "state": message.state.value,
        "text": message.text,
        "deleted": message.deleted,
    }
    if message.reply_to is not None:
        record["reply_to"] = message.reply_to
    if message.edited_at is not None:
        record["edited_at"] = message.edited_at
    if message.expires_at is not None:
        record["expires_at"] = message.expires_at
    if message.content:
        content = decode_message(MessageContent, message.content)
        record["kind"] = content_kind(content)
        record["content"] = json.loads(content.to_json())
    return record
