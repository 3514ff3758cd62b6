"""What the OTLP exporter did: counted where it happens, rendered when ``/metrics`` is scraped.

``pending`` is a gauge of the shared stream (delivered but not acknowledged, plus not read
yet); only the process holding the export lease measures it, the others report 0, so the sum
over workers is the stream's backlog. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

SIGNALS = ("spans", "logs")
Merged = dict[str, dict[tuple[str, ...], list[float]]]


@dataclass(slots=True)
class SignalCounts:
    exported: int = 0  # items the collector accepted
    failed_requests: int = 0  # export requests that failed (each attempt)
    dropped: int = 0  # items given up: refused for good, or rejected in a partial success


@dataclass(slots=True)
class ExportCounts:
    signals: dict[str, SignalCounts] = field(
        default_factory=lambda: {name: SignalCounts() for name in SIGNALS}
    )
    overruns: int = 0  # times the stream's cap trimmed entries not yet read
    trimmed: int = 0  # pending entries trimmed before they were sent
    pending: int = 0  # stream backlog, measured by the lease holder

    def snapshot(self) -> dict[str, Any]:
        """The families of this process, in the snapshot shape of ``proxy.metrics.prometheus``."""
        rows = [
            [[name], [c.exported, c.failed_requests, c.dropped]] for name, c in self.signals.items()
        ]
        return {
            "otlp": rows,
            "otlp_stream": [[[], [self.overruns, self.trimmed]]],
            "otlp_pending": [[[], [self.pending]]],
        }


def export_families(merged: Merged) -> Iterator[Metric]:
    """The exporter's Prometheus families (zeros when export is off)."""
    names = (
        ("exported", "Items (spans, log records) the OTLP collector accepted."),
        ("failed_requests", "OTLP export requests that failed (every attempt counts)."),
        ("dropped", "Items given up: refused for good by the collector (not retryable)."),
    )
    rows = merged.get("otlp", {})
    for column, (name, text) in enumerate(names):
        counter = CounterMetricFamily(f"feedback_proxy_otlp_{name}", text, labels=["signal"])
        for signal in SIGNALS:
            counter.add_metric([signal], rows.get((signal,), [0, 0, 0])[column])
        yield counter
    overruns, trimmed = merged.get("otlp_stream", {}).get((), [0, 0])
    yield CounterMetricFamily(
        "feedback_proxy_otlp_overruns",
        "Times the event stream's cap trimmed entries before the exporter read them.",
        value=overruns,
    )
    yield CounterMetricFamily(
        "feedback_proxy_otlp_trimmed",
        "Delivered entries trimmed by the stream's cap before they were sent.",
        value=trimmed,
    )
    yield GaugeMetricFamily(
        "feedback_proxy_otlp_pending",
        "Event-stream entries not exported yet (read but unacknowledged, plus unread).",
        value=merged.get("otlp_pending", {}).get((), [0])[0],
    )
