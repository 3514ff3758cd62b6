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
import sys
from collections import OrderedDict

from proxy.core.errors import StoreUnavailable
from proxy.store.redis_store import RedisStore

MIXED = "mixed"
# It only has to bridge the seconds between a span being recorded here and its write to Redis
# (a batch every few ms; a retry a second while Redis is away): 4,096 traces is about 35 s at
# 120 calls/s, and under 1 MiB (a trace ID and an LRU node each; the model string is shared).
# A small bound also means it is full within a minute, so the process's memory is flat after.
REMEMBERED_TRACES = 4_096


def label_of(models: set[str]) -> str | None:
    """The label of a trace that used ``models``."""
    if len(models) > 1:
        return MIXED
    return next(iter(models), None)


class RecentModels:
    """The models of the traces whose spans this process recorded lately (bounded, LRU).

    A trace almost always uses one model, so its entry is that model's string (interned, so
    every trace of the model shares one), and a set only once a second model shows up.
    """

    def __init__(self, capacity: int = REMEMBERED_TRACES) -> None:
        self._capacity = capacity
        self._models: OrderedDict[str, str | frozenset[str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def remember(self, trace_id: str, model: str | None) -> None:
        if not model:
            return
        model = sys.intern(model)  # one string per model name, not one per span's JSON
        known = self._models.pop(trace_id, None)
        if known is None or known == model:
            self._models[trace_id] = model
        elif isinstance(known, str):
            self._models[trace_id] = frozenset((known, model))
        else:
            self._models[trace_id] = known | {model}
        if len(self._models) > self._capacity:
            self._models.popitem(last=False)

    def models_of(self, trace_id: str) -> set[str]:
        known = self._models.get(trace_id)
        if known is None:
            return set()
        return {known} if isinstance(known, str) else set(known)


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
