"""Fuzz what a device does with a received frame before decryption: envelopes and resets.

Run: ``python fuzz/fuzz_envelope.py -max_total_time=60`` (needs atheris,
``pip install -e '.[fuzz]'``). The first input byte picks how the rest is
used: as a ``Frame`` as is, or XOR-ed onto a valid frame (an envelope whose
``encrypted_content`` holds an encoded ``MessageContent`` bound to it, standing
in for what decryption returns, or a signed session reset request) so the
fuzzer reaches the content and binding checks. A frame's message goes through
``verify_envelope`` (for the fixed recipient device and for the device it
names), its ``encrypted_content`` through ``decode_content``, and the content
of an accepted envelope through ``check_binding``; a frame's reset request
goes through ``verify_reset_request``. Crashes: anything but an OmegaError
escaping, an accepted envelope that does not verify the same after a
re-encode or names an unknown encryption kind, accepted content without
exactly one kind, a binding accepted although a bound field differs from
the envelope's (or refused although none does).
"""

from __future__ import annotations

import sys

from omega.crypto import (
    DeviceKeyPair,
    IdentityKeyPair,
    LocalDevice,
    certify_device,
    verify_device_certificate,
)
from omega.errors import OmegaError
from omega.protocol import (
    EncryptionKind,
    Frame,
    Message,
    MessageContent,
    SignedSessionResetRequest,
    TextContent,
    decode_message,
    encode_message,
)
from omega.session.content import CONTENT_KINDS, content_kind, decode_content, searchable_text
from omega.session.envelope import (
    EnvelopeInfo,
    bind_content,
    check_binding,
    seal_envelope,
    verify_envelope,
)
from omega.session.reset import sign_reset_request, verify_reset_request
from omega.testing.random import SeededRandom as _SeededRandom

NOW = 1_700_000_000_000


def _device(identity_seed: int, device_seed: int) -> tuple[IdentityKeyPair, LocalDevice]:
    identity = IdentityKeyPair.from_seed(bytes([identity_seed]) * 32)
    key_pair = DeviceKeyPair.from_seed(bytes([device_seed]) * 32)
    signed = certify_device(identity, key_pair.public_key, name="fuzz", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    return identity, LocalDevice(key_pair=key_pair, certificate=certificate)


ALICE_IDENTITY, ALICE = _device(31, 32)
BOB_IDENTITY, BOB = _device(41, 42)
CONTENT = encode_message(
    bind_content(
        MessageContent(text=TextContent(text="hello"), reply_to="m-0"),
        message_id="m-1",
        timestamp=NOW,
        conversation_id=BOB_IDENTITY.user_id,
    )
)
ENVELOPE_FRAME = encode_message(
    Frame(
        message=seal_envelope(
            ALICE,
            message_id="m-1",
            sender_id=ALICE_IDENTITY.user_id,
            recipient_id=BOB_IDENTITY.user_id,
            recipient_device_key=BOB.device_key,
            timestamp=NOW,
            encryption=EncryptionKind.RATCHET,
            encrypted_content=CONTENT,
        )
    )
)
RESET_FRAME = encode_message(
    Frame(
        session_reset=sign_reset_request(
            ALICE,
            target_device_key=BOB.device_key,
            message_ids=["m-1", "m-2"],
            now=NOW,
            rng=_SeededRandom(b"fuzz-envelope"),
        )
    )
)
_KNOWN_ENCRYPTIONS = set(EncryptionKind)


def _xor_onto(template: bytes, noise: bytes) -> bytes:
    out = bytearray(template)
    for index, byte in enumerate(noise[: len(out)]):
        out[index] ^= byte
    return bytes(out) + noise[len(out) :]


def _envelope(message: Message) -> None:
    local_keys = [BOB.device_key]
    if message.recipient_device_key != BOB.device_key:
        local_keys.append(message.recipient_device_key)
    accepted: list[EnvelopeInfo] = []
    for local_device_key in local_keys:
        try:
            info = verify_envelope(message, local_device_key=local_device_key)
        except OmegaError:
            continue
        if info.encryption not in _KNOWN_ENCRYPTIONS:
            raise AssertionError(f"accepted an unknown encryption kind: {info!r}")
        again = decode_message(Message, encode_message(message))
        if verify_envelope(again, local_device_key=local_device_key) != info:
            raise AssertionError("an accepted envelope verifies differently after a re-encode")
        accepted.append(info)
    try:
        content = decode_content(message.encrypted_content)
    except OmegaError:
        return
    if content_kind(content) not in CONTENT_KINDS:
        raise AssertionError(f"accepted content without exactly one kind: {content!r}")
    searchable_text(content)
    for info in accepted:
        _binding(info, content)


def _binding(info: EnvelopeInfo, content: MessageContent) -> None:
    matches = (content.message_id, content.timestamp, content.conversation_id) == (
        info.message_id,
        info.timestamp,
        info.recipient_id,
    )
    try:
        check_binding(info, content)
    except OmegaError:
        if matches:
            raise AssertionError(f"refused a binding that matches: {info!r}") from None
        return
    if not matches:
        raise AssertionError(f"accepted a binding that differs: {info!r} {content!r}")


def _reset(signed: SignedSessionResetRequest) -> None:
    try:
        verify_reset_request(
            signed,
            local_device_key=BOB.device_key,
            expected_user_id=ALICE_IDENTITY.user_id,
            now=NOW,
        )
    except OmegaError:
        return


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' naming convention
    """Decode ``data[1:]`` (raw, or XOR-ed onto the frame ``data[0]`` picks) and check it."""
    if not data:
        return
    selector, payload = data[0] % 3, data[1:]
    if selector == 1:
        payload = _xor_onto(ENVELOPE_FRAME, payload)
    elif selector == 2:
        payload = _xor_onto(RESET_FRAME, payload)
    try:
        frame = decode_message(Frame, payload)
    except OmegaError:
        return
    # Not betterproto2.which_one_of: a frame may hold several members of its
    # oneof (betterproto2 keeps them all); check each one that is there.
    if frame.message is not None:
        _envelope(frame.message)
    if frame.session_reset is not None:
        _reset(frame.session_reset)


def main() -> None:
    """Run under atheris."""
    import atheris

    atheris.instrument_all()  # coverage feedback for every module already imported
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
