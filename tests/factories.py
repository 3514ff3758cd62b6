"""Records as the proxy builds them, for tests that write to the store directly."""

from __future__ import annotations

import time
from typing import Any

from proxy.core.records import iso_from_ms
from proxy.feedback.events import feedback_record
from proxy.feedback.parse import Feedback, feedback_tags
from proxy.store.redis_store import RedisStore


def span_record(
    trace_id: str = "tr-1",
    span_id: str = "a" * 16,
    started_ms: int | None = None,
    **trace: Any,
) -> dict[str, Any]:
    """A span record of ``trace_id`` (trace-level fields in ``trace``), started now by default."""
    started_ms = started_ms or int(time.time() * 1000)
    return {
        "id": f"span:{trace_id}:{span_id}",
        "kind": "span",
        "started_ms": started_ms,
        "trace": {"trace_id": trace_id, "attributes": {}, "tags": [], **trace},
        "span": {"span_id": span_id, "started_at": iso_from_ms(started_ms),
                 "model": "gpt-4o-mini", "upstream": "openai", "attributes": {}, "tags": []},
    }  # fmt: skip


def feedback(
    trace_id: str = "tr-1",
    feedback_id: str | None = None,
    span_id: str | None = None,
    tags: tuple[str, ...] = (),
    **attributes: Any,
) -> dict[str, Any]:
    """A feedback record as the proxy builds it."""
    event = Feedback(attributes, (*tags, *feedback_tags(attributes)), span_id, feedback_id)
    return feedback_record(trace_id, event, source="header")


async def make_trace(
    store: RedisStore,
    trace_id: str,
    answer: str = "Paris.",
    started_ms: int | None = None,
    **attributes: Any,
) -> None:
    """A one-span trace asking a question, with optional trace-level feedback."""
    record = span_record(trace_id, "a" * 16, started_ms or int(time.time() * 1000))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    record["span"].update(input={"messages": messages}, output={"text": answer, "tool_calls": []})
    await store.write_batch([record])
    if attributes:
        await store.merge_feedback(feedback(trace_id, **attributes))
