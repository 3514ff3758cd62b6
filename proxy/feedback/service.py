"""Feedback on its way in: a merge record applied through the store, or queued behind the writer.

The I/O shell around the pure parts (``parse``, ``events``): it applies a record within the
writer's timeout, and reports ``applied``, ``queued`` (spooled: applied later, exactly once)
or ``full`` (the trace's history cap is reached; nothing changed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from proxy.core.errors import StoreUnavailable
from proxy.core.records import FeedbackRecord, ScoreRecord
from proxy.feedback.model_lookup import RecentModels, TraceModels, label_of
from proxy.metrics.feedback import FeedbackCounts
from proxy.store.feedback_merge import MergeResult
from proxy.store.redis_store import RedisStore
from proxy.writer import Writer
from proxy.writer.writer import Prepare

R = TypeVar("R", FeedbackRecord, ScoreRecord)
T = TypeVar("T")


class ReplayCounter:
    """Counts, for the metrics, the queued feedback the writer's replay merged later: every
    applied vote counts once, whether it was merged live or from the queue."""

    def __init__(self, counts: FeedbackCounts, recent: RecentModels) -> None:
        self._counts = counts
        self._recent = recent

    def __call__(self, record: FeedbackRecord, result: MergeResult) -> None:
        if result.status in ("applied", "replaced"):
            model = label_of(self._recent.models_of(record["trace_id"]))
            self._counts.add(record["event"], result.previous, model)


class FeedbackService:
    """Applies feedback records; keeps a reference to every task it starts."""

    def __init__(
        self,
        store: RedisStore,
        writer: Writer,
        timeout: float,
        models: TraceModels | None = None,
        counts: FeedbackCounts | None = None,
        redact: Prepare | None = None,
    ) -> None:
        self._store = store
        self._redact = redact
        self._writer = writer
        self._timeout = timeout
        self._models = models
        self._tasks: set[asyncio.Task[str]] = set()
        self.counts = counts if counts is not None else FeedbackCounts()

    def span_recorded(self, trace_id: str, model: str | None) -> None:
        """A span of this trace was handed to the writer: remember its model for the label."""
        if self._models is not None:
            self._models.recent.remember(trace_id, model)

    def start(self, record: FeedbackRecord, model: str | None = None) -> asyncio.Task[str]:
        """Apply in the background (while the upstream call runs); await the task for status.

        ``model`` is the model of the call that carries the feedback, for the metrics."""
        task = asyncio.create_task(self.apply(record, model))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Let merges still running finish (each is bounded by the timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def apply(self, record: FeedbackRecord, model: str | None = None) -> str:
        """``applied``, ``queued`` or ``full``; never raises for Redis trouble.

        While the writer is degraded (Redis down, or older records still in the spool) the
        event goes behind them through the writer, so an old queued vote can never land
        after, and overwrite, a newer one; nor does each call wait out a hanging Redis.
        """
        result = await self._merge_or_queue(record, self._store.merge_feedback)
        if result is None:
            return "queued"
        if result.status == "full":
            return "full"
        if result.status != "duplicate":
            if model is None and self._models is not None:
                model = await self._models.model_of(record["trace_id"])
            self.counts.add(record["event"], result.previous, model)
        return "applied"

    async def _merge_or_queue(self, record: R, merge: Callable[[R], Awaitable[T]]) -> T | None:
        """The one way in for feedback and score records alike: merged now (the merge's
        result), or queued behind the writer (None) while it is degraded or when Redis fails
        or is too slow now. A queued record is replayed later; if this merge did land after
        all, the replay is a no-op. Redaction (a feedback comment, a score's explanation)
        happens here, once, before either way to Redis; it marks the record, so the writer
        does not redact it again."""
        if self._redact is not None:
            self._redact(record)
        if self._degraded():
            self._writer.submit(record)
            return None
        try:
            return await asyncio.wait_for(merge(record), self._timeout)
        except (StoreUnavailable, TimeoutError):
            self._writer.submit(record)
            return None

    def _degraded(self) -> bool:
        """Redis is away, or older records still wait in the spool: new ones go behind them."""
        return not self._writer.redis_ok or self._writer.spool_bytes > 0

    async def apply_score(self, record: ScoreRecord) -> str:
        """An evaluator score, on the same path as feedback (``_merge_or_queue``, so what is
        done to feedback records on their way in is done to scores too): ``applied``,
        ``queued``, ``full`` (the trace holds the maximum of scores) or ``no_trace``; never
        raises for Redis trouble. A queued score is applied later even if its trace is not
        recorded yet."""
        result = await self._merge_or_queue(record, self._store.merge_score)
        if result is None:
            return "queued"
        return result.status if result.status in ("full", "no_trace") else "applied"
