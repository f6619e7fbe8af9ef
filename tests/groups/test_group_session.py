"""GroupSession: encrypt once for every member, rekey on removal, new members see nothing old."""

from __future__ import annotations

import copy

import pytest
from group_helpers import NOW, deliver, device, new_group, sessions_of, user

from omega.errors import (
    DuplicateMessageError,
    GroupPermissionError,
    InvalidEnvelopeError,
    MessageDecodeError,
    StaleSenderKeyError,
    UnknownSenderKeyError,
)
from omega.groups import GroupLog, GroupSession, Permissions
from omega.protocol import PermissionLevel
from omega.testing.random import SeededRandom


def _open(session: GroupSession, sender: int, ciphertext: bytes) -> bytes:
    return session.decrypt(user(sender), device(sender).device_key, ciphertext)


def test_three_members_exchange_messages_encrypted_once() -> None:
    log, _ = new_group(3)
    sessions = sessions_of(3, log)
    for sender in range(3):
        ciphertext = sessions[sender].encrypt(b"hello from %d" % sender)
        for receiver in set(range(3)) - {sender}:
            assert _open(sessions[receiver], sender, ciphertext) == b"hello from %d" % sender


def test_removal_rekeys_so_the_removed_member_reads_nothing_later() -> None:
    log, _ = new_group(3)
    sessions = sessions_of(3, log)
    removal = sessions[0].log.remove_member(device(0), user(2), now=NOW)
    owner_rekey = sessions[0].after_local_change(rng=SeededRandom(b"r0"))
    assert owner_rekey is not None
    assert owner_rekey.recipients == {user(1)}
    _, member_rekey = sessions[1].receive_operation(removal, rng=SeededRandom(b"r1"))
    assert member_rekey is not None
    assert member_rekey.recipients == {user(0)}
    deliver(sessions, 0, owner_rekey)
    deliver(sessions, 1, member_rekey)
    later = sessions[0].encrypt(b"after the removal")
    assert _open(sessions[1], 0, later) == b"after the removal"
    # The removed member's device still holds only the old keys: nothing opens.
    with pytest.raises(UnknownSenderKeyError):
        _open(sessions[2], 0, later)
    # Once it learns of its own removal, it may not send either.
    sessions[2].receive_operation(removal)
    with pytest.raises(GroupPermissionError, match="not a member"):
        sessions[2].encrypt(b"still here?")
    with pytest.raises(InvalidEnvelopeError):
        _open(sessions[1], 2, b"anything")


def test_a_message_under_a_stale_key_is_refused_once_the_sender_rekeyed() -> None:
    log, _ = new_group(3)
    sessions = sessions_of(3, log)
    old = sessions[0].encrypt(b"old key")
    removal = sessions[0].log.remove_member(device(0), user(2), now=NOW)
    rekey = sessions[0].after_local_change(rng=SeededRandom(b"r"))
    sessions[1].receive_operation(removal, rng=SeededRandom(b"r1"))
    # Before the sender's new key arrives, its old key still opens messages in flight.
    assert _open(copy.deepcopy(sessions[1]), 0, old) == b"old key"
    deliver(sessions, 0, rekey)
    with pytest.raises(StaleSenderKeyError):
        _open(sessions[1], 0, old)


def test_a_new_member_cannot_read_what_was_sent_before_it_joined() -> None:
    log, _ = new_group(2)
    sessions = sessions_of(2, log)
    before = sessions[0].encrypt(b"before")
    add = sessions[0].log.add_member(device(0), user(2), now=NOW)
    sessions[1].receive_operation(add)
    newcomer = GroupSession.start(
        GroupLog.from_batch(sessions[0].log.to_bytes())[0], device(2), rng=SeededRandom(b"n")
    )
    sessions[2] = newcomer
    deliver(sessions, 0, sessions[0].rekey_all())
    with pytest.raises(DuplicateMessageError):
        _open(newcomer, 0, before)
    assert _open(newcomer, 0, sessions[0].encrypt(b"after")) == b"after"


def test_posting_permission_and_bad_input() -> None:
    log, _ = new_group(2)
    sessions = sessions_of(2, log)
    change = sessions[0].log.set_permissions(
        device(0), Permissions(send_messages=PermissionLevel.ADMINS), now=NOW
    )
    sessions[1].receive_operation(change)
    with pytest.raises(GroupPermissionError, match="may not post"):
        sessions[1].encrypt(b"x")
    muted = copy.deepcopy(sessions[1])
    muted.log._replay.permissions = Permissions()  # a cheating client ignores the rule
    muted.log._state = None
    with pytest.raises(InvalidEnvelopeError, match="may not post"):
        _open(sessions[0], 1, muted.encrypt(b"x"))
    with pytest.raises(MessageDecodeError):
        _open(sessions[1], 0, b"\xff")
    with pytest.raises(UnknownSenderKeyError):
        sessions[1].decrypt(user(0), device(5).device_key, sessions[0].encrypt(b"x"))
    other_group, _ = new_group(2, seed=b"elsewhere")
    foreign = GroupSession.start(other_group, device(0), rng=SeededRandom(b"f"))
    with pytest.raises(InvalidEnvelopeError, match="another group"):
        sessions[1].add_distribution(
            user(0), device(0).device_key, foreign.rekey_all().distribution
        )
    with pytest.raises(InvalidEnvelopeError, match="not a member"):
        sessions[1].add_distribution(
            user(7), device(7).device_key, foreign.rekey_all().distribution
        )
    assert not sessions[1].add_distribution(
        user(0), device(0).device_key, sessions[0].rekey_all().distribution
    )


def test_a_256_member_group_decrypts_one_ciphertext_everywhere() -> None:
    log, _ = new_group(256)
    sender = GroupSession.start(log, device(0), rng=SeededRandom(b"s"))
    distribution = sender.rekey_all()
    assert len(distribution.recipients) == 255
    ciphertext = sender.encrypt(b"to everyone")
    receivers = []
    for index in range(1, 256):
        receiver = GroupSession.__new__(GroupSession)  # share the log: read-only here
        GroupSession.__init__(receiver, log, device(index), _own_key(log, index))
        receiver.add_distribution(user(0), device(0).device_key, distribution.distribution)
        receivers.append(receiver)
    assert all(_open(r, 0, ciphertext) == b"to everyone" for r in receivers)


def _own_key(log: GroupLog, index: int):  # type: ignore[no-untyped-def]
    from omega.crypto import OutboundSenderKey

    return OutboundSenderKey.generate(
        log.group_id, device_key=device(index).device_key, rng=SeededRandom(b"k%d" % index)
    )


def test_a_session_survives_storage() -> None:
    log, _ = new_group(3)
    sessions = sessions_of(3, log)
    old = sessions[0].encrypt(b"old")
    removal = sessions[0].log.remove_member(device(0), user(2), now=NOW)
    rekey = sessions[0].after_local_change(rng=SeededRandom(b"r"))
    sessions[1].receive_operation(removal, rng=SeededRandom(b"r1"))
    deliver(sessions, 0, rekey)
    data = sessions[1].to_bytes()
    loaded = GroupSession.from_bytes(data, device(1))
    assert loaded.to_bytes() == data
    assert loaded.log.state == sessions[1].log.state
    assert _open(loaded, 0, sessions[0].encrypt(b"new")) == b"new"
    with pytest.raises(StaleSenderKeyError):
        _open(loaded, 0, old)
    assert loaded.after_local_change() is None


def test_corrupt_session_state_is_refused() -> None:
    log, _ = new_group(2)
    data = GroupSession.start(log, device(0), rng=SeededRandom(b"s")).to_bytes()
    for corrupt in (b"\xff", data[:-3], b"\x08\x02" + data[2:]):
        with pytest.raises(MessageDecodeError):
            GroupSession.from_bytes(corrupt, device(0))
    with pytest.raises(MessageDecodeError):
        GroupSession.from_bytes(data, device(1))  # another device's sender key
