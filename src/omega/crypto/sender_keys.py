"""Sender Keys: end-to-end encrypted group messages, one encryption per message.

Signal's Sender Key construction (libsignal's ``SenderKeyMessage``), with
Omega's primitives. Each device that sends to a group holds, per group, an
:class:`OutboundSenderKey`: a random ``key_id``, a chain key and an Ed25519
*signature key*. It encrypts a message once for the whole group:

* the chain ratchets forward like the Double Ratchet's KDF_CK: message key
  ``MK = HMAC-SHA256(CK, 0x01)``, next chain key ``HMAC-SHA256(CK, 0x02)``;
* ``MK`` expands with HKDF-SHA256 (``info = b"omega/sender-key/message-key/v1"``,
  44 bytes) into an AES-256-GCM key and nonce;
* the message carries ``SenderKeyHeader {version, key_id, iteration}`` as
  bytes, the ciphertext, and the signature key's Ed25519 signature over
  both. The group id and the sender's device key are bound into the
  associated data and into the signed bytes (docs/crypto.md, "Sender Keys").

The sender hands its key to every member device as a
``SenderKeyDistribution`` (:meth:`OutboundSenderKey.distribution`) inside the
pairwise Double Ratchet sessions; each member keeps the sender keys of one
sending device in :class:`InboundSenderKeys`, which verifies the signature
**first** and only then ratchets and decrypts. Out-of-order delivery works up
to ``max_skip`` keys ahead; skipped keys are bounded per chain (the oldest
are evicted); a used or evicted key raises
:class:`~omega.errors.DuplicateMessageError`; a failed decrypt leaves the
state exactly as it was.

Membership changes: :meth:`OutboundSenderKey.rotate` draws a new key id, chain
key and signature key, so a removed member, who never gets the new
distribution, cannot decrypt anything sent afterwards. Receivers keep up to
``max_keys_per_sender`` keys of a sender, so messages in flight across a
rotation still decrypt, until :meth:`InboundSenderKeys.forget_key` drops one.

Sans-I/O: randomness comes from the ``rng`` arguments only.
"""

from __future__ import annotations

import hmac

from omega.crypto import _symmetric
from omega.crypto._ed25519 import Ed25519KeyPair, check_public_key
from omega.crypto._kdf import KEY_SIZE, TAG_SIZE
from omega.crypto._sender_key_chain import (
    MESSAGE_KEY_INFO,
    UINT32_MAX,
    SenderChain,
    associated_data,
    chain_from_state,
    chain_to_state,
    check_group_id,
    group_binding,
    open_message,
    signed_bytes,
    verify_message_signature,
)
from omega.crypto._sender_key_config import (
    MAX_DISTRIBUTION_SIZE,
    MAX_KEYS_LIMIT,
    MAX_SENDER_KEY_HEADER_SIZE,
    MAX_SENDER_KEY_SKIP,
    MAX_SENDER_KEY_SKIPPED_KEYS,
    MAX_SENDER_KEY_STATE_SIZE,
    MAX_SENDER_KEYS_PER_SENDER,
    MAX_SKIPPED_LIMIT,
    SENDER_KEY_VERSION,
    SenderKeyConfig,
    SenderKeyDistributionInfo,
    as_distribution_info,
    read_sender_key_distribution,
)
from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import (
    ConfigurationError,
    CryptoError,
    DecryptionError,
    LocalProtocolError,
    MessageDecodeError,
    UnknownSenderKeyError,
)
from omega.protocol import (
    InboundSenderKeysState,
    OutboundSenderKeyState,
    SenderKeyDistribution,
    SenderKeyHeader,
    SenderKeyMessage,
    decode_message,
    encode_message,
)

__all__ = [
    "MAX_DISTRIBUTION_SIZE",
    "MAX_SENDER_KEYS_PER_SENDER",
    "MAX_SENDER_KEY_HEADER_SIZE",
    "MAX_SENDER_KEY_SKIP",
    "MAX_SENDER_KEY_SKIPPED_KEYS",
    "MAX_SENDER_KEY_STATE_SIZE",
    "SENDER_KEY_VERSION",
    "InboundSenderKeys",
    "OutboundSenderKey",
    "SenderKeyConfig",
    "SenderKeyDistributionInfo",
    "read_sender_key_distribution",
]


class OutboundSenderKey:
    """This device's sender key in one group: encrypts and signs its group messages.

    Create one with :meth:`generate`, send :meth:`distribution` to every
    member device over the pairwise sessions, then :meth:`encrypt` each group
    message once. Call :meth:`rotate` whenever membership changes (and send
    the new distribution to the remaining members only). Persist
    :meth:`to_bytes` after every call that changes it.
    """

    __slots__ = (
        "_binding",
        "_chain_key",
        "_config",
        "_device_key",
        "_group_id",
        "_iteration",
        "_key_id",
        "_signer",
    )

    def __init__(
        self,
        *,
        group_id: str,
        device_key: bytes,
        key_id: int,
        iteration: int,
        chain_key: bytes,
        signer: Ed25519KeyPair,
        config: SenderKeyConfig,
    ) -> None:
        self._binding = group_binding(group_id, check_public_key(device_key))
        self._group_id = group_id
        self._device_key = device_key
        self._key_id = key_id
        self._iteration = iteration
        self._chain_key = chain_key
        self._signer = signer
        self._config = config

    @classmethod
    def generate(
        cls,
        group_id: str,
        *,
        device_key: bytes,
        config: SenderKeyConfig | None = None,
        rng: RandomSource = system_random,
    ) -> OutboundSenderKey:
        """A new sender key of the device ``device_key`` (its Ed25519 public key) in a group.

        Draws, in this order, the key id (4 bytes, big-endian), the chain key
        (32 bytes) and the signature key's seed (32 bytes) from ``rng``.
        Raises :class:`~omega.errors.ConfigurationError` for a bad group id
        and :class:`~omega.errors.InvalidKeyError` for a bad device key.
        """
        check_group_id(group_id)
        key_id = int.from_bytes(random_bytes(rng, 4), "big")
        return cls(
            group_id=group_id,
            device_key=device_key,
            key_id=key_id,
            iteration=0,
            chain_key=random_bytes(rng, KEY_SIZE),
            signer=Ed25519KeyPair.generate(rng),
            config=config or SenderKeyConfig(),
        )

    @property
    def group_id(self) -> str:
        """The group."""
        return self._group_id

    @property
    def device_key(self) -> bytes:
        """The Ed25519 public key of this (the sending) device."""
        return self._device_key

    @property
    def key_id(self) -> int:
        """Id of the current sender key."""
        return self._key_id

    @property
    def iteration(self) -> int:
        """Index the next message will have in the chain."""
        return self._iteration

    @property
    def signature_key(self) -> bytes:
        """The current signature key's Ed25519 public key."""
        return self._signer.public_key

    @property
    def config(self) -> SenderKeyConfig:
        """The bounds in force."""
        return self._config

    def distribution(self) -> bytes:
        """The encoded ``SenderKeyDistribution`` of the current key at the current iteration.

        It opens every message from now on, none sent before. It is secret:
        send it only inside pairwise sessions, to current members' devices.
        """
        return encode_message(
            SenderKeyDistribution(
                version=SENDER_KEY_VERSION,
                group_id=self._group_id,
                key_id=self._key_id,
                iteration=self._iteration,
                chain_key=self._chain_key,
                signature_key=self._signer.public_key,
            )
        )

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt and sign one group message; returns an encoded ``SenderKeyMessage``.

        Raises :class:`~omega.errors.ConfigurationError` for a plaintext that
        is not bytes or is larger than ``max_plaintext_size``, and
        :class:`~omega.errors.LocalProtocolError` once the chain is exhausted
        (2**32 - 1 messages: :meth:`rotate`).
        """
        if not isinstance(plaintext, bytes):
            raise ConfigurationError(f"plaintext must be bytes, not {type(plaintext).__name__}")
        if len(plaintext) > self._config.max_plaintext_size:
            raise ConfigurationError(
                f"plaintext of {len(plaintext)} bytes exceeds {self._config.max_plaintext_size}",
                details={"size": len(plaintext), "limit": self._config.max_plaintext_size},
            )
        if self._iteration >= UINT32_MAX:
            raise LocalProtocolError("the sender chain is exhausted; rotate the sender key")
        # One call: header, chain step, AEAD, Ed25519 signature and encoding (the compiled
        # twin when live; omega.crypto._kdf.seal_sender_key_message is the reference).
        next_chain_key, message = _symmetric.seal_sender_key_message(
            self._chain_key,
            plaintext,
            self._binding,
            SENDER_KEY_VERSION,
            self._key_id,
            self._iteration,
            self._signer._secret_key,
        )
        self._chain_key, self._iteration = next_chain_key, self._iteration + 1
        return message

    def rotate(self, *, rng: RandomSource = system_random) -> bytes:
        """Replace the sender key: new key id, chain key and signature key, iteration 0.

        Draws as :meth:`generate` does (a key id equal to the current one is
        drawn again). The old chain and signature key are forgotten. Returns
        the new :meth:`distribution`, for the members that remain.
        """
        key_id = self._key_id
        while key_id == self._key_id:
            key_id = int.from_bytes(random_bytes(rng, 4), "big")
        self._key_id = key_id
        self._iteration = 0
        self._chain_key = random_bytes(rng, KEY_SIZE)
        self._signer = Ed25519KeyPair.generate(rng)
        return self.distribution()

    def to_bytes(self) -> bytes:
        """Serialize to a versioned ``OutboundSenderKeyState`` (secret: store it encrypted)."""
        return encode_message(
            OutboundSenderKeyState(
                version=SENDER_KEY_VERSION,
                group_id=self._group_id,
                device_key=self._device_key,
                key_id=self._key_id,
                iteration=self._iteration,
                chain_key=self._chain_key,
                signature_private_key=self._signer.seed,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: SenderKeyConfig | None = None) -> OutboundSenderKey:
        """Load a key serialized by :meth:`to_bytes`; ``from_bytes(b).to_bytes() == b``.

        Anything malformed or not in the exact encoding :meth:`to_bytes`
        writes raises :class:`~omega.errors.MessageDecodeError`.
        """
        state = decode_message(OutboundSenderKeyState, data, max_size=MAX_DISTRIBUTION_SIZE)
        if state.version != SENDER_KEY_VERSION:
            raise MessageDecodeError(
                f"unsupported sender key state version {state.version}",
                details={"version": state.version},
            )
        check_group_id(state.group_id, remote=True)
        if len(state.chain_key) != KEY_SIZE or len(state.signature_private_key) != KEY_SIZE:
            raise MessageDecodeError("sender key state holds a malformed key")
        try:
            key = cls(
                group_id=state.group_id,
                device_key=state.device_key,
                key_id=state.key_id,
                iteration=state.iteration,
                chain_key=state.chain_key,
                signer=Ed25519KeyPair.from_seed(state.signature_private_key),
                config=config or SenderKeyConfig(),
            )
        except CryptoError as exc:
            raise MessageDecodeError(f"invalid sender key state: {exc.message}") from exc
        if key.to_bytes() != bytes(data):
            raise MessageDecodeError("sender key state is not in canonical encoding")
        return key

    def __repr__(self) -> str:
        return (
            f"OutboundSenderKey(group_id={self._group_id!r}, key_id={self._key_id}, "
            f"iteration={self._iteration})"
        )


class InboundSenderKeys:
    """The sender keys of one remote sending device in one group: verifies and decrypts.

    Create it from the first distribution the device sent
    (:meth:`from_distribution`) with the device key of the pairwise session it
    arrived in; add later ones with :meth:`add_distribution`. Keys are kept
    newest first, at most ``max_keys_per_sender``. Persist :meth:`to_bytes`
    after every successful :meth:`decrypt` (in the same transaction as the
    plaintext) and every change.
    """

    __slots__ = ("_binding", "_config", "_group_id", "_keys", "_sender_device_key")

    def __init__(
        self,
        *,
        group_id: str,
        sender_device_key: bytes,
        keys: list[SenderChain],
        config: SenderKeyConfig,
    ) -> None:
        self._binding = group_binding(group_id, check_public_key(sender_device_key))
        self._group_id = group_id
        self._sender_device_key = sender_device_key
        self._keys = keys
        self._config = config

    @classmethod
    def from_distribution(
        cls,
        distribution: bytes | SenderKeyDistributionInfo,
        *,
        sender_device_key: bytes,
        config: SenderKeyConfig | None = None,
    ) -> InboundSenderKeys:
        """Start holding the sender keys of ``sender_device_key`` from its first distribution.

        ``sender_device_key`` must be the remote device key of the pairwise
        session the distribution was decrypted from: that session is what
        authenticates it. Raises what :func:`read_sender_key_distribution`
        raises and :class:`~omega.errors.InvalidKeyError` for a bad device key.
        """
        info = as_distribution_info(distribution)
        keys = cls(
            group_id=info.group_id,
            sender_device_key=sender_device_key,
            keys=[],
            config=config or SenderKeyConfig(),
        )
        keys.add_distribution(info)
        return keys

    @property
    def group_id(self) -> str:
        """The group."""
        return self._group_id

    @property
    def sender_device_key(self) -> bytes:
        """The Ed25519 public key of the sending device."""
        return self._sender_device_key

    @property
    def key_ids(self) -> tuple[int, ...]:
        """Ids of the sender keys held, newest first."""
        return tuple(chain.key_id for chain in self._keys)

    @property
    def config(self) -> SenderKeyConfig:
        """The bounds in force."""
        return self._config

    @property
    def skipped_message_key_count(self) -> int:
        """How many skipped message keys are held, over all sender keys."""
        return sum(len(chain.skipped) for chain in self._keys)

    def add_distribution(self, distribution: bytes | SenderKeyDistributionInfo) -> bool:
        """Add a sender key of this device; returns False if it was held already.

        A distribution of a key already held (same key id and signature key)
        changes nothing, so a re-sent distribution can neither rewind a chain
        nor reopen used keys. One with a known key id but another signature
        key replaces that key (the sender reset it). The oldest key beyond
        ``max_keys_per_sender`` is dropped. Raises
        :class:`~omega.errors.ConfigurationError` for another group's
        distribution, and what :func:`read_sender_key_distribution` raises.
        """
        info = as_distribution_info(distribution)
        if info.group_id != self._group_id:
            raise ConfigurationError("the distribution is for another group")
        for chain in self._keys:
            if chain.key_id == info.key_id and hmac.compare_digest(
                chain.signature_key, info.signature_key
            ):
                return False
        self._keys = [chain for chain in self._keys if chain.key_id != info.key_id]
        self._keys.insert(
            0,
            SenderChain(
                key_id=info.key_id,
                iteration=info.iteration,
                chain_key=info.chain_key,
                signature_key=info.signature_key,
            ),
        )
        del self._keys[self._config.max_keys_per_sender :]
        return True

    def forget_key(self, key_id: int) -> bool:
        """Drop sender key ``key_id`` (e.g. once no message under it can still arrive).

        Returns False if it was not held.
        """
        kept = [chain for chain in self._keys if chain.key_id != key_id]
        forgotten = len(kept) != len(self._keys)
        self._keys = kept
        return forgotten

    def decrypt(self, data: bytes) -> bytes:
        """Verify and decrypt an encoded ``SenderKeyMessage``; returns the plaintext.

        The signature is checked before any key is derived. On any failure
        the state is left exactly as it was. Raises
        :class:`~omega.errors.MessageDecodeError` for malformed or oversized
        bytes or an unknown version,
        :class:`~omega.errors.UnknownSenderKeyError` for a key id not held,
        :class:`~omega.errors.InvalidSignatureError` for a bad signature,
        :class:`~omega.errors.DuplicateMessageError` for a message whose key
        was used or evicted,
        :class:`~omega.errors.TooManySkippedMessagesError` beyond
        ``max_skip``, and :class:`~omega.errors.DecryptionError` when the
        AEAD refuses the ciphertext.
        """
        if self._keys:
            # The next message of the newest key in canonical encoding: one compiled call
            # that verifies, then opens; it declines (None) anything else, and the strict
            # path below gives the definitive answer and error.
            newest = self._keys[0]
            opened = _symmetric.open_sender_key_message(
                newest.chain_key,
                data,
                self._binding,
                newest.key_id,
                newest.iteration,
                newest.signature_key,
                self._config.max_message_size,
                self._config.max_plaintext_size,
            )
            if opened is not None:
                newest.chain_key, plaintext = opened
                newest.iteration += 1
                newest.evict(self._config.max_skipped_keys)
                return plaintext
        message = decode_message(SenderKeyMessage, data, max_size=self._config.max_message_size)
        header = decode_message(
            SenderKeyHeader, message.header, max_size=MAX_SENDER_KEY_HEADER_SIZE
        )
        if header.version != SENDER_KEY_VERSION:
            raise MessageDecodeError(
                f"unsupported sender key message version {header.version}",
                details={"version": header.version},
            )
        if header.iteration >= UINT32_MAX:
            raise MessageDecodeError("group message iteration out of range")
        if len(message.ciphertext) - TAG_SIZE > self._config.max_plaintext_size:
            raise MessageDecodeError("group message plaintext would exceed the size limit")
        index = self._index_of(header.key_id)
        chain = self._keys[index]
        verify_message_signature(
            chain.signature_key,
            signed_bytes(self._binding, message.header, message.ciphertext),
            message.signature,
        )
        if len(message.ciphertext) < TAG_SIZE:
            raise DecryptionError("group message ciphertext is shorter than its tag")
        ad = associated_data(self._binding, message.header)
        if header.iteration == chain.iteration:
            # The next message of the chain, the common case: nothing to skip or copy.
            chain.chain_key, plaintext = _symmetric.open_step(
                chain.chain_key, message.ciphertext, ad, MESSAGE_KEY_INFO, "group message"
            )
            chain.iteration += 1
            chain.evict(self._config.max_skipped_keys)
            return plaintext
        work = chain.copy()
        message_key = work.message_key(header.iteration, max_skip=self._config.max_skip)
        plaintext = open_message(message_key, message.ciphertext, ad)
        work.evict(self._config.max_skipped_keys)
        self._keys[index] = work
        return plaintext

    def _index_of(self, key_id: int) -> int:
        for index, chain in enumerate(self._keys):
            if chain.key_id == key_id:
                return index
        raise UnknownSenderKeyError(
            f"no sender key {key_id} of this device in this group", details={"key_id": key_id}
        )

    def to_bytes(self) -> bytes:
        """Serialize to a versioned ``InboundSenderKeysState`` (secret: store it encrypted)."""
        return encode_message(
            InboundSenderKeysState(
                version=SENDER_KEY_VERSION,
                group_id=self._group_id,
                sender_device_key=self._sender_device_key,
                keys=[chain_to_state(chain) for chain in self._keys],
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: SenderKeyConfig | None = None) -> InboundSenderKeys:
        """Load keys serialized by :meth:`to_bytes`; ``from_bytes(b).to_bytes() == b``.

        Anything malformed, inconsistent (repeated key ids, disordered
        skipped keys, ...) or not in the exact encoding :meth:`to_bytes`
        writes raises :class:`~omega.errors.MessageDecodeError`. A state
        holding more than ``config`` allows is cut down to it (oldest keys and
        oldest skipped keys first; the bytes then differ).
        """
        config = config or SenderKeyConfig()
        state = decode_message(InboundSenderKeysState, data, max_size=MAX_SENDER_KEY_STATE_SIZE)
        if state.version != SENDER_KEY_VERSION:
            raise MessageDecodeError(
                f"unsupported sender key state version {state.version}",
                details={"version": state.version},
            )
        check_group_id(state.group_id, remote=True)
        key_ids = [chain.key_id for chain in state.keys]
        if len(key_ids) > MAX_KEYS_LIMIT or len(set(key_ids)) != len(key_ids):
            raise MessageDecodeError("sender key state holds too many or repeated keys")
        try:
            keys = cls(
                group_id=state.group_id,
                sender_device_key=state.sender_device_key,
                keys=[chain_from_state(c, max_records=MAX_SKIPPED_LIMIT) for c in state.keys],
                config=config,
            )
        except CryptoError as exc:
            raise MessageDecodeError(f"invalid sender key state: {exc.message}") from exc
        if keys.to_bytes() != bytes(data):
            raise MessageDecodeError("sender key state is not in canonical encoding")
        del keys._keys[config.max_keys_per_sender :]
        for chain in keys._keys:
            chain.evict(config.max_skipped_keys)
        return keys

    def __repr__(self) -> str:
        return (
            f"InboundSenderKeys(group_id={self._group_id!r}, "
            f"sender_device_key={self._sender_device_key.hex()!r}, key_ids={self.key_ids})"
        )
