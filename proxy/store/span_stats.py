"""Calls, cost and new traces in the stats counters, counted per span as it is first stored.

A span adds one call (and its cost, in pico-USD, when known) to the counters of the UTC hour it
started in (``stats:{h<hour>}:counts``, the hash the feedback counts use): once overall, once
under its model, once under its upstream, and once under the value of each [stats] dimension
the trace has once this span's attributes are merged (fields
``<group>\x1f<value>\x1fcalls`` and ``...\x1fcost_pusd``). The trace's first span also
counts the trace under its dimension values (``...\x1ftraces``; overall and per model or
upstream, traces come from the indexes instead). ``stats_calls.lua`` applies one hour's sums
in the hour's slot and bounds each dimension's values (``stats_dimensions.lua``).

Only a span that ``record_span.lua`` stored for the first time counts, so a replayed batch
never counts a span twice; the price is that a batch whose first step landed and whose second
failed (Redis lost between the two round trips) leaves its spans uncounted here. These counts
are kept as the spans arrive and never move: a trace whose dimension value changes later
keeps its calls, cost and trace count under the value each span saw.
"""

from __future__ import annotations

from typing import Any

from proxy.core.records import Span
from proxy.store.keys import Keys
from proxy.store.scripting import queue_script
from proxy.store.stats import DIMENSION_LIMIT, HOUR_MS, hour_of


class SpanCounts:
    """The counter moves of one batch, summed per hour before they are sent."""

    def __init__(self) -> None:
        self._fields: dict[int, dict[str, int]] = {}
        self._dims: dict[int, dict[tuple[str, str], list[int]]] = {}

    def add(
        self,
        span: Span,
        started_ms: int,
        cost_pico: int | None,
        dims: dict[str, str],
        first: bool,
    ) -> None:
        hour = hour_of(started_ms)
        fields = self._fields.setdefault(hour, {})
        groups = ["all\x1f"]
        if span.get("model"):
            groups.append(f"model\x1f{span['model']}")
        if span.get("upstream"):
            groups.append(f"upstream\x1f{span['upstream']}")
        for group in groups:
            _bump(fields, f"{group}\x1fcalls", 1)
            if cost_pico is not None:
                _bump(fields, f"{group}\x1fcost_pusd", cost_pico)
        by_value = self._dims.setdefault(hour, {})
        for key, value in dims.items():
            entry = by_value.setdefault((key, value), [0, 0, 0])
            entry[0] += 1
            entry[1] += cost_pico or 0
            entry[2] += first

    def queue(self, pipe: Any, sha: str, keys: Keys, retention_s: int) -> None:
        """One ``stats_calls.lua`` per hour of the batch."""
        for hour, fields in self._fields.items():
            dims = self._dims.get(hour, {})
            args: list[Any] = [(hour + HOUR_MS) // 1000 + retention_s, DIMENSION_LIMIT]
            args.append(len(fields))
            for field, amount in fields.items():
                args += (field, amount)
            args.append(len(dims))
            for (key, value), (calls, cost, traces) in dims.items():
                args += (key, value, calls, cost, traces)
            hour_keys = (keys.stats_counts(hour), keys.stats_dimension_values(hour))
            queue_script(pipe, sha, hour_keys, *args)

    def __bool__(self) -> bool:
        return bool(self._fields)


def _bump(fields: dict[str, int], field: str, amount: int) -> None:
    fields[field] = fields.get(field, 0) + amount
