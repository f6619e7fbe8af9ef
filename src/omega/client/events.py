"""Typed events a :class:`~omega.client.Client` reports.

Every event is a frozen dataclass deriving from :class:`Event`. Iterate them
with ``async for event in client.events()`` or register callbacks with
``@client.on(MessageReceived)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from omega.protocol import MessageContent
from omega.storage.message_base import DeliveryState, StoredMessage

__all__ = [
    "ContactDevicesChanged",
    "DecryptionFailed",
    "DeliveryStateChanged",
    "Event",
    "MessageDeleted",
    "MessageEdited",
    "MessageExpired",
    "MessageReceived",
    "MessageRefused",
    "OwnDevicesChanged",
    "ReactionReceived",
    "SessionReset",
    "SyncApplied",
    "TypingChanged",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every client event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(Event):
    """A new message arrived and is stored (reported once per message id)."""

    message: StoredMessage
    """The stored message (incoming, or a copy of our own sent from another device)."""
    content: MessageContent
    """Its decoded content."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEdited(Event):
    """The author edited a message; ``message`` is the updated one."""

    message: StoredMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDeleted(Event):
    """A message was deleted (for everyone by its author, or locally by us)."""

    conversation_id: str
    message_id: str
    for_everyone: bool
    deleted_by: str
    """User id of who deleted it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageExpired(Event):
    """A disappearing message reached its end of life and was deleted."""

    conversation_id: str
    message_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionReceived(Event):
    """Someone reacted to a message (an empty ``emoji`` removes their reaction)."""

    conversation_id: str
    target_message_id: str
    sender_id: str
    emoji: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryStateChanged(Event):
    """One of our messages moved forward: sent, delivered, read, or failed."""

    conversation_id: str
    message_id: str
    state: DeliveryState


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingChanged(Event):
    """A contact started or stopped typing."""

    user_id: str
    typing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactDevicesChanged(Event):
    """A contact's signed device list changed.

    When the contact is verified and a device was added, messages to the new
    devices are held until :meth:`~omega.client.Client.accept_devices`.
    """

    user_id: str
    added: tuple[str, ...]
    """Device ids that appeared."""
    removed: tuple[str, ...]
    """Device ids that left the list (revoked or dropped)."""
    held: bool
    """True when delivery to the added devices waits for the user's approval."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRefused(Event):
    """Something a peer sent was refused (forged, malformed, blocked sender...).

    Nothing was stored; ``code`` is the :class:`~omega.errors.OmegaError` code.
    """

    code: str
    reason: str
    sender_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecryptionFailed(Event):
    """A message could not be decrypted; a session reset was requested from its sender.

    The sender re-establishes the session and sends the message again, so the
    message arrives later as a normal :class:`MessageReceived`.
    """

    sender_id: str
    device_id: str
    message_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReset(Event):
    """A contact's device asked us for a new session; we are re-sending its messages."""

    user_id: str
    device_id: str
    resent: int
    """How many outbox entries will be sent again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnDevicesChanged(Event):
    """Our own device list changed: a device was linked, renamed or revoked.

    ``revoked`` devices can no longer read anything new; when this device
    itself is among them (``this_device_revoked``), it should stop.
    """

    added: tuple[str, ...]
    """Device ids of new devices."""
    removed: tuple[str, ...]
    """Device ids of revoked devices."""
    this_device_revoked: bool = False
    """True when another device of ours revoked this one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncApplied(Event):
    """Another device of ours synced changes here (contacts, conversations, settings,
    history); ``documents`` names the sync documents that changed."""

    documents: tuple[str, ...]
    changes: int
    """How many entries changed."""
