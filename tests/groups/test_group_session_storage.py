"""GroupSession in parts: what each change persists, loading the parts, the version 1 blob."""

from __future__ import annotations

from pathlib import Path

import pytest
from group_helpers import NOW, device, new_group, sessions_of, user
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import DuplicateMessageError, MessageDecodeError, StaleSenderKeyError
from omega.groups import GroupSession, GroupSessionChanges
from omega.protocol import GroupSenderKeys, GroupSessionState, decode_message, encode_message
from omega.testing.random import SeededRandom

DATA = Path(__file__).parent / "data"


class _Parts:
    """What a key store would hold for one group, fed by take_changes()."""

    def __init__(self) -> None:
        self.record: bytes | None = None
        self.outbound: bytes | None = None
        self.senders: dict[bytes, bytes] = {}

    def write(self, changes: GroupSessionChanges) -> None:
        if changes.record is not None:
            self.record = changes.record
        if changes.outbound is not None:
            self.outbound = changes.outbound
        self.senders.update(changes.senders)
        for device_key in changes.removed_senders:
            del self.senders[device_key]

    def load(self, index: int) -> GroupSession:
        assert self.record is not None
        return GroupSession.from_parts(self.record, self.outbound, self.senders, device(index))


def test_each_change_persists_only_its_part() -> None:
    log, operations = new_group(3)
    sessions = sessions_of(3, log)
    first = sessions[1].take_changes()
    assert first.record is not None, "a new session writes its record"
    assert first.outbound is not None, "and its outbound key"
    assert set(first.senders) == {device(0).device_key, device(2).device_key}
    assert not sessions[1].take_changes(), "nothing changed since"
    ciphertext = sessions[0].encrypt(b"hi")
    sessions[1].decrypt(user(0), device(0).device_key, ciphertext)
    received = sessions[1].take_changes()
    assert received.record is None
    assert received.outbound is None
    assert list(received.senders) == [device(0).device_key], "a received message: one sender"
    sessions[1].encrypt(b"out")
    sent = sessions[1].take_changes()
    assert sent.outbound is not None, "a sent message: the outbound key alone"
    assert (sent.record, dict(sent.senders)) == (None, {})
    sessions[1].receive_operation(operations[1])  # a duplicate: the log is unchanged
    assert not sessions[1].take_changes(), "a duplicate operation writes nothing"
    removal = sessions[0].log.remove_member(device(0), user(2), now=NOW)
    sessions[1].receive_operation(removal, rng=SeededRandom(b"r"))
    removed = sessions[1].take_changes()
    assert removed.record is not None, "a removal rewrites the record"
    assert removed.outbound is not None, "and rotates the outbound key"
    assert removed.removed_senders == {device(2).device_key}, "the removed member's keys go"
    assert not removed.senders


def test_a_session_loads_back_from_its_parts() -> None:
    log, _ = new_group(3)
    sessions = sessions_of(3, log)
    parts = _Parts()
    parts.write(sessions[1].take_changes())
    for sender in (0, 2, 0):
        sessions[1].decrypt(user(sender), device(sender).device_key, sessions[sender].encrypt(b"m"))
        parts.write(sessions[1].take_changes())
    loaded = parts.load(1)
    assert loaded.to_bytes() == sessions[1].to_bytes(), "the same session as before"
    assert not loaded.take_changes(), "a session loaded from parts has nothing to write"
    ciphertext = sessions[0].encrypt(b"next")
    assert loaded.decrypt(user(0), device(0).device_key, ciphertext) == b"next"


def test_restore_sender_puts_back_the_stored_chain() -> None:
    log, _ = new_group(2)
    sessions = sessions_of(2, log)
    parts = _Parts()
    parts.write(sessions[1].take_changes())
    sender = device(0).device_key
    ciphertext = sessions[0].encrypt(b"once")
    assert sessions[1].decrypt(user(0), sender, ciphertext) == b"once"
    with pytest.raises(DuplicateMessageError):
        sessions[1].decrypt(user(0), sender, ciphertext)
    sessions[1].restore_sender(sender, parts.senders[sender])  # the write never committed
    assert sessions[1].decrypt(user(0), sender, ciphertext) == b"once", "the chain went back"
    sessions[1].restore_sender(sender, None)
    assert sessions[1].to_bytes() != parts.load(1).to_bytes(), "no record: the keys are gone"
    with pytest.raises(MessageDecodeError):
        sessions[1].restore_sender(sender, b"\xff")
    other = encode_message(
        GroupSenderKeys(
            user_id=user(0), keys=decode_message(GroupSenderKeys, parts.senders[sender]).keys
        )
    )
    with pytest.raises(MessageDecodeError, match="another device"):
        sessions[1].restore_sender(device(1).device_key, other)


def test_damaged_parts_are_refused() -> None:
    log, _ = new_group(2)
    sessions = sessions_of(2, log)
    parts = _Parts()
    parts.write(sessions[1].take_changes())
    assert parts.record is not None
    [(sender, record)] = parts.senders.items()
    cases = [
        (parts.record, None, parts.senders),  # no outbound key
        (parts.record, parts.outbound, {device(1).device_key: record}),  # under another device
        (parts.record, parts.outbound, {sender: b"\xff"}),
        (b"\x08\x03" + parts.record[2:], parts.outbound, parts.senders),  # version 3
        (parts.record, sessions[0].outbound.to_bytes(), parts.senders),  # another device's key
    ]
    for record_bytes, outbound, senders in cases:
        with pytest.raises(MessageDecodeError):
            GroupSession.from_parts(record_bytes, outbound, senders, device(1))


def test_a_version_1_blob_written_before_the_split_loads_and_converts() -> None:
    legacy = (DATA / "group_session_v1_member1.bin").read_bytes()
    assert decode_message(GroupSessionState, legacy).version == 1
    stray = {bytes(range(32)): b"left over"}
    session = GroupSession.from_parts(legacy, None, stray, device(1))
    assert session.to_bytes() == legacy, "the same session the old code saved"
    parts = _Parts()
    parts.senders = dict(stray)
    changes = session.take_changes()
    assert changes.record is not None, "the first save writes the record..."
    assert changes.outbound is not None, "...the outbound key..."
    assert set(changes.senders) == {device(0).device_key}, "...and every sender's record"
    assert changes.removed_senders == set(stray), "records the blob does not hold are dropped"
    parts.write(changes)
    converted = parts.load(1)
    assert decode_message(GroupSessionState, parts.record or b"").version == 2
    assert converted.to_bytes() == legacy, "converted, it is still the same session"
    # User 0 (also loaded from its old blob) keeps writing; the converted session reads it.
    sender = GroupSession.from_bytes(
        (DATA / "group_session_v1_member0.bin").read_bytes(), device(0)
    )
    assert converted.decrypt(user(0), device(0).device_key, sender.encrypt(b"after")) == b"after"
    # Member 1 rotated on the removal: its new key reaches 0 (the fixture never carried it).
    sender.add_distribution(user(1), device(1).device_key, converted.rekey_all().distribution)
    reply = converted.encrypt(b"reply")
    assert sender.decrypt(user(1), device(1).device_key, reply) == b"reply"
    assert not converted.log.state.is_member(user(2))
    in_flight = (DATA / "group_message_v1_in_flight.bin").read_bytes()
    with pytest.raises(StaleSenderKeyError):  # the key epochs came through the conversion
        converted.decrypt(user(0), device(0).device_key, in_flight)


@settings(max_examples=15)
@given(st.lists(st.tuples(st.sampled_from(["send", "receive", "rotate"]), st.integers(0, 3))))
def test_parts_written_after_every_step_load_the_same_session(steps: list[tuple[str, int]]) -> None:
    log, _ = new_group(4)
    sessions = sessions_of(4, log)
    parts = _Parts()
    parts.write(sessions[1].take_changes())
    for step, (action, sender) in enumerate(steps):
        if action == "send":
            sessions[1].encrypt(b"x")
        elif action == "receive" and sender != 1:
            ciphertext = sessions[sender].encrypt(b"y")
            sessions[1].decrypt(user(sender), device(sender).device_key, ciphertext)
        elif action == "rotate" and sender != 1:
            distribution = sessions[sender].outbound.rotate(rng=SeededRandom(b"%d" % step))
            sessions[1].add_distribution(user(sender), device(sender).device_key, distribution)
        else:
            sessions[1].outbound.rotate(rng=SeededRandom(b"own%d" % step))
        parts.write(sessions[1].take_changes())
        assert parts.load(1).to_bytes() == sessions[1].to_bytes()


@settings(max_examples=40)
@given(st.binary(max_size=300))
def test_arbitrary_sender_records_raise_only_decode_errors(data: bytes) -> None:
    log, _ = new_group(2)
    session = sessions_of(2, log)[1]
    parts = _Parts()
    parts.write(session.take_changes())
    assert parts.record is not None
    sender = device(0).device_key
    assert sender in parts.senders
    with pytest.raises(MessageDecodeError):
        GroupSession.from_parts(parts.record, parts.outbound, {sender: data}, device(1))
    with pytest.raises(MessageDecodeError):
        session.restore_sender(sender, data)
    assert session.to_bytes() == parts.load(1).to_bytes(), "a refused record changes nothing"
