"""The relay's metrics, rendered in the Prometheus text exposition format (version 0.0.4).

Counters and gauges only, each with at most one label; metadata (counts,
sizes, timings), never content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CONTENT_TYPE", "RelayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of ``/metrics``."""


@dataclass
class _Metric:
    name: str
    kind: str
    help: str
    label: str | None = None
    values: dict[str, float] = field(default_factory=dict)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class RelayMetrics:
    """Every figure one relay process exports."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        for name, kind, text, label in (
            ("sessions_total", "counter", "Sessions opened (before registration).", None),
            ("sessions_active", "gauge", "Sessions open now.", None),
            ("registrations_total", "counter", "Registrations accepted.", None),
            ("refusals_total", "counter", "Registrations, streams and frames refused.", "reason"),
            ("streams_total", "counter", "Streams opened.", "path"),
            ("streams_active", "gauge", "Streams open now.", None),
            ("frames_forwarded_total", "counter", "Frames forwarded to a peer.", None),
            ("bytes_forwarded_total", "counter", "Stream data bytes forwarded.", None),
            ("frames_received_total", "counter", "Frames received from clients.", None),
            ("bytes_received_total", "counter", "Bytes received from clients.", None),
            ("throttle_seconds_total", "counter", "Seconds reading was paused by limits.", None),
            ("sessions_dropped_total", "counter", "Sessions the relay dropped.", "reason"),
            ("bus_messages_total", "counter", "Messages exchanged with other relays.", "direction"),
            ("bus_up", "gauge", "1 while the Redis bus to other relays works.", None),
        ):
            self._metrics[name] = _Metric(f"omega_relay_{name}", kind, text, label)

    def inc(self, name: str, amount: float = 1, label: str = "") -> None:
        """Add ``amount`` to counter or gauge ``name`` (for the label value ``label``)."""
        values = self._metrics[name].values
        values[label] = values.get(label, 0) + amount

    def set(self, name: str, value: float, label: str = "") -> None:
        """Set gauge ``name``."""
        self._metrics[name].values[label] = value

    def value(self, name: str, label: str = "") -> float:
        """The current value of ``name`` (0 if never touched)."""
        return self._metrics[name].values.get(label, 0)

    def render(self) -> str:
        """The text exposition of every metric."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            values = metric.values or ({} if metric.label else {"": 0})
            for label, value in sorted(values.items()):
                selector = f'{{{metric.label}="{label}"}}' if metric.label else ""
                lines.append(f"{metric.name}{selector} {_number(value)}")
        return "\n".join(lines) + "\n"
