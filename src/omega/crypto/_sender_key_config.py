"""Sender Keys: bounds, version, and the distribution message.

Private to :mod:`omega.crypto.sender_keys`, which documents the protocol and
re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omega.crypto._ed25519 import check_public_key
from omega.crypto._kdf import KEY_SIZE, TAG_SIZE
from omega.crypto._sender_key_chain import UINT32_MAX, check_group_id
from omega.errors import ConfigurationError, MessageDecodeError
from omega.protocol import SenderKeyDistribution, decode_message

__all__ = [
    "MAX_DISTRIBUTION_SIZE",
    "MAX_KEYS_LIMIT",
    "MAX_SENDER_KEYS_PER_SENDER",
    "MAX_SENDER_KEY_HEADER_SIZE",
    "MAX_SENDER_KEY_SKIP",
    "MAX_SENDER_KEY_SKIPPED_KEYS",
    "MAX_SENDER_KEY_STATE_SIZE",
    "MAX_SKIPPED_LIMIT",
    "SENDER_KEY_VERSION",
    "SenderKeyConfig",
    "SenderKeyDistributionInfo",
    "as_distribution_info",
    "read_sender_key_distribution",
]

SENDER_KEY_VERSION = 1
"""Version of ``SenderKeyDistribution``, ``SenderKeyHeader`` and both state formats."""

MAX_SENDER_KEY_SKIP = 2000
"""Default bound on message keys one group message may make a receiver skip in its chain."""

MAX_SENDER_KEY_SKIPPED_KEYS = 2000
"""Default bound on skipped message keys kept per sender key; the oldest are evicted."""

MAX_SENDER_KEYS_PER_SENDER = 5
"""Default number of sender keys kept per sending device; the oldest received is dropped."""

MAX_SENDER_KEY_HEADER_SIZE = 32
"""Largest encoded ``SenderKeyHeader`` accepted (a valid one is at most 14 bytes)."""

MAX_DISTRIBUTION_SIZE = 2048
"""Largest encoded ``SenderKeyDistribution`` accepted, in bytes."""

MAX_SENDER_KEY_STATE_SIZE = 4 * 1024 * 1024
"""Largest serialized sender-key state read (fits a key store value)."""

_MAX_PLAINTEXT_SIZE = 256 * 1024
_MAX_PLAINTEXT_LIMIT = 1024 * 1024
MAX_SKIPPED_LIMIT = 10_000
"""Hard bound on ``max_skip`` and ``max_skipped_keys`` (keeps a state under 4 MiB)."""

MAX_KEYS_LIMIT = 10
"""Hard bound on ``max_keys_per_sender``."""

# SenderKeyMessage framing: header, tags, lengths and the 64-byte signature, generously.
_MESSAGE_OVERHEAD = MAX_SENDER_KEY_HEADER_SIZE + TAG_SIZE + 64 + 16


def _check_limit(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an int in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderKeyConfig:
    """Bounds of :class:`OutboundSenderKey` and :class:`InboundSenderKeys`."""

    max_skip: int = MAX_SENDER_KEY_SKIP
    """Most message keys one message may make the receiver skip in its chain, 0..10000."""
    max_skipped_keys: int = MAX_SENDER_KEY_SKIPPED_KEYS
    """Most skipped message keys kept per sender key, max_skip..10000; oldest evicted."""
    max_keys_per_sender: int = MAX_SENDER_KEYS_PER_SENDER
    """Most sender keys kept per sending device, 1..10; the oldest received goes first."""
    max_plaintext_size: int = _MAX_PLAINTEXT_SIZE
    """Largest plaintext encrypted or accepted, 1..1 MiB (default 256 KiB)."""

    def __post_init__(self) -> None:
        _check_limit("max_skip", self.max_skip, 0, MAX_SKIPPED_LIMIT)
        _check_limit("max_skipped_keys", self.max_skipped_keys, self.max_skip, MAX_SKIPPED_LIMIT)
        _check_limit("max_keys_per_sender", self.max_keys_per_sender, 1, MAX_KEYS_LIMIT)
        _check_limit("max_plaintext_size", self.max_plaintext_size, 1, _MAX_PLAINTEXT_LIMIT)

    @property
    def max_message_size(self) -> int:
        """Largest encoded ``SenderKeyMessage`` accepted: plaintext bound plus overhead."""
        return self.max_plaintext_size + _MESSAGE_OVERHEAD


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderKeyDistributionInfo:
    """A decoded, checked ``SenderKeyDistribution`` (:func:`read_sender_key_distribution`)."""

    group_id: str
    """The group the sender key encrypts for."""
    key_id: int
    """The sender's id for this sender key."""
    iteration: int
    """Index of the first message ``chain_key`` opens."""
    chain_key: bytes = field(repr=False)
    """The chain key at ``iteration``. Secret."""
    signature_key: bytes
    """The Ed25519 public key every message under this sender key is signed with."""

    def __post_init__(self) -> None:
        check_group_id(self.group_id)
        _check_limit("key_id", self.key_id, 0, UINT32_MAX)
        _check_limit("iteration", self.iteration, 0, UINT32_MAX - 1)
        if not isinstance(self.chain_key, bytes) or len(self.chain_key) != KEY_SIZE:
            raise ConfigurationError(f"a sender chain key is {KEY_SIZE} bytes")
        check_public_key(self.signature_key)


def read_sender_key_distribution(data: bytes) -> SenderKeyDistributionInfo:
    """Decode and check an encoded ``SenderKeyDistribution``.

    Use it on the plaintext of a pairwise session message, then hand the
    result to :class:`InboundSenderKeys` with the session's remote device key.
    Raises :class:`~omega.errors.MessageDecodeError` for malformed bytes, an
    unknown version, a bad group id, chain key or iteration, and
    :class:`~omega.errors.InvalidKeyError` for an unusable signature key.
    """
    message = decode_message(SenderKeyDistribution, data, max_size=MAX_DISTRIBUTION_SIZE)
    if message.version != SENDER_KEY_VERSION:
        raise MessageDecodeError(
            f"unsupported sender key distribution version {message.version}",
            details={"version": message.version},
        )
    check_group_id(message.group_id, remote=True)
    if len(message.chain_key) != KEY_SIZE:
        raise MessageDecodeError(f"a sender chain key is {KEY_SIZE} bytes")
    if message.iteration >= UINT32_MAX:
        raise MessageDecodeError("the distributed sender chain is exhausted")
    check_public_key(message.signature_key)
    return SenderKeyDistributionInfo(
        group_id=message.group_id,
        key_id=message.key_id,
        iteration=message.iteration,
        chain_key=message.chain_key,
        signature_key=message.signature_key,
    )


def as_distribution_info(
    distribution: bytes | SenderKeyDistributionInfo,
) -> SenderKeyDistributionInfo:
    """``distribution`` itself, or :func:`read_sender_key_distribution` of its bytes."""
    if isinstance(distribution, SenderKeyDistributionInfo):
        return distribution
    return read_sender_key_distribution(distribution)
