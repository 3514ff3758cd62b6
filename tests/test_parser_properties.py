"""Properties of every pure parser of untrusted input: feedback headers and JSON attributes,
trace headers and their three dialects, admin query parameters, PATCH, dataset and score
bodies.

Whatever arrives, a parser returns a value or raises the one 400 error of its family
(``BadRequest``), never anything else (which would be a 500 with a traceback); what it accepts
reads back as sent. Header values include bytes that are not UTF-8, as aiohttp hands them over
(decoded with ``surrogateescape``)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.admin.api.datasets import parse_filter, parse_row_patch, parse_row_query, parse_trace_ids
from proxy.admin.api.patch import parse_patch
from proxy.admin.params import parse_trace_list
from proxy.config import FeedbackSettings
from proxy.core.errors import BadRequest
from proxy.feedback.parse import (
    FEEDBACK_HEADERS,
    FeedbackRules,
    parse_feedback_headers,
    validate_attributes,
)
from proxy.feedback.scores import parse_score
from proxy.tracing.context import CONSUMED_HEADERS, parse_trace_context
from tests.properties import examples

RULES = FeedbackRules.from_settings(FeedbackSettings())
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# What a header value can be once aiohttp decoded it: any text, or raw bytes that are not
# UTF-8 (kept as surrogates), or something close to a valid value.
raw_bytes = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
header_value = st.one_of(
    st.text(max_size=60),
    raw_bytes,
    st.sampled_from(["positive", " Negative ", "4", "3.5", "0", "6", "2026-12-01T11:00:00Z",
                     "incorrect", "other", "abc", "a,b", '["x"]', '{"k": 1}', "%ZZ", "%C3%A9",
                     "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "", " "]),
)  # fmt: skip
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


def parsed_or_400(parse: Any, *args: Any, **kwargs: Any) -> tuple[Any, BadRequest | None]:
    """(the parsed value, None) or (None, the 400 it raised); any other exception propagates."""
    try:
        return parse(*args, **kwargs), None
    except BadRequest as error:
        return None, error


def headers_from(names: list[str], values: list[str]) -> CIMultiDict[str]:
    return CIMultiDict(zip(names, values, strict=False))


feedback_headers = st.builds(
    headers_from,
    st.lists(st.sampled_from(sorted(FEEDBACK_HEADERS)), max_size=6),
    st.lists(header_value, min_size=6, max_size=6),
)
trace_header_names = [*sorted(CONSUMED_HEADERS), "traceparent", "Helicone-Property-Team"]
trace_headers = st.builds(
    headers_from,
    st.lists(st.sampled_from(trace_header_names), max_size=6),
    st.lists(header_value, min_size=6, max_size=6),
)


@examples(200)
@given(feedback_headers)
def test_feedback_headers_parse_or_are_a_400(headers: CIMultiDict[str]) -> None:
    """Any feedback headers: a Feedback, None, or a BadRequest naming a header."""
    _, error = parsed_or_400(parse_feedback_headers, headers, RULES, NOW)
    if error is not None:
        assert error.message.split(":")[0].lower().startswith("x-feedback")


@examples(200)
@given(
    st.sampled_from(["positive", "negative"]),
    st.integers(1, 5),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
            max_size=100).filter(lambda t: t.strip() and "%" not in t),
    st.sampled_from(sorted(RULES.categories)),
)  # fmt: skip
def test_valid_feedback_headers_read_back_as_sent(
    verdict: str, rating: int, comment: str, category: str
) -> None:
    """Valid headers become exactly these attributes (a raw UTF-8 comment included)."""
    headers = CIMultiDict({"X-Feedback": verdict, "X-Feedback-Rating": str(rating),
                           "X-Feedback-Comment": comment,
                           "X-Feedback-Category": category.upper()})  # fmt: skip
    feedback = parse_feedback_headers(headers, RULES, NOW)
    assert feedback is not None
    assert feedback.attributes["user_feedback"] == verdict
    assert feedback.attributes["user_feedback_rating"] == rating
    assert feedback.attributes["user_feedback_comment"] == comment
    assert feedback.attributes["user_feedback_category"] == category


@examples(150)
@given(st.dictionaries(st.sampled_from(["user_feedback", "user_feedback_rating",
       "user_feedback_comment", "user_feedback_category", "feedback_reason",
       "user_feedback_timestamp", "other"]), json_value, max_size=5))  # fmt: skip
def test_feedback_attributes_in_json_validate_or_are_a_400(attributes: dict[str, Any]) -> None:
    """Any JSON attributes (POST /feedback, PATCH): validated dict or a BadRequest."""
    result, error = parsed_or_400(
        validate_attributes, attributes, RULES, NOW, "attributes", default_timestamp=True
    )
    if error is not None:
        assert error.message.startswith("attributes")
    else:
        assert set(attributes) <= set(result)


@examples(200)
@given(trace_headers)
def test_trace_headers_and_dialects_parse_or_are_a_400(headers: CIMultiDict[str]) -> None:
    """Any trace, Adaline, Portkey or Helicone headers: a context or a BadRequest."""
    try:
        context = parse_trace_context(headers)
    except BadRequest:
        return
    assert context.trace_id
    assert len(context.span_id) == 16
    assert len(context.traceparent()) == 55


ids = st.from_regex(r"[A-Za-z0-9._:\-]{1,128}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
                max_size=100).filter(lambda t: t.strip() == t)  # fmt: skip
tags = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_.:\-]{0,20}", fullmatch=True), max_size=5,
                unique=True)  # fmt: skip


@examples(200)
@given(ids, ids, texts, tags)
def test_valid_trace_headers_read_back_as_sent(
    trace_id: str, session: str, name: str, tag_list: list[str]
) -> None:
    """Our own headers, when valid, are the context's values."""
    headers = CIMultiDict({"X-Trace-Id": trace_id, "X-Session-Id": session,
                           "X-Trace-Tags": ",".join(tag_list)})  # fmt: skip
    if name.isascii():
        headers["X-Trace-Name"] = name
    context = parse_trace_context(headers)
    assert (context.trace_id, context.session_id) == (trace_id, session)
    assert list(context.tags) == tag_list
    assert context.name == (name if name.isascii() else None)


query_names = ["feedback", "rating_min", "rating_max", "category", "reason", "annotation_status",
               "has_feedback", "model", "upstream", "session_id", "user_id", "since", "until",
               "limit", "cursor", "tag", "bogus"]  # fmt: skip
query_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["1", "5", "0", "-1", "1e309", "nan", "true", "no", "2026-11-01",
                     "2026-11-01T12:00:00Z", "2026-11-01 12:00:00 01:00", "9999-12-31",
                     "0001-01-01T00:00:00+14:00", "999999999999999", "positive", "filled"]),
)  # fmt: skip


@examples(200)
@given(st.dictionaries(st.sampled_from(query_names), st.lists(query_values, min_size=1,
                                                              max_size=2), max_size=5))
def test_admin_query_parameters_parse_or_are_a_400(params: dict[str, list[str]]) -> None:
    """GET /api/traces parameters: a request or a BadRequest naming the parameter."""
    _, error = parsed_or_400(parse_trace_list, params)
    if error is not None:
        assert error.message.split(":")[0] in query_names


@examples(200)
@given(json_value | st.fixed_dictionaries({}, optional={
    "attributes": json_value | st.lists(st.fixed_dictionaries(
        {"operation": st.sampled_from(["create", "delete", "x"]), "key": st.text(max_size=8)},
        optional={"value": json_value}), max_size=3),
    "tags": st.lists(json_value | st.fixed_dictionaries(
        {"operation": st.sampled_from(["create", "delete"]), "tag": st.text(max_size=8)}),
        max_size=3),
    "feedback_id": json_value}))  # fmt: skip
def test_patch_bodies_parse_or_are_a_400(body: Any) -> None:
    """Any PATCH body, in either form: a Patch or a BadRequest."""
    with contextlib.suppress(BadRequest):
        parse_patch(body, RULES)


@examples(150)
@given(json_value, json_value, st.dictionaries(st.sampled_from(
    ["annotation", "annotation_status", "x"]), json_value, max_size=3))  # fmt: skip
def test_dataset_bodies_parse_or_are_a_400(
    trace_ids: Any, filters: Any, patch: dict[str, Any]
) -> None:
    """Row additions (ids or a filter) and row patches: parsed, or a BadRequest."""
    for parse, value in ((parse_trace_ids, trace_ids), (parse_filter, filters),
                         (parse_row_patch, patch)):  # fmt: skip
        with contextlib.suppress(BadRequest):
            parse(value)


@examples(200)
@given(st.dictionaries(st.sampled_from(["limit", "cursor", "annotation_status", "format", "x"]),
                       query_values, max_size=4))  # fmt: skip
def test_dataset_row_queries_parse_or_are_a_400(params: dict[str, str]) -> None:
    """GET rows parameters: parsed, or a BadRequest."""
    with contextlib.suppress(BadRequest):
        parse_row_query(params)


score_names = st.from_regex(r"[a-z0-9_.\-]{1,64}", fullmatch=True)


@examples(200)
@given(json_value | st.fixed_dictionaries({}, optional={
    "name": score_names | json_value, "value": json_value | st.floats(0, 1),
    "label": st.sampled_from(["pass", "FAIL", "x y", ""]) | json_value,
    "explanation": json_value, "span_id": json_value, "score_id": json_value, "extra": json_value}))
def test_score_bodies_parse_or_are_a_400(body: Any) -> None:
    """Any POST /api/traces/{id}/scores body: the validated fields or a BadRequest naming one."""
    fields, error = parsed_or_400(parse_score, body)
    if error is None:
        assert fields["value"] is not None or fields["label"] is not None
