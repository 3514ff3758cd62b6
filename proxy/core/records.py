"""Record shapes: what the recorder and the feedback service hand the writer, and time stamps.

Pure: imports neither aiohttp nor redis. How a stored trace reads back is ``store.trace_read``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, NotRequired, TypedDict

# Trace-level feedback attributes that get an index of their own (dimension name, attribute
# key); also the default columns of a dataset row.
INDEXED_ATTRIBUTES = (
    ("feedback", "user_feedback"),
    ("category", "user_feedback_category"),
    ("reason", "feedback_reason"),
    ("rating", "user_feedback_rating"),
)


def iso_from_ms(ms: float) -> str:
    """``2026-11-26T12:00:00.000Z`` from epoch milliseconds (runs for every span)."""
    seconds, millis = divmod(int(ms), 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# -- The records the writer carries (and spools), as the recorder and the feedback service
# build them. ``kind`` tells them apart. Plain JSON data: what is spooled reads back the same.


class Usage(TypedDict):
    """Token counts as the provider reported them; None when it did not say.

    ``cache_read_tokens``/``cache_write_tokens`` are prompt-cache counts: OpenAI's
    ``cached_tokens`` are part of its ``input_tokens``; Anthropic's ``cache_read_input_tokens``
    and ``cache_creation_input_tokens`` are not (its ``input_tokens`` are the uncached rest).
    Spans stored before these fields existed lack them."""

    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: NotRequired[int | None]
    cache_write_tokens: NotRequired[int | None]


class Output(TypedDict):
    text: str | None
    tool_calls: list[dict[str, Any]]


class ImplicitSignal(TypedDict):
    """What a user did rather than said (docs/reference.md §12), kept on the span it concerns:
    ``regenerated`` (the same input again: ``by_span_id`` is the later call) or ``stopped``
    (the client closed the stream before the upstream finished; ``by_span_id`` is None)."""

    signal: Literal["regenerated", "stopped"]
    at: str
    by_span_id: str | None


class Span(TypedDict):
    """One proxied call, as ``GET /api/traces/{id}`` shows it (docs/reference.md §5)."""

    span_id: str
    parent_span_id: str | None
    upstream: str
    method: str
    path: str
    status: int | None
    started_at: str
    duration_ms: float
    ttft_ms: float | None
    stream: bool
    model: str | None
    response_model: str | None
    finish_reason: str | None
    usage: Usage | None
    raw_usage: dict[str, Any] | None
    # USD from genai-prices (proxy.recording.pricing), set when the span is written; None
    # when the model or the usage is unknown to the price data.
    cost_usd: NotRequired[float | None]
    input: Any
    output: Output | None
    input_truncated: NotRequired[bool]
    output_truncated: NotRequired[bool]
    request_bytes: int
    response_bytes: int
    error: str | None
    attributes: dict[str, Any]
    tags: list[str]
    client_span_id: NotRequired[str]
    implicit: NotRequired[list[ImplicitSignal]]
    # How many values of each kind redaction replaced in input and output ({} = none found);
    # absent when redaction is off (docs/privacy.md).
    redacted: NotRequired[dict[str, int]]


class SpanTrace(TypedDict):
    """What one call says about its trace (merged into the trace record)."""

    trace_id: str
    name: str | None
    session_id: str | None
    user_id: str | None
    attributes: dict[str, Any]
    tags: list[str]


class SpanRecord(TypedDict):
    id: str  # span:<trace_id>:<span_id>, the writer's idempotency key
    kind: Literal["span"]
    started_ms: int
    trace: SpanTrace
    span: Span
    # SHA-256 of the request's input messages, for regeneration (absent with [implicit] off)
    input_hash: NotRequired[str]


class FeedbackEvent(TypedDict):
    """One entry of a trace's feedback history."""

    event_id: str
    feedback_id: str | None
    span_id: str | None
    received_at: str
    source: str  # header, route or api
    attributes: dict[str, Any]
    tags: list[str]
    redacted: NotRequired[dict[str, int]]  # values replaced in the comment, per kind


class FeedbackRecord(TypedDict):
    id: str  # fb:<trace_id>:<event_key>, the writer's idempotency key
    kind: Literal["feedback"]
    trace_id: str
    event_key: str  # id:<X-Feedback-Id> (a later event with it replaces this one) or ev:<uuid>
    event: FeedbackEvent
    delete_attributes: list[str]
    delete_tags: list[str]


class Score(TypedDict):
    """One evaluator result on a trace (or one of its spans), docs/reference.md §12."""

    score_id: str
    name: str
    value: float | None
    label: str | None
    explanation: str | None
    span_id: str | None
    source: str  # "api"
    created_at: str
    redacted: NotRequired[dict[str, int]]  # values replaced in the explanation, per kind


class ScoreRecord(TypedDict):
    id: str  # sc:<trace_id>:<score_id>, the writer's idempotency key
    kind: Literal["score"]
    trace_id: str
    score: Score


Record = SpanRecord | FeedbackRecord | ScoreRecord


# -- What the store reads back.


class TraceSummary(TypedDict):
    """A trace in a list: ``GET /api/traces/{trace_id}`` adds its feedback history and spans."""

    trace_id: str | None
    name: str | None
    session_id: str | None
    user_id: str | None
    created_at: str
    updated_at: str
    attributes: dict[str, Any]
    tags: list[str]
    annotation_status: str | None
    models: list[str]
    span_count: int
    # Sums over the spans whose cost (tokens) is known; None while none is.
    cost_usd: float | None
    total_tokens: int | None


class Trace(TraceSummary):
    """A trace with all its spans and its feedback history (docs/reference.md §5)."""

    feedback: list[FeedbackEvent]
    spans: list[Span]
    scores: list[Score]


class DatasetRow(TypedDict):
    """One row of a dataset: the trace's latest answer and the mapped columns."""

    row_id: str
    trace_id: str
    input: Any
    output: Output | None
    feedback: dict[str, Any]  # mapped column name -> value
    annotation_status: str
    annotation: dict[str, Any] | None
    added_at: str
