"""feedback_proxy without a proxy: the headers it builds, the IDs it reads, its errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest

from feedback_proxy import Feedback, ProxyRefused, TokenExpired, Trace, answer_ids
from feedback_proxy import feedback_headers as headers_for
from feedback_proxy.client import token_ids
from feedback_proxy.errors import refused
from proxy.config.model import FeedbackSettings
from proxy.feedback.parse import FeedbackRules, parse_feedback_headers
from proxy.feedback.token import issue
from proxy.tracing.context import parse_trace_context


def test_trace_headers_are_what_the_proxy_reads_as_that_trace() -> None:
    """Every field of a Trace arrives in the proxy's trace context as given."""
    trace = Trace("conv-42", name="chat", session_id="s-1", user_id="u-9",
                  attributes={"tier": "gold", "note": "grüezi"}, tags=["a", "b c"])  # fmt: skip
    context = parse_trace_context(trace.headers())
    assert (context.trace_id, context.name, context.session_id, context.user_id) == (
        "conv-42", "chat", "s-1", "u-9")  # fmt: skip
    assert context.attributes == {"tier": "gold", "note": "grüezi"}
    assert set(context.tags) == {"a", "b c"}
    assert all(value.isascii() for value in trace.headers().values())


def test_a_new_trace_gets_its_own_id() -> None:
    assert Trace().trace_id != Trace().trace_id
    assert len(Trace().trace_id) == 32


@pytest.mark.parametrize(
    ("trace", "field"),
    [(Trace(name="Grüße"), "X-Trace-Name"), (Trace(tags=["a,b"]), "tags")],
)
def test_header_values_that_cannot_travel_are_refused_naming_the_field(
    trace: Trace, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        trace.headers()


def test_feedback_headers_parse_back_to_the_same_feedback() -> None:
    """The proxy's own header parser reads what feedback_headers wrote, comment included."""
    feedback = Feedback(vote="negative", rating=2.5, comment="zu vage, 100% ß", reason="other")
    headers = headers_for(feedback, feedback_id="f-1", span_id="s-2")
    assert unquote(headers["X-Feedback-Comment"]) == "zu vage, 100% ß"
    rules = FeedbackRules.from_settings(FeedbackSettings())
    parsed = parse_feedback_headers(headers, rules, datetime.now(UTC))
    assert parsed is not None
    assert parsed.attributes["user_feedback_comment"] == "zu vage, 100% ß"
    assert parsed.attributes["user_feedback_rating"] == 2.5
    assert (parsed.feedback_id, parsed.span_id) == ("f-1", "s-2")


def test_empty_feedback_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="feedback"):
        Feedback().attributes()


def test_answer_ids_read_any_header_mapping_case_blind() -> None:
    ids = answer_ids({"X-Trace-Id": "t", "X-Span-Id": "s", "X-Feedback-Token": "v1.x"})
    assert (ids.trace_id, ids.span_id, ids.feedback_token) == ("t", "s", "v1.x")
    with pytest.raises(ValueError, match="x-trace-id"):
        answer_ids({"content-type": "application/json"})
    with pytest.raises(TypeError):
        answer_ids(42)


def test_token_ids_are_the_ids_the_proxy_signed() -> None:
    assert token_ids(issue(b"k", "conv.42", "span-1", 10)) == ("conv.42", "span-1")
    with pytest.raises(ValueError, match="feedback_token"):
        token_ids("Bearer sk-something")


def test_refusals_carry_status_code_and_field() -> None:
    error = refused(400, {"error": {"message": "attributes.user_feedback: must be one of "
                                    "positive, negative", "code": "invalid_feedback"}})  # fmt: skip
    assert (error.status, error.code, error.field) == (400, "invalid_feedback",
                                                       "attributes.user_feedback")  # fmt: skip
    expired = {"error": {"message": "feedback token expired", "code": "expired_feedback_token"}}
    assert isinstance(refused(401, expired), TokenExpired)
    assert refused(400, {"error": {"message": "x", "param": "name"}}).field == "name"
    odd = refused(502, "<html>")
    assert isinstance(odd, ProxyRefused)
    assert odd.code == "http_502"


def test_importing_the_client_loads_no_server_code() -> None:
    """An app importing feedback_proxy gets no aiohttp, redis or proxy modules."""
    probe = ("import sys, feedback_proxy; bad = [m for m in sys.modules if m.split('.')[0] in "
             "('aiohttp', 'redis', 'proxy', 'orjson')]; print(bad)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
