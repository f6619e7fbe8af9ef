"""Linking a new device: the one-time link code and the authenticated exchange.

Sans-I/O: :class:`LinkOffer` (the existing device) and :class:`LinkRequest`
(the new device) take and return bytes; the caller moves them over any frame
connection and supplies time and randomness. docs/multi-device.md describes
every byte. In short: the link code carries a 32-byte secret; the new device
sends a fresh X25519 key and the device key it wants certified, MACed under a
key derived from the secret; the existing device answers with its own X25519
key, MACed likewise, and the provision (the identity seed, the new signed
device list) sealed under a key derived from both X25519 keys and the
secret; the new device confirms with a MAC under that key. Both ends can show
the same 6-digit verification code.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from omega.crypto import (
    DeviceKeyPair,
    Identity,
    IdentityKeyPair,
    LocalDevice,
    verify_device_list,
)
from omega.crypto._kdf import generate_x25519, hkdf_sha256, x25519
from omega.crypto._text import label_problem
from omega.crypto.identity import check_public_key, verify_signature
from omega.crypto.random import RandomSource, random_bytes
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecodeError,
    DeviceLinkError,
    InvalidLinkCodeError,
    LinkCodeExpiredError,
    LocalProtocolError,
)
from omega.protocol import (
    LinkCode,
    LinkFinished,
    LinkHello,
    LinkProvision,
    LinkWelcome,
    decode_message,
    encode_message,
)
from omega.transport.address import Address

__all__ = [
    "DEFAULT_LINK_LIFETIME_MS",
    "LINK_CODE_PREFIX",
    "MAX_LINK_ADDRESSES",
    "MAX_LINK_ATTEMPTS",
    "MAX_LINK_MESSAGE_SIZE",
    "DeviceLinkCode",
    "LinkOffer",
    "LinkRequest",
    "LinkedDevice",
    "decode_link_message",
]

LINK_CODE_PREFIX = "OMEGA-LINK:"
"""Prefix of the text form of a link code (QR alphanumeric mode: uppercase)."""

DEFAULT_LINK_LIFETIME_MS = 5 * 60 * 1000
"""How long a link code is valid unless told otherwise: five minutes."""

MAX_LINK_ADDRESSES = 8
"""Most addresses one link code carries."""

MAX_LINK_ATTEMPTS = 3
"""Failed attempts an offer survives; then its code is spent."""

MAX_LINK_MESSAGE_SIZE = 96 * 1024
"""Largest link message accepted, in bytes."""

_MAX_CODE_TEXT = 2048
_CHECKSUM_SIZE = 4
_SECRET_SIZE = 32
_INFO = b"omega/link/v1/"
_NONCE = bytes(12)


def _frame_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


@dataclass(frozen=True, slots=True)
class DeviceLinkCode:
    """A parsed link code: the secret, the identity to join, expiry and where to dial."""

    secret: bytes
    """32 random bytes; whoever holds them can link a device until the code expires."""
    identity_key: bytes
    """The Ed25519 identity key of the user the new device joins."""
    expires_at: int
    """Unix milliseconds after which the code is refused."""
    addresses: tuple[Address, ...]
    """Where the existing device waits for the new one."""

    def to_text(self) -> str:
        """``OMEGA-LINK:`` + base32 (RFC 4648, no padding) of the encoded ``LinkCode``
        followed by the first 4 bytes of its SHA-256 (catches typos)."""
        body = encode_message(
            LinkCode(
                version=1,
                secret=self.secret,
                identity_key=self.identity_key,
                expires_at=self.expires_at,
                addresses=[str(address) for address in self.addresses],
            )
        )
        payload = body + hashlib.sha256(body).digest()[:_CHECKSUM_SIZE]
        return LINK_CODE_PREFIX + base64.b32encode(payload).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, text: str) -> DeviceLinkCode:
        """Parse the text form (any case, surrounding blanks ignored).

        Raises :class:`~omega.errors.InvalidLinkCodeError` for anything that
        is not a well-formed, correctly typed link code.
        """
        if not isinstance(text, str) or len(text) > _MAX_CODE_TEXT:
            raise InvalidLinkCodeError("not a link code (too long)")
        text = text.strip().upper()
        if not text.startswith(LINK_CODE_PREFIX):
            raise InvalidLinkCodeError(f"a link code starts with {LINK_CODE_PREFIX}")
        encoded = text[len(LINK_CODE_PREFIX) :]
        try:
            payload = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
        except (binascii.Error, ValueError) as exc:
            raise InvalidLinkCodeError("a link code is base32 after its prefix") from exc
        body, checksum = payload[:-_CHECKSUM_SIZE], payload[-_CHECKSUM_SIZE:]
        if len(payload) <= _CHECKSUM_SIZE or not hmac.compare_digest(
            hashlib.sha256(body).digest()[:_CHECKSUM_SIZE], checksum
        ):
            raise InvalidLinkCodeError("link code checksum mismatch, possibly mistyped")
        try:
            code = decode_message(LinkCode, body, max_size=_MAX_CODE_TEXT)
            if code.version != 1:
                raise InvalidLinkCodeError(f"link code version {code.version} is not supported")
            if len(code.secret) != _SECRET_SIZE:
                raise InvalidLinkCodeError("a link code secret is 32 bytes")
            check_public_key(code.identity_key)
            if not 0 < len(code.addresses) <= MAX_LINK_ADDRESSES or code.expires_at <= 0:
                raise InvalidLinkCodeError("a link code has 1..8 addresses and an expiry")
            addresses = tuple(Address.parse(address) for address in code.addresses)
        except InvalidLinkCodeError:
            raise
        except (DecodeError, CryptoError) as exc:
            raise InvalidLinkCodeError(f"malformed link code: {exc.message}") from exc
        return cls(
            secret=code.secret,
            identity_key=code.identity_key,
            expires_at=code.expires_at,
            addresses=addresses,
        )

    def mac_key(self) -> bytes:
        """K_mac = HKDF-SHA256(secret, salt empty, info "omega/link/v1/mac")."""
        return hkdf_sha256(self.secret, salt=b"", info=_INFO + b"mac", length=32)


_M = TypeVar("_M", LinkHello, LinkWelcome, LinkFinished, LinkProvision)


def decode_link_message(kind: type[_M], data: bytes) -> _M:
    """Decode one link message strictly; :class:`~omega.errors.DeviceLinkError` if malformed."""
    try:
        return decode_message(kind, data, max_size=MAX_LINK_MESSAGE_SIZE)
    except DecodeError as exc:
        raise DeviceLinkError(f"malformed link message: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class _Session:
    transcript: bytes
    encryption_key: bytes
    confirmation_key: bytes
    verification_code: str


def _session(secret: bytes, shared: bytes, transcript: bytes) -> _Session:
    okm = hkdf_sha256(shared, salt=secret, info=_INFO + b"session" + transcript, length=96)
    number = int.from_bytes(okm[64:68], "big") % 1_000_000
    return _Session(
        transcript=transcript,
        encryption_key=okm[:32],
        confirmation_key=okm[32:64],
        verification_code=f"{number // 1000:03d} {number % 1000:03d}",
    )


def _hello_body(ephemeral_key: bytes, device_key: bytes, device_name: str) -> bytes:
    return _INFO + b"hello" + ephemeral_key + device_key + _frame_name(device_name)


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class _OfferState(enum.Enum):
    WAITING = "waiting"
    WELCOMED = "welcomed"
    LINKED = "linked"
    SPENT = "spent"


_OFFER_TRANSITIONS = {
    (_OfferState.WAITING, "hello"): _OfferState.WELCOMED,
    (_OfferState.WELCOMED, "finished"): _OfferState.LINKED,
}


class LinkOffer:
    """The existing device's side: a fresh link code and the answers to one new device."""

    def __init__(
        self,
        identity: Identity,
        code: DeviceLinkCode,
        *,
        addresses: tuple[Address, ...] = (),
        mailboxes: tuple[str, ...] = (),
        rng: RandomSource,
    ) -> None:
        self._identity = identity
        self.code = code
        self._addresses = addresses
        self._mailboxes = mailboxes
        self._rng = rng
        self._state = _OfferState.WAITING
        self._failures = 0
        self._session: _Session | None = None
        self._linked: Identity | None = None
        self._pending: Identity | None = None
        self.device_key: bytes | None = None
        """The key of the device being linked, once its hello was accepted."""

    @classmethod
    def create(
        cls,
        identity: Identity,
        *,
        link_addresses: tuple[Address, ...],
        now: int,
        rng: RandomSource,
        lifetime_ms: int = DEFAULT_LINK_LIFETIME_MS,
        addresses: tuple[Address, ...] = (),
        mailboxes: tuple[str, ...] = (),
    ) -> LinkOffer:
        """A new offer whose code expires ``lifetime_ms`` after ``now``.

        ``link_addresses`` go into the code (where this device waits for the
        link); ``addresses`` and ``mailboxes`` go to the new device in the
        provision (where this device is reachable afterwards).
        """
        if not 0 < lifetime_ms <= 60 * 60 * 1000:
            raise ConfigurationError("a link code lives 1 ms .. 1 hour")
        if not 0 < len(link_addresses) <= MAX_LINK_ADDRESSES:
            raise ConfigurationError(f"a link code carries 1..{MAX_LINK_ADDRESSES} addresses")
        code = DeviceLinkCode(
            secret=random_bytes(rng, _SECRET_SIZE),
            identity_key=identity.identity_key,
            expires_at=now + lifetime_ms,
            addresses=link_addresses,
        )
        return cls(identity, code, addresses=addresses, mailboxes=mailboxes, rng=rng)

    @property
    def verification_code(self) -> str | None:
        """The 6-digit code both screens show, once the new device said hello."""
        return self._session.verification_code if self._session is not None else None

    @property
    def linked(self) -> Identity | None:
        """Our identity with the new device listed, once the link is complete."""
        return self._linked

    def _advance(self, event: str) -> None:
        following = _OFFER_TRANSITIONS.get((self._state, event))
        if following is None:
            if self._state is _OfferState.SPENT:
                raise LinkCodeExpiredError("this link code was used already")
            raise LocalProtocolError(f"unexpected link {event} in state {self._state.value}")
        self._state = following

    def _fail(self, exc: DeviceLinkError) -> DeviceLinkError:
        self._failures += 1
        if self._failures >= MAX_LINK_ATTEMPTS:
            self._state = _OfferState.SPENT
        return exc

    def receive_hello(self, data: bytes, *, now: int) -> bytes:
        """Check the new device's hello; return the encoded ``LinkWelcome`` to send.

        Raises :class:`~omega.errors.LinkCodeExpiredError` after expiry or
        once used, :class:`~omega.errors.DeviceLinkError` for a forged or
        malformed hello (the offer stays open for :data:`MAX_LINK_ATTEMPTS`
        failures in all).
        """
        if now >= self.code.expires_at:
            self._state = _OfferState.SPENT
            raise LinkCodeExpiredError("the link code has expired")
        if self._state is not _OfferState.WAITING:
            raise LinkCodeExpiredError("this link code was used already")
        hello = decode_link_message(LinkHello, data)
        body = _hello_body(hello.ephemeral_key, hello.device_key, hello.device_name)
        expected = _mac(self.code.mac_key(), body + hello.signature)
        if not hmac.compare_digest(expected, hello.mac):
            raise self._fail(DeviceLinkError("the link hello does not carry the code's secret"))
        try:
            verify_signature(hello.device_key, body, hello.signature)
            problem = label_problem(hello.device_name, max_bytes=64, allow_empty=False)
            if problem is not None:
                raise DeviceLinkError(f"device name {problem}")
            linked = self._identity.add_device(
                hello.device_key, name=hello.device_name, created_at=now
            )
            private, public = generate_x25519(self._rng)
            shared = x25519(private, hello.ephemeral_key)
        except (CryptoError, ConfigurationError) as exc:
            raise self._fail(DeviceLinkError(f"link refused: {exc.message}")) from exc
        self._advance("hello")
        transcript = hashlib.sha256(body + hello.signature + public).digest()
        session = _session(self.code.secret, shared, transcript)
        provision = LinkProvision(
            identity_seed=self._identity.key_pair.seed,
            display_name=self._identity.display_name,
            identity_created_at=self._identity.created_at,
            device_list=linked.device_list.to_signed(),
            addresses=[str(address) for address in self._addresses],
            mailboxes=list(self._mailboxes),
        )
        sealed = ChaCha20Poly1305(session.encryption_key).encrypt(
            _NONCE, encode_message(provision), _INFO + b"provision" + transcript
        )
        self._session = session
        self._pending = linked
        self.device_key = hello.device_key
        welcome = LinkWelcome(
            ephemeral_key=public,
            mac=_mac(self.code.mac_key(), _INFO + b"welcome" + transcript),
            sealed_provision=sealed,
        )
        return encode_message(welcome)

    def receive_finished(self, data: bytes) -> Identity:
        """Check the new device's confirmation; return our identity with it listed.

        Raises :class:`~omega.errors.DeviceLinkError` if the confirmation is
        forged (the code is then spent: nothing is published).
        """
        if self._state is not _OfferState.WELCOMED or self._session is None:
            self._advance("finished")
        assert self._session is not None
        finished = decode_link_message(LinkFinished, data)
        expected = _mac(
            self._session.confirmation_key, _INFO + b"finished" + self._session.transcript
        )
        if not hmac.compare_digest(expected, finished.mac):
            self._state = _OfferState.SPENT
            raise DeviceLinkError("the link confirmation does not verify")
        self._advance("finished")
        assert self._pending is not None
        self._linked = self._pending
        return self._pending

    def linked_confirmation(self) -> bytes:
        """The encoded ``LinkFinished`` telling the new device its device list is adopted
        (send it once :attr:`linked` is published)."""
        if self._linked is None or self._session is None:
            raise LocalProtocolError("the link is not complete")
        mac = _mac(self._session.confirmation_key, _INFO + b"linked" + self._session.transcript)
        return encode_message(LinkFinished(mac=mac))


@dataclass(frozen=True, slots=True)
class LinkedDevice:
    """What the new device holds once linked."""

    identity: Identity
    """The user's identity, with this new device and the new device list."""
    addresses: tuple[Address, ...]
    """Where the device that linked us can be reached."""
    mailboxes: tuple[str, ...]
    """The user's store URLs."""
    verification_code: str
    """The 6-digit code the other screen shows too."""
    finished: bytes
    """The encoded ``LinkFinished`` to send back."""


class LinkRequest:
    """The new device's side of a link: a device key, a hello, then the provision."""

    def __init__(
        self, code: DeviceLinkCode, *, device_name: str, now: int, rng: RandomSource
    ) -> None:
        if now >= code.expires_at:
            raise LinkCodeExpiredError("the link code has expired; show a new one")
        problem = label_problem(device_name, max_bytes=64, allow_empty=False)
        if problem is not None:
            raise ConfigurationError(f"device name {problem}")
        self.code = code
        self.device = DeviceKeyPair.generate(rng)
        self._device_name = device_name
        self._ephemeral_private, self._ephemeral_public = generate_x25519(rng)
        self._body = _hello_body(self._ephemeral_public, self.device.public_key, device_name)
        self._signature = self.device.sign(self._body)
        self._done = False
        self._session: _Session | None = None

    def hello(self) -> bytes:
        """The encoded ``LinkHello`` to send first."""
        mac = _mac(self.code.mac_key(), self._body + self._signature)
        return encode_message(
            LinkHello(
                ephemeral_key=self._ephemeral_public,
                device_key=self.device.public_key,
                device_name=self._device_name,
                signature=self._signature,
                mac=mac,
            )
        )

    def receive_welcome(self, data: bytes) -> LinkedDevice:
        """Check the welcome, open the provision, build the identity.

        Raises :class:`~omega.errors.DeviceLinkError` when the welcome is
        forged or tampered with, or the provision does not make this device
        a listed device of the code's identity.
        """
        if self._done:
            raise LocalProtocolError("this link request is complete")
        welcome = decode_link_message(LinkWelcome, data)
        transcript = hashlib.sha256(self._body + self._signature + welcome.ephemeral_key).digest()
        expected = _mac(self.code.mac_key(), _INFO + b"welcome" + transcript)
        if not hmac.compare_digest(expected, welcome.mac):
            raise DeviceLinkError("the link welcome does not carry the code's secret")
        try:
            shared = x25519(self._ephemeral_private, welcome.ephemeral_key)
            session = _session(self.code.secret, shared, transcript)
            plaintext = ChaCha20Poly1305(session.encryption_key).decrypt(
                _NONCE, welcome.sealed_provision, _INFO + b"provision" + transcript
            )
        except (CryptoError, InvalidTag) as exc:
            raise DeviceLinkError("the link provision does not decrypt") from exc
        provision = decode_link_message(LinkProvision, plaintext)
        identity = self._identity(provision)
        try:
            addresses = tuple(
                Address.parse(text) for text in provision.addresses[:MAX_LINK_ADDRESSES]
            )
        except DecodeError as exc:
            raise DeviceLinkError(f"the link provision holds a bad address: {exc.message}") from exc
        self._done = True
        self._session = session
        finished = LinkFinished(
            mac=_mac(session.confirmation_key, _INFO + b"finished" + transcript)
        )
        return LinkedDevice(
            identity=identity,
            addresses=addresses,
            mailboxes=tuple(provision.mailboxes[:MAX_LINK_ADDRESSES]),
            verification_code=session.verification_code,
            finished=encode_message(finished),
        )

    def receive_linked(self, data: bytes) -> None:
        """Check the existing device's last message: our device list is adopted there.

        Raises :class:`~omega.errors.DeviceLinkError` when it does not verify.
        """
        if self._session is None:
            raise LocalProtocolError("the link welcome has not been received")
        linked = decode_link_message(LinkFinished, data)
        expected = _mac(
            self._session.confirmation_key, _INFO + b"linked" + self._session.transcript
        )
        if not hmac.compare_digest(expected, linked.mac):
            raise DeviceLinkError("the existing device's confirmation does not verify")

    def _identity(self, provision: LinkProvision) -> Identity:
        try:
            key_pair = IdentityKeyPair.from_seed(provision.identity_seed)
            if not hmac.compare_digest(key_pair.public_key, self.code.identity_key):
                raise DeviceLinkError("the provision is for another identity than the code's")
            if provision.device_list is None:
                raise DeviceLinkError("the provision holds no device list")
            device_list = verify_device_list(provision.device_list, user_id=key_pair.user_id)
            certificate = device_list.device(self.device.public_key)
            if certificate.device_name != self._device_name:
                raise DeviceLinkError("the provision certifies this device under another name")
            return Identity(
                key_pair=key_pair,
                device=LocalDevice(key_pair=self.device, certificate=certificate),
                device_list=device_list,
                display_name=provision.display_name,
                created_at=provision.identity_created_at,
            )
        except DeviceLinkError:
            raise
        except (CryptoError, ConfigurationError, DecodeError) as exc:
            raise DeviceLinkError(f"the link provision is invalid: {exc.message}") from exc
