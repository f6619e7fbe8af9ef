"""Results of a simulation: one record per message, summary statistics, CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CONNECTION_COLUMNS",
    "CSV_COLUMNS",
    "ConnectionRecord",
    "MessageRecord",
    "SimResult",
    "Summary",
    "percentile",
]

CSV_COLUMNS = (
    "message_id",
    "sender",
    "recipient",
    "sent_at",
    "delivered_at",
    "latency_ms",
    "path",
    "attempts",
    "acknowledged_at",
    "state",
    "frames",
    "wire_bytes",
    "kind",
    "group_id",
)
"""Columns of :meth:`SimResult.write_csv`, in order."""

CONNECTION_COLUMNS = ("time", "initiator", "responder", "relayed", "handshake_ms")
"""Columns of :meth:`SimResult.write_connections_csv`, in order."""

USER_KINDS = ("message", "group")
"""Record kinds that are user messages (``sender_key`` records are distributions)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRecord:
    """A secure channel established between two peers (the Client's ``peer_connected``)."""

    time: float
    """When the initiator received handshake message 2 (virtual seconds)."""
    initiator: int
    """The peer that dialled."""
    responder: int
    """The peer dialled."""
    relayed: bool
    """True when the channel runs through the relay."""
    handshake_ms: float
    """From the first handshake message to the link being usable, ms."""

    def row(self) -> list[str]:
        """The CSV row."""
        return [
            f"{self.time:.6f}",
            str(self.initiator),
            str(self.responder),
            "1" if self.relayed else "0",
            f"{self.handshake_ms:.3f}",
        ]


@dataclass(slots=True, kw_only=True)
class MessageRecord:
    """What happened to one user message (times are virtual seconds from the start)."""

    message_id: str
    """The message's id (a UUID)."""
    sender: int
    """Sending peer."""
    recipient: int
    """Receiving peer."""
    sent_at: float
    """When the user sent it."""
    delivered_at: float | None = None
    """When the recipient first decrypted it, or ``None``."""
    path: str = ""
    """How the first copy arrived: ``direct``, ``relay`` or ``store`` (empty if undelivered)."""
    attempts: int = 0
    """Direct sends and store deposits the sender made."""
    acknowledged_at: float | None = None
    """When the sender learnt of the delivery (Ack or receipt), or ``None``."""
    state: str = "pending"
    """Final state of the sender's outbox entry (``DeliveryState`` value)."""
    frames: int = 0
    """Frames on the wire for this message: sends, acks, deposits, fetches, receipts."""
    wire_bytes: int = 0
    """Bytes of those frames, length prefixes included."""
    kind: str = "message"
    """``message`` (1:1), ``group`` (one member's copy of a group message) or
    ``sender_key`` (a sender key distribution over a pairwise session)."""
    group_id: str = ""
    """The group of a ``group`` or ``sender_key`` record, else empty."""

    @property
    def latency_ms(self) -> float | None:
        """Delivery latency in milliseconds, or ``None`` when undelivered."""
        if self.delivered_at is None:
            return None
        return (self.delivered_at - self.sent_at) * 1000.0

    def row(self) -> list[str]:
        """The CSV row (fixed formatting, so traces compare byte for byte)."""
        latency = self.latency_ms
        return [
            self.message_id,
            str(self.sender),
            str(self.recipient),
            f"{self.sent_at:.6f}",
            "" if self.delivered_at is None else f"{self.delivered_at:.6f}",
            "" if latency is None else f"{latency:.3f}",
            self.path,
            str(self.attempts),
            "" if self.acknowledged_at is None else f"{self.acknowledged_at:.6f}",
            self.state,
            str(self.frames),
            str(self.wire_bytes),
            self.kind,
            self.group_id,
        ]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ascending ``sorted_values``; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Summary statistics of a run."""

    messages: int
    """User messages sent: 1:1 messages plus one per recipient of each group message."""
    delivered: int
    """Those the recipient decrypted."""
    delivery_ratio: float
    """``delivered / messages`` (1.0 when nothing was sent)."""
    direct: int
    """Delivered directly."""
    via_relay: int
    """Delivered directly through the relay."""
    via_store: int
    """Delivered through the store."""
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    frames: int
    """Frames on the wire, all messages."""
    wire_bytes: int
    """Bytes on the wire, all messages."""
    wire_bytes_per_message: float
    """``wire_bytes / messages``."""
    events: int
    """Events the simulator processed."""
    virtual_seconds: float
    """Virtual time the run covered."""
    group_deliveries: int = 0
    """Group message copies (one per recipient device), included in ``messages``."""
    group_delivered: int = 0
    """Those decrypted by their recipient."""
    sender_key_distributions: int = 0
    """Sender key distributions sent (not in ``messages``; their bytes are in ``wire_bytes``)."""
    connections: int = 0
    """Secure channels established."""
    handshake_failures: int = 0
    """Handshakes that failed (a message lost or cut off)."""
    refused: int = 0
    """Envelopes a receiver refused (a stale sender key, a sender no longer a member)."""
    removed_checks: int = 0
    """Group messages sent after a removal that a removed member saw (copy or eavesdropped)."""
    removed_reads: int = 0
    """Those it could decrypt (senders that had not yet learnt of the removal)."""

    def as_dict(self) -> dict[str, float | int]:
        """The figures as a plain dict (NaN for latencies when nothing was delivered)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def format(self) -> str:
        """A few human-readable lines."""
        return (
            f"messages {self.messages}, delivered {self.delivered} "
            f"({self.delivery_ratio:.2%}): direct {self.direct}, relay {self.via_relay}, "
            f"store {self.via_store}\n"
            f"latency ms: p50 {self.latency_p50_ms:.1f}, p90 {self.latency_p90_ms:.1f}, "
            f"p99 {self.latency_p99_ms:.1f}, max {self.latency_max_ms:.1f}\n"
            f"wire: {self.frames} frames, {self.wire_bytes} bytes "
            f"({self.wire_bytes_per_message:.0f} per message); "
            f"{self.events} events over {self.virtual_seconds:.0f} virtual seconds; "
            f"{self.connections} connections"
            + (
                f"\ngroups: {self.group_delivered} of {self.group_deliveries} copies decrypted, "
                f"{self.sender_key_distributions} distributions, removed members read "
                f"{self.removed_reads} of {self.removed_checks}"
                if self.group_deliveries or self.sender_key_distributions
                else ""
            )
        )


@dataclass(slots=True, kw_only=True)
class SimResult:
    """Everything a run produced."""

    records: list[MessageRecord] = field(default_factory=list)
    """One record per user message, in the order they were sent."""
    events: int = 0
    """Events processed."""
    virtual_seconds: float = 0.0
    """Virtual time covered."""
    peers_materialised: int = 0
    """Peers whose keys were generated (the others never sent nor received)."""
    connections: list[ConnectionRecord] = field(default_factory=list)
    """Every secure channel established, in order."""
    handshake_failures: int = 0
    """Handshakes that failed."""
    refused: int = 0
    """Envelopes refused by their receiver."""
    removed_checks: int = 0
    """Group messages sent after a removal that a removed member saw."""
    removed_reads: int = 0
    """Those it could decrypt."""
    groups: list[str] = field(default_factory=list)
    """The id of each group, by group number."""

    def summary(self) -> Summary:
        """Summary statistics of :attr:`records` (user messages; distributions apart)."""
        user = [record for record in self.records if record.kind in USER_KINDS]
        latencies = sorted(latency for record in user if (latency := record.latency_ms) is not None)
        messages = len(user)
        wire = sum(record.wire_bytes for record in self.records)
        groups = [record for record in user if record.kind == "group"]
        return Summary(
            group_deliveries=len(groups),
            group_delivered=sum(1 for record in groups if record.delivered_at is not None),
            sender_key_distributions=len(self.records) - messages,
            connections=len(self.connections),
            handshake_failures=self.handshake_failures,
            refused=self.refused,
            removed_checks=self.removed_checks,
            removed_reads=self.removed_reads,
            messages=messages,
            delivered=len(latencies),
            delivery_ratio=len(latencies) / messages if messages else 1.0,
            direct=sum(1 for record in user if record.path == "direct"),
            via_relay=sum(1 for record in user if record.path == "relay"),
            via_store=sum(1 for record in user if record.path == "store"),
            latency_p50_ms=percentile(latencies, 0.5),
            latency_p90_ms=percentile(latencies, 0.9),
            latency_p99_ms=percentile(latencies, 0.99),
            latency_max_ms=latencies[-1] if latencies else math.nan,
            latency_mean_ms=sum(latencies) / len(latencies) if latencies else math.nan,
            frames=sum(record.frames for record in self.records),
            wire_bytes=wire,
            wire_bytes_per_message=wire / messages if messages else 0.0,
            events=self.events,
            virtual_seconds=self.virtual_seconds,
        )

    def csv_text(self) -> str:
        """The records as CSV text (header first), deterministic for a given run."""
        buffer = io.StringIO()
        _write_rows(buffer, self.records)
        return buffer.getvalue()

    def write_csv(self, path: str | Path) -> None:
        """Write the records to ``path`` as CSV."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, self.records)

    def write_connections_csv(self, path: str | Path) -> None:
        """Write :attr:`connections` to ``path`` as CSV (:data:`CONNECTION_COLUMNS`)."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CONNECTION_COLUMNS)
            for connection in self.connections:
                writer.writerow(connection.row())

    def trace_digest(self) -> str:
        """SHA-256 (hex) of :meth:`csv_text`: equal digests mean identical traces."""
        return hashlib.sha256(self.csv_text().encode()).hexdigest()

    def write_parquet(self, path: str | Path) -> None:
        """Write the records to ``path`` as Parquet (needs ``pyarrow``).

        Raises :class:`~omega.errors.ConfigurationError` when pyarrow is not installed.
        """
        from omega.errors import ConfigurationError

        try:
            import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]
            import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ConfigurationError(
                "writing Parquet needs pyarrow (pip install pyarrow)"
            ) from None
        columns: dict[str, list[object]] = {name: [] for name in CSV_COLUMNS}
        for record in self.records:
            for name in CSV_COLUMNS:
                columns[name].append(
                    record.latency_ms if name == "latency_ms" else getattr(record, name)
                )
        pq.write_table(pa.table(columns), str(path))  # pragma: no cover - needs pyarrow


def _write_rows(handle: io.TextIOBase | io.StringIO, records: Iterable[MessageRecord]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(record.row())
