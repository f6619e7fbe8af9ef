"""X3DH key agreement between two devices (Signal's X3DH specification, rev. 1).

Omega's device model maps onto X3DH as follows (section 2.4, "Keys"):

* IK, the identity key, is the **device key**: an Ed25519 key converted to
  X25519 with libsodium's ``crypto_sign_ed25519_pk_to_curve25519`` and
  ``crypto_sign_ed25519_sk_to_curve25519`` for the DH steps. The *user's*
  identity key never enters a DH: it is bound through the device certificate
  it signed, which the bundle and the prekey message carry and which is
  verified against the user id before anything else, and through the
  associated data.
* SPK is signed by the device key with Ed25519 (not XEdDSA) over
  ``b"omega/signed-prekey/v1" || SPK || id (4 bytes BE) || created_at (8 bytes BE)``
  (:func:`omega.crypto.prekeys.signed_prekey_signature_message`).

Initiator (section 3.3): :func:`verify_prekey_bundle` checks the device
certificate against the identity key the user id encodes, then the signed
prekey's signature against the certified device key, then the X25519 keys;
:func:`initiate_session` draws EK_A and computes::

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
    DH4 = DH(EK_A, OPK_B)   (only with a one-time prekey)
    SK  = HKDF-SHA256(salt = 32 zero bytes, IKM = 32 x 0xFF || DH1 || DH2 || DH3 [|| DH4],
                      info = b"omega/x3dh/v1", length = 32)
    AD  = DK_A || DK_B || IDK_A || IDK_B   (device keys, then user identity keys; 128 bytes)

It starts the Double Ratchet with SK (initiator side, the responder's SPK as
its first remote ratchet key) and wraps the first ratchet message in a
``PrekeyMessage``. Responder (section 3.4): :func:`accept_session` verifies
the initiator's certificate, finds the signed prekey (current or retired
within its grace period) and the one-time prekey, computes the same SK,
decrypts the first message, and only then deletes the one-time prekey.
Any DH with a low-order point raises :class:`~omega.errors.InvalidKeyError`.

Pending initiator (Signal's behaviour): until the initiator has decrypted a
message from the responder, :func:`encrypt_message` wraps *every* message it
sends in a ``PrekeyMessage`` with the same base key and prekey ids, so the
responder can open whichever arrives first. :func:`accept_session` routes a
prekey message whose base key is that of the responder's existing session
(``existing_session``) to that session instead of running X3DH again.

Replays (section 4.2): a replayed prekey message that used a one-time
prekey is refused (:class:`~omega.errors.PrekeyReusedError`); one without is
refused (:class:`~omega.errors.DuplicateMessageError`) because the prekey
store records the base keys of the sessions it accepted without a one-time
prekey, as long as their signed prekey lives.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Container
from dataclasses import dataclass

from omega.crypto._ed25519 import check_public_key, verify_signature
from omega.crypto._kdf import (
    check_x25519_public_key,
    ed25519_public_to_x25519,
    ed25519_seed_to_x25519,
    generate_x25519,
    x3dh_secret,
    x25519,
)
from omega.crypto.account import LocalDevice
from omega.crypto.devices import (
    MAX_CERTIFICATE_SIZE,
    DeviceCertificateInfo,
    verify_device_certificate,
)
from omega.crypto.double_ratchet import PendingPrekey, RatchetSession, SessionConfig
from omega.crypto.identity import public_key_from_user_id, user_id_from_public_key
from omega.crypto.prekeys import PrekeyStore, signed_prekey_signature_message
from omega.crypto.random import RandomSource, system_random
from omega.errors import (
    ConfigurationError,
    DuplicateMessageError,
    MessageDecodeError,
)
from omega.protocol import (
    DeviceCertificate,
    PrekeyBundle,
    PrekeyMessage,
    SignedDeviceCertificate,
    decode_message,
    encode_message,
)

__all__ = [
    "MAX_BUNDLE_SIZE",
    "PREKEY_MESSAGE_VERSION",
    "AcceptedSession",
    "EncryptedMessage",
    "MessageKind",
    "VerifiedPrekeyBundle",
    "accept_session",
    "encrypt_message",
    "initiate_session",
    "verify_prekey_bundle",
]

PREKEY_MESSAGE_VERSION = 1
"""Version of the ``PrekeyMessage`` format."""

MAX_BUNDLE_SIZE = 4096
"""Largest encoded ``PrekeyBundle`` accepted, in bytes."""

# Certificate, base key, ids and framing around the embedded ratchet message.
_PREKEY_MESSAGE_OVERHEAD = MAX_CERTIFICATE_SIZE + 128


@dataclass(frozen=True, slots=True)
class VerifiedPrekeyBundle:
    """A prekey bundle whose certificate and signature passed :func:`verify_prekey_bundle`."""

    certificate: DeviceCertificateInfo
    """The verified certificate of the remote device."""
    signed_prekey_id: int
    """Id of the signed prekey."""
    signed_prekey: bytes
    """The signed prekey, an X25519 public key."""
    signed_prekey_created_at: int
    """When the signed prekey was created, Unix milliseconds."""
    one_time_prekey_id: int | None
    """Id of the one-time prekey, if the bundle carries one."""
    one_time_prekey: bytes | None
    """The one-time prekey, an X25519 public key, if any."""

    @property
    def identity_key(self) -> bytes:
        """The remote user's Ed25519 identity key."""
        return self.certificate.identity_key

    @property
    def device_key(self) -> bytes:
        """The remote device's Ed25519 key."""
        return self.certificate.device_key


def verify_prekey_bundle(bundle: PrekeyBundle | bytes, *, user_id: str) -> VerifiedPrekeyBundle:
    """Check that ``bundle`` is a usable prekey bundle of a device of ``user_id``.

    In order: the bundle decodes (at most :data:`MAX_BUNDLE_SIZE` bytes) and
    holds a certificate and a signed prekey; the certificate verifies under
    the identity key of ``user_id``; the signed prekey's signature verifies
    under the certified device key; the prekeys are canonical X25519 keys.
    Raises :class:`~omega.errors.InvalidUserIdError`,
    :class:`~omega.errors.MessageDecodeError`,
    :class:`~omega.errors.CertificateError`,
    :class:`~omega.errors.InvalidSignatureError` or
    :class:`~omega.errors.InvalidKeyError`.
    """
    identity_key = public_key_from_user_id(user_id)
    if not isinstance(bundle, PrekeyBundle):
        bundle = decode_message(PrekeyBundle, bundle, max_size=MAX_BUNDLE_SIZE)
    if bundle.device_certificate is None or bundle.signed_prekey is None:
        raise MessageDecodeError("prekey bundle lacks its certificate or signed prekey")
    certificate = verify_device_certificate(bundle.device_certificate, identity_key=identity_key)
    signed = bundle.signed_prekey
    if signed.created_at < 0:
        raise MessageDecodeError("signed prekey has a negative creation time")
    check_x25519_public_key(signed.public_key, "signed prekey")
    verify_signature(
        certificate.device_key,
        signed_prekey_signature_message(signed.public_key, signed.prekey_id, signed.created_at),
        signed.signature,
    )
    one_time = bundle.one_time_prekey
    if one_time is not None:
        check_x25519_public_key(one_time.public_key, "one-time prekey")
    return VerifiedPrekeyBundle(
        certificate=certificate,
        signed_prekey_id=signed.prekey_id,
        signed_prekey=signed.public_key,
        signed_prekey_created_at=signed.created_at,
        one_time_prekey_id=None if one_time is None else one_time.prekey_id,
        one_time_prekey=None if one_time is None else one_time.public_key,
    )


class MessageKind(enum.Enum):
    """Which decoder an encrypted pairwise message needs; carry it beside the bytes."""

    PREKEY = "prekey"
    """An encoded ``PrekeyMessage``: open it with :func:`accept_session`."""
    RATCHET = "ratchet"
    """An encoded ``RatchetMessage``: open it with :meth:`RatchetSession.decrypt`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedMessage:
    """What :func:`encrypt_message` returns: the bytes to send and their kind."""

    kind: MessageKind
    """``PREKEY`` while the session is a pending initiator, else ``RATCHET``."""
    data: bytes
    """The encoded message."""


def encrypt_message(
    session: RatchetSession, plaintext: bytes, *, rng: RandomSource = system_random
) -> EncryptedMessage:
    """Encrypt ``plaintext`` for the session's peer, as a prekey message while one is due.

    While :attr:`RatchetSession.pending_prekey` is set (an initiator that has
    not yet decrypted anything from the responder), the ratchet message is
    wrapped in a ``PrekeyMessage`` repeating the session's base key, prekey
    ids and the initiator's certificate; afterwards it is sent bare. Raises
    what :meth:`RatchetSession.encrypt` raises.
    """
    ratchet_message = session.encrypt(plaintext, rng=rng)
    pending = session.pending_prekey
    if pending is None:
        return EncryptedMessage(kind=MessageKind.RATCHET, data=ratchet_message)
    wrapped = PrekeyMessage(
        version=PREKEY_MESSAGE_VERSION,
        device_certificate=pending.device_certificate,
        base_key=session.base_key,
        signed_prekey_id=pending.signed_prekey_id,
        one_time_prekey_id=pending.one_time_prekey_id,
        message=ratchet_message,
    )
    return EncryptedMessage(kind=MessageKind.PREKEY, data=encode_message(wrapped))


def initiate_session(
    local_device: LocalDevice,
    bundle: PrekeyBundle | bytes | VerifiedPrekeyBundle,
    plaintext: bytes,
    *,
    user_id: str,
    config: SessionConfig | None = None,
    rng: RandomSource = system_random,
) -> tuple[RatchetSession, bytes]:
    """Run X3DH as initiator with a device of ``user_id`` and encrypt a first message.

    Returns the new session and the encoded ``PrekeyMessage`` to send, which
    carries ``plaintext`` (may be empty) as its first ratchet message; send
    later messages with :func:`encrypt_message`, which keeps wrapping them in
    prekey messages until the responder has answered. Draws
    EK_A, then the first ratchet key pair, from ``rng``. Raises what
    :func:`verify_prekey_bundle` raises (an already verified bundle is
    checked to belong to ``user_id``), :class:`~omega.errors.InvalidKeyError`
    for a low-order prekey, and :class:`~omega.errors.ConfigurationError`
    for a bad plaintext.
    """
    if isinstance(bundle, VerifiedPrekeyBundle):
        if not hmac.compare_digest(bundle.identity_key, public_key_from_user_id(user_id)):
            raise ConfigurationError("the verified bundle belongs to another user")
        verified = bundle
    else:
        verified = verify_prekey_bundle(bundle, user_id=user_id)
    local_private = ed25519_seed_to_x25519(local_device.key_pair.seed)
    remote_public = ed25519_public_to_x25519(verified.device_key)
    base_private, base_public = generate_x25519(rng)
    dh_outputs = [
        x25519(local_private, verified.signed_prekey),
        x25519(base_private, remote_public),
        x25519(base_private, verified.signed_prekey),
    ]
    if verified.one_time_prekey is not None:
        dh_outputs.append(x25519(base_private, verified.one_time_prekey))
    session = RatchetSession.for_initiator(
        shared_secret=x3dh_secret(dh_outputs),
        remote_ratchet_key=verified.signed_prekey,
        local_identity_key=local_device.certificate.identity_key,
        local_device_key=local_device.device_key,
        remote_identity_key=verified.identity_key,
        remote_device_key=verified.device_key,
        base_key=base_public,
        config=config,
        rng=rng,
        pending_prekey=PendingPrekey(
            signed_prekey_id=verified.signed_prekey_id,
            one_time_prekey_id=verified.one_time_prekey_id,
            device_certificate=local_device.certificate.to_signed(),
        ),
    )
    return session, encrypt_message(session, plaintext, rng=rng).data


@dataclass(frozen=True, slots=True)
class AcceptedSession:
    """What :func:`accept_session` returns: the session and the message's plaintext."""

    session: RatchetSession
    """The responder's session; persist it with the prekey store, atomically."""
    plaintext: bytes
    """The message's plaintext."""
    remote_certificate: DeviceCertificateInfo
    """The verified certificate of the initiator's device."""
    base_key: bytes
    """The initiator's EK_A; remember it to refuse replays of this prekey message."""
    signed_prekey_id: int
    """The signed prekey the initiator used."""
    one_time_prekey_id: int | None
    """The one-time prekey the initiator used (now deleted), if any."""
    new_session: bool = True
    """True when X3DH ran and :attr:`session` is new; False when the message was
    routed to the ``existing_session`` it belongs to (which it advanced)."""

    @property
    def remote_user_id(self) -> str:
        """The initiator's user id (check it against the contact you expect)."""
        return user_id_from_public_key(self.remote_certificate.identity_key)


def _claimed_identity_key(signed: SignedDeviceCertificate) -> bytes:
    """The identity key a certificate names, read before its signature is checked."""
    body = decode_message(DeviceCertificate, signed.certificate, max_size=MAX_CERTIFICATE_SIZE)
    return check_public_key(body.identity_key)


def accept_session(
    local_device: LocalDevice,
    prekeys: PrekeyStore,
    data: bytes,
    *,
    now: int,
    expected_user_id: str | None = None,
    existing_session: RatchetSession | None = None,
    known_base_keys: Container[bytes] = frozenset(),
    config: SessionConfig | None = None,
) -> AcceptedSession:
    """Open an encoded ``PrekeyMessage``: run X3DH as responder, or route it to its session.

    ``expected_user_id``, when given, is the only user the initiator may be;
    otherwise the identity the certificate names is accepted and the caller
    must check :attr:`AcceptedSession.remote_user_id`.

    ``existing_session`` is the caller's current session with the sending
    device, if any. When it is a responder session from the same base key and
    device (the initiator repeats its prekey message until it hears from us),
    the inner message is decrypted with it and the result has
    ``new_session=False``; the prekey store is not touched. Otherwise X3DH
    runs: on success the one-time prekey used is deleted from ``prekeys``, or,
    when none was used, the base key is recorded there so a replay is
    refused; on any failure nothing changes.

    Raises :class:`~omega.errors.MessageDecodeError` for malformed
    bytes, :class:`~omega.errors.CertificateError` or
    :class:`~omega.errors.InvalidSignatureError` for a bad certificate,
    :class:`~omega.errors.InvalidKeyError` for an unusable base key,
    :class:`~omega.errors.UnknownPrekeyError` (or its subclass
    :class:`~omega.errors.PrekeyReusedError`) for a prekey this device does
    not hold, :class:`~omega.errors.DuplicateMessageError` for a base key the
    store recorded or the caller lists in ``known_base_keys`` (a replayed
    initial message), and whatever :meth:`RatchetSession.decrypt` raises.
    """
    config = config or SessionConfig()
    if not hmac.compare_digest(prekeys.device_key, local_device.device_key):
        raise ConfigurationError("the prekey store belongs to another device")
    message, certificate = _read_prekey_message(data, config, expected_user_id)
    base_key = check_x25519_public_key(message.base_key, "base key")
    if existing_session is not None and _same_session(existing_session, base_key, certificate):
        return AcceptedSession(
            session=existing_session,
            plaintext=existing_session.decrypt(message.message),
            remote_certificate=certificate,
            base_key=base_key,
            signed_prekey_id=message.signed_prekey_id,
            one_time_prekey_id=message.one_time_prekey_id,
            new_session=False,
        )
    if base_key in known_base_keys or prekeys.is_known_base_key(base_key):
        raise DuplicateMessageError("this prekey message was accepted already")
    spk_private, _ = prekeys.signed_prekey_secret(message.signed_prekey_id, now=now)
    local_private = ed25519_seed_to_x25519(local_device.key_pair.seed)
    dh_outputs = [
        x25519(spk_private, ed25519_public_to_x25519(certificate.device_key)),
        x25519(local_private, base_key),
        x25519(spk_private, base_key),
    ]
    if message.one_time_prekey_id is not None:
        opk_private, _ = prekeys.one_time_prekey_secret(message.one_time_prekey_id)
        dh_outputs.append(x25519(opk_private, base_key))
    session = RatchetSession.for_responder(
        shared_secret=x3dh_secret(dh_outputs),
        ratchet_private_key=spk_private,
        local_identity_key=local_device.certificate.identity_key,
        local_device_key=local_device.device_key,
        remote_identity_key=certificate.identity_key,
        remote_device_key=certificate.device_key,
        base_key=base_key,
        config=config,
    )
    plaintext = session.decrypt(message.message)
    if message.one_time_prekey_id is not None:
        prekeys.consume_one_time_prekey(message.one_time_prekey_id)
    else:
        prekeys.remember_base_key(base_key, signed_prekey_id=message.signed_prekey_id)
    return AcceptedSession(
        session=session,
        plaintext=plaintext,
        remote_certificate=certificate,
        base_key=base_key,
        signed_prekey_id=message.signed_prekey_id,
        one_time_prekey_id=message.one_time_prekey_id,
    )


def _read_prekey_message(
    data: bytes, config: SessionConfig, expected_user_id: str | None
) -> tuple[PrekeyMessage, DeviceCertificateInfo]:
    """Decode a prekey message and verify the initiator's certificate (steps 1 and 2)."""
    message = decode_message(
        PrekeyMessage, data, max_size=config.max_message_size + _PREKEY_MESSAGE_OVERHEAD
    )
    if message.version != PREKEY_MESSAGE_VERSION:
        raise MessageDecodeError(
            f"unsupported prekey message version {message.version}",
            details={"version": message.version},
        )
    if message.device_certificate is None:
        raise MessageDecodeError("prekey message lacks the initiator's certificate")
    if expected_user_id is not None:
        identity_key = public_key_from_user_id(expected_user_id)
    else:
        identity_key = _claimed_identity_key(message.device_certificate)
    certificate = verify_device_certificate(message.device_certificate, identity_key=identity_key)
    return message, certificate


def _same_session(
    session: RatchetSession, base_key: bytes, certificate: DeviceCertificateInfo
) -> bool:
    """True if ``session`` is the responder session this prekey message belongs to."""
    return (
        not session.is_initiator
        and hmac.compare_digest(session.base_key, base_key)
        and hmac.compare_digest(session.remote_device_key, certificate.device_key)
        and hmac.compare_digest(session.remote_identity_key, certificate.identity_key)
    )
