"""Devices and small builders shared by the omega.groups tests."""

from __future__ import annotations

import copy
import functools

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.groups import GroupConfig, GroupLog, GroupSession, Rekey
from omega.testing.random import SeededRandom

NOW = 1_700_000_000_000


@functools.cache
def member(index: int) -> tuple[str, LocalDevice]:
    """The user id and a certified device of test user number ``index`` (cached)."""
    seed = index.to_bytes(4, "big")
    identity = IdentityKeyPair.from_seed(b"identity" + seed + bytes(20))
    key_pair = DeviceKeyPair.from_seed(b"device--" + seed + bytes(20))
    signed = certify_device(identity, key_pair.public_key, name="phone", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity.user_id, LocalDevice(key_pair=key_pair, certificate=certificate)


def user(index: int) -> str:
    """User id of test user ``index``."""
    return member(index)[0]


def device(index: int) -> LocalDevice:
    """Device of test user ``index``."""
    return member(index)[1]


def new_group(
    members: int = 1, *, config: GroupConfig | None = None, seed: bytes = b"group"
) -> tuple[GroupLog, list[bytes]]:
    """A group created by user 0 holding users 0..members-1; returns it and every operation."""
    log, genesis = GroupLog.create(
        device(0), name="friends", now=NOW, config=config, rng=SeededRandom(seed)
    )
    operations = [genesis]
    for index in range(1, members):
        operations.append(log.add_member(device(0), user(index), now=NOW + index))
    return log, operations


def replica(operations: list[bytes], *, config: GroupConfig | None = None) -> GroupLog:
    """A fresh log fed ``operations`` one by one (genesis first)."""
    log = GroupLog(_genesis(operations[0]), config=config)
    for operation in operations[1:]:
        log.receive(operation)
    return log


def _genesis(data: bytes):  # type: ignore[no-untyped-def]
    from omega.groups import verify_operation

    return verify_operation(data)


def sessions_of(count: int, log: GroupLog) -> dict[int, GroupSession]:
    """One session per member 0..count-1, every distribution delivered to every member."""
    sessions = {
        index: GroupSession.start(
            log if index == 0 else copy.deepcopy(log),
            device(index),
            rng=SeededRandom(b"%d" % index),
        )
        for index in range(count)
    }
    for sender, session in sessions.items():
        deliver(sessions, sender, session.rekey_all())
    return sessions


def deliver(sessions: dict[int, GroupSession], sender: int, rekey: Rekey | None) -> None:
    """Carry a distribution over the (simulated) pairwise sessions to its recipients only."""
    assert rekey is not None
    for index, session in sessions.items():
        if user(index) in rekey.recipients:
            session.add_distribution(user(sender), device(sender).device_key, rekey.distribution)
