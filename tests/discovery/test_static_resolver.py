"""The static resolver (dict and file) and the chain of resolvers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from discovery_helpers import HOUR_MS, NOW_MS

from omega.crypto import Identity
from omega.discovery import (
    ChainResolver,
    PeerRecordInfo,
    Publisher,
    Resolver,
    StaticResolver,
    WallClock,
    sign_peer_record,
)
from omega.errors import (
    ConfigurationError,
    DiscoveryError,
    ExpiredRecordError,
    LocalProtocolError,
    StaleDeviceListError,
    StaleRecordError,
)
from omega.protocol import SignedPeerRecord, decode_message, encode_message
from omega.testing.clock import ManualClock
from omega.testing.discovery import check_resolver


@asynccontextmanager
async def _static_pair(clock: ManualClock) -> AsyncIterator[tuple[Publisher, Resolver]]:
    async with StaticResolver(clock=clock) as resolver:
        yield resolver, resolver


@asynccontextmanager
async def _chained_pair(clock: ManualClock) -> AsyncIterator[tuple[Publisher, Resolver]]:
    empty = StaticResolver(clock=clock)
    table = StaticResolver(clock=clock)
    async with ChainResolver([empty, table]) as chain:
        yield table, chain


@pytest.mark.anyio
async def test_static_resolver_passes_the_conformance_suite() -> None:
    await check_resolver(_static_pair)


@pytest.mark.anyio
async def test_chain_resolver_passes_the_conformance_suite() -> None:
    await check_resolver(_chained_pair)


def _record(identity: Identity, sequence: int = 1, expires_at: int = NOW_MS + HOUR_MS) -> bytes:
    return encode_message(
        sign_peer_record(
            identity.device,
            addresses=["/ip4/192.0.2.1/tcp/4001"],
            sequence=sequence,
            expires_at=expires_at,
        )
    )


@pytest.mark.anyio
async def test_a_table_from_a_dict_answers_and_republishing_is_idempotent(
    alice: Identity, bob: Identity, clock: ManualClock
) -> None:
    record = decode_message(SignedPeerRecord, _record(alice))
    resolver = StaticResolver(
        {alice.user_id: (alice.device_list.to_signed(), [record]), bob.user_id: (None, [])},
        clock=clock,
    )
    found = await resolver.resolve_peer(alice.device.device_key, user_id=alice.user_id)
    assert isinstance(found, PeerRecordInfo)
    assert await resolver.resolve_device_list(bob.user_id) is None
    await resolver.publish_peer_record(record)  # the same bytes again: accepted, no change
    await resolver.publish_device_list(alice.device_list.to_signed())
    assert await resolver.resolve_peer(alice.device.device_key, user_id=alice.user_id) == found
    with pytest.raises(StaleRecordError):
        await resolver.publish_peer_record(
            decode_message(SignedPeerRecord, _record(alice, sequence=1, expires_at=NOW_MS + 5))
        )
    newer = alice.add_device(bob.device.device_key, name="x", created_at=NOW_MS)
    await resolver.publish_device_list(newer.device_list.to_signed())
    with pytest.raises(StaleDeviceListError):
        await resolver.publish_device_list(alice.device_list.to_signed())


def test_an_invalid_table_entry_names_the_user(alice: Identity, bob: Identity) -> None:
    with pytest.raises(ConfigurationError, match=bob.user_id):
        StaticResolver({bob.user_id: (alice.device_list.to_signed(), [])})


@pytest.mark.anyio
async def test_an_expired_record_in_a_table_is_kept_but_never_returned(
    alice: Identity, clock: ManualClock
) -> None:
    record = decode_message(SignedPeerRecord, _record(alice, expires_at=NOW_MS - 1))
    resolver = StaticResolver({alice.user_id: (None, [record])}, clock=clock)
    assert await resolver.resolve_peer(alice.device.device_key, user_id=alice.user_id) is None
    with pytest.raises(ExpiredRecordError):
        await resolver.publish_peer_record(record)
    document = resolver.to_document()
    assert document["users"] == {
        alice.user_id: {
            "peer_records": [base64.b64encode(_record(alice, expires_at=NOW_MS - 1)).decode()]
        }
    }


@pytest.mark.anyio
@pytest.mark.parametrize("suffix", [".json", ".toml"])
async def test_a_table_round_trips_through_a_file(
    alice: Identity, bob: Identity, clock: ManualClock, tmp_path: Path, suffix: str
) -> None:
    source = StaticResolver(clock=clock)
    await source.publish_device_list(alice.device_list.to_signed())
    await source.publish_peer_record(decode_message(SignedPeerRecord, _record(alice)))
    await source.publish_device_list(bob.device_list.to_signed())
    document = source.to_document()
    path = tmp_path / f"peers{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(document))
    else:
        lines = ["version = 1"]
        users = document["users"]
        assert isinstance(users, dict)
        for user_id, entry in users.items():
            lines.append(f'[users."{user_id}"]')
            for key, value in entry.items():
                lines.append(f"{key} = {json.dumps(value)}")
        path.write_text("\n".join(lines))
    loaded = StaticResolver.from_file(path, clock=clock)
    assert loaded.to_document() == document
    found = await loaded.resolve_device_list(alice.user_id)
    assert found is not None
    assert found.sequence == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff", "does not parse"),
        (b"{", "does not parse"),
        (b'{"version": 2}', "version"),
        (b'{"version": 1, "users": []}', "users must be a table"),
        (b'{"version": 1, "users": {"u": 3}}', "entry must be a table"),
        (b'{"version": 1, "users": {"u": {"device_list": "!!"}}}', "Base64"),
        (b'{"version": 1, "users": {"u": {"device_list": 5}}}', "Base64 string"),
        (b'{"version": 1, "users": {"u": {"device_list": "AAAA"}}}', "u"),
        (b'{"version": 1, "users": {"u": {"peer_records": "AAAA"}}}', "must be a list"),
    ],
)
def test_malformed_files_raise_configuration_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "table.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=message):
        StaticResolver.from_file(path)


def test_missing_and_oversized_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        StaticResolver.from_file(tmp_path / "absent.toml")
    big = tmp_path / "big.toml"
    with big.open("wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)
    with pytest.raises(ConfigurationError, match="exceeds"):
        StaticResolver.from_file(big)


class _Failing(Resolver):
    async def resolve_device_list(self, user_id: str) -> None:
        raise DiscoveryError("network down")

    async def resolve_peer(self, device_key: bytes, *, user_id: str) -> None:
        raise DiscoveryError("network down")


@pytest.mark.anyio
async def test_a_chain_skips_a_failing_resolver_with_a_log_line(
    alice: Identity, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    table = StaticResolver({alice.user_id: (alice.device_list.to_signed(), [])}, clock=clock)
    chain = ChainResolver([_Failing(), table])
    assert chain.resolvers[1] is table
    assert await chain.resolve_device_list(alice.user_id) is not None
    assert await chain.resolve_peer(alice.device.device_key, user_id=alice.user_id) is None
    assert "discovery.chain resolver=_Failing failed=discovery_failed" in caplog.text
    await chain.aclose()
    with pytest.raises(LocalProtocolError):
        await chain.resolve_peer(alice.device.device_key, user_id=alice.user_id)
    with pytest.raises(LocalProtocolError):
        await table.resolve_device_list(alice.user_id)
    with pytest.raises(ConfigurationError):
        ChainResolver([])


@pytest.mark.anyio
async def test_the_wall_clock_reads_unix_time() -> None:
    import time

    clock = WallClock()
    assert abs(clock.now() - time.time()) < 5
    await clock.sleep_until(clock.now() - 1)
