"""Conformance suites for store servers: mailboxes, key directories and backends.

A client proves itself by passing :func:`check_mailbox` and
:func:`check_key_directory`; a backend by passing :func:`check_store_backend`::

    @pytest.mark.anyio
    async def test_memory_store_conforms():
        clock = ManualClock(start=1_700_000_000.0)
        server = MemoryStoreServer(clock=clock)
        await check_mailbox(server.client, advance=_advancer(clock))

``open_client`` returns a new client of *one* server each call, whose state
may hold leftovers of earlier runs only under other keys (the suite creates
fresh device keys). ``advance(seconds)``, when given, moves the server's
clock forward (the expiry checks need it). ``max_payload_bytes`` is the
server's limit. Failures raise :class:`AssertionError` naming the rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import anyio

from omega.crypto import (
    DeviceKeyPair,
    Identity,
    LocalDevice,
    PrekeyConfig,
    PrekeyStore,
    sign_device_list,
)
from omega.errors import QuotaExceededError, RequestRejectedError
from omega.mailbox.backend import DepositOutcome, StoreBackend, StoredMessage
from omega.mailbox.base import KeyDirectory, Mailbox, StoredEnvelope
from omega.mailbox.service import REVOKED_DEVICE
from omega.protocol import DeviceRevocation, SignedDeviceList

__all__ = ["check_key_directory", "check_mailbox", "check_store_backend"]

_NOW_MS = 1_700_000_000_000
Advance = Callable[[float], Awaitable[None]]


def _device() -> LocalDevice:
    return Identity.create(device_name="suite", created_at=_NOW_MS).device


def _ids(envelopes: list[StoredEnvelope]) -> list[str]:
    return [envelope.message_id for envelope in envelopes]


async def check_mailbox(
    open_client: Callable[[], Mailbox],
    *,
    advance: Advance | None = None,
    max_payload_bytes: int = 256 * 1024,
) -> None:
    """Run every mailbox rule against clients made by ``open_client``."""
    async with open_client() as mailbox:
        await _check_deposit_fetch_acknowledge(mailbox)
        await _check_order_limit_isolation(mailbox)
        await _check_wait(mailbox)
        await _check_bad_deposits(mailbox, max_payload_bytes)
        if advance is not None:
            await _check_expiry(mailbox, advance)
    async with open_client() as first, open_client() as second:
        await _check_shared_server(first, second)


async def _check_deposit_fetch_acknowledge(mailbox: Mailbox) -> None:
    device = _device()
    assert await mailbox.fetch(device) == [], "a new mailbox must be empty"
    assert await mailbox.deposit(device.device_key, "m-1", b"\x00payload\xff") is True
    assert await mailbox.deposit(device.device_key, "m-1", b"other") is False, (
        "a second deposit with the same message id must be a no-op returning False"
    )
    (envelope,) = await mailbox.fetch(device)
    assert envelope.message_id == "m-1"
    assert envelope.payload == b"\x00payload\xff", "the first deposit's payload is kept"
    assert envelope.expires_at > envelope.deposited_at > 0
    assert _ids(await mailbox.fetch(device)) == ["m-1"], "fetch without ack redelivers"
    assert await mailbox.acknowledge(device, ["m-1", "never-deposited"]) == 1
    assert await mailbox.fetch(device) == [], "an acknowledged message is gone"
    assert await mailbox.acknowledge(device, ["m-1"]) == 0
    assert await mailbox.acknowledge(device, []) == 0
    assert await mailbox.deposit(device.device_key, "ttl", b"x", ttl_seconds=60) is True
    (short,) = await mailbox.fetch(device)
    assert short.expires_at - short.deposited_at == 60_000, "ttl_seconds sets the lifetime"
    assert await mailbox.deposit(device.device_key, "empty", b"") is True
    assert [env.payload for env in await mailbox.fetch(device)] == [b"x", b""]
    assert await mailbox.acknowledge(device, ["ttl", "empty"]) == 2


async def _check_order_limit_isolation(mailbox: Mailbox) -> None:
    alice, bob = _device(), _device()
    ids = [f"order-{n}" for n in range(5)]
    for message_id in ids:
        await mailbox.deposit(alice.device_key, message_id, message_id.encode())
    await mailbox.deposit(bob.device_key, "for-bob", b"bob")
    assert _ids(await mailbox.fetch(alice)) == ids, "messages come oldest first"
    assert _ids(await mailbox.fetch(alice, limit=2)) == ids[:2], "limit caps a fetch"
    assert _ids(await mailbox.fetch(bob)) == ["for-bob"], "mailboxes are separate"
    assert await mailbox.acknowledge(bob, ids) == 0, "a device cannot delete another's mail"
    assert await mailbox.deposit(bob.device_key, "order-0", b"same id, other mailbox") is True
    assert await mailbox.acknowledge(alice, ids) == 5
    assert await mailbox.acknowledge(bob, ["for-bob", "order-0"]) == 2


async def _check_wait(mailbox: Mailbox) -> None:
    device = _device()
    assert await mailbox.wait_for_messages(device, timeout=0) is False, "nothing waits yet"
    woke: list[bool] = []
    async with anyio.create_task_group() as group:

        async def waiter() -> None:
            woke.append(await mailbox.wait_for_messages(device, timeout=30))

        group.start_soon(waiter)
        for _ in range(20):  # let the waiter subscribe (it returns True either way)
            await anyio.lowlevel.checkpoint()
        await mailbox.deposit(device.device_key, "wake", b"!")
    assert woke == [True], "a deposit wakes a waiting client"
    assert await mailbox.wait_for_messages(device, timeout=0) is True, "a waiting message"
    assert await mailbox.acknowledge(device, ["wake"]) == 1


async def _check_bad_deposits(mailbox: Mailbox, max_payload_bytes: int) -> None:
    device = _device()
    for bad_id in ["", "x" * 129, "has space", "slash/", "comma,", "ünï"]:
        try:
            await mailbox.deposit(device.device_key, bad_id, b"x")
        except RequestRejectedError:
            pass
        else:
            raise AssertionError(f"message id {bad_id!r} must be refused")
    try:
        await mailbox.deposit(device.device_key, "big", b"\x00" * (max_payload_bytes + 1))
    except QuotaExceededError:
        pass
    else:
        raise AssertionError("an oversized payload must be refused with QuotaExceededError")
    for ttl in [0, -5]:
        try:
            await mailbox.deposit(device.device_key, "ttl", b"x", ttl_seconds=ttl)
        except RequestRejectedError:
            pass
        else:
            raise AssertionError(f"ttl_seconds={ttl} must be refused")
    assert await mailbox.deposit(device.device_key, "big", b"\x00" * max_payload_bytes) is True
    assert await mailbox.fetch(device, limit=1) != [], "a maximal payload is kept"
    assert await mailbox.acknowledge(device, ["big"]) == 1


async def _check_expiry(mailbox: Mailbox, advance: Advance) -> None:
    device = _device()
    await mailbox.deposit(device.device_key, "short", b"s", ttl_seconds=60)
    await mailbox.deposit(device.device_key, "long", b"l", ttl_seconds=3600)
    await advance(61)
    assert _ids(await mailbox.fetch(device)) == ["long"], "an expired message is never served"
    await advance(3600)
    assert await mailbox.fetch(device) == []


async def _check_shared_server(first: Mailbox, second: Mailbox) -> None:
    device = _device()
    assert await first.deposit(device.device_key, "shared", b"1") is True
    assert await second.deposit(device.device_key, "shared", b"1") is False
    assert _ids(await second.fetch(device)) == ["shared"], "clients share the server"
    assert await first.acknowledge(device, ["shared"]) == 1


def _second_device(identity: Identity) -> tuple[Identity, LocalDevice]:
    from omega.crypto import verify_device_certificate

    key_pair = DeviceKeyPair.generate()
    updated = identity.add_device(key_pair.public_key, name="second", created_at=_NOW_MS + 1)
    info = verify_device_certificate(
        updated.device_list.device(key_pair.public_key).to_signed(),
        identity_key=identity.identity_key,
    )
    return updated, LocalDevice(key_pair=key_pair, certificate=info)


async def check_key_directory(open_client: Callable[[], KeyDirectory]) -> None:
    """Run every key directory rule against clients made by ``open_client``."""
    async with open_client() as directory:
        await _check_device_lists(directory)
        await _check_prekeys(directory)
        await _check_revocation_forgets_prekeys(directory)
        if isinstance(directory, Mailbox):
            await _check_revocation_closes_mailbox(directory)


async def _expect_rejected(call: Awaitable[object], rule: str, *, reason: str = "") -> None:
    try:
        await call
    except RequestRejectedError as exc:
        if reason and exc.reason != reason:
            raise AssertionError(f"{rule} (reason {exc.reason!r}, not {reason!r})") from exc
        return
    raise AssertionError(rule)


async def _check_device_lists(directory: KeyDirectory) -> None:
    identity = Identity.create(device_name="one", created_at=_NOW_MS)
    assert await directory.fetch_device_list(identity.user_id) is None
    await directory.publish_device_list(identity.device_list.to_signed())
    await directory.publish_device_list(identity.device_list.to_signed())  # idempotent
    fetched = await directory.fetch_device_list(identity.user_id)
    assert fetched is not None
    assert fetched.sequence == 1
    newer, _ = _second_device(identity)
    await directory.publish_device_list(newer.device_list.to_signed())
    fetched = await directory.fetch_device_list(identity.user_id)
    assert fetched is not None
    assert fetched.sequence == 2
    assert len(fetched.devices) == 2
    await _expect_rejected(
        directory.publish_device_list(identity.device_list.to_signed()),
        "an older device list (rollback) must be refused",
    )
    signed = newer.device_list.to_signed()
    forged = SignedDeviceList(device_list=signed.device_list, signature=bytes(64 - 1) + b"\x01")
    await _expect_rejected(directory.publish_device_list(forged), "a forged list is refused")
    garbage = SignedDeviceList(device_list=b"\xff\xff", signature=b"")
    await _expect_rejected(directory.publish_device_list(garbage), "garbage is refused")
    await _expect_rejected(
        directory.fetch_device_list("not a user id"), "a malformed user id is refused"
    )


async def _check_prekeys(directory: KeyDirectory) -> None:
    identity = Identity.create(device_name="one", created_at=_NOW_MS)
    device = identity.device
    prekeys = PrekeyStore.generate(
        device.key_pair,
        now=_NOW_MS,
        config=PrekeyConfig(one_time_prekey_target=8, one_time_prekey_low_water=2),
    )
    pool = prekeys.one_time_prekeys
    await _expect_rejected(
        directory.publish_prekeys(
            device, signed_prekey=prekeys.signed_prekey, one_time_prekeys=pool
        ),
        "prekeys of a device no published device list names are refused",
    )
    await directory.publish_device_list(identity.device_list.to_signed())
    assert await directory.claim_prekey_bundle(identity.user_id, device.device_key) is None
    published = await directory.publish_prekeys(
        device, signed_prekey=prekeys.signed_prekey, one_time_prekeys=pool[:4]
    )
    assert published == 4, "publish returns the pool size"
    assert await directory.publish_prekeys(
        device, signed_prekey=prekeys.signed_prekey, one_time_prekeys=pool
    ) == len(pool), "ids already held are not added twice"
    assert await directory.one_time_prekey_count(device) == len(pool)
    other = Identity.create(device_name="other", created_at=_NOW_MS)
    assert await directory.claim_prekey_bundle(other.user_id, device.device_key) is None, (
        "a device is only found under its own user"
    )
    first = await directory.claim_prekey_bundle(identity.user_id, device.device_key)
    assert first is not None
    assert first.device_key == device.device_key
    assert first.signed_prekey_id == prekeys.signed_prekey.prekey_id
    assert first.one_time_prekey_id == pool[0].prekey_id, "the lowest id goes first"
    claimed: list[int | None] = []
    async with anyio.create_task_group() as group:
        for _ in range(len(pool) - 1):

            async def claim() -> None:
                bundle = await directory.claim_prekey_bundle(identity.user_id, device.device_key)
                assert bundle is not None
                claimed.append(bundle.one_time_prekey_id)

            group.start_soon(claim)
    assert sorted(claimed, key=lambda x: x or 0) == [p.prekey_id for p in pool[1:]], (
        "concurrent claims each get a different one-time prekey"
    )
    assert await directory.one_time_prekey_count(device) == 0
    last = await directory.claim_prekey_bundle(identity.user_id, device.device_key)
    assert last is not None
    assert last.one_time_prekey is None, "an empty pool: no one-time key"
    stranger = Identity.create(device_name="x", created_at=_NOW_MS).device
    await _expect_rejected(
        directory.publish_prekeys(
            stranger, signed_prekey=prekeys.signed_prekey, one_time_prekeys=()
        ),
        "a signed prekey signed by another device is refused",
    )


async def _check_revocation_forgets_prekeys(directory: KeyDirectory) -> None:
    identity = Identity.create(device_name="one", created_at=_NOW_MS)
    identity, second = _second_device(identity)
    await directory.publish_device_list(identity.device_list.to_signed())
    prekeys = PrekeyStore.generate(
        second.key_pair,
        now=_NOW_MS,
        config=PrekeyConfig(one_time_prekey_target=2, one_time_prekey_low_water=1),
    )
    await directory.publish_prekeys(
        second, signed_prekey=prekeys.signed_prekey, one_time_prekeys=prekeys.one_time_prekeys
    )
    revoked = identity.revoke_device(second.device_key, revoked_at=_NOW_MS + 5)
    await directory.publish_device_list(revoked.device_list.to_signed())
    assert await directory.claim_prekey_bundle(identity.user_id, second.device_key) is None, (
        "a revoked device's prekeys are no longer handed out"
    )
    await _expect_rejected(
        directory.publish_prekeys(second, signed_prekey=prekeys.signed_prekey, one_time_prekeys=()),
        "a revoked device cannot publish prekeys",
    )


async def _check_revocation_closes_mailbox(store: Mailbox) -> None:
    assert isinstance(store, KeyDirectory)
    identity = Identity.create(device_name="one", created_at=_NOW_MS)
    identity, lost = _second_device(identity)
    kept = identity.device
    await store.publish_device_list(identity.device_list.to_signed())
    for message_id in ("early-1", "early-2"):
        assert await store.deposit(lost.device_key, message_id, b"for the lost device") is True
    assert await store.deposit(kept.device_key, "early-kept", b"for the kept device") is True
    revoked = identity.revoke_device(lost.device_key, revoked_at=_NOW_MS + 5)
    await store.publish_device_list(revoked.device_list.to_signed())
    rule = "a revoked device's mailbox is closed"
    await _expect_rejected(
        store.deposit(lost.device_key, "late", b"x"),
        f"{rule}: a deposit for it is refused",
        reason=REVOKED_DEVICE,
    )
    await _expect_rejected(
        store.deposit(lost.device_key, "early-1", b"x"),
        f"{rule}: even with the id of a message it held",
        reason=REVOKED_DEVICE,
    )
    await _expect_rejected(
        store.fetch(lost), f"{rule}: its holder cannot fetch", reason=REVOKED_DEVICE
    )
    await _expect_rejected(
        store.acknowledge(lost, ["early-1"]),
        f"{rule}: its holder cannot acknowledge",
        reason=REVOKED_DEVICE,
    )
    await _expect_rejected(
        store.wait_for_messages(lost, timeout=0),
        f"{rule}: its holder cannot wait",
        reason=REVOKED_DEVICE,
    )
    assert _ids(await store.fetch(kept)) == ["early-kept"], "the user's other devices keep theirs"
    assert await store.deposit(kept.device_key, "late-kept", b"y") is True
    assert await store.acknowledge(kept, ["early-kept", "late-kept"]) == 2
    await store.publish_device_list(revoked.device_list.to_signed())  # idempotent
    newer, third = _second_device(revoked)
    await store.publish_device_list(newer.device_list.to_signed())
    await _expect_rejected(
        store.deposit(lost.device_key, "later", b"x"),
        "a revocation lasts through later device lists",
        reason=REVOKED_DEVICE,
    )
    assert await store.deposit(third.device_key, "new", b"z") is True, "a new device is served"
    assert await store.acknowledge(third, ["new"]) == 1
    # A device left out of a list without a revocation may come back: not closed.
    certificate = newer.device_list.device(kept.device_key).to_signed()
    dropping = sign_device_list(
        newer.key_pair,
        sequence=newer.device_list.sequence + 1,
        devices=[certificate],
        revocations=[
            DeviceRevocation(device_key=r.device_key, revoked_at=r.revoked_at, reason=r.reason)
            for r in newer.device_list.revocations
        ],
        issued_at=_NOW_MS + 10,
    )
    await store.publish_device_list(dropping)
    assert await store.deposit(third.device_key, "left-out", b"z") is True, (
        "a device dropped without a revocation keeps its mailbox"
    )
    assert _ids(await store.fetch(third)) == ["left-out"]
    assert await store.acknowledge(third, ["left-out"]) == 1


def _message(
    recipient: str, message_id: str, payload: bytes, *, at: int, ttl: int
) -> StoredMessage:
    return StoredMessage(
        recipient_hash=recipient,
        message_id=message_id,
        payload=payload,
        deposited_at=at,
        expires_at=at + ttl,
    )


async def check_store_backend(open_backend: Callable[[], Awaitable[StoreBackend]]) -> None:
    """Run every backend rule against a fresh backend from ``open_backend``."""
    backend = await open_backend()
    try:
        await _check_backend_messages(backend)
        await _check_backend_nonces(backend)
        await _check_backend_directory(backend)
        await _check_backend_revocation(backend)
    finally:
        await backend.aclose()
    await backend.aclose()  # idempotent


async def _check_backend_messages(backend: StoreBackend) -> None:
    alice, bob = "a" * 64, "b" * 64
    big = {"max_messages": 10, "max_bytes": 1000}
    at = _NOW_MS
    for n in range(3):
        outcome = await backend.insert_message(
            _message(alice, f"m{n}", bytes([n]) * 10, at=at + n, ttl=1000), **big
        )
        assert outcome is DepositOutcome.STORED
    dup = await backend.insert_message(_message(alice, "m1", b"zz", at=at, ttl=5), **big)
    assert dup is DepositOutcome.DUPLICATE, "(recipient, message_id) is unique"
    full = await backend.insert_message(
        _message(alice, "m9", b"", at=at, ttl=5), max_messages=3, max_bytes=1000
    )
    assert full is DepositOutcome.MAILBOX_FULL, "the count quota holds"
    full = await backend.insert_message(
        _message(alice, "m9", b"x" * 11, at=at, ttl=5), max_messages=10, max_bytes=40
    )
    assert full is DepositOutcome.MAILBOX_FULL, "the byte quota holds"
    same_id = await backend.insert_message(_message(bob, "m1", b"b", at=at, ttl=10), **big)
    assert same_id is DepositOutcome.STORED
    listed = await backend.list_messages(alice, now=at, limit=10)
    assert [m.message_id for m in listed] == ["m0", "m1", "m2"], "deposit order"
    assert listed[1].payload == bytes([1]) * 10
    assert listed[1].expires_at == at + 1001
    assert len(await backend.list_messages(alice, now=at, limit=2)) == 2
    assert [m.message_id for m in await backend.list_messages(alice, now=at + 1001, limit=10)] == [
        "m2"
    ], "expired messages are not listed"
    assert await backend.delete_messages(alice, ["m0", "nope"]) == 1
    assert await backend.delete_messages(bob, ["m1", "m2"]) == 1, "only the own mailbox"
    assert await backend.purge_expired(at + 1001) == 1
    assert [m.message_id for m in await backend.list_messages(alice, now=at, limit=10)] == ["m2"]
    assert await backend.delete_messages(alice, ["m2"]) == 1


async def _check_backend_nonces(backend: StoreBackend) -> None:
    nonce = bytes(range(16))
    assert await backend.spend_nonce(nonce, _NOW_MS + 10) is True
    assert await backend.spend_nonce(nonce, _NOW_MS + 10) is False, "a nonce is spent once"
    results: list[bool] = []
    other = bytes(range(1, 17))
    async with anyio.create_task_group() as group:
        for _ in range(5):

            async def spend() -> None:
                results.append(await backend.spend_nonce(other, _NOW_MS + 10))

            group.start_soon(spend)
    assert sorted(results) == [False] * 4 + [True], "concurrent spends: exactly one wins"
    await backend.purge_expired(_NOW_MS + 10)
    assert await backend.spend_nonce(nonce, _NOW_MS + 20) is True, "purged with its expiry"


async def _check_backend_directory(backend: StoreBackend) -> None:
    user, device = "user-x", bytes(range(32))
    assert await backend.get_device_list(user) is None
    assert await backend.put_device_list(user, 1, b"one", expected_sequence=None) is True
    assert await backend.put_device_list(user, 1, b"dup", expected_sequence=None) is False
    assert await backend.put_device_list(user, 2, b"two", expected_sequence=1) is True
    assert await backend.put_device_list(user, 3, b"lost", expected_sequence=1) is False
    assert await backend.get_device_list(user) == (2, b"two")
    assert await backend.claim_prekeys(device, user) is None
    assert await backend.count_one_time_prekeys(device) == 0
    otks = [(n, bytes([n]) * 32) for n in (5, 3, 9, 7)]
    size = await backend.put_prekeys(
        device, user_id=user, certificate=b"cert", signed_prekey=b"spk1", one_time_prekeys=otks
    )
    assert size == 4
    size = await backend.put_prekeys(
        device,
        user_id=user,
        certificate=b"cert",
        signed_prekey=b"spk2",
        one_time_prekeys=[(3, b"\xee" * 32), (11, b"\x0b" * 32)],
    )
    assert size == 5, "known ids are skipped, new ones added"
    assert await backend.claim_prekeys(device, "someone-else") is None
    record = await backend.claim_prekeys(device, user)
    assert record is not None
    assert record.signed_prekey == b"spk2", "the signed prekey is replaced"
    assert record.one_time_prekey == (3, bytes([3]) * 32), "lowest id first, first key kept"
    got: list[int] = []
    async with anyio.create_task_group() as group:
        for _ in range(6):

            async def claim() -> None:
                claimed = await backend.claim_prekeys(device, user)
                assert claimed is not None
                if claimed.one_time_prekey is not None:
                    got.append(claimed.one_time_prekey[0])

            group.start_soon(claim)
    assert sorted(got) == [5, 7, 9, 11], "each one-time prekey is handed out once"
    assert await backend.count_one_time_prekeys(device) == 0
    await backend.delete_prekeys(device)
    assert await backend.claim_prekeys(device, user) is None


async def _check_backend_revocation(backend: StoreBackend) -> None:
    lost, kept, never, raced = "c" * 64, "d" * 64, "e" * 64, "f" * 64
    big = {"max_messages": 100, "max_bytes": 100_000}
    at = _NOW_MS
    for n in range(2):
        stored = await backend.insert_message(_message(lost, f"m{n}", b"x", at=at, ttl=1000), **big)
        assert stored is DepositOutcome.STORED
    await backend.insert_message(_message(kept, "m0", b"y", at=at, ttl=100_000_000), **big)
    assert await backend.is_revoked(lost) is False
    assert await backend.revoke_device(lost, revoked_at=at) == 2, "revoking purges the mailbox"
    assert await backend.is_revoked(lost) is True
    assert await backend.list_messages(lost, now=at, limit=10) == []
    outcome = await backend.insert_message(_message(lost, "m9", b"x", at=at, ttl=1000), **big)
    assert outcome is DepositOutcome.REVOKED, "a revoked mailbox takes no deposit"
    outcome = await backend.insert_message(_message(lost, "m0", b"x", at=at, ttl=1000), **big)
    assert outcome is DepositOutcome.REVOKED, "revoked comes before duplicate"
    assert await backend.revoke_device(lost, revoked_at=at + 1) == 0, "idempotent"
    assert await backend.is_revoked(lost) is True
    assert [m.message_id for m in await backend.list_messages(kept, now=at, limit=10)] == ["m0"], (
        "other mailboxes are untouched"
    )
    assert await backend.is_revoked(kept) is False
    assert await backend.revoke_device(never, revoked_at=at) == 0
    outcome = await backend.insert_message(_message(never, "m0", b"x", at=at, ttl=1000), **big)
    assert outcome is DepositOutcome.REVOKED, "a mailbox can be revoked before its first deposit"
    await backend.purge_expired(at + 10_000_000)
    assert await backend.is_revoked(lost) is True, "revocations never expire"

    async def deposit(n: int) -> None:
        await backend.insert_message(
            _message(raced, f"r{n}", b"r", at=at + 20_000_000, ttl=1000), **big
        )

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(deposit, n)
        group.start_soon(partial(backend.revoke_device, raced, revoked_at=at))
    assert await backend.list_messages(raced, now=at, limit=10) == [], (
        "no deposit racing with a revocation survives it"
    )
    assert await backend.delete_messages(kept, ["m0"]) == 1
