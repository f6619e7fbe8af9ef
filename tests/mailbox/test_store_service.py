"""The service layer's rules: auth challenges, rate limits, quotas, lifetimes, sweeping."""

from __future__ import annotations

import dataclasses

import anyio
import pytest

from omega.crypto import Identity, LocalDevice
from omega.errors import (
    AuthenticationFailedError,
    ConfigurationError,
    QuotaExceededError,
    RateLimitedError,
    RequestRejectedError,
    StorageError,
)
from omega.mailbox import (
    AuthProof,
    MemoryBackend,
    MemoryNotifier,
    MemoryStoreServer,
    StoreConfig,
    StoreService,
    auth_message,
    recipient_hash,
)
from omega.mailbox._limits import TokenBuckets
from omega.testing.clock import ManualClock

pytestmark = pytest.mark.anyio

START = 1_700_000_000.0


def _device() -> LocalDevice:
    return Identity.create(device_name="d", created_at=1).device


def _service(clock: ManualClock | None = None, **config: object) -> StoreService:
    return StoreService(
        MemoryBackend(), config=StoreConfig(**config), clock=clock or ManualClock(start=START)
    )


async def _proof(service: StoreService, device: LocalDevice, action: str) -> AuthProof:
    challenge = await service.issue_challenge(source="t", device_key=device.device_key)
    signature = device.key_pair.sign(auth_message(challenge, device.device_key, action))
    return AuthProof(device_key=device.device_key, challenge=challenge, signature=signature)


async def test_a_challenge_answers_once_for_its_action_and_device() -> None:
    service, device = _service(), _device()
    proof = await _proof(service, device, "fetch")
    assert await service.fetch(proof) == []
    with pytest.raises(AuthenticationFailedError, match="replay"):
        await service.fetch(proof)
    wrong_action = await _proof(service, device, "fetch")
    with pytest.raises(AuthenticationFailedError, match="signature"):
        await service.acknowledge(wrong_action, ["x"])
    other = _device()
    stolen = dataclasses.replace(
        await _proof(service, device, "fetch"), device_key=other.device_key
    )
    with pytest.raises(AuthenticationFailedError, match="not issued"):
        await service.fetch(stolen)


async def test_forged_malformed_and_foreign_challenges_are_refused() -> None:
    service, device = _service(), _device()
    proof = await _proof(service, device, "fetch")
    flipped = bytearray(proof.challenge)
    flipped[5] ^= 1
    with pytest.raises(AuthenticationFailedError, match="not issued"):
        await service.fetch(dataclasses.replace(proof, challenge=bytes(flipped)))
    for bad in [b"", proof.challenge[:-1], b"\x02" + proof.challenge[1:]]:
        with pytest.raises(AuthenticationFailedError, match="malformed"):
            await service.fetch(dataclasses.replace(proof, challenge=bad))
    with pytest.raises(AuthenticationFailedError, match="signature"):
        await service.fetch(dataclasses.replace(proof, signature=b"\x00" * 64))
    with pytest.raises(AuthenticationFailedError, match="signature"):
        await service.fetch(dataclasses.replace(proof, signature=b"short"))
    other_server = _service()
    with pytest.raises(AuthenticationFailedError, match="not issued"):
        await other_server.fetch(proof)
    with pytest.raises(RequestRejectedError):
        await service.fetch(dataclasses.replace(proof, device_key=b"short"))
    assert await service.fetch(proof) == [], "failed attempts did not spend the challenge"


async def test_challenges_expire_and_a_shared_secret_spans_processes() -> None:
    clock = ManualClock(start=START)
    secret = bytes(range(32))
    first = _service(clock, auth_secret=secret, challenge_ttl_seconds=30)
    second = StoreService(first.backend, config=first.config, clock=clock)
    device = _device()
    assert await second.fetch(await _proof(first, device, "fetch")) == []
    late = await _proof(first, device, "fetch")
    clock.advance(30)
    with pytest.raises(AuthenticationFailedError, match="expired"):
        await first.fetch(late)
    with pytest.raises(AuthenticationFailedError, match="unknown action"):
        await first.authenticate(await _proof(first, device, "fetch"), "steal")


async def test_requests_from_one_source_are_rate_limited_and_refill() -> None:
    clock = ManualClock(start=START)
    service = _service(clock, requests_per_second=1, request_burst=3)
    target = recipient_hash(_device().device_key)
    for n in range(3):
        await service.deposit(source="flood", recipient=target, message_id=f"m{n}", payload=b"")
    with pytest.raises(RateLimitedError):
        await service.deposit(source="flood", recipient=target, message_id="m9", payload=b"")
    assert await service.deposit(source="calm", recipient=target, message_id="c", payload=b"")
    clock.advance(1)
    assert await service.deposit(source="flood", recipient=target, message_id="m9", payload=b"")


async def test_bytes_from_one_source_are_rate_limited() -> None:
    service = _service(max_payload_bytes=100, bytes_burst=150, bytes_per_second=1)
    target = recipient_hash(_device().device_key)
    await service.deposit(source="s", recipient=target, message_id="a", payload=b"x" * 100)
    with pytest.raises(RateLimitedError):
        await service.deposit(source="s", recipient=target, message_id="b", payload=b"x" * 100)


async def test_a_full_mailbox_refuses_more_and_others_are_unaffected() -> None:
    service = _service(max_messages_per_recipient=2)
    full, other = recipient_hash(_device().device_key), recipient_hash(_device().device_key)
    for n in range(2):
        await service.deposit(source="s", recipient=full, message_id=f"m{n}", payload=b"")
    with pytest.raises(QuotaExceededError) as info:
        await service.deposit(source="s", recipient=full, message_id="m2", payload=b"")
    assert info.value.reason == "mailbox_full"
    assert await service.deposit(source="s", recipient=other, message_id="m2", payload=b"")


async def test_ttls_are_capped_and_expired_messages_swept() -> None:
    clock = ManualClock(start=START)
    service = _service(clock, default_ttl_seconds=100, max_ttl_seconds=200)
    device = _device()
    target = recipient_hash(device.device_key)
    await service.deposit(source="s", recipient=target, message_id="a", payload=b"")
    await service.deposit(
        source="s", recipient=target, message_id="b", payload=b"", ttl_seconds=10**9
    )
    messages = await service.fetch(await _proof(service, device, "fetch"))
    assert [m.expires_at - m.deposited_at for m in messages] == [100_000, 200_000]
    clock.advance(150)
    assert await service.sweep() == 1
    async with anyio.create_task_group() as group:
        await group.start(service.run_sweeper)
        clock.advance(service.config.sweep_interval_seconds + 100)
        await clock.wait_for_sleepers(1, until_after=clock.now())
        group.cancel_scope.cancel()
    assert await service.fetch(await _proof(service, device, "fetch")) == []


class _BrokenBackend(MemoryBackend):
    async def purge_expired(self, now: int) -> int:
        raise StorageError("database went away")


async def test_a_failing_sweep_is_logged_and_the_sweeper_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(start=START)
    service = StoreService(_BrokenBackend(), clock=clock)
    async with anyio.create_task_group() as group:
        await group.start(service.run_sweeper)
        for _ in range(2):
            clock.advance(service.config.sweep_interval_seconds)
            await clock.wait_for_sleepers(1, until_after=clock.now())
        group.cancel_scope.cancel()
    assert caplog.text.count("event=sweep_failed") == 2


async def test_a_long_poll_times_out_on_the_service_clock() -> None:
    clock = ManualClock(start=START)
    server = MemoryStoreServer(clock=clock)
    device = _device()
    result: list[bool] = []
    async with server.client() as client, anyio.create_task_group() as group:

        async def wait() -> None:
            result.append(await client.wait_for_messages(device, timeout=5))

        group.start_soon(wait)
        await clock.wait_for_sleepers(1)
        clock.advance(5)
    assert result == [False]
    notifier = server.service.notifier
    assert isinstance(notifier, MemoryNotifier)
    assert notifier.listener_count == 0


async def test_a_long_poll_wakes_on_a_deposit() -> None:
    clock = ManualClock(start=START)
    server = MemoryStoreServer(clock=clock)
    device = _device()
    result: list[bool] = []
    async with server.client() as client, anyio.create_task_group() as group:

        async def wait() -> None:
            result.append(await client.wait_for_messages(device, timeout=5))

        group.start_soon(wait)
        await clock.wait_for_sleepers(1)
        await client.deposit(device.device_key, "m", b"x")
    assert result == [True]


async def test_bad_requests_are_refused_with_reasons() -> None:
    service, device = _service(), _device()
    target = recipient_hash(device.device_key)
    with pytest.raises(RequestRejectedError) as info:
        await service.deposit(source="s", recipient="nothex", message_id="m", payload=b"")
    assert info.value.reason == "invalid_recipient"
    with pytest.raises(RequestRejectedError):
        await service.deposit(source="s", recipient=target, message_id="m", payload="str")  # type: ignore[arg-type]
    with pytest.raises(RequestRejectedError):
        await service.fetch(await _proof(service, device, "fetch"), limit=0)
    with pytest.raises(RequestRejectedError, match="at most"):
        await service.acknowledge(await _proof(service, device, "acknowledge"), ["a"] * 1001)
    with pytest.raises(RequestRejectedError):
        await service.wait_for_messages(await _proof(service, device, "wait"), timeout=-1)


async def test_a_closed_memory_client_refuses_calls() -> None:
    client = MemoryStoreServer().client()
    await client.aclose()
    with pytest.raises(Exception, match="closed"):
        await client.deposit(_device().device_key, "m", b"")


@pytest.mark.parametrize(
    "config",
    [
        {"default_ttl_seconds": 0},
        {"max_fetch": True},
        {"default_ttl_seconds": 10, "max_ttl_seconds": 5},
        {"bytes_burst": 10},
        {"max_bytes_per_recipient": 10},
        {"auth_secret": b"short"},
    ],
)
def test_invalid_configurations_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        StoreConfig(**config)  # type: ignore[arg-type]


def test_token_buckets_forget_the_least_recent_source() -> None:
    buckets = TokenBuckets(rate=0, burst=1, max_sources=2)
    assert buckets.take("a", 1, 0)
    assert not buckets.take("a", 1, 0)
    buckets.take("b", 1, 0)
    buckets.take("c", 1, 0)
    assert len(buckets) == 2
    assert buckets.take("a", 1, 0), "a forgotten source starts with a full bucket"
