"""Snapshots to Prometheus text: sum the snapshots of every worker process, then render.

A snapshot is plain data, ``{"pid", "live", "families": {name: [[labels, numbers], ...]}}``:
the same shape whether it comes from this process's memory or from another worker's file, so
one function sums them (numbers add element-wise per label tuple). Counters, histograms and
the feedback counts add over every process that ever ran; the writer's gauges (queue depth,
spool size) only over live ones. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from proxy.metrics.calls import DURATION_BUCKETS, TTFT_BUCKETS

# The classic text format: every Prometheus version and most other scrapers read it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LIVE_FAMILIES = frozenset({"writer"})  # gauges of running processes only

Merged = dict[str, dict[tuple[str, ...], list[float]]]

_CALL_LABELS = ["upstream", "model", "status"]
_FEEDBACK = {  # snapshot label -> (metric name, label name, help)
    "value": ("votes", "value", "Feedback events by user_feedback (positive or negative)"),
    "rating": ("ratings", "rating", "Feedback events by user_feedback_rating, to a half point"),
    "category": ("categories", "category", "Feedback events by user_feedback_category"),
    "reason": ("reasons", "reason", "Feedback events by feedback_reason"),
}
_FEEDBACK_NOTE = (
    ", per model, as merged by the proxy since it started; a changed vote (same "
    "X-Feedback-Id) moves, so this may go down."
)


def merge(snapshots: Iterable[dict[str, Any]]) -> tuple[Merged, int]:
    """(numbers summed per family and label tuple, count of live processes)."""
    merged: Merged = {}
    live = 0
    for snapshot in snapshots:
        live += bool(snapshot["live"])
        for name, rows in snapshot["families"].items():
            if name in LIVE_FAMILIES and not snapshot["live"]:
                continue
            family = merged.setdefault(name, {})
            for labels, numbers in rows:
                key = tuple(labels)
                current = family.get(key)
                family[key] = (
                    list(numbers)
                    if current is None
                    else [a + b for a, b in zip(current, numbers, strict=True)]
                )
    return merged, live


def render(merged: Merged, processes: int) -> bytes:
    """The Prometheus text exposition of the merged numbers."""
    return generate_latest(_Families(list(families(merged, processes))))


class _Families(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def families(merged: Merged, processes: int) -> Iterator[Metric]:
    yield from _call_families(merged.get("calls", {}))
    yield _histogram(
        "feedback_proxy_time_to_first_token_seconds",
        "Time from the request to the first body byte of streamed (SSE) answers.",
        ["upstream", "model"],
        merged.get("ttft", {}),
        TTFT_BUCKETS,
    )
    yield _counter(
        "feedback_proxy_tokens",
        "Tokens the provider reported in its usage, by kind (input or output).",
        ["upstream", "model", "kind"],
        merged.get("tokens", {}),
    )
    yield _counter(
        "feedback_proxy_cost_usd",
        "Cost of the stored spans in USD (genai-prices), by upstream and model.",
        ["upstream", "model"],
        merged.get("cost", {}),
    )
    yield from _price_data_info(merged.get("price_data", {}))
    yield _counter(
        "feedback_proxy_upstream_errors",
        "Upstream failures by kind: connect, connect_timeout, read_timeout, "
        "invalid_response, mid_stream_break.",
        ["upstream", "kind"],
        merged.get("upstream_errors", {}),
    )
    yield from _writer_families(merged)
    yield from _feedback_families(merged.get("feedback", {}))
    yield GaugeMetricFamily(
        "feedback_proxy_worker_processes",
        "Worker processes whose numbers this answer sums.",
        value=processes,
    )


def _call_families(calls: dict[tuple[str, ...], list[float]]) -> Iterator[Metric]:
    yield _counter(
        "feedback_proxy_requests",
        "Proxied calls by upstream, model and the status sent to the client ('' when the "
        "client left before an answer; upstream '' when the call was never routed).",
        _CALL_LABELS,
        calls,
    )
    yield _histogram(
        "feedback_proxy_request_duration_seconds",
        "Whole-call latency, from the request to the end of the answer (streams included).",
        _CALL_LABELS,
        calls,
        DURATION_BUCKETS,
    )


def _writer_families(merged: Merged) -> Iterator[Metric]:
    queue, spool = merged.get("writer", {}).get((), [0, 0])
    written, dropped, spooled = merged.get("records", {}).get((), [0, 0, 0])
    yield GaugeMetricFamily(
        "feedback_proxy_record_queue_depth",
        "Records waiting in memory for Redis.",
        value=queue,
    )
    yield GaugeMetricFamily(
        "feedback_proxy_spool_bytes",
        "Bytes of records waiting in the local spool file (Redis slow or down).",
        value=spool,
    )
    yield CounterMetricFamily(
        "feedback_proxy_records_written", "Records written to Redis.", value=written
    )
    yield CounterMetricFamily(
        "feedback_proxy_records_dropped",
        "Records lost: the spool could not be written or read, or a record was malformed.",
        value=dropped,
    )
    yield CounterMetricFamily(
        "feedback_proxy_records_spooled", "Records written to the spool file.", value=spooled
    )


def _price_data_info(rows: dict[tuple[str, ...], list[float]]) -> Iterator[Metric]:
    """Which genai-prices release priced the spans (an info metric, value 1)."""
    info = GaugeMetricFamily(
        "feedback_proxy_price_data_info",
        "The genai-prices release whose price data the cost figures come from.",
        labels=["version"],
    )
    for (version,) in sorted(rows):
        info.add_metric([version], 1)
    yield info


def _feedback_families(rows: dict[tuple[str, ...], list[float]]) -> Iterator[Metric]:
    for label, (name, label_name, text) in _FEEDBACK.items():
        gauge = GaugeMetricFamily(
            f"feedback_proxy_feedback_{name}", text + _FEEDBACK_NOTE, labels=[label_name, "model"]
        )
        for (kind, value, model), numbers in sorted(rows.items()):
            if kind == label:
                gauge.add_metric([value, model], numbers[0])
        yield gauge


def _counter(
    name: str, text: str, labels: list[str], rows: dict[tuple[str, ...], list[float]]
) -> CounterMetricFamily:
    counter = CounterMetricFamily(name, text, labels=labels)
    for key, numbers in sorted(rows.items()):
        counter.add_metric(list(key), numbers[0])
    return counter


def _histogram(
    name: str,
    text: str,
    labels: list[str],
    rows: dict[tuple[str, ...], list[float]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    """Rows hold ``[count, sum, bucket counts...]`` (not cumulative; the last is +Inf)."""
    histogram = HistogramMetricFamily(name, text, labels=labels)
    les = [repr(float(bound)) for bound in bounds] + ["+Inf"]  # "0.005", "1.0": as Go prints
    for key, numbers in sorted(rows.items()):
        cumulative, buckets = 0.0, []
        for le, count in zip(les, numbers[2:], strict=True):
            cumulative += count
            buckets.append((le, cumulative))
        histogram.add_metric(list(key), buckets, sum_value=numbers[1])
    return histogram
