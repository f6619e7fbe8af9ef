"""Prekey stores: signed prekey rotation and grace period, one-time pool, serialization."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import DeviceKeyPair, IdentityKeyPair, certify_device, verify_device_certificate
from omega.crypto.prekeys import (
    MAX_ACCEPTED_BASE_KEYS,
    MAX_ONE_TIME_PREKEYS,
    MAX_PREKEY_STORE_STATE_SIZE,
    ONE_TIME_PREKEY_LOW_WATER,
    ONE_TIME_PREKEY_TARGET,
    PREKEY_STORE_STATE_VERSION,
    SIGNED_PREKEY_CONTEXT,
    SIGNED_PREKEY_GRACE_PERIOD_MS,
    SIGNED_PREKEY_ROTATION_INTERVAL_MS,
    PrekeyConfig,
    PrekeyStore,
    signed_prekey_signature_message,
)
from omega.errors import (
    ConfigurationError,
    InvalidKeyError,
    LocalProtocolError,
    MessageDecodeError,
    OmegaError,
    PrekeyReusedError,
    UnknownPrekeyError,
)
from omega.protocol import PrekeyStoreState, decode_message, encode_message
from omega.testing.random import SeededRandom

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000
DEVICE_SEED = bytes([3]) * 32


@pytest.fixture
def device() -> DeviceKeyPair:
    return DeviceKeyPair.from_seed(DEVICE_SEED)


@pytest.fixture
def store(device: DeviceKeyPair) -> PrekeyStore:
    return PrekeyStore.generate(device, now=NOW, rng=SeededRandom(b"prekeys"))


def test_defaults_follow_the_documented_schedule() -> None:
    assert SIGNED_PREKEY_ROTATION_INTERVAL_MS == 7 * DAY
    assert SIGNED_PREKEY_GRACE_PERIOD_MS == 30 * DAY
    assert ONE_TIME_PREKEY_TARGET == 100
    assert ONE_TIME_PREKEY_LOW_WATER == 25


def test_generate_creates_a_signed_prekey_and_a_full_pool(
    store: PrekeyStore, device: DeviceKeyPair
) -> None:
    assert store.device_key == device.public_key
    assert store.config == PrekeyConfig()
    assert store.signed_prekey.prekey_id == 1
    assert store.signed_prekey.created_at == NOW
    ids = [prekey.prekey_id for prekey in store.one_time_prekeys]
    assert ids == list(range(1, 101))
    assert len({prekey.public_key for prekey in store.one_time_prekeys}) == 100
    assert not store.needs_replenishing
    assert store.retired_signed_prekey_ids == ()


def test_signed_prekey_signature_known_answer(store: PrekeyStore) -> None:
    """The signature is plain Ed25519 by the device key over the documented bytes."""
    signed = store.signed_prekey
    expected_message = (
        b"omega/signed-prekey/v1"
        + signed.public_key
        + (1).to_bytes(4, "big")
        + NOW.to_bytes(8, "big")
    )
    assert SIGNED_PREKEY_CONTEXT == b"omega/signed-prekey/v1"
    assert signed_prekey_signature_message(signed.public_key, 1, NOW) == expected_message
    # Ed25519 is deterministic: an independent implementation gives the same bytes.
    independent = Ed25519PrivateKey.from_private_bytes(DEVICE_SEED).sign(expected_message)
    assert signed.signature == independent
    Ed25519PublicKey.from_public_bytes(store.device_key).verify(signed.signature, expected_message)


def test_prekey_private_keys_match_published_public_keys(store: PrekeyStore) -> None:
    private, public = store.signed_prekey_secret(1, now=NOW)
    assert public == store.signed_prekey.public_key
    independent = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    assert independent == public
    for prekey in store.one_time_prekeys[:3]:
        private, public = store.one_time_prekey_secret(prekey.prekey_id)
        assert public == prekey.public_key
        assert (
            X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw() == public
        )


def test_rotation_schedule_and_grace_period(store: PrekeyStore, device: DeviceKeyPair) -> None:
    rng = SeededRandom(b"rotation")
    assert not store.rotation_due(NOW + 7 * DAY - 1)
    assert store.rotation_due(NOW + 7 * DAY)
    refresh = store.refresh(device, now=NOW + 7 * DAY - 1, rng=rng)
    assert refresh.signed_prekey is None
    assert refresh.one_time_prekeys == ()
    assert store.signed_prekey.prekey_id == 1

    rotated_at = NOW + 7 * DAY
    refresh = store.refresh(device, now=rotated_at, rng=rng)
    assert refresh.signed_prekey is not None
    assert refresh.signed_prekey.prekey_id == 2
    assert refresh.signed_prekey == store.signed_prekey
    assert store.retired_signed_prekey_ids == (1,)
    # The previous signed prekey still answers during its grace period ...
    store.signed_prekey_secret(1, now=rotated_at + 30 * DAY - 1)
    store.signed_prekey_secret(2, now=rotated_at + 30 * DAY - 1)
    # ... and not a millisecond after, even before it is pruned.
    with pytest.raises(UnknownPrekeyError) as info:
        store.signed_prekey_secret(1, now=rotated_at + 30 * DAY)
    assert info.value.details == {"kind": "signed", "prekey_id": 1}
    assert store.prune(rotated_at + 30 * DAY - 1) == ()
    assert store.prune(rotated_at + 30 * DAY) == (1,)
    assert store.retired_signed_prekey_ids == ()


def test_refresh_prunes_expired_signed_prekeys(store: PrekeyStore, device: DeviceKeyPair) -> None:
    rng = SeededRandom(b"prune")
    store.rotate_signed_prekey(device, now=NOW + DAY, rng=rng)
    refresh = store.refresh(device, now=NOW + DAY + 30 * DAY, rng=rng)
    assert refresh.removed_signed_prekey_ids == (1,)
    assert refresh.signed_prekey is not None  # prekey 2 is 30 days old: rotated too
    assert store.retired_signed_prekey_ids == (2,)


def test_unknown_signed_prekey_is_refused(store: PrekeyStore) -> None:
    with pytest.raises(UnknownPrekeyError):
        store.signed_prekey_secret(7, now=NOW)


def test_retired_signed_prekeys_are_bounded(device: DeviceKeyPair) -> None:
    config = PrekeyConfig(
        max_retired_signed_prekeys=2, one_time_prekey_target=1, one_time_prekey_low_water=0
    )
    store = PrekeyStore.generate(device, now=NOW, config=config, rng=SeededRandom(b"b"))
    for step in range(1, 5):
        store.rotate_signed_prekey(device, now=NOW + step, rng=SeededRandom(b"r"))
    assert store.signed_prekey.prekey_id == 5
    assert store.retired_signed_prekey_ids == (3, 4)


def test_zero_grace_period_retires_at_once(device: DeviceKeyPair) -> None:
    config = PrekeyConfig(grace_period_ms=0, one_time_prekey_target=1, one_time_prekey_low_water=0)
    store = PrekeyStore.generate(device, now=NOW, config=config, rng=SeededRandom(b"z"))
    store.rotate_signed_prekey(device, now=NOW + 5, rng=SeededRandom(b"z2"))
    with pytest.raises(UnknownPrekeyError):
        store.signed_prekey_secret(1, now=NOW + 5)


def test_one_time_prekeys_are_consumed_once(store: PrekeyStore) -> None:
    store.one_time_prekey_secret(10)
    store.consume_one_time_prekey(10)
    with pytest.raises(PrekeyReusedError) as info:
        store.one_time_prekey_secret(10)
    assert info.value.details == {"kind": "one_time", "prekey_id": 10}
    with pytest.raises(PrekeyReusedError):
        store.consume_one_time_prekey(10)
    assert isinstance(info.value, UnknownPrekeyError)
    for never_issued in (0, 101, 2**32 - 1):
        with pytest.raises(UnknownPrekeyError) as unknown:
            store.one_time_prekey_secret(never_issued)
        assert not isinstance(unknown.value, PrekeyReusedError)
    assert 10 not in [prekey.prekey_id for prekey in store.one_time_prekeys]


def test_pool_is_replenished_when_low(store: PrekeyStore, device: DeviceKeyPair) -> None:
    for prekey_id in range(1, 76):
        store.consume_one_time_prekey(prekey_id)
    assert len(store.one_time_prekeys) == 25
    assert not store.needs_replenishing
    assert store.refresh(device, now=NOW, rng=SeededRandom(b"x")).one_time_prekeys == ()
    store.consume_one_time_prekey(76)
    assert store.needs_replenishing
    refresh = store.refresh(device, now=NOW, rng=SeededRandom(b"x"))
    assert [prekey.prekey_id for prekey in refresh.one_time_prekeys] == list(range(101, 177))
    assert len(store.one_time_prekeys) == 100
    # Ids are never reissued: the consumed ones stay "reused".
    with pytest.raises(PrekeyReusedError):
        store.one_time_prekey_secret(76)


def test_build_bundle(store: PrekeyStore, device: DeviceKeyPair) -> None:
    identity = IdentityKeyPair.from_seed(bytes([1]) * 32)
    signed = certify_device(identity, device.public_key, name="phone", created_at=NOW)
    certificate = verify_device_certificate(signed, identity_key=identity.public_key)
    bundle = store.build_bundle(certificate, one_time_prekey_id=42)
    assert bundle.device_certificate == signed
    assert bundle.signed_prekey == store.signed_prekey
    assert bundle.one_time_prekey is not None
    assert bundle.one_time_prekey.prekey_id == 42
    assert store.build_bundle(certificate).one_time_prekey is None
    with pytest.raises(ConfigurationError):
        store.build_bundle(certificate, one_time_prekey_id=1000)
    other = DeviceKeyPair.from_seed(bytes([9]) * 32)
    other_cert = verify_device_certificate(
        certify_device(identity, other.public_key, name="x", created_at=NOW),
        identity_key=identity.public_key,
    )
    with pytest.raises(ConfigurationError):
        store.build_bundle(other_cert)


def test_operations_refuse_another_device(store: PrekeyStore) -> None:
    other = DeviceKeyPair.from_seed(bytes([9]) * 32)
    with pytest.raises(ConfigurationError):
        store.rotate_signed_prekey(other, now=NOW)
    with pytest.raises(ConfigurationError):
        store.refresh(other, now=NOW)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rotation_interval_ms": 0},
        {"grace_period_ms": -1},
        {"max_retired_signed_prekeys": 0},
        {"max_retired_signed_prekeys": 65},
        {"one_time_prekey_target": 0},
        {"one_time_prekey_target": MAX_ONE_TIME_PREKEYS + 1},
        {"one_time_prekey_low_water": 101},
        {"one_time_prekey_low_water": -1},
        {"rotation_interval_ms": True},
        {"grace_period_ms": 1.5},
        {"max_accepted_base_keys": 0},
        {"max_accepted_base_keys": 20_001},
    ],
)
def test_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PrekeyConfig(**kwargs)  # type: ignore[arg-type]


def test_negative_time_is_refused(device: DeviceKeyPair) -> None:
    with pytest.raises(ConfigurationError):
        PrekeyStore.generate(device, now=-1)


# --- serialization -----------------------------------------------------------


def test_state_round_trips_bit_exact(store: PrekeyStore, device: DeviceKeyPair) -> None:
    store.rotate_signed_prekey(device, now=NOW + DAY, rng=SeededRandom(b"s"))
    store.consume_one_time_prekey(3)
    data = store.to_bytes()
    loaded = PrekeyStore.from_bytes(data)
    assert loaded.to_bytes() == data
    assert loaded.signed_prekey == store.signed_prekey
    assert loaded.one_time_prekeys == store.one_time_prekeys
    assert loaded.retired_signed_prekey_ids == (1,)
    assert loaded.signed_prekey_secret(1, now=NOW + DAY) == store.signed_prekey_secret(
        1, now=NOW + DAY
    )
    with pytest.raises(PrekeyReusedError):
        loaded.one_time_prekey_secret(3)


@settings(max_examples=25, deadline=None)
@given(
    consumed=st.sets(st.integers(1, 100), max_size=30),
    rotations=st.lists(st.integers(1, 40 * DAY), max_size=4),
)
def test_state_round_trip_property(consumed: set[int], rotations: list[int]) -> None:
    device = DeviceKeyPair.from_seed(DEVICE_SEED)
    store = PrekeyStore.generate(device, now=NOW, rng=SeededRandom(b"p"))
    now = NOW
    for delta in rotations:
        now += delta
        store.refresh(device, now=now, rng=SeededRandom(now.to_bytes(8, "big")))
    for prekey_id in consumed:
        store.consume_one_time_prekey(prekey_id)
    data = store.to_bytes()
    assert PrekeyStore.from_bytes(data).to_bytes() == data


def _state(store: PrekeyStore) -> PrekeyStoreState:
    return decode_message(PrekeyStoreState, store.to_bytes())


def _mutations(store: PrekeyStore) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []

    def mutate(name: str, change: object) -> None:
        state = _state(store)
        change(state)  # type: ignore[operator]
        cases.append((name, encode_message(state)))

    mutate("version", lambda s: setattr(s, "version", 3))
    mutate("version 0", lambda s: setattr(s, "version", 0))
    mutate("device key", lambda s: setattr(s, "device_key", bytes(32)))
    mutate("no signed prekey", lambda s: setattr(s, "signed_prekey", None))
    mutate("short private", lambda s: setattr(s.signed_prekey, "private_key", b"x"))
    mutate("bad signature", lambda s: setattr(s.signed_prekey, "signature", bytes(64)))
    mutate("negative time", lambda s: setattr(s.signed_prekey, "created_at", -1))
    mutate("current retired", lambda s: setattr(s.signed_prekey, "retired_at", 5))
    mutate("next spk id", lambda s: setattr(s, "next_signed_prekey_id", 1))
    mutate("spk id 0", lambda s: setattr(s.signed_prekey, "prekey_id", 0))
    mutate("next otk id", lambda s: setattr(s, "next_one_time_prekey_id", 50))
    mutate("otk order", lambda s: s.one_time_prekeys.reverse())
    mutate("otk short", lambda s: setattr(s.one_time_prekeys[0], "private_key", b""))
    mutate("duplicate spk", lambda s: s.retired_signed_prekeys.append(s.signed_prekey))
    mutate(
        "too many otks",
        lambda s: (s.one_time_prekeys.extend([s.one_time_prekeys[0]] * MAX_ONE_TIME_PREKEYS),),
    )
    good_key = store.one_time_prekeys[0].public_key
    record = (1).to_bytes(4, "big") + good_key
    mutate(
        "v1 with base keys",
        lambda s: (setattr(s, "version", 1), setattr(s, "accepted_base_keys", record)),
    )
    mutate("base key record size", lambda s: setattr(s, "accepted_base_keys", record[:-1]))
    mutate(
        "base key unknown spk", lambda s: setattr(s, "accepted_base_keys", b"\0\0\0\x07" + good_key)
    )
    mutate("base key repeated", lambda s: setattr(s, "accepted_base_keys", record + record))
    mutate(
        "base key not canonical",
        lambda s: setattr(s, "accepted_base_keys", (1).to_bytes(4, "big") + b"\xff" * 32),
    )
    mutate(
        "too many base keys",
        lambda s: setattr(s, "accepted_base_keys", record * 20_001),
    )
    cases.append(("unknown field", store.to_bytes() + b"\x48\x01"))
    cases.append(("truncated", store.to_bytes()[:-1]))
    cases.append(("repeated field", store.to_bytes() + b"\x08\x01"))
    return cases


def test_invalid_states_are_refused(store: PrekeyStore) -> None:
    for name, data in _mutations(store):
        try:
            PrekeyStore.from_bytes(data)
        except MessageDecodeError:
            continue
        pytest.fail(f"state with {name} was accepted")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes) -> None:
    try:
        loaded = PrekeyStore.from_bytes(data)
    except OmegaError:
        return
    assert loaded.to_bytes() == data


def test_id_exhaustion_is_refused(store: PrekeyStore, device: DeviceKeyPair) -> None:
    state = _state(store)
    state.next_signed_prekey_id = 2**32 - 1
    state.next_one_time_prekey_id = 2**32 - 1
    exhausted = PrekeyStore.from_bytes(encode_message(state))
    with pytest.raises(LocalProtocolError):
        exhausted.rotate_signed_prekey(device, now=NOW)
    exhausted.consume_one_time_prekey(1)
    with pytest.raises(LocalProtocolError):
        exhausted.replenish(rng=SeededRandom(b"e"))
    assert len(exhausted.one_time_prekeys) == 99


# --- accepted base keys (replay protection without a one-time prekey) ---------


def _base_key(index: int) -> bytes:
    private = hashlib.sha256(b"base %d" % index).digest()
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def test_base_keys_are_recorded_and_bounded(device: DeviceKeyPair) -> None:
    config = PrekeyConfig(
        max_accepted_base_keys=3, one_time_prekey_target=1, one_time_prekey_low_water=0
    )
    store = PrekeyStore.generate(device, now=NOW, config=config, rng=SeededRandom(b"b"))
    assert MAX_ACCEPTED_BASE_KEYS == PrekeyConfig().max_accepted_base_keys == 2000
    for index in range(4):
        store.remember_base_key(_base_key(index), signed_prekey_id=1)
    assert store.accepted_base_key_count == 3
    assert not store.is_known_base_key(_base_key(0))  # the oldest went first
    assert all(store.is_known_base_key(_base_key(index)) for index in (1, 2, 3))
    store.remember_base_key(_base_key(1), signed_prekey_id=1)  # refreshed: now the newest
    store.remember_base_key(_base_key(4), signed_prekey_id=1)
    assert not store.is_known_base_key(_base_key(2))
    assert store.is_known_base_key(_base_key(1))
    with pytest.raises(ConfigurationError):
        store.remember_base_key(_base_key(5), signed_prekey_id=2)
    with pytest.raises(InvalidKeyError):
        store.remember_base_key(b"\xff" * 32, signed_prekey_id=1)


def test_base_keys_go_with_their_signed_prekey(device: DeviceKeyPair) -> None:
    config = PrekeyConfig(
        max_retired_signed_prekeys=1, one_time_prekey_target=1, one_time_prekey_low_water=0
    )
    store = PrekeyStore.generate(device, now=NOW, config=config, rng=SeededRandom(b"g"))
    store.remember_base_key(_base_key(1), signed_prekey_id=1)
    store.rotate_signed_prekey(device, now=NOW + DAY, rng=SeededRandom(b"r1"))
    store.remember_base_key(_base_key(2), signed_prekey_id=2)
    assert store.accepted_base_key_count == 2  # prekey 1 is retired, still in its grace period
    store.rotate_signed_prekey(device, now=NOW + 2 * DAY, rng=SeededRandom(b"r2"))
    assert store.retired_signed_prekey_ids == (2,)  # prekey 1 dropped by the bound ...
    assert not store.is_known_base_key(_base_key(1))  # ... and its base keys with it
    assert store.is_known_base_key(_base_key(2))
    assert store.prune(NOW + 2 * DAY + SIGNED_PREKEY_GRACE_PERIOD_MS) == (2,)
    assert store.accepted_base_key_count == 0


def test_base_keys_are_serialized_as_documented_records(store: PrekeyStore) -> None:
    store.remember_base_key(_base_key(1), signed_prekey_id=1)
    store.remember_base_key(_base_key(2), signed_prekey_id=1)
    data = store.to_bytes()
    state = decode_message(PrekeyStoreState, data)
    assert state.version == PREKEY_STORE_STATE_VERSION == 2
    one = (1).to_bytes(4, "big")
    assert state.accepted_base_keys == one + _base_key(1) + one + _base_key(2)
    loaded = PrekeyStore.from_bytes(data)
    assert loaded.to_bytes() == data
    assert loaded.is_known_base_key(_base_key(2))
    smaller = PrekeyStore.from_bytes(data, config=PrekeyConfig(max_accepted_base_keys=1))
    assert smaller.accepted_base_key_count == 1
    assert smaller.is_known_base_key(_base_key(2))


def test_version_1_states_are_read_and_upgraded(store: PrekeyStore) -> None:
    state = _state(store)
    state.version = 1
    old = encode_message(state)
    loaded = PrekeyStore.from_bytes(old)
    assert loaded.accepted_base_key_count == 0
    assert decode_message(PrekeyStoreState, loaded.to_bytes()).version == 2
    assert loaded.to_bytes() == store.to_bytes()


def test_largest_state_fits_the_bound(device: DeviceKeyPair) -> None:
    config = PrekeyConfig(
        max_retired_signed_prekeys=64,
        one_time_prekey_target=MAX_ONE_TIME_PREKEYS,
        max_accepted_base_keys=20_000,
    )
    store = PrekeyStore.generate(device, now=NOW, config=config, rng=SeededRandom(b"big"))
    for step in range(1, 65):
        store.rotate_signed_prekey(device, now=NOW + step, rng=SeededRandom(b"%d" % step))
    state = _state(store)
    state.accepted_base_keys = b"".join(
        (65).to_bytes(4, "big") + _base_key(index) for index in range(20_000)
    )
    state.next_one_time_prekey_id = state.next_signed_prekey_id = 2**32 - 1
    data = encode_message(state)
    assert len(data) <= MAX_PREKEY_STORE_STATE_SIZE
    assert PrekeyStore.from_bytes(data, config=config).to_bytes() == data
