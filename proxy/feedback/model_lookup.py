"""Which model a piece of feedback is about, for the feedback metrics' ``model`` label.

Feedback that arrives on a model call is counted under that call's model. Feedback without a
call (``POST /feedback``, the admin API, a queued vote applied later) is about a trace: its
model is the one model the trace's spans used, ``"mixed"`` when they used several, and
unknown (``""``) before any span is known.

Spans this process recorded are remembered (``RecentModels``), so feedback sent right after
its call counts under the call's model even while the span is still on its way to Redis (or
spooled while Redis is away). Otherwise one small SMEMBERS (the trace's model set, never its
spans' bodies), bounded by a timeout; a failure only costs the label, never the feedback.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from proxy.core.errors import StoreUnavailable
from proxy.store.redis_store import RedisStore

MIXED = "mixed"
REMEMBERED_TRACES = 10_000  # ~3.5 MiB (~385 B a trace, tracemalloc): the last seconds to minutes


def label_of(models: set[str]) -> str | None:
    """The label of a trace that used ``models``."""
    if len(models) > 1:
        return MIXED
    return next(iter(models), None)


class RecentModels:
    """The models of the traces whose spans this process recorded lately (bounded, LRU)."""

    def __init__(self, capacity: int = REMEMBERED_TRACES) -> None:
        self._capacity = capacity
        self._models: OrderedDict[str, set[str]] = OrderedDict()

    def remember(self, trace_id: str, model: str | None) -> None:
        if not model:
            return
        models = self._models.pop(trace_id, set())
        models.add(model)
        self._models[trace_id] = models
        if len(self._models) > self._capacity:
            self._models.popitem(last=False)

    def models_of(self, trace_id: str) -> set[str]:
        return self._models.get(trace_id, set())


class TraceModels:
    """A trace's model label: from this process's recent spans, else from Redis."""

    def __init__(self, store: RedisStore, timeout: float, recent: RecentModels) -> None:
        self._store = store
        self._timeout = timeout
        self.recent = recent

    async def model_of(self, trace_id: str) -> str | None:
        """The trace's model, ``"mixed"``, or None (no span yet, or Redis did not answer)."""
        models = set(self.recent.models_of(trace_id))
        try:
            async with asyncio.timeout(self._timeout):
                models |= await self._store.models_of(trace_id)
        except (StoreUnavailable, TimeoutError):
            pass
        return label_of(models)
