"""Every Redis key name the proxy uses, in one place.

A trace's own keys share the hash tag ``{<trace_id>}``, so on Redis Cluster they live in one
slot and one Lua script may change them atomically. Indexes and the event stream are global
keys in their own slots: they are maintained by separate idempotent commands after the trace's
atomic change (see docs/storage.md). Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from dataclasses import dataclass

# Index dimensions a span write maintains (feedback dimensions are added by feedback merges).
SPAN_INDEXES = ("session", "user", "model", "upstream", "tag")


@dataclass(frozen=True, slots=True)
class TraceKeys:
    """The keys of one trace, all in the hash slot of ``{trace_id}``."""

    trace: str  # hash: trace_id, name, session_id, user_id, created_ms, updated_ms, span_count
    spans: str  # hash: span_id -> span JSON (written once, never overwritten)
    attributes: str  # hash: attribute key -> JSON value (later merge wins)
    tags: str  # set of tags
    models: str  # set of models used by the trace's spans
    feedback: str  # hash: event key -> feedback event JSON
    feedback_order: str  # sorted set: event key scored by arrival sequence
    span_feedback: str  # hash: "a\x1f<span>\x1f<key>" -> JSON value, "t\x1f<span>\x1f<tag>" -> 1
    indexes: str  # set: names of the index keys that list this trace (to re-score them)
    scores: str  # hash: score_id -> evaluator score JSON (docs/reference.md §12)

    def all(self) -> list[str]:
        """Every key of the trace, in the order the Lua scripts expect them in KEYS."""
        return [
            self.trace, self.spans, self.attributes, self.tags, self.models,
            self.feedback, self.feedback_order, self.span_feedback, self.indexes, self.scores,
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "fp"

    def trace(self, trace_id: str) -> TraceKeys:
        base = f"{self.prefix}:t:{{{trace_id}}}"
        return TraceKeys(
            trace=base,
            spans=f"{base}:spans",
            attributes=f"{base}:attrs",
            tags=f"{base}:tags",
            models=f"{base}:models",
            feedback=f"{base}:fb",
            feedback_order=f"{base}:fb-order",
            span_feedback=f"{base}:span-fb",
            indexes=f"{base}:idx",
            scores=f"{base}:scores",
        )

    @property
    def index_by_time(self) -> str:
        """Sorted set: trace_id scored by its creation time (ms): every trace."""
        return f"{self.prefix}:idx:time"

    def index(self, dimension: str, value: str) -> str:
        """Sorted set: trace_ids with ``dimension == value``, scored by creation time (ms)."""
        return f"{self.prefix}:idx:{dimension}:{value}"

    @property
    def index_registry(self) -> str:
        """Set of every index key, so retention can prune them without KEYS/SCAN."""
        return f"{self.prefix}:idx:registry"

    def dataset_rows(self, dataset: str) -> str:
        """Hash: trace_id -> row JSON (a trace is in a dataset once); no TTL (rows are copies)."""
        return f"{self.prefix}:ds:{{{dataset}}}:rows"

    def dataset_order(self, dataset: str) -> str:
        """Sorted set: trace_id scored by when its row was added."""
        return f"{self.prefix}:ds:{{{dataset}}}:order"

    def dataset_columns(self, dataset: str) -> str:
        """Sorted set: the mapped column names of the dataset's rows, by first use."""
        return f"{self.prefix}:ds:{{{dataset}}}:columns"

    @property
    def datasets(self) -> str:
        """Set of dataset names."""
        return f"{self.prefix}:datasets"

    def stats_counts(self, hour_ms: int) -> str:
        """Hash: "<dim>\\x1f<value>\\x1f<metric>" -> count, for traces created in that hour."""
        return f"{self.prefix}:stats:{{h{hour_ms}}}:counts"

    def stats_contributions(self, hour_ms: int) -> str:
        """Hash: trace_id -> the stats state last counted for it (moves a changed vote)."""
        return f"{self.prefix}:stats:{{h{hour_ms}}}:traces"

    def stats_dimension_values(self, hour_ms: int) -> str:
        """Hash: the [stats] dimension values admitted in that hour (at most 100 per key)."""
        return f"{self.prefix}:stats:{{h{hour_ms}}}:dimvals"

    def dimension_values(self, dimension: str) -> str:
        """Set of the values a dimension's indexes have (the groups of the stats)."""
        return f"{self.prefix}:dims:{dimension}"

    def score_pairs(self, hour_ms: int, name: str) -> str:
        """Hash: trace_id -> (version, score value, pass or fail) of the trace's latest score
        ``name``, for traces created in that hour; beside the hour's stats (same slot), so
        ``GET /api/stats/agreement`` reads both in one script per hour."""
        return f"{self.prefix}:stats:{{h{hour_ms}}}:score:{name}"

    def implicit_seen(self, hour_ms: int) -> str:
        """Hash: "<trace_id>\\x1f<span_id>\\x1f<signal>" -> 1, the implicit signals already
        counted in that hour's stats (a replay never counts one twice)."""
        return f"{self.prefix}:stats:{{h{hour_ms}}}:implicit"

    def session_inputs(self, session_id: str) -> str:
        """Hash: input hash -> the latest span of the session with those input messages
        (regeneration across traces); expires ``implicit.regenerate_window_seconds`` after
        its last write."""
        return f"{self.prefix}:sess:{{{session_id}}}:inputs"

    @property
    def events(self) -> str:
        """Capped stream of finished spans (and feedback events) for other consumers."""
        return f"{self.prefix}:events"
