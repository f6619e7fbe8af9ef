"""Session-state loading: the public ratchet key is remembered by digest, never recomputed."""

from __future__ import annotations

from omega.crypto import DeviceKeyPair, IdentityKeyPair, _session_state
from omega.crypto._kdf import x25519_public
from omega.crypto.double_ratchet import RatchetSession
from omega.testing.random import SeededRandom


def _initiator() -> RatchetSession:
    return RatchetSession.for_initiator(
        shared_secret=bytes(range(32)),
        remote_ratchet_key=x25519_public(bytes([7]) * 32),
        local_identity_key=IdentityKeyPair.from_seed(bytes([1]) * 32).public_key,
        local_device_key=DeviceKeyPair.from_seed(bytes([2]) * 32).public_key,
        remote_identity_key=IdentityKeyPair.from_seed(bytes([3]) * 32).public_key,
        remote_device_key=DeviceKeyPair.from_seed(bytes([4]) * 32).public_key,
        base_key=x25519_public(bytes([5]) * 32),
        rng=SeededRandom(b"alice"),
    )


def test_ratchet_public_keys_are_remembered_by_digest_only() -> None:
    privates = [bytes([index % 256, index // 256]) + bytes(30) for index in range(1100)]
    for private in privates:
        assert _session_state._ratchet_public(private) == x25519_public(private)
    cache = _session_state._public_keys
    assert len(cache) <= _session_state._PUBLIC_CACHE_SIZE
    assert _session_state._ratchet_public(privates[-1]) == x25519_public(privates[-1])
    assert not set(privates) & (set(cache) | set(cache.values()))


def test_saving_a_state_remembers_its_public_ratchet_key() -> None:
    alice = _initiator()
    _session_state._public_keys.clear()
    saved = alice.to_bytes()
    assert len(_session_state._public_keys) == 1  # seeded by the save, computed by no one
    restored = RatchetSession.from_bytes(saved)
    assert restored._state.sending_public == alice._state.sending_public
    assert restored.to_bytes() == saved
