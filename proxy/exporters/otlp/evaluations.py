"""Feedback, score and implicit entries as OTLP log records: the GenAI event
``gen_ai.evaluation.result``, one record per evaluation, on the span it targets.

Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from proxy.core.stream import StreamEntry as Entry
from proxy.core.stream import TraceFacts
from proxy.exporters.otlp.values import attributes, span_id_bytes, trace_id_bytes, unix_nanos

EVALUATION_EVENT = "gen_ai.evaluation.result"
_SEVERITY_INFO = 9  # SeverityNumber.SEVERITY_NUMBER_INFO
# Feedback attribute -> the evaluation it is (gen_ai.evaluation.name), in record order.
_VOTE, _RATING = "user_feedback", "user_feedback_rating"


def evaluation_records(entry: Entry, facts: TraceFacts, observed_ns: int) -> list[LogRecord]:
    """The ``gen_ai.evaluation.result`` records of a feedback, score or implicit entry."""
    target = entry.span_id or facts.latest_span_id
    data = entry.data()
    if entry.type == "feedback":
        found = _feedback_evaluations(data)
        when = data.get("received_at")
    elif entry.type == "score":
        found = [_score_evaluation(data)]
        when = data.get("created_at")
    elif entry.type == "implicit":
        found = [_implicit_evaluation(data)]
        when = data.get("at")
    else:
        return []
    time_ns = unix_nanos(when) or observed_ns
    return [
        LogRecord(
            time_unix_nano=time_ns,
            observed_time_unix_nano=observed_ns,
            severity_number=_SEVERITY_INFO,  # type: ignore[arg-type]
            severity_text="INFO",
            event_name=EVALUATION_EVENT,
            trace_id=trace_id_bytes(entry.trace_id),
            span_id=span_id_bytes(target),
            attributes=attributes(
                [
                    ("event.name", EVALUATION_EVENT),
                    *pairs,
                    ("feedback_proxy.trace_id", entry.trace_id),
                    ("feedback_proxy.span_id", target),
                ]
            ),
        )
        for pairs in found
    ]


Pairs = list[tuple[str, Any]]


def _feedback_evaluations(event: Mapping[str, Any]) -> list[Pairs]:
    """A vote and a rating are two evaluations; an event with neither (a comment, a category)
    still is one, named ``user_feedback`` without a label, so nothing the user said is lost."""
    attrs = event.get("attributes") or {}
    common: Pairs = [
        ("gen_ai.evaluation.explanation", _text(attrs.get("user_feedback_comment"))),
        ("feedback_proxy.category", _text(attrs.get("user_feedback_category"))),
        ("feedback_proxy.reason", _text(attrs.get("feedback_reason"))),
        ("feedback_proxy.source", event.get("source")),
        ("feedback_proxy.feedback_id", event.get("feedback_id")),
        ("feedback_proxy.event_id", event.get("event_id")),
    ]
    found: list[Pairs] = []
    vote, rating = attrs.get(_VOTE), attrs.get(_RATING)
    if isinstance(vote, str):
        found.append([("gen_ai.evaluation.name", _VOTE), ("gen_ai.evaluation.score.label", vote)])
    if isinstance(rating, int | float) and not isinstance(rating, bool):
        found.append(
            [("gen_ai.evaluation.name", _RATING), ("gen_ai.evaluation.score.value", rating)]
        )
    if not found:
        found.append([("gen_ai.evaluation.name", _VOTE)])
    return [pairs + common for pairs in found]


def _score_evaluation(score: Mapping[str, Any]) -> Pairs:
    value = score.get("value")
    return [
        ("gen_ai.evaluation.name", score.get("name")),
        ("gen_ai.evaluation.score.value", float(value) if isinstance(value, int | float) else None),
        ("gen_ai.evaluation.score.label", _text(score.get("label"))),
        ("gen_ai.evaluation.explanation", _text(score.get("explanation"))),
        ("feedback_proxy.score_id", score.get("score_id")),
        ("feedback_proxy.source", score.get("source")),
    ]


def _implicit_evaluation(signal: Mapping[str, Any]) -> Pairs:
    return [
        ("gen_ai.evaluation.name", "implicit_feedback"),
        ("gen_ai.evaluation.score.label", _text(signal.get("signal"))),
        ("feedback_proxy.by_span_id", signal.get("by_span_id")),
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
