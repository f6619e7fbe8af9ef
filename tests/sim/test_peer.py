"""The simulated device runs the real crypto, envelope and wire code."""

from __future__ import annotations

import pytest

from omega.errors import InvalidEnvelopeError, OmegaError, RemoteProtocolError
from omega.protocol import EncryptionKind, Frame, decode_message
from omega.sim import EPOCH_MS, SimPeer


def _pair() -> tuple[SimPeer, SimPeer]:
    return SimPeer(0, seed=1, now=EPOCH_MS), SimPeer(1, seed=1, now=EPOCH_MS)


def _text(sender: SimPeer, recipient: SimPeer, now: int) -> tuple[str, bytes]:
    message_id = sender.new_message_id()
    content = SimPeer.text_content(
        10, message_id=message_id, timestamp=now, conversation_id=recipient.user_id
    )
    frame = sender.seal(message_id=message_id, recipient=recipient, content=content, timestamp=now)
    return message_id, frame


def test_same_seed_same_keys_and_ids() -> None:
    assert SimPeer(3, seed=9, now=EPOCH_MS).user_id == SimPeer(3, seed=9, now=EPOCH_MS).user_id
    assert SimPeer(3, seed=9, now=EPOCH_MS).user_id != SimPeer(4, seed=9, now=EPOCH_MS).user_id


def test_prekey_then_ratchet_messages_and_duplicates() -> None:
    alice, bob = _pair()
    now = EPOCH_MS + 1000
    message_id, frame = _text(alice, bob, now)
    envelope = decode_message(Frame, frame).message
    assert envelope is not None
    assert envelope.encryption == EncryptionKind.PREKEY
    assert envelope.signature == b""
    received = bob.open(frame, now=now, from_device=alice.device_key)
    assert received.message_id == message_id
    assert received.content is not None
    assert received.content.text is not None
    assert received.content.text.text == "x" * 10
    # the same frame again: a duplicate, acknowledged again by the caller
    assert bob.open(frame, now=now).content is None
    # bob answers with a receipt: a ratchet message; alice's session stops sending prekey messages
    _, receipt = bob.receipt(message_id=message_id, recipient=alice, now=now)
    assert decode_message(Frame, receipt).message.encryption == EncryptionKind.RATCHET  # type: ignore[union-attr]
    opened = alice.open(receipt, now=now)
    assert opened.content is not None
    assert opened.content.receipt is not None
    assert opened.content.receipt.message_ids == [message_id]
    _, second = _text(alice, bob, now + 1)
    assert decode_message(Frame, second).message.encryption == EncryptionKind.RATCHET  # type: ignore[union-attr]
    assert bob.open(second, now=now + 1).content is not None


def test_refusals() -> None:
    alice, bob = _pair()
    carol = SimPeer(2, seed=1, now=EPOCH_MS)
    now = EPOCH_MS
    _, frame = _text(alice, bob, now)
    with pytest.raises(InvalidEnvelopeError):
        carol.open(frame, now=now)  # addressed to bob
    with pytest.raises(RemoteProtocolError):
        bob.open(frame, now=now, from_device=carol.device_key)  # not the channel's peer
    with pytest.raises(RemoteProtocolError):
        bob.open(SimPeer.ack("x", now=now), now=now)  # not an envelope
    with pytest.raises(OmegaError):
        bob.open(b"\xff\xff", now=now)
    with pytest.raises(RemoteProtocolError):
        SimPeer.read_ack(frame)
    assert SimPeer.read_ack(SimPeer.ack("abc", now=now)) == "abc"
    assert bob.bundle().device_certificate is not None


def test_text_content_is_what_bind_content_makes() -> None:
    from omega.protocol import MessageContent, TextContent
    from omega.session.content import encode_content
    from omega.session.envelope import bind_content

    made = SimPeer.text_content(5, message_id="m-1", timestamp=7, conversation_id="c")
    content = MessageContent()
    content.text = TextContent(text="xxxxx")
    bound = bind_content(content, message_id="m-1", timestamp=7, conversation_id="c")
    assert made == encode_content(bound)
