"""The merge record of one feedback event, built from a request's headers, a body or a PATCH.

Pure: the record is what the store merges and what the writer spools while Redis is away,
so it is plain JSON data. ``request_feedback`` decides which of a request's headers and trace
attributes are feedback.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from proxy.config import FeedbackSettings
from proxy.core.errors import PayloadTooLarge
from proxy.core.records import FeedbackRecord, iso_from_ms
from proxy.feedback.parse import (
    FEEDBACK_KEYS,
    Feedback,
    FeedbackRules,
    feedback_tags,
    parse_feedback_headers,
    validate_attributes,
)
from proxy.tracing.context import TraceContext


def feedback_record(
    trace_id: str,
    feedback: Feedback,
    source: str,
    delete_attributes: tuple[str, ...] = (),
    delete_tags: tuple[str, ...] = (),
) -> FeedbackRecord:
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


def feedback_answer(trace_id: str, status: str, settings: FeedbackSettings) -> dict[str, Any]:
    """The answer to feedback sent without a model call (``POST /feedback``, admin PATCH):
    ``{trace_id, applied, status}``; a full history is a 413 naming the cap."""
    if status == "full":
        cap = settings.max_events_per_trace
        raise PayloadTooLarge(
            f"Feedback history of trace {trace_id} is full "
            f"(feedback.max_events_per_trace = {cap}); nothing was stored.",
            code="feedback_history_full",
        )
    return {"trace_id": trace_id, "applied": status == "applied", "status": status}
