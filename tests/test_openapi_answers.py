"""The document's generated schemas against real answers of a running proxy (and bodies the
handlers take or refuse), validated with jsonschema: a schema that accepts anything is a defect,
so broken answers must fail too."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
import time
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from proxy.admin.api import schemas
from proxy.admin.api.openapi import openapi_document
from tests.conftest import RunningProxy
from tests.recording_helpers import wait_for_trace

Json = Any
DOCUMENT = openapi_document()


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """``schema`` with the document's components beside it, so ``#/components/...`` resolves."""
    return jsonschema.Draft202012Validator(
        {**schema, "components": DOCUMENT["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def component(name: str) -> jsonschema.Draft202012Validator:
    return validator({"$ref": f"#/components/schemas/{name}"})


def answer_schema(
    method: str, path: str, status: int = 200, media: str = "application/json"
) -> Any:
    """The schema the document states for one operation's answer."""
    response = DOCUMENT["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return validator(response["content"][media]["schema"])


def body_schema(method: str, path: str) -> jsonschema.Draft202012Validator:
    body = DOCUMENT["paths"][path][method.lower()]["requestBody"]
    return validator(body["content"]["application/json"]["schema"])


def errors(check: jsonschema.Draft202012Validator, instance: Any) -> list[str]:
    return [error.message for error in check.iter_errors(instance)]


class Admin:
    """Calls the admin API and checks every answer against the documented schema."""

    def __init__(self, http: aiohttp.ClientSession, proxy: RunningProxy) -> None:
        self.http, self.url = http, proxy.admin_url

    async def call(
        self, method: str, path: str, route: str, body: Any = None, status: int = 200, **query: Any
    ) -> Json:
        if body is not None and status == 200:
            assert errors(body_schema(method, route), body) == [], body
        async with self.http.request(
            method, self.url + path, json=body, params=query or None
        ) as resp:
            assert resp.status == status, await resp.text()
            answer = await resp.json()
        assert errors(answer_schema(method, route, status), answer) == [], answer
        return answer


async def chat(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Q?"}]}
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions",
        data=orjson.dumps(body),
        headers={"X-Trace-Id": trace_id, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200


async def wait_for_feedback(admin: Admin, trace_id: str, events: int) -> Json:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        trace = await admin.call("GET", f"/api/traces/{trace_id}", "/api/traces/{trace_id}")
        if len(trace["feedback"]) >= events:
            return trace
        await asyncio.sleep(0.02)
    raise AssertionError(f"trace {trace_id} never had {events} feedback events")


async def test_real_answers_match_the_documented_schemas(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Every admin route's answer, from traces recorded by real calls, validates."""
    admin = Admin(http, proxy)
    await chat(http, proxy, "oa-1")
    await chat(http, proxy, "oa-2")
    span_id = (await wait_for_trace(http, proxy.admin_url, "oa-1"))["spans"][0]["span_id"]
    await wait_for_trace(http, proxy.admin_url, "oa-2")

    trace_route, span_route = "/api/traces/{trace_id}", "/api/traces/{trace_id}/spans/{span_id}"
    verdict = {"user_feedback": "negative", "user_feedback_rating": 2}
    flat = {"attributes": verdict, "tags": ["checked"], "feedback_id": "fb-1"}
    await admin.call("PATCH", "/api/traces/oa-1", trace_route, flat)
    create = {"operation": "create", "key": "note", "value": {"x": 1}}
    operations = {"attributes": [create], "tags": [{"operation": "delete", "tag": "checked"}]}
    await admin.call("PATCH", f"/api/traces/oa-1/spans/{span_id}", span_route, operations)
    trace = await wait_for_feedback(admin, "oa-1", 2)
    assert trace["spans"][0]["usage"] is not None  # a full span, not a sparse one
    listed = await admin.call("GET", "/api/traces", "/api/traces", limit=1)
    assert listed["traces"]
    assert listed["next_cursor"] is not None
    await admin.call("GET", "/api/traces", "/api/traces", feedback="negative", tag=["checked"])

    rows_route, row_route = "/api/datasets/{name}/rows", "/api/datasets/{name}/rows/{row_id}"
    await admin.call("POST", "/api/datasets/ds/rows", rows_route, {"trace_ids": ["oa-2", "nope"]})
    columns = {"verdict": "attributes.user_feedback", "model": "span.model"}
    by_filter = {"filter": {"feedback": "negative", "rating_max": 3}, "columns": columns}
    added = await admin.call("POST", "/api/datasets/ds2/rows", rows_route, by_filter)
    assert added["added"] == 1
    page = await admin.call("GET", "/api/datasets/ds/rows", rows_route, limit=1)
    assert page["rows"]
    assert page["next_cursor"] is None
    await admin.call("GET", "/api/datasets/ds2/rows", rows_route)
    change = {"annotation": {"ideal": "A."}, "annotation_status": "filled"}
    await admin.call("PATCH", "/api/datasets/ds/rows/oa-2", row_route, change)
    await admin.call("GET", "/api/datasets", "/api/datasets")
    await admin.call("GET", "/api/stats/feedback", "/api/stats/feedback", bucket="hour")
    await admin.call("GET", "/api/stats/feedback", "/api/stats/feedback", group_by="model")
    await admin.call("DELETE", "/api/datasets/ds/rows/oa-2", row_route)
    await admin.call("DELETE", "/api/datasets/ds2", "/api/datasets/{name}")
    scores_route = "/api/traces/{trace_id}/scores"
    score = {
        "name": "judge",
        "value": 0.8,
        "label": "pass",
        "explanation": "ok",
        "span_id": span_id,
    }
    await admin.call("POST", "/api/traces/oa-1/scores", scores_route, score)
    await admin.call("POST", "/api/traces/oa-2/scores", scores_route, {"name": "tone", "value": 2})
    scored = await admin.call("GET", "/api/traces/oa-1", trace_route)
    assert scored["scores"]
    await admin.call("GET", "/api/traces", "/api/traces", score="judge", score_label="judge:pass")
    agreement = "/api/stats/agreement"
    await admin.call("GET", agreement, agreement, score="judge")
    await admin.call("GET", agreement, agreement, score="nothing", threshold="0.3")
    await admin.call("POST", "/api/traces/oa-1/scores", scores_route, {"name": "x"}, status=400)
    await admin.call("GET", "/healthz", "/healthz")
    await admin.call("GET", "/readyz", "/readyz")

    # Error answers, extra fields (param) included.
    await admin.call("GET", "/api/traces/nope", trace_route, status=404)
    await admin.call("GET", "/api/traces", "/api/traces", status=400, bogus="1")
    await admin.call("PATCH", "/api/traces/oa-1", trace_route, {"tags": "x"}, status=400)


async def test_broken_answers_are_rejected(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    admin = Admin(http, proxy)
    await chat(http, proxy, "oa-broken")
    await wait_for_trace(http, proxy.admin_url, "oa-broken")
    positive = {"attributes": {"user_feedback": "positive"}}
    await admin.call("PATCH", "/api/traces/oa-broken", "/api/traces/{trace_id}", positive)
    trace = await wait_for_feedback(admin, "oa-broken", 1)
    rows_route = "/api/datasets/{name}/rows"
    await admin.call("POST", "/api/datasets/b/rows", rows_route, {"trace_ids": ["oa-broken"]})
    row = (await admin.call("GET", "/api/datasets/b/rows", rows_route))["rows"][0]
    listed = await admin.call("GET", "/api/traces", "/api/traces")
    check_trace, check_list = component("Trace"), component("TraceList")
    check_row = component("DatasetRow")
    assert errors(check_trace, trace) == errors(check_list, listed) == errors(check_row, row) == []

    def broken(document: Json, change: Any) -> Json:
        copied = copy.deepcopy(document)
        change(copied)
        return copied

    for bad in (
        broken(trace, lambda t: t.pop("spans")),
        broken(trace, lambda t: t.update(annotation_status="half")),
        broken(trace, lambda t: t.update(span_count=-1)),
        broken(trace, lambda t: t["spans"][0].update(status="200")),
        broken(trace, lambda t: t["spans"][0].pop("upstream")),
        broken(trace, lambda t: t["spans"][0]["usage"].update(input_tokens=1.5)),
        broken(trace, lambda t: t["spans"][0]["output"].update(tool_calls={})),
        broken(trace, lambda t: t["feedback"][0].update(source="email")),
        broken(trace, lambda t: t["feedback"][0].update(tags="a")),
    ):
        assert errors(check_trace, bad), bad
    assert errors(check_list, broken(listed, lambda t: t["traces"][0].pop("created_at")))
    assert errors(check_list, broken(listed, lambda t: t.pop("next_cursor")))
    assert errors(check_row, broken(row, lambda r: r.update(annotation_status="done")))
    assert errors(check_row, broken(row, lambda r: r.update(annotation="yes")))
    assert errors(check_row, broken(row, lambda r: r["feedback"].update(user_feedback=1)))


@pytest.mark.parametrize(
    ("route", "method", "body"),
    [
        ("/api/traces/{trace_id}", "PATCH", {"tags": ["x"] * 65}),
        ("/api/traces/{trace_id}", "PATCH", {"tags": [""]}),
        ("/api/traces/{trace_id}", "PATCH", {"comment": "x"}),
        ("/api/traces/{trace_id}", "PATCH", {"feedback_id": "has space"}),
        ("/api/traces/{trace_id}", "PATCH", {"attributes": [{"operation": "move", "key": "a"}]}),
        ("/api/datasets/{name}/rows", "POST", {"trace_ids": []}),
        ("/api/datasets/{name}/rows", "POST", {"trace_ids": ["a"] * 1001}),
        ("/api/datasets/{name}/rows", "POST", {"trace_ids": ["a"], "filter": {}}),
        ("/api/datasets/{name}/rows", "POST", {"filter": {"limit": 5}}),
        ("/api/datasets/{name}/rows", "POST", {"filter": {"rating_min": 9}}),
        ("/api/datasets/{name}/rows", "POST", {"trace_ids": ["a"], "columns": {"9bad": "x"}}),
        ("/api/datasets/{name}/rows", "POST", {"trace_ids": ["a"], "columns": {}}),
        ("/api/datasets/{name}/rows/{row_id}", "PATCH", {}),
        ("/api/datasets/{name}/rows/{row_id}", "PATCH", {"annotation_status": "done"}),
        ("/api/datasets/{name}/rows/{row_id}", "PATCH", {"annotation": 5}),
        ("/api/traces/{trace_id}/scores", "POST", {"value": 1}),
        ("/api/traces/{trace_id}/scores", "POST", {"name": "Bad", "value": 1}),
        ("/api/traces/{trace_id}/scores", "POST", {"name": "j", "value": 1, "extra": 1}),
    ],
)
def test_bodies_the_handlers_refuse_break_the_schema(route: str, method: str, body: Any) -> None:
    assert errors(body_schema(method, route), body)


def test_every_component_is_a_valid_json_schema() -> None:
    for schema in DOCUMENT["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)  # raises naming the fault


def test_trace_summary_is_the_trace_without_feedback_and_spans() -> None:
    """The documented summary is the documented trace without its feedback, spans, scores."""
    generated = DOCUMENT["components"]["schemas"]
    trace, summary = generated["Trace"], generated["TraceSummary"]
    extra = ("feedback", "spans", "scores")
    expected = {k: v for k, v in trace["properties"].items() if k not in extra}
    assert summary["properties"] == expected
    assert summary["required"] == [k for k in trace["required"] if k in expected]


def test_record_details_name_real_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """A detail for a field the record does not have (renamed, say) fails the build."""
    monkeypatch.setitem(schemas.RECORD_DETAILS, "Span", {"no_such_field": {"minimum": 0}})
    with pytest.raises(KeyError, match="Span has no field no_such_field"):
        schemas.component_schemas.__wrapped__()


def test_start_up_does_not_import_pydantic() -> None:
    """pydantic is for the document only: loaded on the first GET /openapi.json."""
    code = (
        "import sys, proxy.cli, proxy.runtime, proxy.gateway.app, proxy.admin.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
