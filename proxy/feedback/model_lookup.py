"""Which model a piece of feedback is about, for the feedback metrics' ``model`` label.

Feedback that arrives on a model call is counted under that call's model. Feedback without a
call (``POST /feedback``, the admin API) is about a trace: its model is the one model the
trace's spans used, ``"mixed"`` when they used several, and unknown (``""``) before any span is
recorded. One small SMEMBERS (the trace's model set, never its spans' bodies), bounded by a
timeout; a failure only costs the label, never the feedback.
"""

from __future__ import annotations

import asyncio

from proxy.core.errors import StoreUnavailable
from proxy.store.redis_store import RedisStore

MIXED = "mixed"


class TraceModels:
    def __init__(self, store: RedisStore, timeout: float) -> None:
        self._store = store
        self._timeout = timeout

    async def model_of(self, trace_id: str) -> str | None:
        """The trace's model, ``"mixed"``, or None (no span yet, or Redis did not answer)."""
        try:
            async with asyncio.timeout(self._timeout):
                models = await self._store.models_of(trace_id)
        except (StoreUnavailable, TimeoutError):
            return None
        if len(models) > 1:
            return MIXED
        return next(iter(models), None)
