"""The delivery engine: what to do next with each outbox entry, and when.

Sans-I/O (docs/client-protocol.md, "Delivery"). The client's driver and
``omega.sim`` feed it the same inputs (an outbox entry, what just happened to
it, the current time) and carry out what it returns, so a simulated network
exercises exactly the policy real clients run.

One outbox entry is one message for one recipient device. Its state moves
only forward through the table :data:`TRANSITIONS`::

    PENDING --(sent directly or deposited)--> SENT --(ack)--> DELIVERED --(read)--> READ
       \\_____________________(expired, rejected)__________________> FAILED

Each attempt picks a path with :meth:`DeliveryEngine.choose_path`: directly
over a secure channel while fewer than ``direct_attempts`` attempts were
made (failed, or sent without an acknowledgement) and the peer may be
reachable, else through the store-and-forward server, else wait. Failed
attempts back off exponentially with jitter from the injected RNG; a direct
send that is not acknowledged within ``ack_timeout`` is sent again (the
receiver drops the duplicate by message id and acknowledges again). A
deposit is not repeated: the server keeps the message until the device
fetches it; when the peer connects directly, the driver calls
:meth:`DeliveryEngine.peer_connected` to resend sooner.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

from omega.crypto.random import RandomSource, random_bytes, system_random
from omega.errors import ConfigurationError, LocalProtocolError
from omega.storage.message_base import DeliveryState, OutboxEntry

__all__ = [
    "TRANSITIONS",
    "DeliveryConfig",
    "DeliveryEngine",
    "Outcome",
    "Path",
]


class Outcome(enum.Enum):
    """What happened to an outbox entry."""

    DIRECT_SENT = "direct_sent"
    """The envelope was written to a secure channel to the device."""
    DIRECT_FAILED = "direct_failed"
    """No channel could be opened, or writing to it failed."""
    DEPOSITED = "deposited"
    """The store-and-forward server accepted the envelope."""
    DEPOSIT_FAILED = "deposit_failed"
    """The store-and-forward server could not be reached or refused it."""
    NOT_READY = "not_ready"
    """No session yet and no prekey bundle to start one: try again later."""
    ACKNOWLEDGED = "acknowledged"
    """The device acknowledged (Ack frame or delivery receipt)."""
    READ = "read"
    """The recipient read it (read receipt)."""
    REJECTED = "rejected"
    """The device refused it for good (an Ack with status REJECTED)."""
    EXPIRED = "expired"
    """Its ``expires_at`` passed before it was delivered."""


class Path(enum.Enum):
    """How to attempt a delivery."""

    DIRECT = "direct"
    STORE = "store"
    WAIT = "wait"
    """Nothing to try now; the entry is due again at ``next_attempt_at``."""


_P, _S, _D, _R, _F = (
    DeliveryState.PENDING,
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.READ,
    DeliveryState.FAILED,
)

TRANSITIONS: dict[tuple[DeliveryState, Outcome], DeliveryState] = {
    (_P, Outcome.DIRECT_SENT): _S,
    (_P, Outcome.DIRECT_FAILED): _P,
    (_P, Outcome.DEPOSITED): _S,
    (_P, Outcome.DEPOSIT_FAILED): _P,
    (_P, Outcome.NOT_READY): _P,
    (_P, Outcome.ACKNOWLEDGED): _D,
    (_P, Outcome.READ): _R,
    (_P, Outcome.EXPIRED): _F,
    (_P, Outcome.REJECTED): _F,
    (_S, Outcome.DIRECT_SENT): _S,
    (_S, Outcome.DIRECT_FAILED): _S,
    (_S, Outcome.DEPOSITED): _S,
    (_S, Outcome.DEPOSIT_FAILED): _S,
    (_S, Outcome.NOT_READY): _S,
    (_S, Outcome.ACKNOWLEDGED): _D,
    (_S, Outcome.READ): _R,
    (_S, Outcome.EXPIRED): _F,
    (_S, Outcome.REJECTED): _F,
    (_D, Outcome.ACKNOWLEDGED): _D,
    (_D, Outcome.READ): _R,
    (_R, Outcome.ACKNOWLEDGED): _R,
    (_R, Outcome.READ): _R,
}
"""Every allowed (state, outcome) pair and the state it leads to; others raise."""


def _check_seconds(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be a number in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryConfig:
    """Retry and fallback policy of the delivery engine. Times are seconds."""

    direct_attempts: int = 2
    """Attempts (failed, or unacknowledged) after which the store is used, if there is one."""
    initial_backoff: float = 1.0
    """Delay before the first retry after a failure."""
    max_backoff: float = 300.0
    """Longest delay between two attempts."""
    backoff_factor: float = 2.0
    """Each failure multiplies the delay by this."""
    jitter: float = 0.2
    """Random spread of each delay: +- this fraction."""
    ack_timeout: float = 15.0
    """A direct send unacknowledged for this long is sent again."""
    message_lifetime: float = 14 * 24 * 3600.0
    """An entry undelivered for this long fails (the store's default TTL)."""

    def __post_init__(self) -> None:
        attempts = self.direct_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts <= 100:
            raise ConfigurationError("direct_attempts must be an int in 0..100")
        _check_seconds("initial_backoff", self.initial_backoff, 0.001, 3600)
        _check_seconds("max_backoff", self.max_backoff, self.initial_backoff, 86400)
        _check_seconds("backoff_factor", self.backoff_factor, 1.0, 10.0)
        _check_seconds("jitter", self.jitter, 0.0, 0.9)
        _check_seconds("ack_timeout", self.ack_timeout, 0.01, 3600)
        _check_seconds("message_lifetime", self.message_lifetime, 1.0, 366 * 86400)


class DeliveryEngine:
    """Applies :data:`TRANSITIONS` and the retry policy to outbox entries.

    Stateless apart from its configuration and RNG: every method takes an
    entry and returns the updated entry, which the caller persists.
    """

    def __init__(
        self, config: DeliveryConfig | None = None, *, rng: RandomSource = system_random
    ) -> None:
        self._config = config or DeliveryConfig()
        self._rng = rng

    @property
    def config(self) -> DeliveryConfig:
        """The policy in force."""
        return self._config

    def expires_at(self, now: int) -> int:
        """When an entry created at ``now`` (Unix ms) gives up."""
        return now + int(self._config.message_lifetime * 1000)

    def choose_path(
        self, entry: OutboxEntry, *, direct_possible: bool, store_possible: bool
    ) -> Path:
        """The path of the next attempt for ``entry``."""
        if direct_possible and (
            entry.attempts < self._config.direct_attempts or not store_possible
        ):
            return Path.DIRECT
        if store_possible:
            return Path.STORE
        return Path.WAIT

    def _delay_ms(self, attempts: int) -> int:
        config = self._config
        try:
            growth = float(config.backoff_factor) ** max(0, attempts)
        except OverflowError:  # a thousand failures or so: long past max_backoff
            growth = math.inf
        delay = min(config.max_backoff, config.initial_backoff * growth)
        if config.jitter:
            fraction = int.from_bytes(random_bytes(self._rng, 4), "big") / 0xFFFFFFFF
            delay *= 1 - config.jitter + 2 * config.jitter * fraction
        return max(1, int(delay * 1000))

    def apply(self, entry: OutboxEntry, outcome: Outcome, *, now: int) -> OutboxEntry:
        """Return ``entry`` after ``outcome`` happened at ``now`` (Unix ms).

        Raises :class:`~omega.errors.LocalProtocolError` for an outcome the
        table does not allow in the entry's state (a FAILED entry accepts
        nothing; a delivered entry cannot be "sent" again).
        """
        try:
            state = TRANSITIONS[(entry.state, outcome)]
        except KeyError:
            raise LocalProtocolError(
                f"outcome {outcome.value} is not allowed in state {entry.state.value}",
                details={"state": entry.state.value, "outcome": outcome.value},
            ) from None
        attempts = entry.attempts
        next_attempt_at = entry.next_attempt_at
        if outcome is Outcome.DIRECT_SENT:
            next_attempt_at = now + int(self._config.ack_timeout * 1000)
            attempts += 1
        elif outcome is Outcome.DEPOSITED:
            next_attempt_at = entry.expires_at
        elif outcome in (Outcome.DIRECT_FAILED, Outcome.DEPOSIT_FAILED, Outcome.NOT_READY):
            next_attempt_at = now + self._delay_ms(attempts)
            attempts += 1
        return dataclasses.replace(
            entry, state=state, attempts=attempts, next_attempt_at=next_attempt_at
        )

    def expire_if_due(self, entry: OutboxEntry, *, now: int) -> OutboxEntry | None:
        """``entry`` moved to FAILED if it expired undelivered at ``now``, else None."""
        if entry.expires_at <= now and entry.state in (_P, _S):
            return self.apply(entry, Outcome.EXPIRED, now=now)
        return None

    def peer_connected(self, entry: OutboxEntry, *, now: int) -> OutboxEntry:
        """Make an undelivered entry due now (its device just became reachable directly).

        Counting restarts, so direct attempts are preferred again.
        """
        if entry.state not in (_P, _S):
            return entry
        return dataclasses.replace(
            entry, attempts=0, next_attempt_at=min(now, entry.next_attempt_at)
        )
