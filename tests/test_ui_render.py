"""The Monitor page's templates and pure helpers with record shapes other features add
(trace ``cost_usd``/``total_tokens``/``scores``, span ``implicit``, stats buckets with
``calls``/``cost_usd``/``regenerated``/``stopped``, an agreement answer): shown when present,
and no crash when absent. Rendered from the package's own Jinja environment, no server."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from proxy.admin.ui.charts import trend_charts
from proxy.admin.ui.forms import (
    annotation_from_text,
    annotation_text,
    columns_from_form,
    feedback_body,
    filled,
)
from proxy.admin.ui.present import (
    fmt_cost,
    messages,
    pretty_json,
    span_inputs,
    timeline,
    tool_calls,
)
from proxy.admin.ui.routes import mount_ui
from proxy.store.stats import StatsQuery


def _env() -> jinja2.Environment:
    app = web.Application()
    mount_ui(app)
    return aiohttp_jinja2.get_env(app)


SHARED = {"csrf": "c", "auth_on": False, "signed_in": False, "path": "/ui/x"}


def _trace(**extra: Any) -> dict[str, Any]:
    span = {
        "span_id": "s1", "parent_span_id": None, "upstream": "openai", "method": "POST",
        "path": "/v1/chat/completions", "status": 200, "started_at": "2026-12-01T10:00:00.000Z",
        "duration_ms": 500.0, "ttft_ms": 90.0, "stream": True, "model": "gpt-4o",
        "finish_reason": "stop", "usage": None, "input": None, "output": None, "error": None,
        "attributes": {}, "tags": [],
    }  # fmt: skip
    span.update(extra.pop("span", {}))
    return {
        "trace_id": "t1", "name": None, "session_id": None, "user_id": None,
        "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-01T10:00:01.000Z",
        "attributes": {}, "tags": [], "annotation_status": None, "models": ["gpt-4o"],
        "span_count": 1, "feedback": [], "spans": [span], **extra,
    }  # fmt: skip


def _render_trace(trace: dict[str, Any]) -> str:
    context = {
        **SHARED, "trace": trace, "timeline": timeline(trace["spans"]), "notice": None,
        "inputs": span_inputs(trace["spans"]),
        "notice_dataset": None, "datasets": [], "sources": [], "column_rows": [("", "")],
        "feedback_form": {}, "dataset_value": "", "categories": [], "reasons": [],
    }  # fmt: skip
    return _env().get_template("trace.html").render(context)


def test_a_trace_without_the_optional_fields_renders() -> None:
    """A bare record (no cost, tokens, scores or implicit signals) shows dashes, no error."""
    html = _render_trace(_trace())
    assert "Evaluator scores" not in html
    assert "Implicit signals" not in html


def test_a_trace_with_scores_cost_and_implicit_signals_shows_them() -> None:
    """Cost and tokens in the header and per span, the score table, the implicit signal."""
    trace = _trace(
        cost_usd=0.0123, total_tokens=4321,
        scores=[{"score_id": "x", "name": "faithfulness", "value": 0.25, "label": "fail",
                 "explanation": "<b>made up</b>", "span_id": "s1", "source": "judge",
                 "created_at": "2026-12-01T10:05:00.000Z"}],
        span={"cost_usd": 0.0123, "implicit": [{"signal": "stopped",
              "at": "2026-12-01T10:00:02.000Z", "by_span_id": None}]},
    )  # fmt: skip
    html = _render_trace(trace)
    assert "$0.0123" in html
    assert "4,321" in html
    assert "faithfulness" in html
    assert "&lt;b&gt;made up&lt;/b&gt;" in html
    assert "↻ stopped" in html


def test_trends_show_cost_and_implicit_columns_and_agreement_when_present() -> None:
    """Buckets with calls/cost/regenerated/stopped get their columns and a cost chart; an
    agreement answer gets its matrix, statistics and warnings."""
    buckets = [
        {"bucket_start": "2026-12-01T00:00:00.000Z", "traces": 4, "positive": 1, "negative": 2,
         "rating_count": 1, "rating_average": 2.0, "calls": 9, "cost_usd": 0.5,
         "regenerated": 3, "stopped": 1},
        {"bucket_start": "2026-12-02T00:00:00.000Z", "traces": 0, "positive": 0, "negative": 0,
         "rating_count": 0, "rating_average": None, "calls": 0, "cost_usd": None,
         "regenerated": 0, "stopped": 0},
    ]  # fmt: skip
    agreement = {
        "score": "judge", "n": 12, "agreement": 0.75, "cohen_kappa": None,
        "matrix": {"positive": {"pass": 5, "fail": 1}, "negative": {"pass": 2, "fail": 4}},
        "negative_precision": 0.8, "negative_recall": 0.66, "agreement_ci": [0.5, 0.9],
        "ratings": {"n": 3, "pearson": None, "spearman": 0.5}, "warnings": ["n < 30"],
    }  # fmt: skip
    query = StatsQuery("day", 0, 1)
    context = {
        **SHARED, "params": {}, "group_options": ["model"], "score": "judge", "threshold": "",
        "charts": trend_charts(buckets, None), "buckets": buckets,
        "columns": ["calls", "cost_usd", "regenerated", "stopped"], "error": None,
        "agreement": agreement, "query": query, "agreement_error": None,
    }  # fmt: skip
    html = _env().get_template("trends.html").render(context)
    assert "Cost per bucket (USD)" in html
    assert "Regenerated" in html
    assert "$0.5000" in html
    assert "Cohen" in html
    assert "n &lt; 30" in html
    assert "0.75 <span" in html
    assert "(95 %: 0.50 to 0.90)" in html


def test_charts_read_in_greyscale_and_skip_missing_values() -> None:
    """Negative bars are hatched, lines differ by dash and marker, a bucket without votes has
    no point on the share line, and an empty range says so."""
    buckets = [
        {"bucket_start": "2026-12-01T00:00:00.000Z", "positive": 3, "negative": 1,
         "rating_average": 4.0},
        {"bucket_start": "2026-12-02T00:00:00.000Z", "positive": 0, "negative": 0,
         "rating_average": None},
    ]  # fmt: skip
    votes, share, rating = trend_charts(buckets, None)
    assert [s.hatched for s in votes.series] == [False, True]
    assert len(share.series[0].marks) == 1
    assert share.y_ticks[-1][1] == "100%"
    assert [label for _, label in rating.y_ticks] == ["0", "1", "2", "3", "4", "5"]
    grouped = trend_charts([{**b, "model": m} for b in buckets for m in ("a", "b")], "model")
    assert len({(s.dash, s.shape) for s in grouped[1].series}) == 2
    assert trend_charts([], None)[0].empty


def test_messages_tool_calls_and_json_are_read_from_every_provider_shape() -> None:
    """OpenAI chat (parts and tool calls), Anthropic (system + blocks), Responses input."""
    chat = messages({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                                  {"role": "assistant", "tool_calls": [{"id": 1}]}]})  # fmt: skip
    assert [(m.role, [p.kind for p in m.parts]) for m in chat] == [
        ("user", ["text"]),
        ("assistant", ["json"]),
    ]
    anthropic = messages({"system": "be kind", "messages": [{"role": "user", "content": "q"}]})
    assert [m.role for m in anthropic] == ["system", "user"]
    assert [m.role for m in messages({"input": "just text", "instructions": "x"})] == [
        "instructions",
        "user",
    ]
    calls = tool_calls([
        {"function": {"name": "f", "arguments": '{"a": 1}'}},
        {"name": "g", "input": {"b": 2}},
        {"type": "function_call", "name": "h", "arguments": "not json"},
    ])  # fmt: skip
    assert [(c.name, c.arguments) for c in calls] == [
        ("f", '{\n  "a": 1\n}'),
        ("g", '{\n  "b": 2\n}'),
        ("h", "not json"),
    ]
    assert pretty_json({"k": [1]}) == '{\n  "k": [\n    1\n  ]\n}'


def test_forms_become_the_apis_inputs() -> None:
    """Empty fields are left out, the reviewer form is a PATCH body, column rows a mapping,
    the annotation text an object (and back)."""
    assert filled([("feedback", "negative"), ("model", " "), ("tag", "a"), ("tag", "b")]) == {
        "feedback": ["negative"],
        "tag": ["a", "b"],
    }
    assert feedback_body(
        {"user_feedback": "negative", "user_feedback_rating": " 2 ", "tags": "a, ,b"}
    ) == {
        "attributes": {"user_feedback": "negative", "user_feedback_rating": "2"},
        "tags": ["a", "b"],
    }
    assert feedback_body({}) == {}
    assert columns_from_form(["a", "", ""], ["trace.name", "", "span.model"]) == {
        "a": "trace.name",
        "": "span.model",
    }
    assert columns_from_form(["", ""], ["", ""]) is None
    assert annotation_from_text('{"x": 1}') == {"x": 1}
    assert annotation_from_text("[1]") == {"text": "[1]"}
    assert annotation_from_text("  ") is None
    assert annotation_text({"text": "hi"}) == "hi"
    assert annotation_text(None) == ""
    assert annotation_from_text(annotation_text({"x": 1})) == {"x": 1}


def test_a_conversation_shows_each_message_once() -> None:
    """A chat resends its history: later spans show a message already shown (in an input, or
    as an answer) as one line pointing at the span that shows it."""
    system = {"role": "system", "content": "be brief"}
    first = {"role": "user", "content": "one"}
    spans = [
        {"span_id": "a", "input": {"messages": [system, first]}, "output": {"text": "1"}},
        {"span_id": "b", "input": {"messages": [system, first,
                                               {"role": "assistant", "content": "1"},
                                               {"role": "user", "content": "two"}]}},
    ]  # fmt: skip
    shown = span_inputs(spans)
    assert [m.role for m in shown[0]] == ["system", "user"]  # type: ignore[union-attr]
    repeat, new = shown[1]
    assert (repeat.count, repeat.span_index, repeat.span_id) == (3, 1, "a")  # type: ignore[union-attr]
    assert new.parts[0].text == "two"  # type: ignore[union-attr]


def test_costs_are_never_rounded_to_zero_or_made_up() -> None:
    """A tiny known cost keeps two significant digits; an unknown one is a dash, not $0."""
    assert fmt_cost(0.0000472) == "$0.000047"
    assert fmt_cost(0.0123) == "$0.0123"
    assert fmt_cost(12.5) == "$12.50"
    assert fmt_cost(0) == "$0"
    assert fmt_cost(None) == "—"
