"""``omega demo``: a guided tour of what the SDK does today, on embedded defaults.

Two users, Alice and Bob, meet: they create identities, Alice links a second
device, they exchange contact URIs, compare safety numbers (by digits and by
QR payload), Alice revokes a lost device and backs up her identity, they open
an end-to-end encrypted session (X3DH + Double Ratchet) and exchange
messages, an encrypted message envelope survives the framing layer in ragged
chunks, and finally travels over TCP on loopback inside a Noise XX secure
channel that proves both identities. Every step checks its result and the
tour stops with an error if one fails. It runs in one process, on loopback
only, with no files.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import TextIO

import anyio
import segno

import omega
from omega.crypto import (
    ContactUri,
    DeviceKeyPair,
    Identity,
    PrekeyStore,
    RatchetSession,
    SafetyNumber,
    accept_session,
    encrypt_message,
    export_identity,
    import_identity,
    initiate_session,
    verify_device_list,
)
from omega.errors import (
    DecryptionError,
    InvalidUriError,
    OmegaError,
    PeerIdentityMismatchError,
    StaleDeviceListError,
    WrongPassphraseError,
)
from omega.protocol import (
    Ack,
    AckStatus,
    Frame,
    Message,
    MessageType,
    decode_message,
    encode_message,
)
from omega.protocol.framing import FrameDecoder, encode_frame
from omega.transport import (
    Address,
    FrameConnection,
    NoiseCredentials,
    SecureConnection,
    SecureTransport,
    TcpTransport,
    listening,
)

__all__ = ["DemoFailedError", "run_demo"]


class DemoFailedError(OmegaError):
    """A step of the demo did not produce what it should have."""

    code = "demo_failed"


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailedError(f"demo step failed: {what}")


def run_demo(out: TextIO, *, qr: bool = True) -> None:
    """Run the tour, printing each step to ``out``.

    Raises :class:`DemoFailedError` if a step does not produce what it should.
    """
    now = time.time_ns() // 1_000_000
    say = _Printer(out)
    say.title(f"Omega {omega.__version__} demo (Cython accelerators live: {omega.accelerated()})")
    alice, bob = _create_identities(say, now)
    alice, phone = _link_device(say, alice, now)
    alices_list_as_bob_saw_it = _exchange_contacts(say, alice, out if qr else None)
    _compare_safety_numbers(say, alice, bob)
    alice = _revoke_device(say, alice, phone, alices_list_as_bob_saw_it, now)
    _back_up(say, alice)
    ciphertext, bobs_session = _encrypted_chat(say, alice, bob, now)
    envelope = Message(
        message_id=str(uuid.uuid4()),
        sender_id=alice.user_id,
        recipient_id=bob.user_id,
        type=MessageType.TEXT,
        timestamp=now,
        encrypted_content=ciphertext,
        sender_device_key=alice.device.device_key,
        recipient_device_key=bob.device.device_key,
    )
    _send_envelope(say, envelope, now)
    try:
        anyio.run(_over_the_network, say, alice, bob, envelope, bobs_session)
    except* OmegaError as group:  # task groups wrap what their body raised
        first = group.exceptions[0]
        message = first.message if isinstance(first, OmegaError) else str(first)
        raise DemoFailedError(f"demo step failed over the network: {message}") from first
    say.title("Done. Next: the Client, servers and discovery (docs/roadmap.md).")


def _create_identities(say: _Printer, now: int) -> tuple[Identity, Identity]:
    say.step("Alice and Bob create identities (Ed25519 keys, no phone number, no e-mail)")
    alice = Identity.create(display_name="Alice", device_name="alice-laptop", created_at=now)
    bob = Identity.create(display_name="Bob", device_name="bob-phone", created_at=now)
    say.item(f"Alice: {alice.user_id}")
    say.item(f"Bob:   {bob.user_id}")
    typo = alice.user_id[:-1] + ("q" if alice.user_id[-1] != "q" else "p")
    try:
        ContactUri.parse(f"omega://{typo}")
    except InvalidUriError as exc:
        say.item(f"a mistyped id is refused: {exc.message}")
    else:
        raise DemoFailedError("demo step failed: a mistyped user id was accepted")
    return alice, bob


def _link_device(say: _Printer, alice: Identity, now: int) -> tuple[Identity, DeviceKeyPair]:
    say.step("Alice links a second device; her identity key certifies it")
    phone = DeviceKeyPair.generate()
    alice = alice.add_device(phone.public_key, name="alice-phone", created_at=now + 1)
    names = ", ".join(d.device_name for d in alice.device_list.devices)
    say.item(f"signed device list #{alice.device_list.sequence}: {names}")
    return alice, phone


def _exchange_contacts(say: _Printer, alice: Identity, qr_out: TextIO | None) -> bytes:
    say.step("They exchange contact URIs (as text or QR code)")
    alice_uri = str(ContactUri(user_id=alice.user_id, display_name="Alice"))
    say.item(f"Alice shares {alice_uri}")
    if qr_out is not None:
        segno.make(alice_uri, error="m").terminal(out=qr_out, compact=True)
    contact = ContactUri.parse(alice_uri)
    _check(contact.user_id == alice.user_id, "Bob parsed Alice's URI")
    published = bytes(alice.device_list.to_signed())
    bobs_view = verify_device_list(published, user_id=contact.user_id)
    say.item(
        f"Bob verified Alice's device list #{bobs_view.sequence} "
        f"({len(bobs_view.devices)} devices, signed by her identity key)"
    )
    return published


def _compare_safety_numbers(say: _Printer, alice: Identity, bob: Identity) -> None:
    say.step("They compare safety numbers, in person or on a call")
    on_alice = SafetyNumber.compute(alice.identity_key, bob.identity_key)
    on_bob = SafetyNumber.compute(bob.identity_key, alice.identity_key)
    _check(on_alice.digits == on_bob.digits, "both sides compute the same number")
    say.item(on_alice.display())
    _check(on_alice.verify_scanned(on_bob.qr_payload()), "Alice scans Bob's QR code")
    _check(on_bob.verify_scanned(on_alice.qr_payload()), "Bob scans Alice's QR code")
    say.item("QR codes scanned both ways: the numbers match, the contact is verified")


def _revoke_device(
    say: _Printer, alice: Identity, phone: DeviceKeyPair, published: bytes, now: int
) -> Identity:
    say.step("Alice loses her phone and revokes it from her laptop")
    bobs_view = verify_device_list(published, user_id=alice.user_id)
    alice = alice.revoke_device(phone.public_key, revoked_at=now + 2, reason="lost")
    bobs_view = verify_device_list(
        alice.device_list.to_signed(), user_id=alice.user_id, previous=bobs_view
    )
    _check(not bobs_view.is_active(phone.public_key), "the phone is no longer trusted")
    try:
        verify_device_list(published, user_id=alice.user_id, previous=bobs_view)
    except StaleDeviceListError as exc:
        say.item(f"an attacker replaying the old list is refused: {exc.message}")
    else:
        raise DemoFailedError("demo step failed: a stale device list was accepted")
    say.item(f"device list #{bobs_view.sequence}; her user id did not change")
    return alice


def _back_up(say: _Printer, alice: Identity) -> None:
    say.step("Alice backs up her identity under a passphrase (Argon2id + XChaCha20-Poly1305)")
    backup = export_identity(alice, "correct horse battery staple")
    restored = import_identity(backup, "correct horse battery staple").to_identity()
    _check(restored.user_id == alice.user_id, "the backup restores the same identity")
    say.item(f"{len(backup)}-byte export restores {restored.user_id[:16]}...")
    try:
        import_identity(backup, "wrong guess")
    except WrongPassphraseError as exc:
        say.item(f"a wrong passphrase is refused: {exc.message}")
    else:
        raise DemoFailedError("demo step failed: a wrong passphrase was accepted")


def _encrypted_chat(
    say: _Printer, alice: Identity, bob: Identity, now: int
) -> tuple[bytes, RatchetSession]:
    say.step("Alice starts an end-to-end encrypted session (X3DH + Double Ratchet)")
    bob_prekeys = PrekeyStore.generate(bob.device.key_pair, now=now)
    one_time = bob_prekeys.one_time_prekeys[0].prekey_id
    bundle = bob_prekeys.build_bundle(bob.device.certificate, one_time_prekey_id=one_time)
    say.item(f"Bob publishes a prekey bundle ({len(bob_prekeys.one_time_prekeys)} one-time keys)")
    alice_session, first = initiate_session(
        alice.device, bundle, b"Hi Bob, it's Alice!", user_id=bob.user_id
    )
    accepted = accept_session(
        bob.device, bob_prekeys, first, now=now, expected_user_id=alice.user_id
    )
    _check(accepted.plaintext == b"Hi Bob, it's Alice!", "Bob decrypts Alice's first message")
    say.item(f"Bob decrypted {accepted.plaintext!r} from {accepted.remote_user_id[:16]}...")
    try:
        accept_session(bob.device, bob_prekeys, first, now=now)
    except OmegaError as exc:
        say.item(f"a replayed first message is refused: {exc.message}")
    else:
        raise DemoFailedError("demo step failed: a replayed first message was accepted")
    reply = encrypt_message(accepted.session, b"Hi Alice! Safety number checked.")
    _check(alice_session.decrypt(reply.data).startswith(b"Hi Alice"), "Alice decrypts the reply")
    say.item(f"Bob's reply, {len(reply.data)} bytes of ciphertext, decrypts on Alice's side")
    second = encrypt_message(accepted.session, b"One more thing...").data
    tampered = bytearray(second)
    tampered[-1] ^= 0x01  # in the AES-GCM tag
    before = alice_session.to_bytes()
    try:
        alice_session.decrypt(bytes(tampered))
    except DecryptionError:
        _check(alice_session.to_bytes() == before, "a failed decrypt changes nothing")
        say.item("a tampered ciphertext is refused, and Alice's session state is untouched")
    else:
        raise DemoFailedError("demo step failed: a tampered ciphertext was accepted")
    _check(alice_session.decrypt(second) == b"One more thing...", "the genuine one decrypts")
    final = encrypt_message(alice_session, b"See you on the other side of the network.")
    return final.data, accepted.session


def _send_envelope(say: _Printer, envelope: Message, now: int) -> None:
    say.step("The encrypted message's envelope survives a byte stream cut into ragged chunks")
    stream = encode_frame(encode_message(envelope)) * 3
    decoder = FrameDecoder()
    chunks = _ragged(stream, random.Random(now))  # noqa: S311 - chunk sizes, not secrets
    frames = [frame for chunk in chunks for frame in decoder.feed(chunk)]
    _check(len(frames) == 3, "three frames come out")
    _check(all(decode_message(Message, f) == envelope for f in frames), "envelopes intact")
    say.item(f"{len(stream)} bytes in {len(chunks)} chunks -> 3 frames, each decoded intact")


async def _over_the_network(
    say: _Printer, alice: Identity, bob: Identity, envelope: Message, bobs_session: RatchetSession
) -> None:
    say.step("Alice sends it to Bob over TCP (loopback) inside a Noise XX secure channel")
    bob_side = SecureTransport(TcpTransport(), NoiseCredentials.from_identity(bob))
    alice_side = SecureTransport(TcpTransport(), NoiseCredentials.from_identity(alice))
    delivered: list[bytes] = []

    async def bob_receives(connection: FrameConnection) -> None:
        assert isinstance(connection, SecureConnection)  # a SecureTransport listener's
        frame = decode_message(Frame, await connection.receive_frame())
        _check(frame.message is not None, "Bob received a message frame")
        assert frame.message is not None
        _check(connection.peer.user_id == frame.message.sender_id, "the sender is who dialed")
        delivered.append(bobs_session.decrypt(frame.message.encrypted_content))
        ack = Ack(message_id=frame.message.message_id, status=AckStatus.DELIVERED)
        await connection.send_frame(encode_message(Frame(ack=ack)))

    local = Address.parse("/ip4/127.0.0.1/tcp/0")
    async with listening(bob_side, local, bob_receives) as listener:
        address = listener.addresses[0].with_peer(bob.user_id)
        say.item(f"Bob listens on {listener.addresses[0]}")
        async with await alice_side.dial(address) as connection:
            _check(connection.peer.user_id == bob.user_id, "the handshake proves Bob's identity")
            say.item(f"handshake done: the peer proved it is {connection.peer.user_id[:16]}...")
            await connection.send_frame(encode_message(Frame(message=envelope)))
            reply = decode_message(Frame, await connection.receive_frame())
        _check(reply.ack is not None, "Bob acknowledged")
        assert reply.ack is not None
        _check(reply.ack.message_id == envelope.message_id, "the ACK names the message")
        say.item(f"Bob decrypted {delivered[0]!r} and acknowledged {reply.ack.message_id[:8]}...")
        impostor_check = listener.addresses[0].with_peer(alice.user_id)
        try:
            await alice_side.dial(impostor_check)
        except PeerIdentityMismatchError:
            say.item("dialing that address while expecting someone else is refused")
        else:
            raise DemoFailedError("demo step failed: a peer with the wrong identity was accepted")


def _ragged(data: bytes, rng: random.Random) -> list[bytes]:
    chunks = []
    position = 0
    while position < len(data):
        size = rng.randint(1, 40)
        chunks.append(data[position : position + size])
        position += size
    return chunks


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._number = 0

    def title(self, text: str) -> None:
        print(f"\n{text}", file=self._out)

    def step(self, text: str) -> None:
        self._number += 1
        print(f"\n{self._number}. {text}", file=self._out)

    def item(self, text: str) -> None:
        print(f"   - {text}", file=self._out)
