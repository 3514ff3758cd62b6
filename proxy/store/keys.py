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

    def all(self) -> list[str]:
        return [self.trace, self.spans, self.attributes, self.tags, self.models]


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

    @property
    def events(self) -> str:
        """Capped stream of finished spans (and feedback events) for other consumers."""
        return f"{self.prefix}:events"
