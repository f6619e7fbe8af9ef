"""One simulated device: the real crypto, envelope and content code of a client.

A :class:`SimPeer` holds what a client keeps in its key store (identity,
prekeys, ratchet sessions per remote device, newest first) in memory and
applies the same sans-I/O functions the client applies: X3DH and the Double
Ratchet (``omega.crypto``), envelopes and the binding
(``omega.session.envelope``), content (``omega.session.content``), the
session list rules of the client (``omega.session.sessions``) and the wire
encoding (``omega.protocol``). What it returns is the real ``Frame`` bytes.
"""

from __future__ import annotations

import functools
import hmac
import uuid
from dataclasses import dataclass

from omega.crypto import Identity, RatchetSession
from omega.crypto.prekeys import PrekeyConfig, PrekeyStore
from omega.crypto.x3dh import MessageKind, accept_session, encrypt_message, initiate_session
from omega.errors import DuplicateMessageError, RemoteProtocolError, UnknownSenderKeyError
from omega.groups import GroupSession
from omega.protocol import (
    Ack,
    AckStatus,
    EncryptionKind,
    Frame,
    MessageContent,
    PrekeyBundle,
    ReceiptContent,
    ReceiptType,
    SenderKeyDistribution,
    TextContent,
    decode_message,
    encode_message,
)
from omega.session.content import decode_content, encode_content
from omega.session.envelope import bind_content, check_binding, seal_envelope, verify_envelope
from omega.session.sessions import MAX_SESSIONS, decrypt_with_any, session_for_prekey
from omega.testing.random import SeededRandom

__all__ = ["Received", "SimPeer"]

# A simulated device hands out bundles without one-time prekeys (the key
# directory is not simulated), so a pool of one is enough.
_PREKEY_CONFIG = PrekeyConfig(one_time_prekey_target=1, one_time_prekey_low_water=0)


@functools.lru_cache(maxsize=64)
def _text(size: int) -> str:
    return "x" * size


@dataclass(frozen=True, slots=True)
class Received:
    """What a peer made of an envelope frame."""

    message_id: str
    """The envelope's message id."""
    sender_device_key: bytes
    """The sending device (proven by decryption)."""
    content: MessageContent | None
    """The decrypted content; ``None`` for a duplicate (already decrypted)."""


class SimPeer:
    """The cryptographic state of one simulated device (one user, one device)."""

    __slots__ = ("_identity", "_prekeys", "_seen", "_sessions", "groups", "index", "rng")

    def __init__(self, index: int, *, seed: int, now: int) -> None:
        self.index = index
        self.rng = SeededRandom(f"omega-sim/{seed}/peer/{index}".encode())
        self._identity = Identity.create(device_name=f"sim-{index}", created_at=now, rng=self.rng)
        self._prekeys = PrekeyStore.generate(
            self._identity.device.key_pair, now=now, config=_PREKEY_CONFIG, rng=self.rng
        )
        self._sessions: dict[bytes, list[RatchetSession]] = {}
        self._seen: set[tuple[bytes, str]] = set()
        self.groups: dict[str, GroupSession] = {}
        """This device's :class:`~omega.groups.GroupSession` per group id."""

    @property
    def identity(self) -> Identity:
        """The peer's identity (one device)."""
        return self._identity

    def has_session(self, recipient: SimPeer) -> bool:
        """Whether a ratchet session with ``recipient``'s device exists (no X3DH needed)."""
        return bool(self._sessions.get(recipient.device_key))

    @property
    def user_id(self) -> str:
        """The peer's user id."""
        return self._identity.user_id

    @property
    def device_key(self) -> bytes:
        """The peer's device key."""
        return self._identity.device.device_key

    def bundle(self) -> PrekeyBundle:
        """This device's prekey bundle, as the key directory hands it out."""
        return self._prekeys.build_bundle(self._identity.device.certificate)

    def new_message_id(self) -> str:
        """A random UUID version 4 from the peer's (seeded) RNG, as clients use."""
        return str(uuid.UUID(bytes=self.rng(16), version=4))

    @staticmethod
    def text_content(size: int, *, message_id: str, timestamp: int, conversation_id: str) -> bytes:
        """The encoded, bound ``MessageContent`` of a text of ``size`` bytes.

        Built with its binding fields at once: the same message
        :func:`~omega.session.envelope.bind_content` makes, without its copy.
        """
        return encode_content(
            MessageContent(
                text=TextContent(text=_text(size)),
                message_id=message_id,
                timestamp=timestamp,
                conversation_id=conversation_id,
            )
        )

    @staticmethod
    def distribution_content(
        distribution: bytes, *, message_id: str, timestamp: int, conversation_id: str
    ) -> bytes:
        """The encoded, bound ``MessageContent`` carrying a sender key ``distribution``."""
        content = MessageContent()
        content.sender_key_distribution = decode_message(SenderKeyDistribution, distribution)
        bound = bind_content(
            content, message_id=message_id, timestamp=timestamp, conversation_id=conversation_id
        )
        return encode_content(bound)

    def seal_group(
        self,
        *,
        message_id: str,
        group_id: str,
        content: bytes,
        timestamp: int,
        recipients: list[SimPeer],
    ) -> tuple[bytes, list[bytes]]:
        """Encrypt bound ``content`` once with this device's sender key in ``group_id``.

        Returns the ``SenderKeyMessage`` and one envelope ``Frame`` per
        recipient device, all carrying it (docs/groups.md, "Messaging").
        """
        ciphertext = self.groups[group_id].encrypt(content)
        frames = []
        for recipient in recipients:
            envelope = seal_envelope(
                self._identity.device,
                message_id=message_id,
                sender_id=self.user_id,
                recipient_id=group_id,
                recipient_device_key=recipient.device_key,
                timestamp=timestamp,
                encryption=EncryptionKind.SENDER_KEY,
                encrypted_content=ciphertext,
            )
            frames.append(encode_message(Frame(message=envelope)))
        return ciphertext, frames

    def seal(
        self,
        *,
        message_id: str,
        recipient: SimPeer,
        content: bytes,
        timestamp: int,
    ) -> bytes:
        """Encrypt and seal bound ``content`` for ``recipient``: the encoded ``Frame``.

        Starts a session with X3DH from the recipient's bundle when there is
        none (the bundle comes from the key directory, outside the simulated
        network).
        """
        plaintext = content
        device_key = recipient.device_key
        sessions = self._sessions.get(device_key)
        if sessions:
            encrypted = encrypt_message(sessions[0], plaintext, rng=self.rng)
            kind, data = encrypted.kind, encrypted.data
        else:
            session, data = initiate_session(
                self._identity.device,
                recipient.bundle(),
                plaintext,
                user_id=recipient.user_id,
                rng=self.rng,
            )
            self._sessions[device_key] = [session]
            kind = MessageKind.PREKEY
        envelope = seal_envelope(
            self._identity.device,
            message_id=message_id,
            sender_id=self.user_id,
            recipient_id=recipient.user_id,
            recipient_device_key=device_key,
            timestamp=timestamp,
            encryption=(
                EncryptionKind.PREKEY if kind is MessageKind.PREKEY else EncryptionKind.RATCHET
            ),
            encrypted_content=data,
        )
        return encode_message(Frame(message=envelope))

    def receipt(self, *, message_id: str, recipient: SimPeer, now: int) -> tuple[str, bytes]:
        """The receipt's id and sealed ``DELIVERED`` receipt frame for ``message_id``."""
        content = MessageContent()
        content.receipt = ReceiptContent(
            type=ReceiptType.DELIVERED, message_ids=[message_id], timestamp=now
        )
        receipt_id = self.new_message_id()
        bound = bind_content(
            content, message_id=receipt_id, timestamp=now, conversation_id=recipient.user_id
        )
        return receipt_id, self.seal(
            message_id=receipt_id, recipient=recipient, content=encode_content(bound), timestamp=now
        )

    def open(self, data: bytes, *, now: int, from_device: bytes | None = None) -> Received:
        """Decode, check and decrypt an envelope ``Frame``, as the client's inbound path does.

        ``from_device`` is the device at the other end of a direct channel
        (``None`` for envelopes fetched from the store). A message decrypted
        before comes back with ``content=None``. Raises
        :class:`~omega.errors.OmegaError` for anything refused, among them
        :class:`~omega.errors.UnknownSenderKeyError` for a group message whose
        sender key has not arrived yet (the caller may keep it and retry).
        """
        frame = decode_message(Frame, data)
        envelope = frame.message
        if envelope is None:
            raise RemoteProtocolError("not an envelope frame")
        info = verify_envelope(envelope, local_device_key=self.device_key)
        if from_device is not None and not hmac.compare_digest(info.sender_device_key, from_device):
            raise RemoteProtocolError("envelope from another device than the channel's peer")
        key = (info.sender_device_key, info.message_id)
        sessions = self._sessions.get(info.sender_device_key, [])
        try:
            if info.encryption is EncryptionKind.SENDER_KEY:
                group = self.groups.get(info.recipient_id)
                if group is None:
                    raise UnknownSenderKeyError(
                        "not a member of this group", details={"key_id": None}
                    )
                plaintext = group.decrypt(
                    info.sender_id, info.sender_device_key, envelope.encrypted_content
                )
            elif info.encryption is EncryptionKind.PREKEY:
                existing = session_for_prekey(sessions, envelope.encrypted_content)
                accepted = accept_session(
                    self._identity.device,
                    self._prekeys,
                    envelope.encrypted_content,
                    now=now,
                    expected_user_id=info.sender_id,
                    existing_session=existing,
                )
                if accepted.new_session:
                    sessions = [accepted.session, *sessions][:MAX_SESSIONS]
                plaintext = accepted.plaintext
            else:
                sessions, plaintext = decrypt_with_any(sessions, envelope.encrypted_content)
        except DuplicateMessageError:
            return Received(info.message_id, info.sender_device_key, None)
        content = decode_content(plaintext)
        check_binding(info, content)
        if info.encryption is not EncryptionKind.SENDER_KEY:
            self._sessions[info.sender_device_key] = sessions
        if key in self._seen:
            return Received(info.message_id, info.sender_device_key, None)
        self._seen.add(key)
        return Received(info.message_id, info.sender_device_key, content)

    @staticmethod
    def ack(message_id: str, *, now: int) -> bytes:
        """The encoded ``Frame{ack}`` acknowledging ``message_id`` as delivered."""
        return encode_message(
            Frame(ack=Ack(message_id=message_id, timestamp=now, status=AckStatus.DELIVERED))
        )

    @staticmethod
    def read_ack(data: bytes) -> str:
        """The message id an ``Ack`` frame acknowledges (raises for anything else)."""
        frame = decode_message(Frame, data)
        if frame.ack is None or frame.ack.status != AckStatus.DELIVERED:
            raise RemoteProtocolError("not a delivered acknowledgement")
        return frame.ack.message_id
