"""How a stored trace reads back: Redis replies (bytes) to the JSON of docs/reference.md §5."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.core.records import Score, Span, Trace, iso_from_ms


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def cost_usd(value: bytes | None) -> float | None:
    """The trace's ``cost_pusd`` field as USD; None while no span had a known cost."""
    return None if value is None else round(int(value) / 1e12, 12)


def count(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def assemble_trace(raw: dict[str, Any]) -> Trace:
    """One trace as ``GET /api/traces/{id}`` returns it, spans in the order they started.

    ``raw`` holds what Redis returned for the trace's keys (see ``keys.TraceKeys``).
    """
    trace: dict[bytes, bytes] = raw["trace"]
    return {
        "trace_id": _text(trace.get(b"trace_id")),
        "name": _text(trace.get(b"name")),
        "session_id": _text(trace.get(b"session_id")),
        "user_id": _text(trace.get(b"user_id")),
        "created_at": iso_from_ms(int(trace[b"created_ms"])),
        "updated_at": iso_from_ms(int(trace[b"updated_ms"])),
        "attributes": {k.decode(): orjson.loads(v) for k, v in sorted(raw["attributes"].items())},
        "tags": sorted(t.decode() for t in raw["tags"]),
        "annotation_status": _text(trace.get(b"annotation_status")),
        "feedback": [orjson.loads(e) for e in raw["feedback"] if e is not None],
        "models": sorted(m.decode() for m in raw["models"]),
        "span_count": int(trace.get(b"span_count", 0)),
        "cost_usd": cost_usd(trace.get(b"cost_pusd")),
        "total_tokens": count(trace.get(b"total_tokens")),
        "spans": split_feedback_fields(raw["spans"], raw["span_feedback"]),
        "scores": scores_in_order(raw.get("scores") or []),
    }


def scores_in_order(raw: list[bytes]) -> list[Score]:
    """The trace's evaluator scores, oldest first (ties by score_id)."""
    scores = [orjson.loads(value) for value in raw]
    return sorted(scores, key=lambda s: (s["created_at"], s["score_id"]))


def split_feedback_fields(
    spans: dict[bytes, bytes], span_feedback: dict[bytes, bytes]
) -> list[Span]:
    """Spans in start order, each with the feedback attributes and tags aimed at it."""
    by_span: dict[str, dict[str, Any]] = {}
    for field, value in span_feedback.items():
        kind, span_id, name = field.decode().split("\x1f", 2)
        target = by_span.setdefault(span_id, {"attributes": {}, "tags": [], "implicit": []})
        if kind == "a":
            target["attributes"][name] = orjson.loads(value)
        elif kind == "i":  # an implicit signal found by a later call (regenerated)
            target["implicit"].append(orjson.loads(value))
        else:
            target["tags"].append(name)
    span_list = sorted((orjson.loads(s) for s in spans.values()), key=lambda s: s["started_at"])
    for span in span_list:
        extra = by_span.get(span["span_id"])
        span["implicit"] = span.get("implicit", [])
        if extra:
            span["attributes"] = {**span.get("attributes", {}), **extra["attributes"]}
            span["tags"] = sorted(set(span.get("tags", [])) | set(extra["tags"]))
            span["implicit"] = sorted([*span["implicit"], *extra["implicit"]],
                                      key=lambda signal: signal["at"])  # fmt: skip
    return span_list
