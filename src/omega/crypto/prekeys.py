"""A device's X3DH prekeys: signed prekey rotation and the one-time prekey pool.

Every device publishes, for X3DH (Signal's X3DH specification, section 3.2,
"Publishing keys"), one *signed prekey* and a pool of *one-time prekeys*,
all X25519 keys whose private halves live in a :class:`PrekeyStore`.

Signed prekeys
--------------
The device key signs each signed prekey with Ed25519 over::

    b"omega/signed-prekey/v1" || public_key (32) || prekey_id (4, big-endian)
                              || created_at (8, big-endian, Unix ms)

(:func:`signed_prekey_signature_message`). A signed prekey is rotated once
``rotation_interval_ms`` has passed since its ``created_at``; the retired
one keeps answering prekey messages for ``grace_period_ms`` after its
retirement, so messages sent to a bundle fetched just before the rotation
still open, then it is deleted. At most ``max_retired_signed_prekeys`` are
kept (the oldest is dropped first).

One-time prekeys
----------------
The pool holds up to ``one_time_prekey_target`` keys. Each is consumed at
most once: :meth:`PrekeyStore.consume_one_time_prekey` deletes its private
key. Ids come from a counter that never goes back, so an id below the
counter that is not in the pool was used already
(:class:`~omega.errors.PrekeyReusedError`), and one at or above it was never
issued (:class:`~omega.errors.UnknownPrekeyError`). When fewer than
``one_time_prekey_low_water`` remain, :meth:`PrekeyStore.refresh` tops the
pool back up to the target.

Accepted base keys
------------------
A prekey message that used no one-time prekey could be replayed for as long
as its signed prekey lives. The store therefore records the base key of
every session accepted without one (:meth:`PrekeyStore.remember_base_key`),
at most ``max_accepted_base_keys`` (the oldest is dropped first), and drops
them with their signed prekey; X3DH refuses a recorded base key.

A store is a mutable object without I/O: every method that needs the time
takes ``now`` (Unix milliseconds) and every one that needs randomness takes
``rng``. Persist it with :meth:`PrekeyStore.to_bytes` after each change.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from omega.crypto._ed25519 import check_public_key
from omega.crypto._kdf import KEY_SIZE, check_x25519_public_key, generate_x25519, x25519_public
from omega.crypto._prekey_state import (
    MAX_BASE_KEYS_LIMIT,
    SIGNED_PREKEY_CONTEXT,
    SignedPrekeyEntry,
    base_keys_from_state,
    entry_from_state,
    entry_to_state,
    signed_prekey_signature_message,
)
from omega.crypto.devices import DeviceCertificateInfo, DeviceKeyPair
from omega.crypto.random import RandomSource, system_random
from omega.errors import (
    ConfigurationError,
    CryptoError,
    LocalProtocolError,
    MessageDecodeError,
    PrekeyReusedError,
    UnknownPrekeyError,
)
from omega.protocol import (
    OneTimePrekey,
    OneTimePrekeySecret,
    PrekeyBundle,
    PrekeyStoreState,
    SignedPrekey,
    decode_message,
    encode_message,
)

__all__ = [
    "MAX_ACCEPTED_BASE_KEYS",
    "MAX_ONE_TIME_PREKEYS",
    "MAX_PREKEY_STORE_STATE_SIZE",
    "ONE_TIME_PREKEY_LOW_WATER",
    "ONE_TIME_PREKEY_TARGET",
    "PREKEY_STORE_STATE_VERSION",
    "SIGNED_PREKEY_CONTEXT",
    "SIGNED_PREKEY_GRACE_PERIOD_MS",
    "SIGNED_PREKEY_ROTATION_INTERVAL_MS",
    "PrekeyConfig",
    "PrekeyRefresh",
    "PrekeyStore",
    "signed_prekey_signature_message",
]

SIGNED_PREKEY_ROTATION_INTERVAL_MS = 7 * 24 * 3600 * 1000
"""Default age at which the signed prekey is replaced: 7 days."""

SIGNED_PREKEY_GRACE_PERIOD_MS = 30 * 24 * 3600 * 1000
"""Default time a retired signed prekey still opens prekey messages: 30 days."""

MAX_RETIRED_SIGNED_PREKEYS = 8
"""Default bound on retired signed prekeys kept in their grace period."""

ONE_TIME_PREKEY_TARGET = 100
"""Default size of a full one-time prekey pool."""

ONE_TIME_PREKEY_LOW_WATER = 25
"""Default pool size under which :meth:`PrekeyStore.refresh` replenishes the pool."""

MAX_ONE_TIME_PREKEYS = 1000
"""Largest one-time prekey pool a store (or a configuration) may hold."""

MAX_ACCEPTED_BASE_KEYS = 2000
"""Default bound on recorded base keys of sessions accepted without a one-time prekey."""

PREKEY_STORE_STATE_VERSION = 2
"""Version of the ``PrekeyStoreState`` serialization written (1 is still read)."""

MAX_PREKEY_STORE_STATE_SIZE = 1024 * 1024
"""Largest serialized prekey store :meth:`PrekeyStore.from_bytes` reads, in bytes."""

_UINT32_MAX = (1 << 32) - 1
_INT64_MAX = (1 << 63) - 1
_MAX_RETIRED_LIMIT = 64


def _check_range(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an int in {low}..{high}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PrekeyConfig:
    """How a :class:`PrekeyStore` rotates and replenishes its prekeys."""

    rotation_interval_ms: int = SIGNED_PREKEY_ROTATION_INTERVAL_MS
    """Age (ms since ``created_at``) at which the signed prekey is rotated; at least 1."""
    grace_period_ms: int = SIGNED_PREKEY_GRACE_PERIOD_MS
    """How long (ms) a retired signed prekey still opens prekey messages; may be 0."""
    max_retired_signed_prekeys: int = MAX_RETIRED_SIGNED_PREKEYS
    """Most retired signed prekeys kept, 1..64; the oldest goes first."""
    one_time_prekey_target: int = ONE_TIME_PREKEY_TARGET
    """Size of a full one-time prekey pool, 1..MAX_ONE_TIME_PREKEYS."""
    one_time_prekey_low_water: int = ONE_TIME_PREKEY_LOW_WATER
    """Pool size under which the pool is replenished, 0..target."""
    max_accepted_base_keys: int = MAX_ACCEPTED_BASE_KEYS
    """Most base keys recorded against replays, 1..20000; the oldest goes first."""

    def __post_init__(self) -> None:
        _check_range("rotation_interval_ms", self.rotation_interval_ms, 1, _INT64_MAX)
        _check_range("grace_period_ms", self.grace_period_ms, 0, _INT64_MAX)
        _check_range(
            "max_retired_signed_prekeys", self.max_retired_signed_prekeys, 1, _MAX_RETIRED_LIMIT
        )
        _check_range("one_time_prekey_target", self.one_time_prekey_target, 1, MAX_ONE_TIME_PREKEYS)
        _check_range(
            "one_time_prekey_low_water",
            self.one_time_prekey_low_water,
            0,
            self.one_time_prekey_target,
        )
        _check_range("max_accepted_base_keys", self.max_accepted_base_keys, 1, MAX_BASE_KEYS_LIMIT)


@dataclass(frozen=True, slots=True)
class PrekeyRefresh:
    """What :meth:`PrekeyStore.refresh` changed, that is, what to publish."""

    signed_prekey: SignedPrekey | None
    """The new signed prekey when it was rotated, else ``None``."""
    one_time_prekeys: tuple[OneTimePrekey, ...]
    """The one-time prekeys added to the pool (possibly none)."""
    removed_signed_prekey_ids: tuple[int, ...]
    """Retired signed prekeys deleted because their grace period ended."""


class PrekeyStore:
    """The prekeys of one device: current and retired signed prekeys, one-time pool.

    Create one with :meth:`generate` or load one with :meth:`from_bytes`.
    """

    __slots__ = (
        "_base_keys",
        "_config",
        "_current",
        "_device_key",
        "_next_otk",
        "_next_spk",
        "_otks",
        "_retired",
    )

    def __init__(
        self,
        *,
        device_key: bytes,
        current: SignedPrekeyEntry,
        retired: list[SignedPrekeyEntry],
        one_time_prekeys: dict[int, tuple[bytes, bytes]],
        next_signed_prekey_id: int,
        next_one_time_prekey_id: int,
        config: PrekeyConfig,
        base_keys: dict[bytes, int] | None = None,
    ) -> None:
        self._device_key = device_key
        self._current = current
        self._retired = retired
        self._otks = one_time_prekeys  # id -> (private, public), ascending ids
        self._next_spk = next_signed_prekey_id
        self._next_otk = next_one_time_prekey_id
        self._config = config
        self._base_keys = base_keys or {}  # base key -> signed prekey id, oldest first

    @classmethod
    def generate(
        cls,
        device: DeviceKeyPair,
        *,
        now: int,
        config: PrekeyConfig | None = None,
        rng: RandomSource = system_random,
    ) -> PrekeyStore:
        """A new store for ``device``: signed prekey 1 and a full one-time prekey pool."""
        config = config or PrekeyConfig()
        _check_range("now", now, 0, _INT64_MAX)
        current = _new_signed_prekey(device, 1, now, rng)
        store = cls(
            device_key=device.public_key,
            current=current,
            retired=[],
            one_time_prekeys={},
            next_signed_prekey_id=2,
            next_one_time_prekey_id=1,
            config=config,
        )
        store.replenish(rng=rng)
        return store

    @property
    def config(self) -> PrekeyConfig:
        """The rotation and pool configuration."""
        return self._config

    @property
    def device_key(self) -> bytes:
        """Ed25519 public key of the device these prekeys belong to."""
        return self._device_key

    @property
    def signed_prekey(self) -> SignedPrekey:
        """The current signed prekey, as published."""
        return self._current.public()

    @property
    def retired_signed_prekey_ids(self) -> tuple[int, ...]:
        """Ids of the retired signed prekeys still kept, oldest first."""
        return tuple(entry.prekey_id for entry in self._retired)

    @property
    def one_time_prekeys(self) -> tuple[OneTimePrekey, ...]:
        """The unused one-time prekeys, as published, in ascending id order."""
        return tuple(
            OneTimePrekey(prekey_id=prekey_id, public_key=public)
            for prekey_id, (_, public) in self._otks.items()
        )

    @property
    def needs_replenishing(self) -> bool:
        """True when fewer than ``one_time_prekey_low_water`` one-time prekeys remain."""
        return len(self._otks) < self._config.one_time_prekey_low_water

    def rotation_due(self, now: int) -> bool:
        """True when the current signed prekey is at least ``rotation_interval_ms`` old."""
        return now - self._current.created_at >= self._config.rotation_interval_ms

    def rotate_signed_prekey(
        self, device: DeviceKeyPair, *, now: int, rng: RandomSource = system_random
    ) -> SignedPrekey:
        """Replace the signed prekey now, retiring the current one into its grace period.

        Raises :class:`~omega.errors.ConfigurationError` if ``device`` is not
        the store's device and :class:`~omega.errors.LocalProtocolError` when
        signed prekey ids are exhausted.
        """
        self._check_device(device)
        _check_range("now", now, 0, _INT64_MAX)
        if self._next_spk >= _UINT32_MAX:
            raise LocalProtocolError("signed prekey ids are exhausted; create a new device")
        entry = _new_signed_prekey(device, self._next_spk, now, rng)
        self._next_spk += 1
        self._current.retired_at = now
        self._retired.append(self._current)
        del self._retired[: -self._config.max_retired_signed_prekeys]
        self._current = entry
        self._drop_orphan_base_keys()
        return entry.public()

    def prune(self, now: int) -> tuple[int, ...]:
        """Delete retired signed prekeys whose grace period is over; return their ids.

        The base keys recorded against them go too: their prekey messages
        can no longer be opened anyway.
        """
        expired = [entry for entry in self._retired if self._expired(entry, now)]
        self._retired = [entry for entry in self._retired if not self._expired(entry, now)]
        self._drop_orphan_base_keys()
        return tuple(entry.prekey_id for entry in expired)

    @property
    def accepted_base_key_count(self) -> int:
        """How many base keys are recorded against replays."""
        return len(self._base_keys)

    def is_known_base_key(self, base_key: bytes) -> bool:
        """True if a session was accepted from ``base_key`` without a one-time prekey."""
        return base_key in self._base_keys

    def remember_base_key(self, base_key: bytes, *, signed_prekey_id: int) -> None:
        """Record the base key of a session accepted with ``signed_prekey_id`` and no OPK.

        :func:`~omega.crypto.x3dh.accept_session` calls it. The record lives
        as long as that signed prekey does, and at most
        ``max_accepted_base_keys`` records are kept (the oldest is dropped).
        Raises :class:`~omega.errors.InvalidKeyError` for a malformed base key
        and :class:`~omega.errors.ConfigurationError` for a signed prekey the
        store does not hold.
        """
        check_x25519_public_key(base_key, "base key")
        if signed_prekey_id not in self._signed_prekey_ids():
            raise ConfigurationError(f"no signed prekey {signed_prekey_id} in the store")
        self._base_keys.pop(base_key, None)
        self._base_keys[base_key] = signed_prekey_id
        while len(self._base_keys) > self._config.max_accepted_base_keys:
            del self._base_keys[next(iter(self._base_keys))]

    def _signed_prekey_ids(self) -> set[int]:
        return {self._current.prekey_id, *(entry.prekey_id for entry in self._retired)}

    def _drop_orphan_base_keys(self) -> None:
        held = self._signed_prekey_ids()
        self._base_keys = {key: spk for key, spk in self._base_keys.items() if spk in held}

    def replenish(self, *, rng: RandomSource = system_random) -> tuple[OneTimePrekey, ...]:
        """Top the one-time prekey pool up to its target; return the new prekeys.

        Raises :class:`~omega.errors.LocalProtocolError` when one-time prekey
        ids are exhausted.
        """
        missing = self._config.one_time_prekey_target - len(self._otks)
        if self._next_otk + missing > _UINT32_MAX:
            raise LocalProtocolError("one-time prekey ids are exhausted; create a new device")
        added = []
        for _ in range(missing):
            private, public = generate_x25519(rng)
            self._otks[self._next_otk] = (private, public)
            added.append(OneTimePrekey(prekey_id=self._next_otk, public_key=public))
            self._next_otk += 1
        return tuple(added)

    def refresh(
        self, device: DeviceKeyPair, *, now: int, rng: RandomSource = system_random
    ) -> PrekeyRefresh:
        """Run the schedule: prune expired retired keys, rotate if due, replenish if low."""
        self._check_device(device)
        removed = self.prune(now)
        rotated = (
            self.rotate_signed_prekey(device, now=now, rng=rng) if self.rotation_due(now) else None
        )
        added = self.replenish(rng=rng) if self.needs_replenishing else ()
        return PrekeyRefresh(
            signed_prekey=rotated, one_time_prekeys=added, removed_signed_prekey_ids=removed
        )

    def build_bundle(
        self, certificate: DeviceCertificateInfo, *, one_time_prekey_id: int | None = None
    ) -> PrekeyBundle:
        """The prekey bundle of this device, with the chosen one-time prekey if any.

        Whoever hands bundles out must give each one-time prekey to one
        initiator only; the device refuses a second use anyway. Raises
        :class:`~omega.errors.ConfigurationError` if the certificate is for
        another device or the one-time prekey is not in the pool.
        """
        if not hmac.compare_digest(certificate.device_key, self._device_key):
            raise ConfigurationError("the certificate is for another device")
        one_time = None
        if one_time_prekey_id is not None:
            if one_time_prekey_id not in self._otks:
                raise ConfigurationError(f"no one-time prekey {one_time_prekey_id} in the pool")
            one_time = OneTimePrekey(
                prekey_id=one_time_prekey_id, public_key=self._otks[one_time_prekey_id][1]
            )
        return PrekeyBundle(
            device_certificate=certificate.to_signed(),
            signed_prekey=self._current.public(),
            one_time_prekey=one_time,
        )

    def signed_prekey_secret(self, prekey_id: int, *, now: int) -> tuple[bytes, bytes]:
        """``(private, public)`` of signed prekey ``prekey_id`` if it may still be used.

        Raises :class:`~omega.errors.UnknownPrekeyError` for an id that is
        neither current nor retired within its grace period.
        """
        if prekey_id == self._current.prekey_id:
            return self._current.private_key, self._current.public_key
        for entry in self._retired:
            if entry.prekey_id == prekey_id and not self._expired(entry, now):
                return entry.private_key, entry.public_key
        raise UnknownPrekeyError(
            f"unknown or expired signed prekey {prekey_id}",
            details={"kind": "signed", "prekey_id": prekey_id},
        )

    def one_time_prekey_secret(self, prekey_id: int) -> tuple[bytes, bytes]:
        """``(private, public)`` of unused one-time prekey ``prekey_id``.

        Raises :class:`~omega.errors.PrekeyReusedError` when it was consumed
        already and :class:`~omega.errors.UnknownPrekeyError` when it was
        never issued.
        """
        if prekey_id in self._otks:
            return self._otks[prekey_id]
        details = {"kind": "one_time", "prekey_id": prekey_id}
        if 1 <= prekey_id < self._next_otk:
            raise PrekeyReusedError(
                f"one-time prekey {prekey_id} was used already", details=details
            )
        raise UnknownPrekeyError(f"one-time prekey {prekey_id} was never issued", details=details)

    def consume_one_time_prekey(self, prekey_id: int) -> None:
        """Delete one-time prekey ``prekey_id`` for good (same errors as the lookup)."""
        self.one_time_prekey_secret(prekey_id)
        del self._otks[prekey_id]

    def _expired(self, entry: SignedPrekeyEntry, now: int) -> bool:
        return now - entry.retired_at >= self._config.grace_period_ms

    def _check_device(self, device: DeviceKeyPair) -> None:
        if not hmac.compare_digest(device.public_key, self._device_key):
            raise ConfigurationError("this prekey store belongs to another device")

    def to_bytes(self) -> bytes:
        """Serialize to a versioned ``PrekeyStoreState`` (secret: store it encrypted)."""
        return self._encode(PREKEY_STORE_STATE_VERSION)

    def _encode(self, version: int) -> bytes:
        return encode_message(
            PrekeyStoreState(
                version=version,
                device_key=self._device_key,
                signed_prekey=entry_to_state(self._current),
                retired_signed_prekeys=[entry_to_state(entry) for entry in self._retired],
                one_time_prekeys=[
                    OneTimePrekeySecret(prekey_id=prekey_id, private_key=private)
                    for prekey_id, (private, _) in self._otks.items()
                ],
                next_signed_prekey_id=self._next_spk,
                next_one_time_prekey_id=self._next_otk,
                accepted_base_keys=b"".join(
                    spk.to_bytes(4, "big") + key for key, spk in self._base_keys.items()
                ),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, config: PrekeyConfig | None = None) -> PrekeyStore:
        """Load a store serialized by :meth:`to_bytes`; ``from_bytes(b).to_bytes() == b``.

        Everything is checked, signatures included; anything malformed,
        inconsistent or not in the exact encoding :meth:`to_bytes` writes
        raises :class:`~omega.errors.MessageDecodeError`. A version 1 state
        (before base keys were recorded) loads with none and is written back
        as version 2; a state holding more base keys than ``config`` allows
        drops the oldest (in both cases the bytes then differ).
        """
        config = config or PrekeyConfig()
        state = decode_message(PrekeyStoreState, data, max_size=MAX_PREKEY_STORE_STATE_SIZE)
        try:
            store = _store_from_state(state, config)
        except CryptoError as exc:
            raise MessageDecodeError(f"invalid prekey store state: {exc.message}") from exc
        if store._encode(state.version) != bytes(data):
            raise MessageDecodeError("prekey store state is not in canonical encoding")
        while len(store._base_keys) > config.max_accepted_base_keys:
            del store._base_keys[next(iter(store._base_keys))]
        return store


def _new_signed_prekey(
    device: DeviceKeyPair, prekey_id: int, now: int, rng: RandomSource
) -> SignedPrekeyEntry:
    private, public = generate_x25519(rng)
    signature = device.sign(signed_prekey_signature_message(public, prekey_id, now))
    return SignedPrekeyEntry(prekey_id, private, public, signature, now)


def _store_from_state(state: PrekeyStoreState, config: PrekeyConfig) -> PrekeyStore:
    if state.version not in (1, PREKEY_STORE_STATE_VERSION):
        raise MessageDecodeError(
            f"unsupported prekey store state version {state.version}",
            details={"version": state.version},
        )
    device_key = check_public_key(state.device_key)
    current = entry_from_state(state.signed_prekey, device_key, current=True)
    retired = [entry_from_state(s, device_key, current=False) for s in state.retired_signed_prekeys]
    spk_ids = [entry.prekey_id for entry in (*retired, current)]
    if (
        len(set(spk_ids)) != len(spk_ids)
        or min(spk_ids) < 1
        or max(spk_ids) >= state.next_signed_prekey_id
    ):
        raise MessageDecodeError("prekey store state has inconsistent signed prekey ids")
    if len(retired) > _MAX_RETIRED_LIMIT or len(state.one_time_prekeys) > MAX_ONE_TIME_PREKEYS:
        raise MessageDecodeError("prekey store state holds too many prekeys")
    one_time: dict[int, tuple[bytes, bytes]] = {}
    previous_id = 0
    for entry in state.one_time_prekeys:
        if not previous_id < entry.prekey_id < state.next_one_time_prekey_id:
            raise MessageDecodeError("prekey store state has inconsistent one-time prekey ids")
        if len(entry.private_key) != KEY_SIZE:
            raise MessageDecodeError(f"one-time prekey {entry.prekey_id} is malformed")
        one_time[entry.prekey_id] = (entry.private_key, x25519_public(entry.private_key))
        previous_id = entry.prekey_id
    return PrekeyStore(
        device_key=device_key,
        current=current,
        retired=retired,
        one_time_prekeys=one_time,
        next_signed_prekey_id=state.next_signed_prekey_id,
        next_one_time_prekey_id=state.next_one_time_prekey_id,
        config=config,
        base_keys=base_keys_from_state(state, spk_ids),
    )
