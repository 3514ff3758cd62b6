"""Feedback on its way in: from headers or a body to a merge record, applied or queued.

The I/O shell around the pure parser (``feedback.py``): it builds the record the store merges
(and the writer spools when Redis is away), applies it within the writer's timeout, and
reports ``applied``, ``queued`` (spooled: applied later, exactly once) or ``full`` (the
trace's history cap is reached; nothing changed).
"""

from __future__ import annotations

import asyncio
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
from proxy.records import iso_from_ms
from proxy.settings import Settings
from proxy.store.errors import StoreUnavailable
from proxy.store.redis_store import RedisStore
from proxy.trace_context import TraceContext
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
    """Feedback events by value, rating, category and reason, as merged by this process.

    A replaced event (same X-Feedback-Id) moves its count instead of adding one, so a changed
    vote is one vote. Events that were queued (Redis away) and merged later by the writer's
    replay are not counted here. Kept for the metrics endpoint.
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, event: dict[str, Any], previous: dict[str, Any] | None) -> None:
        if previous is not None:
            self._count(previous, -1)
        self._count(event, +1)

    def _count(self, event: dict[str, Any], step: int) -> None:
        attrs = event.get("attributes") or {}
        for label, key in COUNTED:
            if attrs.get(key) is not None:
                self.counts[(label, str(attrs[key]))] += step


class FeedbackService:
    """Applies feedback records; keeps a reference to every task it starts."""

    def __init__(self, store: RedisStore, writer: Writer, timeout: float) -> None:
        self._store = store
        self._writer = writer
        self._timeout = timeout
        self._tasks: set[asyncio.Task[str]] = set()
        self.counts = FeedbackCounts()

    def start(self, record: dict[str, Any]) -> asyncio.Task[str]:
        """Apply in the background (while the upstream call runs); await the task for status."""
        task = asyncio.create_task(self.apply(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Let merges still running finish (each is bounded by the timeout)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def apply(self, record: dict[str, Any]) -> str:
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
            self.counts.add(record["event"], result.previous)
        return "applied"
