"""The delivery engine: its transition table, retry policy, path choice and expiry."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from session_helpers import BOB, NOW

from omega.errors import ConfigurationError, LocalProtocolError
from omega.session.delivery import TRANSITIONS, DeliveryConfig, DeliveryEngine, Outcome, Path
from omega.storage.message_base import DeliveryState, OutboxEntry, advances
from omega.testing.random import SeededRandom

P, S, D, R, F = (
    DeliveryState.PENDING,
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.READ,
    DeliveryState.FAILED,
)
RANK = {P: 0, S: 1, D: 2, R: 3}
RETRY_OUTCOMES = (Outcome.DIRECT_FAILED, Outcome.DEPOSIT_FAILED, Outcome.NOT_READY)
DAY_MS = 24 * 3600 * 1000


def make_entry(**fields: Any) -> OutboxEntry:
    """An outbox entry to BOB's device created at NOW; keyword arguments replace fields."""
    values: dict[str, Any] = {
        "message_id": "m-1",
        "recipient_id": BOB.user_id,
        "recipient_device_key": BOB.device_key,
        "content": b"content",
        "next_attempt_at": NOW,
        "created_at": NOW,
        "expires_at": NOW + 14 * DAY_MS,
    }
    values.update(fields)
    return OutboxEntry(**values)


def fixed_rng(byte: int) -> Any:
    """A random source that always answers ``byte`` repeated (fraction 0 or 1 of the jitter)."""
    return lambda size: bytes([byte]) * size


NO_JITTER = DeliveryConfig(jitter=0.0)


# -- the table -----------------------------------------------------------------------

# The module docstring's diagram, written out independently of the code.
EXPECTED_TABLE = {
    **{
        (state, outcome): S
        for state in (P, S)
        for outcome in (Outcome.DIRECT_SENT, Outcome.DEPOSITED)
    },
    **{(P, outcome): P for outcome in RETRY_OUTCOMES},
    **{(S, outcome): S for outcome in RETRY_OUTCOMES},
    **{(state, Outcome.ACKNOWLEDGED): D for state in (P, S, D)},
    (R, Outcome.ACKNOWLEDGED): R,
    **{(state, Outcome.READ): R for state in (P, S, D, R)},
    **{(state, outcome): F for state in (P, S) for outcome in (Outcome.EXPIRED, Outcome.REJECTED)},
}


def test_table_is_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED_TABLE


def test_table_only_moves_forward() -> None:
    for (state, _), new in TRANSITIONS.items():
        assert new == state or advances(state, new), (state, new)
        assert state is not F


def test_failed_is_reached_only_by_expiry_or_rejection() -> None:
    assert {outcome for (_, outcome), new in TRANSITIONS.items() if new is F} == {
        Outcome.EXPIRED,
        Outcome.REJECTED,
    }


@pytest.mark.parametrize(
    ("state", "outcome"),
    list(itertools.product(DeliveryState, Outcome)),
    ids=lambda value: value.value,
)
def test_every_state_and_outcome_pair(state: DeliveryState, outcome: Outcome) -> None:
    engine = DeliveryEngine(rng=SeededRandom(b"table"))
    entry = make_entry(state=state, attempts=3, next_attempt_at=NOW + 5)
    if (state, outcome) in TRANSITIONS:
        after = engine.apply(entry, outcome, now=NOW + 10)
        assert after.state is TRANSITIONS[(state, outcome)]
        # Nothing but the delivery fields changes.
        assert dataclasses.replace(after, state=state, attempts=3, next_attempt_at=NOW + 5) == entry
    else:
        with pytest.raises(LocalProtocolError) as caught:
            engine.apply(entry, outcome, now=NOW + 10)
        assert caught.value.details == {"state": state.value, "outcome": outcome.value}
        assert outcome.value in caught.value.message
        assert state.value in caught.value.message


def test_refused_outcome_leaves_the_entry_alone() -> None:
    entry = make_entry(state=F, attempts=2)
    with pytest.raises(LocalProtocolError):
        DeliveryEngine().apply(entry, Outcome.DIRECT_SENT, now=NOW)
    assert entry == make_entry(state=F, attempts=2)


# -- what each outcome does to attempts and timing -------------------------------------------


def test_direct_send_counts_an_attempt_and_waits_for_the_ack() -> None:
    engine = DeliveryEngine(DeliveryConfig(ack_timeout=15.0))
    after = engine.apply(make_entry(attempts=1), Outcome.DIRECT_SENT, now=NOW + 7)
    assert (after.state, after.attempts, after.next_attempt_at) == (S, 2, NOW + 7 + 15_000)


def test_deposit_waits_until_expiry_and_does_not_count() -> None:
    entry = make_entry(attempts=2, expires_at=NOW + 123_456)
    after = DeliveryEngine().apply(entry, Outcome.DEPOSITED, now=NOW + 1)
    assert (after.state, after.attempts, after.next_attempt_at) == (S, 2, NOW + 123_456)


@pytest.mark.parametrize("outcome", RETRY_OUTCOMES)
@pytest.mark.parametrize("state", [P, S])
def test_failures_count_an_attempt_and_back_off(outcome: Outcome, state: DeliveryState) -> None:
    engine = DeliveryEngine(NO_JITTER)
    after = engine.apply(make_entry(state=state, attempts=2), outcome, now=NOW)
    assert after.state is state
    assert after.attempts == 3
    assert after.next_attempt_at == NOW + 4_000  # 1 s * 2**2


@pytest.mark.parametrize(
    ("state", "outcome"),
    [(P, Outcome.ACKNOWLEDGED), (S, Outcome.READ), (S, Outcome.REJECTED), (P, Outcome.EXPIRED)],
)
def test_final_outcomes_keep_attempts_and_timing(state: DeliveryState, outcome: Outcome) -> None:
    entry = make_entry(state=state, attempts=4, next_attempt_at=NOW + 9)
    after = DeliveryEngine().apply(entry, outcome, now=NOW + 100)
    assert (after.attempts, after.next_attempt_at) == (4, NOW + 9)


def test_backoff_doubles_up_to_the_maximum_without_jitter() -> None:
    engine = DeliveryEngine(DeliveryConfig(initial_backoff=1.0, max_backoff=60.0, jitter=0.0))
    delays = []
    entry = make_entry()
    for _ in range(9):
        entry = engine.apply(entry, Outcome.NOT_READY, now=NOW)
        delays.append(entry.next_attempt_at - NOW)
    assert delays == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
    assert entry.attempts == 9


def test_backoff_survives_thousands_of_failures() -> None:
    # Two weeks of NOT_READY every 5 minutes is ~4000 attempts; 2.0 ** 1100
    # used to overflow a float.
    engine = DeliveryEngine(DeliveryConfig(max_backoff=300.0, jitter=0.0))
    for attempts in (1023, 1100, 5000, 10**6):
        after = engine.apply(make_entry(attempts=attempts), Outcome.NOT_READY, now=NOW)
        assert after.next_attempt_at == NOW + 300_000
    steep = DeliveryEngine(DeliveryConfig(backoff_factor=10, max_backoff=86400, jitter=0.0))
    after = steep.apply(make_entry(attempts=400), Outcome.DIRECT_FAILED, now=NOW)
    assert after.next_attempt_at == NOW + 86_400_000


def test_a_constant_backoff_factor_of_one() -> None:
    engine = DeliveryEngine(DeliveryConfig(initial_backoff=2.5, backoff_factor=1.0, jitter=0.0))
    for attempts in (0, 1, 50, 10**6):
        after = engine.apply(make_entry(attempts=attempts), Outcome.DIRECT_FAILED, now=NOW)
        assert after.next_attempt_at == NOW + 2_500


def test_jitter_extremes() -> None:
    config = DeliveryConfig(initial_backoff=10.0, jitter=0.25)
    low = DeliveryEngine(config, rng=fixed_rng(0x00)).apply(
        make_entry(), Outcome.NOT_READY, now=NOW
    )
    high = DeliveryEngine(config, rng=fixed_rng(0xFF)).apply(
        make_entry(), Outcome.NOT_READY, now=NOW
    )
    assert low.next_attempt_at == NOW + 7_500
    assert high.next_attempt_at == NOW + 12_500


def test_delay_is_at_least_a_millisecond() -> None:
    config = DeliveryConfig(initial_backoff=0.001, jitter=0.9)
    after = DeliveryEngine(config, rng=fixed_rng(0)).apply(make_entry(), Outcome.NOT_READY, now=NOW)
    assert after.next_attempt_at == NOW + 1


def test_a_bad_random_source_is_refused() -> None:
    engine = DeliveryEngine(rng=lambda size: b"\x00")
    with pytest.raises(ConfigurationError, match="random source"):
        engine.apply(make_entry(), Outcome.NOT_READY, now=NOW)


CONFIGS = st.builds(
    DeliveryConfig,
    initial_backoff=st.floats(min_value=0.001, max_value=10.0),
    max_backoff=st.floats(min_value=10.0, max_value=86400.0),
    backoff_factor=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.floats(min_value=0.0, max_value=0.9),
)


@settings(max_examples=100)
@given(
    config=CONFIGS,
    attempts=st.integers(min_value=0, max_value=5000),
    seed=st.binary(max_size=8),
    outcome=st.sampled_from(RETRY_OUTCOMES),
)
def test_backoff_delays_stay_within_the_policy(
    config: DeliveryConfig, attempts: int, seed: bytes, outcome: Outcome
) -> None:
    engine = DeliveryEngine(config, rng=SeededRandom(seed))
    after = engine.apply(make_entry(attempts=attempts), outcome, now=NOW)
    delay = after.next_attempt_at - NOW
    assert_delay_within_policy(config, attempts, delay)


def assert_delay_within_policy(config: DeliveryConfig, attempts: int, delay_ms: int) -> None:
    """``delay_ms`` is the policy's delay after ``attempts`` attempts, jittered.

    Within [initial * (1 - jitter), max * (1 + jitter)] overall, and within
    +- jitter of ``min(max, initial * factor ** attempts)``; rounded down to a
    whole millisecond, at least one.
    """
    epsilon = 1e-6
    low_total = config.initial_backoff * (1 - config.jitter) * 1000
    high_total = config.max_backoff * (1 + config.jitter) * 1000
    assert max(1.0, low_total - 1) <= delay_ms <= max(1.0, high_total + epsilon)
    try:
        base = min(config.max_backoff, config.initial_backoff * config.backoff_factor**attempts)
    except OverflowError:
        base = config.max_backoff
    low = base * (1 - config.jitter) * 1000
    high = base * (1 + config.jitter) * 1000
    assert max(1.0, low - 1) <= delay_ms <= max(1.0, high + epsilon), (base, delay_ms)


# -- the path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "direct", "store", "path"),
    [
        (0, True, True, Path.DIRECT),
        (1, True, True, Path.DIRECT),
        (2, True, True, Path.STORE),
        (9, True, True, Path.STORE),
        (0, True, False, Path.DIRECT),
        (9, True, False, Path.DIRECT),
        (0, False, True, Path.STORE),
        (9, False, True, Path.STORE),
        (0, False, False, Path.WAIT),
        (9, False, False, Path.WAIT),
    ],
)
def test_choose_path(attempts: int, direct: bool, store: bool, path: Path) -> None:
    engine = DeliveryEngine(DeliveryConfig(direct_attempts=2))
    entry = make_entry(attempts=attempts)
    assert engine.choose_path(entry, direct_possible=direct, store_possible=store) is path


def test_zero_direct_attempts_goes_straight_to_the_store() -> None:
    engine = DeliveryEngine(DeliveryConfig(direct_attempts=0))
    entry = make_entry()
    assert engine.choose_path(entry, direct_possible=True, store_possible=True) is Path.STORE
    assert engine.choose_path(entry, direct_possible=True, store_possible=False) is Path.DIRECT


def test_unacknowledged_direct_sends_fall_back_to_the_store() -> None:
    # The whole fallback story: two direct sends without an ack, then a deposit.
    engine = DeliveryEngine(DeliveryConfig(direct_attempts=2, ack_timeout=10.0))
    entry = make_entry()
    now = NOW
    paths = []
    for _ in range(3):
        path = engine.choose_path(entry, direct_possible=True, store_possible=True)
        paths.append(path)
        outcome = Outcome.DIRECT_SENT if path is Path.DIRECT else Outcome.DEPOSITED
        entry = engine.apply(entry, outcome, now=now)
        now = entry.next_attempt_at
    assert paths == [Path.DIRECT, Path.DIRECT, Path.STORE]
    assert entry.state is S
    assert entry.next_attempt_at == entry.expires_at
    assert entry.attempts == 2


# -- expiry and reconnection ------------------------------------------------------------


@pytest.mark.parametrize("state", [P, S])
def test_undelivered_entries_expire_at_expires_at(state: DeliveryState) -> None:
    engine = DeliveryEngine()
    entry = make_entry(state=state, expires_at=NOW + 1000, attempts=3)
    assert engine.expire_if_due(entry, now=NOW + 999) is None
    expired = engine.expire_if_due(entry, now=NOW + 1000)
    assert expired is not None
    assert expired.state is F
    assert expired.attempts == 3
    later = engine.expire_if_due(entry, now=NOW + 10**9)
    assert later is not None
    assert later.state is F


@pytest.mark.parametrize("state", [D, R, F])
def test_delivered_read_or_failed_entries_never_expire(state: DeliveryState) -> None:
    entry = make_entry(state=state, expires_at=NOW)
    assert DeliveryEngine().expire_if_due(entry, now=NOW + 10**9) is None


def test_expires_at_adds_the_message_lifetime() -> None:
    engine = DeliveryEngine(DeliveryConfig(message_lifetime=90.5))
    assert engine.expires_at(NOW) == NOW + 90_500
    assert DeliveryEngine().expires_at(0) == 14 * DAY_MS


@pytest.mark.parametrize("state", [P, S])
def test_peer_connected_makes_undelivered_entries_due_and_resets_attempts(
    state: DeliveryState,
) -> None:
    engine = DeliveryEngine()
    deposited = make_entry(state=state, attempts=5, next_attempt_at=NOW + DAY_MS)
    after = engine.peer_connected(deposited, now=NOW + 1)
    assert (after.state, after.attempts, after.next_attempt_at) == (state, 0, NOW + 1)
    assert engine.choose_path(after, direct_possible=True, store_possible=True) is Path.DIRECT
    # An entry already due earlier keeps its earlier time.
    overdue = make_entry(state=state, attempts=5, next_attempt_at=NOW - 50)
    assert engine.peer_connected(overdue, now=NOW).next_attempt_at == NOW - 50


@pytest.mark.parametrize("state", [D, R, F])
def test_peer_connected_leaves_final_entries_alone(state: DeliveryState) -> None:
    entry = make_entry(state=state, attempts=5, next_attempt_at=NOW + DAY_MS)
    assert DeliveryEngine().peer_connected(entry, now=NOW) is entry


# -- determinism ----------------------------------------------------------------------


def _run(engine: DeliveryEngine) -> list[OutboxEntry]:
    entry = make_entry()
    history = []
    for outcome in [*RETRY_OUTCOMES, *RETRY_OUTCOMES, Outcome.DIRECT_SENT, Outcome.DIRECT_FAILED]:
        entry = engine.apply(entry, outcome, now=entry.next_attempt_at)
        history.append(entry)
    return history


def test_same_seed_same_schedule() -> None:
    first = _run(DeliveryEngine(rng=SeededRandom(b"seed")))
    assert first == _run(DeliveryEngine(rng=SeededRandom(b"seed")))
    assert first != _run(DeliveryEngine(rng=SeededRandom(b"other seed")))


def test_no_jitter_draws_no_randomness() -> None:
    rng = SeededRandom(b"unused")
    _run(DeliveryEngine(NO_JITTER, rng=rng))
    assert rng.counter == 0


def test_engine_exposes_its_config() -> None:
    config = DeliveryConfig(direct_attempts=5)
    assert DeliveryEngine(config).config is config
    assert DeliveryEngine().config == DeliveryConfig()


# -- configuration ----------------------------------------------------------------------


def test_default_config() -> None:
    config = DeliveryConfig()
    assert config.direct_attempts == 2
    assert config.message_lifetime == 14 * 24 * 3600


@pytest.mark.parametrize(
    "fields",
    [
        {"direct_attempts": 0},
        {"direct_attempts": 100},
        {"initial_backoff": 0.001, "max_backoff": 0.001},
        {"initial_backoff": 3600, "max_backoff": 86400},
        {"max_backoff": 86400},
        {"backoff_factor": 1},
        {"backoff_factor": 10.0},
        {"jitter": 0},
        {"jitter": 0.9},
        {"ack_timeout": 0.01},
        {"ack_timeout": 3600},
        {"message_lifetime": 1},
        {"message_lifetime": 366 * 86400},
    ],
)
def test_config_accepts_its_bounds(fields: dict[str, object]) -> None:
    DeliveryConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"direct_attempts": -1}, "direct_attempts"),
        ({"direct_attempts": 101}, "direct_attempts"),
        ({"direct_attempts": True}, "direct_attempts"),
        ({"direct_attempts": 1.5}, "direct_attempts"),
        ({"direct_attempts": "2"}, "direct_attempts"),
        ({"initial_backoff": 0.0009}, "initial_backoff"),
        ({"initial_backoff": 3601}, "initial_backoff"),
        ({"initial_backoff": float("nan")}, "initial_backoff"),
        ({"initial_backoff": True}, "initial_backoff"),
        ({"initial_backoff": "1"}, "initial_backoff"),
        ({"initial_backoff": 10.0, "max_backoff": 9.9}, "max_backoff"),
        ({"max_backoff": 86401}, "max_backoff"),
        ({"max_backoff": float("inf")}, "max_backoff"),
        ({"backoff_factor": 0.99}, "backoff_factor"),
        ({"backoff_factor": 10.01}, "backoff_factor"),
        ({"jitter": -0.01}, "jitter"),
        ({"jitter": 0.91}, "jitter"),
        ({"jitter": None}, "jitter"),
        ({"ack_timeout": 0.009}, "ack_timeout"),
        ({"ack_timeout": 3601}, "ack_timeout"),
        ({"message_lifetime": 0.5}, "message_lifetime"),
        ({"message_lifetime": 366 * 86400 + 1}, "message_lifetime"),
    ],
)
def test_config_refuses_values_out_of_bounds(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        DeliveryConfig(**fields)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = DeliveryConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.jitter = 0.5  # type: ignore[misc]


# -- the state machine, driven at random ---------------------------------------------------

MACHINE_CONFIG = DeliveryConfig(
    direct_attempts=2, initial_backoff=0.5, max_backoff=30.0, jitter=0.3, message_lifetime=3600.0
)


class OutboxEntryMachine(RuleBasedStateMachine):
    """One outbox entry under random outcomes at increasing times."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = DeliveryEngine(MACHINE_CONFIG, rng=SeededRandom(b"machine"))
        self.now = NOW
        self.entry = make_entry(
            next_attempt_at=NOW, expires_at=self.engine.expires_at(NOW), created_at=NOW
        )
        self.saw_failed = False

    @rule(milliseconds=st.integers(min_value=0, max_value=600_000))
    def time_passes(self, milliseconds: int) -> None:
        self.now += milliseconds

    @rule(outcome=st.sampled_from(Outcome))
    def outcome_happens(self, outcome: Outcome) -> None:
        before = self.entry
        if (before.state, outcome) not in TRANSITIONS:
            with pytest.raises(LocalProtocolError):
                self.engine.apply(before, outcome, now=self.now)
            return
        after = self.engine.apply(before, outcome, now=self.now)
        assert before.state is not F
        if after.state is F:
            assert before.state in (P, S)
        else:
            assert RANK[after.state] >= RANK[before.state]
        if outcome is Outcome.DIRECT_SENT:
            assert after.attempts == before.attempts + 1
            assert after.next_attempt_at == self.now + 15_000
        elif outcome in RETRY_OUTCOMES:
            assert after.attempts == before.attempts + 1
            assert_delay_within_policy(
                MACHINE_CONFIG, before.attempts, after.next_attempt_at - self.now
            )
        elif outcome is Outcome.DEPOSITED:
            assert after.attempts == before.attempts
            assert after.next_attempt_at == before.expires_at
        else:
            assert (after.attempts, after.next_attempt_at) == (
                before.attempts,
                before.next_attempt_at,
            )
        self.entry = after

    @rule(direct=st.booleans(), store=st.booleans())
    def a_path_is_chosen(self, direct: bool, store: bool) -> None:
        path = self.engine.choose_path(self.entry, direct_possible=direct, store_possible=store)
        if direct and (self.entry.attempts < MACHINE_CONFIG.direct_attempts or not store):
            assert path is Path.DIRECT
        elif store:
            assert path is Path.STORE
        else:
            assert path is Path.WAIT

    @rule()
    def expiry_is_checked(self) -> None:
        expired = self.engine.expire_if_due(self.entry, now=self.now)
        due = self.entry.expires_at <= self.now and self.entry.state in (P, S)
        assert (expired is not None) == due
        if expired is not None:
            assert expired.state is F
            self.entry = expired

    @precondition(lambda self: self.entry.state in (P, S))
    @rule()
    def peer_connects(self) -> None:
        after = self.engine.peer_connected(self.entry, now=self.now)
        assert after.attempts == 0
        assert after.next_attempt_at == min(self.now, self.entry.next_attempt_at)
        assert after.state is self.entry.state
        self.entry = after

    @invariant()
    def failed_is_terminal(self) -> None:
        if self.entry.state is F:
            self.saw_failed = True
            for outcome in Outcome:
                with pytest.raises(LocalProtocolError):
                    self.engine.apply(self.entry, outcome, now=self.now)
            assert self.engine.expire_if_due(self.entry, now=self.now + DAY_MS) is None
            assert self.engine.peer_connected(self.entry, now=self.now) is self.entry
        else:
            assert not self.saw_failed

    @invariant()
    def fields_stay_storable(self) -> None:
        # The entry is rebuilt through OutboxEntry's own checks.
        assert OutboxEntry(**dataclasses.asdict(self.entry)) == self.entry
        assert self.entry.expires_at == self.engine.expires_at(NOW)


OutboxEntryMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25)
TestOutboxEntryMachine = OutboxEntryMachine.TestCase
