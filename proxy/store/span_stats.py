"""Calls and cost in the stats counters, counted per span as it is first stored.

A span adds one call (and its cost, in pico-USD, when known) to the counters of the UTC hour it
started in (``stats:{h<hour>}:counts``, the hash the feedback counts use): once overall, once
under its model and once under its upstream, fields ``<dim>\\x1f<value>\\x1fcalls`` and
``...\\x1fcost_pusd``. Only a span that ``record_span.lua`` stored for the first time counts,
so a replayed batch never counts a span twice; the price of that is that a batch whose first
step landed and whose second failed (Redis lost between two round trips) leaves its spans
uncounted. ``HINCRBY`` is atomic in the hour's slot, so several writers and a cluster add up.
"""

from __future__ import annotations

from typing import Any

from proxy.core.records import Span
from proxy.store.keys import Keys
from proxy.store.stats import HOUR_MS, hour_of


class SpanCounts:
    """The counter moves of one batch, summed per hour and field before they are sent."""

    def __init__(self) -> None:
        self._moves: dict[int, dict[str, int]] = {}

    def add(self, span: Span, started_ms: int, cost_pico: int | None) -> None:
        fields = self._moves.setdefault(hour_of(started_ms), {})
        groups = ["all\x1f"]
        if span.get("model"):
            groups.append(f"model\x1f{span['model']}")
        if span.get("upstream"):
            groups.append(f"upstream\x1f{span['upstream']}")
        for group in groups:
            field = f"{group}\x1fcalls"
            fields[field] = fields.get(field, 0) + 1
            if cost_pico is not None:
                field = f"{group}\x1fcost_pusd"
                fields[field] = fields.get(field, 0) + cost_pico

    def queue(self, pipe: Any, keys: Keys, retention_s: int) -> None:
        """The ``HINCRBY``s (and the hour's expiry, as the feedback counts set it)."""
        for hour, fields in self._moves.items():
            counts = keys.stats_counts(hour)
            for field, amount in fields.items():
                pipe.execute_command("HINCRBY", counts, field, amount)
            pipe.execute_command("EXPIREAT", counts, (hour + HOUR_MS) // 1000 + retention_s)
