"""Stream entries to OTLP messages (plain data, no server): attribute by attribute."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.core.stream import StreamEntry, TraceFacts
from proxy.exporters.otlp.mapping import (
    EVALUATION_EVENT,
    Encoder,
    Target,
    evaluation_records,
    span_message,
    unix_nanos,
)
from tests.otlp_receiver import attrs

SPAN_ID = "a1b2c3d4e5f60718"
TARGETS = {"openai": Target("api.openai.com", 443)}
FACTS = TraceFacts(name="checkout", session_id="s-1", user_id="u-1", tags=("beta", "vip"))


def span_data(**changes: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "span_id": SPAN_ID, "parent_span_id": None, "upstream": "openai", "method": "POST",
        "path": "/v1/chat/completions", "status": 200, "started_at": "2026-11-26T12:00:00.250Z",
        "duration_ms": 812.5, "ttft_ms": None, "stream": False, "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18", "finish_reason": "stop",
        "usage": {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52},
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "output": {"text": "Hello", "tool_calls": []}, "error": None,
        "attributes": {}, "tags": [],
    }  # fmt: skip
    span.update(changes)
    return span


def entry(kind: str, data: dict[str, Any], trace_id: str = "my-trace", span_id: str | None = None):  # type: ignore[no-untyped-def]
    return StreamEntry("1-0", kind, trace_id, span_id, orjson.dumps(data))


def test_span_ids_times_kind_and_name() -> None:
    """The trace-id is the W3C one derived from the proxy's custom ID; real start and end."""
    span = span_message(entry("span", span_data()), FACTS, TARGETS, content=False)
    derived = hashlib.sha256(b"my-trace").hexdigest()[:32]
    assert span.trace_id.hex() == derived
    assert span.span_id.hex() == SPAN_ID
    assert span.parent_span_id == b""
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.name == "chat gpt-4o-mini"
    assert span.start_time_unix_nano == unix_nanos("2026-11-26T12:00:00.250Z")
    assert span.start_time_unix_nano == 1795694400250 * 1_000_000
    assert span.end_time_unix_nano - span.start_time_unix_nano == 812_500_000
    assert span.status.code == Status.STATUS_CODE_UNSET


def test_span_attributes_follow_the_genai_conventions() -> None:
    span = span_message(entry("span", span_data(cost_usd=0.0012)), FACTS, TARGETS, False)
    assert attrs(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 40,
        "server.address": "api.openai.com",
        "server.port": 443,
        "http.request.method": "POST",
        "http.response.status_code": 200,
        "feedback_proxy.upstream": "openai",
        "feedback_proxy.stream": False,
        "feedback_proxy.cost_usd": 0.0012,
        "session.id": "s-1",
        "user.id": "u-1",
        "feedback_proxy.trace_id": "my-trace",
        "feedback_proxy.trace_name": "checkout",
        "feedback_proxy.tags": ["beta", "vip"],
    }


def test_unknown_usage_and_cost_are_absent_never_zero() -> None:
    data = span_data(usage={"input_tokens": None, "output_tokens": None, "total_tokens": None})
    data["cost_usd"] = None
    found = attrs(span_message(entry("span", data), TraceFacts(), TARGETS, False).attributes)
    absent = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "session.id",
              "feedback_proxy.cost_usd", "user.id", "feedback_proxy.tags")  # fmt: skip
    for key in absent:
        assert key not in found


def test_failed_call_has_error_status() -> None:
    for data, error_type in (
        (span_data(status=500, finish_reason=None, usage=None), "500"),
        (span_data(status=None, error="upstream_timeout"), "upstream_timeout"),
        (span_data(error="upstream_broken"), "upstream_broken"),
        (span_data(status=None, error="upstream_unreachable"), "upstream_unreachable"),
        # a provider's own error text is content: the status code stands for it
        (span_data(status=429, error="rate_limit_error: key sk-abc over quota"), "429"),
        (span_data(status=200, error="overloaded: try later"), "_OTHER"),
    ):
        span = span_message(entry("span", data), FACTS, TARGETS, False)
        assert span.status.code == Status.STATUS_CODE_ERROR
        assert attrs(span.attributes)["error.type"] == error_type
        assert span.status.message == error_type


def test_parent_from_the_request_and_custom_parents_hashed() -> None:
    own = span_message(
        entry("span", span_data(parent_span_id="00f067aa0ba902b7")), FACTS, {}, False
    )
    assert own.parent_span_id.hex() == "00f067aa0ba902b7"
    custom = span_message(entry("span", span_data(parent_span_id="step-3")), FACTS, {}, False)
    assert custom.parent_span_id.hex() == hashlib.sha256(b"step-3").hexdigest()[:16]


def test_content_only_when_asked() -> None:
    without = attrs(span_message(entry("span", span_data()), FACTS, TARGETS, False).attributes)
    assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(without)
    found = attrs(span_message(entry("span", span_data()), FACTS, TARGETS, True).attributes)
    assert found["gen_ai.input.messages"] == '[{"role":"user","content":"hi"}]'
    assert found["gen_ai.output.messages"] == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hello"}],"finish_reason":"stop"}]'
    )


def test_operation_names_per_endpoint_and_unknown_routes() -> None:
    cases = {
        "/v1/completions": ("text_completion", "openai"),
        "/v1/embeddings": ("embeddings", "openai"),
        "/v1/responses": ("chat", "openai"),
        "/v1/messages": ("chat", "anthropic"),
    }
    for path, (operation, provider) in cases.items():
        found = attrs(
            span_message(entry("span", span_data(path=path)), FACTS, {}, False).attributes
        )
        assert (found["gen_ai.operation.name"], found["gen_ai.provider.name"]) == (
            operation,
            provider,
        )
    listing = span_data(method="GET", path="/v1/models", model=None, response_model=None)
    models = span_message(entry("span", listing), FACTS, {}, False)
    assert models.name == "GET"
    assert "gen_ai.operation.name" not in attrs(models.attributes)


def feedback_event(**attributes: Any) -> dict[str, Any]:
    return {
        "event_id": "e1", "feedback_id": "fb-9", "span_id": None,
        "received_at": "2026-11-26T12:00:05.000Z", "source": "header",
        "attributes": attributes, "tags": [],
    }  # fmt: skip


def test_vote_and_rating_are_two_evaluations_on_the_targeted_span() -> None:
    event = feedback_event(
        user_feedback="negative", user_feedback_rating=2, user_feedback_comment="wrong city",
        user_feedback_category="incorrect", feedback_reason="hallucination",
    )  # fmt: skip
    records = evaluation_records(entry("feedback", event, span_id=SPAN_ID), TraceFacts(), 7)
    assert [r.event_name for r in records] == [EVALUATION_EVENT, EVALUATION_EVENT]
    assert all(r.span_id.hex() == SPAN_ID for r in records)
    assert all(r.trace_id.hex() == hashlib.sha256(b"my-trace").hexdigest()[:32] for r in records)
    assert records[0].time_unix_nano == unix_nanos("2026-11-26T12:00:05.000Z")
    assert records[0].observed_time_unix_nano == 7
    common = {
        "event.name": EVALUATION_EVENT,
        "gen_ai.evaluation.explanation": "wrong city",
        "feedback_proxy.category": "incorrect",
        "feedback_proxy.reason": "hallucination",
        "feedback_proxy.source": "header",
        "feedback_proxy.feedback_id": "fb-9",
        "feedback_proxy.event_id": "e1",
        "feedback_proxy.trace_id": "my-trace",
        "feedback_proxy.span_id": SPAN_ID,
    }
    assert attrs(records[0].attributes) == {
        **common, "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.label": "negative",
    }  # fmt: skip
    assert attrs(records[1].attributes) == {
        **common, "gen_ai.evaluation.name": "user_feedback_rating",
        "gen_ai.evaluation.score.value": 2,
    }  # fmt: skip


def test_trace_level_feedback_targets_the_latest_span() -> None:
    facts = TraceFacts(latest_span_id="ffffeeeeddddcccc")
    (record,) = evaluation_records(
        entry("feedback", feedback_event(user_feedback="positive")), facts, 1
    )
    assert record.span_id.hex() == "ffffeeeeddddcccc"
    (alone,) = evaluation_records(
        entry("feedback", feedback_event(user_feedback_comment="ok")), facts, 1
    )
    assert attrs(alone.attributes)["gen_ai.evaluation.name"] == "user_feedback"
    assert "gen_ai.evaluation.score.label" not in attrs(alone.attributes)


def test_scores_and_implicit_signals() -> None:
    score = {"score_id": "sc-1", "name": "faithfulness", "value": 0.25, "label": "fail",
             "explanation": "made up a date", "span_id": SPAN_ID, "source": "judge",
             "created_at": "2026-11-26T12:01:00.000Z"}  # fmt: skip
    (scored,) = evaluation_records(entry("score", score, span_id=SPAN_ID), TraceFacts(), 1)
    found = attrs(scored.attributes)
    assert {k: found[k] for k in found if k.startswith("gen_ai")} == {
        "gen_ai.evaluation.name": "faithfulness",
        "gen_ai.evaluation.score.value": 0.25,
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.evaluation.explanation": "made up a date",
    }
    assert (found["feedback_proxy.score_id"], found["feedback_proxy.source"]) == ("sc-1", "judge")
    assert scored.time_unix_nano == unix_nanos("2026-11-26T12:01:00.000Z")
    signal = {"signal": "regenerated", "at": "2026-11-26T12:02:00.000Z", "by_span_id": "b" * 16}
    (implicit,) = evaluation_records(entry("implicit", signal, span_id=SPAN_ID), TraceFacts(), 1)
    found = attrs(implicit.attributes)
    assert found["gen_ai.evaluation.name"] == "implicit_feedback"
    assert found["gen_ai.evaluation.score.label"] == "regenerated"
    assert found["feedback_proxy.by_span_id"] == "b" * 16
    assert implicit.span_id.hex() == SPAN_ID


def test_batch_keeps_stream_order_and_skips_unknown_types() -> None:
    entries = [
        entry("span", span_data()),
        entry("feedback", feedback_event(user_feedback="positive"), span_id=SPAN_ID),
        entry("something-new", {}),
        entry("span", span_data(span_id="1111222233334444")),
    ]
    encoder = Encoder(TARGETS, False, "svc", "1.2")
    spans = encoder.spans(entries, {"my-trace": FACTS}).resource_spans[0]
    assert attrs(spans.resource.attributes)["service.name"] == "svc"
    assert [s.span_id.hex() for s in spans.scope_spans[0].spans] == [SPAN_ID, "1111222233334444"]
    logs = encoder.logs(entries, {"my-trace": FACTS}, 1).resource_logs[0]
    assert len(logs.scope_logs[0].log_records) == 1


def test_spans_of_one_shape_share_attributes_but_keep_their_own() -> None:
    """The encoder reuses the encoded attributes of a span shape: a span must never carry
    another's model, usage, tags or trace ID."""
    encoder = Encoder(TARGETS, False, "svc", "1")
    first = span_data(cost_usd=0.5)
    again = span_data(span_id="1111222233334444")
    other = span_data(model="gpt-4o", usage={"input_tokens": 1, "output_tokens": 2})
    entries = [entry("span", first), entry("span", again, trace_id="t2"), entry("span", other)]
    request = encoder.spans(entries, {"t2": TraceFacts(tags=("x",))})
    a, b, c = (attrs(s.attributes) for s in request.resource_spans[0].scope_spans[0].spans)
    assert a["feedback_proxy.cost_usd"] == 0.5
    assert "feedback_proxy.cost_usd" not in b
    assert (a["feedback_proxy.trace_id"], b["feedback_proxy.trace_id"]) == ("my-trace", "t2")
    assert "feedback_proxy.tags" not in a
    assert b["feedback_proxy.tags"] == ["x"]
    assert (c["gen_ai.request.model"], c["gen_ai.usage.input_tokens"]) == ("gpt-4o", 1)
    assert (a["gen_ai.request.model"], a["gen_ai.usage.input_tokens"]) == ("gpt-4o-mini", 12)
