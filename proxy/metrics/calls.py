"""Call metrics on the hot path: plain counters in this process, rendered only when scraped.

Every proxied call is observed once, where its access line is written: one dict lookup by
(upstream, model, status), a bisect into the latency buckets, a few additions: 0.7-0.8 µs a
call with reading the call's fields (``bench/metrics_observe.py``). The same series kept by
prometheus_client's cached labelled children cost 2.0-2.9 µs in one process and 4.5-6.4 µs
in its multiprocess mode: each increment takes a lock, and there also writes an mmap file.
The numbers become Prometheus families only at scrape time (``metrics_export.py``), and reach
other worker processes through ``metrics_shared.py``.

Label values are bounded: upstreams come from configuration, statuses are HTTP codes, and
model names (which clients choose) are kept for the first ``MAX_MODELS`` distinct names of a
process; later ones, and absurdly long ones, are counted as ``"other"``.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from proxy.core.records import Usage

# Whole-call latency: LLM calls run from milliseconds (errors, cached answers) to minutes.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MAX_MODELS = 100
MAX_MODEL_CHARS = 128
OTHER_MODEL = "other"

# Upstream failures by cause (the ``code`` of the proxy error that answered the client).
_ERROR_KINDS = {
    "upstream_unreachable": "connect",  # refused, reset, DNS, or closed before answering
    "connect_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "bad_upstream_response": "invalid_response",
}
MID_STREAM_BREAK = "mid_stream_break"
UPSTREAM_ERROR_KINDS = (*_ERROR_KINDS.values(), MID_STREAM_BREAK)
# When a client left before its call finished: before the answer's head, or during the body.
BEFORE_RESPONSE = "before_response"
DURING_RESPONSE = "during_response"

# A snapshot family: rows of [label values, numbers]; numbers add up across processes.
Rows = list[list[Any]]


def upstream_error_kind(code: str) -> str | None:
    """The metric kind of a proxy error's code, or None when the upstream is not at fault."""
    return _ERROR_KINDS.get(code)


class Distribution:
    """A histogram's running state: count, sum, and one (non-cumulative) count per bucket."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.buckets[bisect_left(self.bounds, value)] += 1  # first bound >= value: "le"

    def numbers(self) -> list[float]:
        return [self.count, self.total, *self.buckets]


class _Series:
    """Everything observed for one (upstream, model, status); TTFT and tokens are summed over
    statuses only when scraped, so a call costs one lookup."""

    __slots__ = ("duration", "input_tokens", "output_tokens", "ttft")

    def __init__(self) -> None:
        self.duration = Distribution(DURATION_BUCKETS)
        self.ttft = Distribution(TTFT_BUCKETS)
        self.input_tokens = 0
        self.output_tokens = 0


class ModelLabels:
    """Bounded model label values: the first ``limit`` distinct names, then ``"other"``."""

    __slots__ = ("_known", "_limit")

    def __init__(self, limit: int = MAX_MODELS) -> None:
        self._known: dict[str, str] = {}
        self._limit = limit

    def __call__(self, model: str | None) -> str:
        """``""`` when the call named no model."""
        if not model:
            return ""
        label = self._known.get(model)
        if label is not None:
            return label
        if len(self._known) >= self._limit or len(model) > MAX_MODEL_CHARS:
            return OTHER_MODEL
        self._known[model] = model
        return model


class CallMetrics:
    """Counts of this process's proxied calls; ``observe`` runs once per call."""

    __slots__ = ("_disconnects", "_errors", "_series", "model_label")

    def __init__(self, max_models: int = MAX_MODELS) -> None:
        self._series: dict[tuple[str, str, int | None], _Series] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._disconnects: dict[tuple[str, str], int] = {}  # (upstream, stage): two stages
        self.model_label = ModelLabels(max_models)

    def observe(
        self,
        *,
        upstream: str,
        model: str | None,
        status: int | None,
        duration: float,
        ttft: float | None,
        usage: Usage | None,
        error: str | None,
        disconnected: str | None = None,
    ) -> None:
        """One finished call. ``upstream`` is ``""`` when the call was never routed,
        ``status`` None when no answer was sent (the client left first)."""
        key = (upstream, self.model_label(model), status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        series.duration.observe(duration)
        if ttft is not None:
            series.ttft.observe(ttft)
        if usage is not None:
            series.input_tokens += usage.get("input_tokens") or 0
            series.output_tokens += usage.get("output_tokens") or 0
        if error is not None:
            self._errors[(upstream, error)] = self._errors.get((upstream, error), 0) + 1
        if disconnected is not None:
            key2 = (upstream, disconnected)
            self._disconnects[key2] = self._disconnects.get(key2, 0) + 1

    def snapshot(self) -> dict[str, Rows]:
        """Plain data (JSON-able) of every family, for rendering or for other processes."""
        calls: Rows = []
        ttft: dict[tuple[str, str], list[float]] = {}
        tokens: dict[tuple[str, str, str], int] = {}
        for (upstream, model, status), series in self._series.items():
            status_label = "" if status is None else str(status)
            calls.append([[upstream, model, status_label], series.duration.numbers()])
            if series.ttft.count:
                _add(ttft, (upstream, model), series.ttft.numbers())
            for kind, count in (("input", series.input_tokens), ("output", series.output_tokens)):
                if count:
                    tokens[(upstream, model, kind)] = tokens.get((upstream, model, kind), 0) + count
        return {
            "calls": calls,
            "ttft": [[list(labels), numbers] for labels, numbers in ttft.items()],
            "tokens": [[list(labels), [count]] for labels, count in tokens.items()],
            "upstream_errors": [[list(labels), [n]] for labels, n in self._errors.items()],
            "client_disconnects": [[list(k), [n]] for k, n in self._disconnects.items()],
        }


def _add(into: dict[Any, list[float]], key: Any, numbers: list[float]) -> None:
    """Element-wise sum of ``numbers`` into ``into[key]``."""
    current = into.get(key)
    if current is None:
        into[key] = list(numbers)
    else:
        into[key] = [a + b for a, b in zip(current, numbers, strict=True)]
