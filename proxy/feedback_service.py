"""Feedback on its way in: from headers or a body to a merge record, applied or queued.

The I/O shell around the pure parser (``feedback.py``): it builds the record the store merges
(and the writer spools when Redis is away), applies it within the writer's timeout, and
reports ``applied``, ``queued`` (spooled: applied later, exactly once) or ``full`` (the
trace's history cap is reached; nothing changed).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from proxy.feedback import (
    FEEDBACK_KEYS,
    Feedback,
    FeedbackRules,
    feedback_tags,
    parse_feedback_headers,
    validate_attributes,
)
from proxy.metrics import ModelLabels
from proxy.records import iso_from_ms
from proxy.settings import Settings
from proxy.store.errors import StoreUnavailable
from proxy.store.redis_store import RedisStore
from proxy.trace_context import TraceContext
from proxy.trace_models import TraceModels
from proxy.writer import Writer


def feedback_record(
    trace_id: str,
    feedback: Feedback,
    source: str,
    delete_attributes: tuple[str, ...] = (),
    delete_tags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The record the store merges: one event, keyed by X-Feedback-Id when there is one."""
    event_id = uuid.uuid4().hex
    key = f"id:{feedback.feedback_id}" if feedback.feedback_id else f"ev:{event_id}"
    return {
        "id": f"fb:{trace_id}:{key}",
        "kind": "feedback",
        "trace_id": trace_id,
        "event_key": key,
        "event": {
            "event_id": event_id,
            "feedback_id": feedback.feedback_id,
            "span_id": feedback.span_id,
            "received_at": iso_from_ms(time.time() * 1000),
            "source": source,
            "attributes": feedback.attributes,
            "tags": list(feedback.tags),
        },
        "delete_attributes": list(delete_attributes),
        "delete_tags": list(delete_tags),
    }


def split_feedback_attributes(
    attributes: Mapping[str, Any], rules: FeedbackRules, sources: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain attributes, validated feedback attributes) of the trace-attribute headers.

    Feedback keys sent as attributes (Adaline's ``adaline-trace-attributes:
    {"user_feedback": "negative"}``) are feedback, held to the same rules as the headers;
    an error names the header the key came from (``sources``).
    """
    if not attributes:
        return {}, {}
    plain = {k: v for k, v in attributes.items() if k not in FEEDBACK_KEYS}
    feedback: dict[str, Any] = {}
    now = datetime.now(UTC)
    for key in FEEDBACK_KEYS.intersection(attributes):
        source = sources.get(key, "X-Trace-Attributes")
        feedback.update(validate_attributes({key: attributes[key]}, rules, now, source))
    if feedback:
        feedback = validate_attributes(feedback, rules, now, "attributes", default_timestamp=True)
    return plain, feedback


def request_feedback(
    headers: Mapping[str, str], context: TraceContext, rules: FeedbackRules
) -> tuple[dict[str, Any], Feedback | None]:
    """(plain trace attributes, the request's feedback or None); raises InvalidFeedback.

    Our X-Feedback-* headers win over the same keys sent as trace attributes.
    """
    plain, from_attributes = split_feedback_attributes(
        context.attributes, rules, context.attribute_sources
    )
    from_headers = parse_feedback_headers(headers, rules, datetime.now(UTC))
    if from_headers is None and not from_attributes:
        return plain, None
    merged = {**from_attributes, **(from_headers.attributes if from_headers else {})}
    return plain, Feedback(
        attributes=merged,
        tags=feedback_tags(merged),
        span_id=from_headers.span_id if from_headers else None,
        feedback_id=from_headers.feedback_id if from_headers else None,
    )


def token_secret(settings: Settings) -> bytes:
    """The configured secret, or a random one for this process (set it for several replicas)."""
    secret = settings.feedback.token_secret
    return secret.encode() if secret else os.urandom(32)


# Feedback attributes counted for metrics: (label, attribute key).
COUNTED = (
    ("value", "user_feedback"),
    ("rating", "user_feedback_rating"),
    ("category", "user_feedback_category"),
    ("reason", "feedback_reason"),
)


class FeedbackCounts:
    """Feedback events by value, rating, category, reason and model, as merged by this process.

    A replaced event (same X-Feedback-Id) moves its count instead of adding one, so a changed
    vote is one vote (the old value is taken off under the new event's model). Events that
    were queued (Redis away) and merged later by the writer's replay are not counted here.
    Label values are bounded: values, categories and reasons are validated against their
    taxonomies, ratings are rounded to the nearest half point, models go through
    ``ModelLabels``. Kept for the metrics endpoint.
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._model_label = ModelLabels()

    def add(
        self, event: dict[str, Any], previous: dict[str, Any] | None, model: str | None = None
    ) -> None:
        label = self._model_label(model)
        if previous is not None:
            self._count(previous, label, -1)
        self._count(event, label, +1)

    def snapshot(self) -> list[list[Any]]:
        """Rows of ``[[label, value, model], [count]]`` for the metrics snapshot."""
        return [[list(key), [count]] for key, count in self.counts.items()]

    def _count(self, event: dict[str, Any], model: str, step: int) -> None:
        attrs = event.get("attributes") or {}
        for label, key in COUNTED:
            value = attrs.get(key)
            if value is not None:
                text = _rating_label(value) if label == "rating" else str(value)
                if text is not None:
                    self.counts[(label, text, model)] += step


def _rating_label(rating: Any) -> str | None:
    """``"4"``, ``"3.5"``: to the nearest half point, so ratings have at most nine labels."""
    if isinstance(rating, bool) or not isinstance(rating, int | float | str):
        return None
    try:
        halves = math.floor(float(rating) * 2 + 0.5)
    except (ValueError, OverflowError):  # stored by an older version: not a number
        return None
    return str(halves // 2) if halves % 2 == 0 else str(halves / 2)


class FeedbackService:
    """Applies feedback records; keeps a reference to every task it starts."""

    def __init__(
        self,
        store: RedisStore,
        writer: Writer,
        timeout: float,
        models: TraceModels | None = None,
    ) -> None:
        self._store = store
        self._writer = writer
        self._timeout = timeout
        self._models = models
        self._tasks: set[asyncio.Task[str]] = set()
        self.counts = FeedbackCounts()

    def start(self, record: dict[str, Any], model: str | None = None) -> asyncio.Task[str]:
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

    async def apply(self, record: dict[str, Any], model: str | None = None) -> str:
        """``applied``, ``queued`` or ``full``; never raises for Redis trouble.

        While the writer is degraded (Redis down, or older records still in the spool) the
        event goes behind them through the writer, so an old queued vote can never land
        after, and overwrite, a newer one; nor does each call wait out a hanging Redis.
        """
        if not self._writer.redis_ok or self._writer.spool_bytes > 0:
            self._writer.submit(record)
            return "queued"
        try:
            result = await asyncio.wait_for(self._store.merge_feedback(record), self._timeout)
        except (StoreUnavailable, TimeoutError):
            # Replayed later; if this merge did land after all, the replay is a no-op.
            self._writer.submit(record)
            return "queued"
        if result.status == "full":
            return "full"
        if result.status != "duplicate":
            if model is None and self._models is not None:
                model = await self._models.model_of(record["trace_id"])
            self.counts.add(record["event"], result.previous, model)
        return "applied"
