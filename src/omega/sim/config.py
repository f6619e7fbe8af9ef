"""Configuration of a simulation: network, churn, partitions, workload (docs/simulation.md).

Every component is a frozen dataclass validated in ``__post_init__``
(:class:`~omega.errors.ConfigurationError` on a bad value). Times are
seconds of *virtual* time from the start of the run; latencies are
milliseconds; bandwidths are bits per second. Peers are numbered
``0 .. peers - 1``; the store-and-forward server and the relay are nodes too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from omega.errors import ConfigurationError

__all__ = [
    "DISTRIBUTION_KINDS",
    "GRAPH_KINDS",
    "Burst",
    "ChurnConfig",
    "Distribution",
    "GroupRemoval",
    "GroupSend",
    "GroupSpec",
    "GroupWorkload",
    "LinkConfig",
    "OfflineWindow",
    "Partition",
    "ScheduledSend",
    "SimConfig",
    "WorkloadConfig",
]

DISTRIBUTION_KINDS = ("constant", "uniform", "normal", "lognormal", "exponential")
"""The latency distributions :class:`Distribution` knows."""

GRAPH_KINDS = ("random", "ring", "complete", "star")
"""The social graphs :class:`WorkloadConfig` can draw."""


def _number(name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be a number in {low}..{high}, got {value!r}")
    return float(value)


def _integer(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """A distribution of non-negative values (milliseconds for latencies).

    ``constant``: always ``mean``. ``uniform``: between ``low`` and ``high``.
    ``normal``: ``mean`` and ``stddev``, clipped at 0. ``lognormal``: the
    lognormal whose *own* mean and standard deviation are ``mean`` and
    ``stddev`` (heavy right tail, like real round-trip times).
    ``exponential``: mean ``mean``.
    """

    kind: str = "constant"
    """One of :data:`DISTRIBUTION_KINDS`."""
    mean: float = 0.0
    """Mean (constant, normal, lognormal, exponential)."""
    stddev: float = 0.0
    """Standard deviation (normal, lognormal)."""
    low: float = 0.0
    """Lower bound (uniform)."""
    high: float = 0.0
    """Upper bound (uniform)."""

    def __post_init__(self) -> None:
        if self.kind not in DISTRIBUTION_KINDS:
            raise ConfigurationError(
                f"distribution kind must be one of {', '.join(DISTRIBUTION_KINDS)}, "
                f"got {self.kind!r}"
            )
        _number("mean", self.mean, 0.0, 1e9)
        _number("stddev", self.stddev, 0.0, 1e9)
        _number("low", self.low, 0.0, 1e9)
        _number("high", self.high, self.low, 1e9)
        if self.kind == "lognormal" and self.mean <= 0:
            raise ConfigurationError("a lognormal distribution needs mean > 0")

    def sample(self, rng: random.Random) -> float:
        """One value drawn with ``rng`` (never negative)."""
        kind = self.kind
        if kind == "constant":
            return self.mean
        if kind == "uniform":
            return rng.uniform(self.low, self.high)
        if kind == "normal":
            return max(0.0, rng.gauss(self.mean, self.stddev))
        if kind == "lognormal":
            sigma2 = math.log1p((self.stddev / self.mean) ** 2)
            return rng.lognormvariate(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2))
        return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    """A class of links: latency, bandwidth and loss.

    Each link (pair of nodes) draws its own base one-way latency once from
    ``latency``; each frame then adds a draw from ``jitter``. A frame also
    waits for the sender's uplink (``bandwidth`` bits per second, frames
    serialised one after the other) and is lost with probability ``loss``.
    """

    latency: Distribution = field(default_factory=lambda: Distribution(mean=50.0))
    """Base one-way latency of each link, ms (drawn once per link)."""
    jitter: Distribution = field(default_factory=Distribution)
    """Extra latency of each frame, ms."""
    bandwidth: float = 10e6
    """Uplink of the sending node, bits per second."""
    loss: float = 0.0
    """Probability that a frame is lost, 0..1."""

    def __post_init__(self) -> None:
        _number("bandwidth", self.bandwidth, 1.0)
        _number("loss", self.loss, 0.0, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """A partition: ``peers`` (and the store when ``store``) cut off from every other node.

    Opens at ``start`` and heals at ``end`` (seconds). Nodes inside the
    group still reach each other.
    """

    start: float
    """When it opens, seconds."""
    end: float
    """When it heals, seconds."""
    peers: frozenset[int]
    """The peers on the cut-off side."""
    store: bool = False
    """True when the store is on the cut-off side too."""
    relay: bool = False
    """True when the relay is on the cut-off side too."""

    def __post_init__(self) -> None:
        _number("partition start", self.start, 0.0)
        _number("partition end", self.end, self.start)
        object.__setattr__(self, "peers", frozenset(self.peers))
        for peer in self.peers:
            _integer("partition peer", peer, 0, 10**9)


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineWindow:
    """Peer ``peer`` is offline from ``start`` to ``end`` (seconds)."""

    peer: int
    start: float
    end: float

    def __post_init__(self) -> None:
        _integer("offline peer", self.peer, 0, 10**9)
        _number("offline start", self.start, 0.0)
        _number("offline end", self.end, self.start)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChurnConfig:
    """Random churn: a ``fraction`` of the peers alternate online and offline.

    Online and offline periods are exponential with the given means; a
    churning peer starts online with probability
    ``mean_online / (mean_online + mean_offline)``.
    """

    fraction: float = 0.0
    """Share of the peers that churn, 0..1."""
    mean_online: float = 600.0
    """Mean length of an online period, seconds."""
    mean_offline: float = 300.0
    """Mean length of an offline period, seconds."""

    def __post_init__(self) -> None:
        _number("churn fraction", self.fraction, 0.0, 1.0)
        _number("mean_online", self.mean_online, 0.001)
        _number("mean_offline", self.mean_offline, 0.001)


@dataclass(frozen=True, slots=True, kw_only=True)
class Burst:
    """Extra 1:1 traffic at ``rate`` messages per second from ``start`` for ``duration``."""

    start: float
    duration: float
    rate: float

    def __post_init__(self) -> None:
        _number("burst start", self.start, 0.0)
        _number("burst duration", self.duration, 0.0)
        _number("burst rate", self.rate, 0.0, 1e7)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledSend:
    """One message ``sender`` sends ``recipient`` at ``time`` (seconds)."""

    time: float
    sender: int
    recipient: int
    size: int = 64
    """Length of the message text, bytes."""

    def __post_init__(self) -> None:
        _number("send time", self.time, 0.0)
        _integer("sender", self.sender, 0, 10**9)
        _integer("recipient", self.recipient, 0, 10**9)
        _integer("size", self.size, 1, 256 * 1024 - 1024)
        if self.sender == self.recipient:
            raise ConfigurationError("a peer does not send to itself")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSpec:
    """A group with exactly these ``members`` (peer numbers; the first creates and owns it)."""

    members: tuple[int, ...]
    """The members, owner first (at least 2, all different)."""
    rate: float = 0.0
    """Group messages per second in this group, each from a uniformly drawn current member."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        for member in self.members:
            _integer("group member", member, 0, 10**9)
        if len(self.members) < 2 or len(set(self.members)) != len(self.members):
            raise ConfigurationError("a group has at least 2 members, all different")
        _number("group rate", self.rate, 0.0, 1e6)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSend:
    """One group message member ``sender`` sends to group number ``group`` at ``time``."""

    time: float
    group: int
    sender: int
    size: int = 64
    """Length of the message text, bytes."""

    def __post_init__(self) -> None:
        _number("group send time", self.time, 0.0)
        _integer("group", self.group, 0, 10**6)
        _integer("sender", self.sender, 0, 10**9)
        _integer("size", self.size, 1, 256 * 1024 - 1024)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRemoval:
    """At ``time`` the owner of group number ``group`` removes the member ``member`` (a peer)."""

    time: float
    group: int
    member: int

    def __post_init__(self) -> None:
        _number("removal time", self.time, 0.0)
        _integer("group", self.group, 0, 10**6)
        _integer("member", self.member, 0, 10**9)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupWorkload:
    """Group traffic (docs/simulation.md, "Groups").

    Groups are numbered: the exact ``groups`` first, then ``count`` random
    ones of ``min_size`` to ``max_size`` members drawn uniformly among the
    peers. All are created at time 0. Each group sends a Poisson stream of
    its ``rate`` during the run's ``duration``; ``sends`` adds exact
    messages. Membership churn: ``removals`` are exact, and in a
    ``removal_fraction`` of the random groups the owner removes one random
    member at a uniformly drawn time during ``duration``.
    """

    count: int = 0
    """Random groups."""
    min_size: int = 3
    """Fewest members of a random group."""
    max_size: int = 8
    """Most members of a random group."""
    rate: float = 0.0
    """Group messages per second in each random group."""
    message_size: int = 64
    """Length of each random group message's text, bytes."""
    removal_fraction: float = 0.0
    """Share of the random groups that remove one member during the run, 0..1."""
    groups: tuple[GroupSpec, ...] = ()
    """Exact groups."""
    sends: tuple[GroupSend, ...] = ()
    """Exact group messages."""
    removals: tuple[GroupRemoval, ...] = ()
    """Exact removals."""

    def __post_init__(self) -> None:
        _integer("group count", self.count, 0, 10**6)
        _integer("min_size", self.min_size, 2, 1000)
        _integer("max_size", self.max_size, self.min_size, 1000)
        _number("group rate", self.rate, 0.0, 1e6)
        _integer("message_size", self.message_size, 1, 256 * 1024 - 1024)
        _number("removal_fraction", self.removal_fraction, 0.0, 1.0)
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "sends", tuple(self.sends))
        object.__setattr__(self, "removals", tuple(self.removals))
        total = len(self.groups) + self.count
        for group in [send.group for send in self.sends] + [r.group for r in self.removals]:
            _integer("group", group, 0, total - 1)
        for send in self.sends:
            if send.group < len(self.groups) and send.sender not in self.groups[send.group].members:
                raise ConfigurationError(
                    f"peer {send.sender} is not a member of group {send.group}"
                )
        for removal in self.removals:
            if removal.group < len(self.groups):
                members = self.groups[removal.group].members
                if removal.member not in members[1:]:
                    raise ConfigurationError(
                        f"peer {removal.member} is not a member (other than the owner) "
                        f"of group {removal.group}"
                    )

    @property
    def total(self) -> int:
        """Number of groups."""
        return len(self.groups) + self.count


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadConfig:
    """1:1 traffic over a social graph.

    Random messages arrive as a Poisson process of ``rate`` per second over
    the whole network during the run's ``duration`` (plus each
    :class:`Burst`); each picks a sender uniformly and a recipient uniformly
    among the sender's contacts. ``sends`` adds exact messages.
    """

    rate: float = 0.0
    """Network-wide messages per second."""
    graph: str = "random"
    """Social graph, one of :data:`GRAPH_KINDS`."""
    degree: int = 8
    """Contacts per peer in the ``random`` graph (about: edges are symmetric)."""
    message_size: int = 64
    """Length of each random message's text, bytes."""
    bursts: tuple[Burst, ...] = ()
    """Extra traffic windows."""
    sends: tuple[ScheduledSend, ...] = ()
    """Exact messages."""
    max_messages: int = 10_000_000
    """Random messages stop after this many (exact ``sends`` always happen)."""
    groups: GroupWorkload = field(default_factory=GroupWorkload)
    """Group traffic."""

    def __post_init__(self) -> None:
        _number("rate", self.rate, 0.0, 1e7)
        if self.graph not in GRAPH_KINDS:
            raise ConfigurationError(f"graph must be one of {', '.join(GRAPH_KINDS)}")
        _integer("degree", self.degree, 1, 10_000)
        _integer("message_size", self.message_size, 1, 256 * 1024 - 1024)
        _integer("max_messages", self.max_messages, 0, 10**9)
        object.__setattr__(self, "bursts", tuple(self.bursts))
        object.__setattr__(self, "sends", tuple(self.sends))


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """A whole scenario."""

    peers: int = 10
    """Number of peers (one device each)."""
    duration: float = 600.0
    """Seconds during which the workload sends."""
    drain: float = 3600.0
    """Seconds the run goes on after ``duration`` so messages in flight can arrive."""
    seed: int = 1
    """Everything random derives from it: the same seed gives the same trace."""
    link: LinkConfig = field(default_factory=LinkConfig)
    """Links between peers."""
    store_link: LinkConfig = field(
        default_factory=lambda: LinkConfig(latency=Distribution(mean=30.0), bandwidth=1e9)
    )
    """Links between a peer and the store (``bandwidth`` is the store's uplink)."""
    store: bool = True
    """Whether a store-and-forward server exists."""
    relay: bool = False
    """Whether a relay exists (the only way to reach a peer behind NAT directly)."""
    relay_link: LinkConfig = field(
        default_factory=lambda: LinkConfig(latency=Distribution(mean=30.0), bandwidth=1e9)
    )
    """Links between a peer and the relay (``bandwidth`` is the relay's uplink)."""
    nat_fraction: float = 0.0
    """Share of the peers behind NAT: they accept no direct connection, only relayed ones."""
    connect_timeout: float = 5.0
    """Seconds until a connection attempt to an unreachable node is given up."""
    churn: ChurnConfig = field(default_factory=ChurnConfig)
    """Random churn."""
    offline: tuple[OfflineWindow, ...] = ()
    """Exact offline windows."""
    partitions: tuple[Partition, ...] = ()
    """Partitions that open and heal."""
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    """The traffic."""
    direct_attempts: int = 2
    """The delivery engine's ``direct_attempts`` (direct tries before the store)."""
    ack_timeout: float = 15.0
    """The delivery engine's ``ack_timeout``, seconds."""
    secure_channel: bool = True
    """Count the Noise XX handshake (its round trip and bytes) when a link is first used,
    and the record overhead of every frame on it; False: links are free and instant."""
    prekey_fetch: bool = True
    """Fetch the recipient's prekey bundle (a round trip to the store, or to the peer
    when there is no store) before the first message to a device; False: instant."""
    mailbox_poll_interval: float = 30.0
    """The Client's long poll of the store times out and fetches again this often, seconds
    (``ClientConfig.mailbox_poll_interval``): a lost wake-up is recovered by then."""

    def __post_init__(self) -> None:
        _integer("peers", self.peers, 2, 10_000_000)
        _number("duration", self.duration, 0.0, 366 * 86400)
        _number("drain", self.drain, 0.0, 366 * 86400)
        _integer("seed", self.seed, 0, 2**63 - 1)
        _number("connect_timeout", self.connect_timeout, 0.001, 3600)
        _number("nat_fraction", self.nat_fraction, 0.0, 1.0)
        _integer("direct_attempts", self.direct_attempts, 0, 100)
        _number("ack_timeout", self.ack_timeout, 0.01, 3600)
        _number("mailbox_poll_interval", self.mailbox_poll_interval, 0.01, 3600)
        object.__setattr__(self, "offline", tuple(self.offline))
        object.__setattr__(self, "partitions", tuple(self.partitions))
        for window in self.offline:
            _integer("offline peer", window.peer, 0, self.peers - 1)
        for partition in self.partitions:
            for peer in partition.peers:
                _integer("partition peer", peer, 0, self.peers - 1)
        for send in self.workload.sends:
            _integer("sender", send.sender, 0, self.peers - 1)
            _integer("recipient", send.recipient, 0, self.peers - 1)
        groups = self.workload.groups
        for spec in groups.groups:
            for member in spec.members:
                _integer("group member", member, 0, self.peers - 1)
        if groups.count and groups.min_size > self.peers:
            raise ConfigurationError(f"groups of {groups.min_size} need at least as many peers")
