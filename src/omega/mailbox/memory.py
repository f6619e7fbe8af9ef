"""An in-process store server: same service layer, memory backend, injectable clock.

:class:`MemoryStoreServer` runs :class:`~omega.mailbox.service.StoreService`
over :class:`MemoryBackend`; ``server.client()`` returns a
:class:`MemoryStoreClient`, both a :class:`~omega.mailbox.base.Mailbox` and a
:class:`~omega.mailbox.base.KeyDirectory`, that goes through the very same
challenge signing as a remote client. For tests, the simulator and the
in-process demo.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from omega.crypto import LocalDevice, RandomSource, VerifiedDeviceList, system_random
from omega.crypto.x3dh import VerifiedPrekeyBundle
from omega.errors import ConnectionClosedError
from omega.mailbox._auth import AuthProof, auth_message, recipient_hash
from omega.mailbox._client_checks import (
    check_bundle,
    check_device_list,
    encode_prekeys,
    to_envelope,
)
from omega.mailbox.backend import (
    DepositOutcome,
    PrekeyRecord,
    StoreBackend,
    StoredMessage,
)
from omega.mailbox.base import KeyDirectory, Mailbox, StoredEnvelope
from omega.mailbox.config import StoreConfig
from omega.mailbox.service import StoreService
from omega.protocol import OneTimePrekey, SignedDeviceList, SignedPrekey, encode_message
from omega.transport.clock import Clock

__all__ = ["MemoryBackend", "MemoryStoreClient", "MemoryStoreServer"]


class _Prekeys:
    def __init__(self, user_id: str, certificate: bytes, signed_prekey: bytes) -> None:
        self.user_id = user_id
        self.certificate = certificate
        self.signed_prekey = signed_prekey
        self.one_time: dict[int, bytes] = {}


class MemoryBackend(StoreBackend):
    """A :class:`~omega.mailbox.backend.StoreBackend` in dictionaries (atomic: no awaits inside)."""

    def __init__(self) -> None:
        self._mailboxes: dict[str, dict[str, StoredMessage]] = {}
        self._nonces: dict[bytes, int] = {}
        self._device_lists: dict[str, tuple[int, bytes]] = {}
        self._prekeys: dict[bytes, _Prekeys] = {}
        self._revoked: dict[str, int] = {}

    async def insert_message(
        self, message: StoredMessage, *, max_messages: int, max_bytes: int
    ) -> DepositOutcome:
        if message.recipient_hash in self._revoked:
            return DepositOutcome.REVOKED
        mailbox = self._mailboxes.setdefault(message.recipient_hash, {})
        if message.message_id in mailbox:
            return DepositOutcome.DUPLICATE
        used = sum(len(held.payload) for held in mailbox.values())
        if len(mailbox) + 1 > max_messages or used + len(message.payload) > max_bytes:
            return DepositOutcome.MAILBOX_FULL
        mailbox[message.message_id] = message
        return DepositOutcome.STORED

    async def list_messages(
        self, recipient_hash: str, *, now: int, limit: int
    ) -> list[StoredMessage]:
        mailbox = self._mailboxes.get(recipient_hash, {})
        alive = [message for message in mailbox.values() if message.expires_at > now]
        return alive[:limit]

    async def delete_messages(self, recipient_hash: str, message_ids: Sequence[str]) -> int:
        mailbox = self._mailboxes.get(recipient_hash, {})
        deleted = sum(mailbox.pop(message_id, None) is not None for message_id in message_ids)
        if not mailbox:
            self._mailboxes.pop(recipient_hash, None)
        return deleted

    async def purge_expired(self, now: int) -> int:
        removed = 0
        for recipient in list(self._mailboxes):
            mailbox = self._mailboxes[recipient]
            for message_id in [k for k, m in mailbox.items() if m.expires_at <= now]:
                del mailbox[message_id]
                removed += 1
            if not mailbox:
                del self._mailboxes[recipient]
        for nonce in [nonce for nonce, expiry in self._nonces.items() if expiry <= now]:
            del self._nonces[nonce]
        return removed

    async def spend_nonce(self, nonce: bytes, expires_at: int) -> bool:
        if nonce in self._nonces:
            return False
        self._nonces[nonce] = expires_at
        return True

    async def get_device_list(self, user_id: str) -> tuple[int, bytes] | None:
        return self._device_lists.get(user_id)

    async def put_device_list(
        self, user_id: str, sequence: int, signed: bytes, *, expected_sequence: int | None
    ) -> bool:
        current = self._device_lists.get(user_id)
        if (None if current is None else current[0]) != expected_sequence:
            return False
        self._device_lists[user_id] = (sequence, signed)
        return True

    async def put_prekeys(
        self,
        device_key: bytes,
        *,
        user_id: str,
        certificate: bytes,
        signed_prekey: bytes,
        one_time_prekeys: Sequence[tuple[int, bytes]],
    ) -> int:
        entry = self._prekeys.get(device_key)
        if entry is None or entry.user_id != user_id:
            entry = self._prekeys[device_key] = _Prekeys(user_id, certificate, signed_prekey)
        entry.certificate, entry.signed_prekey = certificate, signed_prekey
        for prekey_id, public_key in one_time_prekeys:
            entry.one_time.setdefault(prekey_id, public_key)
        return len(entry.one_time)

    async def claim_prekeys(self, device_key: bytes, user_id: str) -> PrekeyRecord | None:
        entry = self._prekeys.get(device_key)
        if entry is None or entry.user_id != user_id:
            return None
        one_time = None
        if entry.one_time:
            prekey_id = min(entry.one_time)
            one_time = (prekey_id, entry.one_time.pop(prekey_id))
        return PrekeyRecord(
            user_id=entry.user_id,
            certificate=entry.certificate,
            signed_prekey=entry.signed_prekey,
            one_time_prekey=one_time,
        )

    async def count_one_time_prekeys(self, device_key: bytes) -> int:
        entry = self._prekeys.get(device_key)
        return 0 if entry is None else len(entry.one_time)

    async def delete_prekeys(self, device_key: bytes) -> None:
        self._prekeys.pop(device_key, None)

    async def revoke_device(self, recipient_hash: str, *, revoked_at: int) -> int:
        self._revoked.setdefault(recipient_hash, revoked_at)
        return len(self._mailboxes.pop(recipient_hash, {}))

    async def is_revoked(self, recipient_hash: str) -> bool:
        return recipient_hash in self._revoked


class MemoryStoreServer:
    """A store server in this process; ``clock.now()`` reads Unix seconds.

    ``service`` is the :class:`~omega.mailbox.service.StoreService`; call
    ``await server.service.sweep()`` to purge expired messages in a test.
    """

    def __init__(
        self,
        *,
        config: StoreConfig | None = None,
        clock: Clock | None = None,
        backend: StoreBackend | None = None,
        rng: RandomSource = system_random,
    ) -> None:
        self.service = StoreService(backend or MemoryBackend(), config=config, clock=clock, rng=rng)

    def client(self, *, source: str = "memory") -> MemoryStoreClient:
        """A client of this server; ``source`` is what its rate limits are keyed on."""
        return MemoryStoreClient(self.service, source=source)


class MemoryStoreClient(Mailbox, KeyDirectory):
    """A client of a :class:`MemoryStoreServer`: a Mailbox and a KeyDirectory."""

    def __init__(self, service: StoreService, *, source: str) -> None:
        self._service = service
        self._source = source
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosedError("the store client is closed")

    async def _proof(self, device: LocalDevice, action: str) -> AuthProof:
        self._check_open()
        challenge = await self._service.issue_challenge(
            source=self._source, device_key=device.device_key
        )
        signature = device.key_pair.sign(auth_message(challenge, device.device_key, action))
        return AuthProof(device_key=device.device_key, challenge=challenge, signature=signature)

    async def deposit(
        self,
        recipient_device_key: bytes,
        message_id: str,
        payload: bytes,
        *,
        ttl_seconds: int | None = None,
    ) -> bool:
        """Deposit through the service (see :meth:`Mailbox.deposit`)."""
        self._check_open()
        return await self._service.deposit(
            source=self._source,
            recipient=recipient_hash(recipient_device_key),
            message_id=message_id,
            payload=payload,
            ttl_seconds=ttl_seconds,
        )

    async def fetch(self, device: LocalDevice, *, limit: int = 100) -> list[StoredEnvelope]:
        """Fetch through the service (see :meth:`Mailbox.fetch`)."""
        proof = await self._proof(device, "fetch")
        return [to_envelope(message) for message in await self._service.fetch(proof, limit=limit)]

    async def acknowledge(self, device: LocalDevice, message_ids: Sequence[str]) -> int:
        """Acknowledge through the service (see :meth:`Mailbox.acknowledge`)."""
        proof = await self._proof(device, "acknowledge")
        return await self._service.acknowledge(proof, message_ids)

    async def wait_for_messages(self, device: LocalDevice, *, timeout: float) -> bool:
        """Long poll through the service (see :meth:`Mailbox.wait_for_messages`)."""
        proof = await self._proof(device, "wait")
        return await self._service.wait_for_messages(proof, timeout=timeout)

    async def publish_device_list(self, signed: SignedDeviceList) -> None:
        """Publish through the service (see :meth:`KeyDirectory.publish_device_list`)."""
        self._check_open()
        await self._service.directory.publish_device_list(
            source=self._source, signed=encode_message(signed)
        )

    async def fetch_device_list(self, user_id: str) -> VerifiedDeviceList | None:
        """Fetch and verify (see :meth:`KeyDirectory.fetch_device_list`)."""
        self._check_open()
        signed = await self._service.directory.get_device_list(user_id)
        return None if signed is None else check_device_list(signed, user_id)

    async def publish_prekeys(
        self,
        device: LocalDevice,
        *,
        signed_prekey: SignedPrekey,
        one_time_prekeys: Sequence[OneTimePrekey],
    ) -> int:
        """Publish through the service (see :meth:`KeyDirectory.publish_prekeys`)."""
        proof = await self._proof(device, "publish-prekeys")
        user_id, certificate, signed, one_time = encode_prekeys(
            device, signed_prekey, one_time_prekeys
        )
        return await self._service.directory.publish_prekeys(
            proof,
            user_id=user_id,
            certificate=certificate,
            signed_prekey=signed,
            one_time_prekeys=one_time,
        )

    async def claim_prekey_bundle(
        self, user_id: str, device_key: bytes
    ) -> VerifiedPrekeyBundle | None:
        """Claim and verify (see :meth:`KeyDirectory.claim_prekey_bundle`)."""
        self._check_open()
        bundle = await self._service.directory.claim_prekey_bundle(
            source=self._source, user_id=user_id, device_key=device_key
        )
        return None if bundle is None else check_bundle(bundle, user_id, device_key)

    async def one_time_prekey_count(self, device: LocalDevice) -> int:
        """Count through the service (see :meth:`KeyDirectory.one_time_prekey_count`)."""
        proof = await self._proof(device, "count-prekeys")
        return await self._service.directory.count_one_time_prekeys(proof)

    async def aclose(self) -> None:
        """Close this client (the server keeps running); idempotent."""
        self._closed = True
        await anyio.lowlevel.checkpoint()
