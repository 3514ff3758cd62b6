"""Properties of the real listeners under generated input: POST /feedback bodies, admin PATCH,
dataset and score bodies, admin query strings, and proxied calls with arbitrary header bytes.

Never a 500; every refusal is a JSON error; a refused request changes nothing (no feedback
event, no trace change, no row, nothing forwarded, no span); an accepted one reads back as sent.
Hypothesis runs in a worker thread and each example awaits its requests on the test's loop, so
the proxy, Redis and the fake upstream are the usual fixtures."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.store.redis_store import RedisStore
from tests.clients import call, raw_call, rows_url
from tests.conftest import RunningProxy, StartProxy
from tests.factories import make_trace
from tests.fake_provider import FakeProvider
from tests.properties import examples
from tests.recording_helpers import wait_for_trace

REFUSALS = {400, 404, 405, 413}
# orjson writes 64-bit integers; bigger ones come as raw bytes (``raw_body``).
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
feedback_keys = st.sampled_from(["user_feedback", "user_feedback_rating", "user_feedback_comment",
                                 "user_feedback_category", "feedback_reason",
                                 "user_feedback_timestamp", "note"])  # fmt: skip
attributes = st.dictionaries(feedback_keys, json_value | st.sampled_from(
    ["positive", "negative", "3", "incorrect", "2026-12-01T11:00:00Z"]), max_size=4)  # fmt: skip
feedback_body = st.fixed_dictionaries({}, optional={
    "trace_id": st.just("hp-trace") | json_value, "span_id": json_value,
    "feedback_id": json_value, "attributes": attributes | json_value,
    "tags": st.lists(json_value, max_size=3)})  # fmt: skip
raw_body = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[]", b"1e999", b"123456789012345678901234567890", b"\xff\xfe",
                     b'{"trace_id": "hp-trace", "attributes": {"user_feedback_rating": 1e999}}',
                     b'{"trace_id": "hp-trace", "attributes": {"user_feedback": "\\ud800"}}']),
    json_value.map(orjson.dumps),
    feedback_body.map(orjson.dumps),
)  # fmt: skip
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"],
                              exclude_characters="%-"), min_size=1, max_size=60
                ).filter(lambda t: t.strip() == t)  # fmt: skip


def in_thread(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on the test's loop from Hypothesis's thread, bounded in time."""

    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=20)

    return run


async def status_and_json(
    http: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    async with http.request(method, url, data=body, headers=headers) as resp:
        text = await resp.read()
        assert resp.content_type == "application/json", (resp.status, text[:200])
        return resp.status, orjson.loads(text)


async def trace_of(http: aiohttp.ClientSession, admin_url: str, trace_id: str) -> Any:
    return (await status_and_json(http, "GET", f"{admin_url}/api/traces/{trace_id}"))[1]


def assert_refusal(status: int, answer: Any) -> None:
    assert status in REFUSALS, (status, answer)
    assert isinstance(answer["error"]["message"], str)


@pytest.fixture
async def literal(start: StartProxy, store: RedisStore) -> RunningProxy:
    """A proxy that stores what it gets as it came (redaction off) over one known trace."""
    proxy = await start(**{"capture.redact.kinds": []})
    await make_trace(store, "hp-trace")
    return proxy


async def test_feedback_bodies_never_fail_and_refusals_store_nothing(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """POST /feedback with any bytes: 200 or a 4xx error; after a 4xx the history is unchanged."""
    run = in_thread(asyncio.get_running_loop())
    url = f"{literal.url}/feedback"

    @examples(120)
    @given(raw_body)
    def check(body: bytes) -> None:
        before = run(trace_of(http, literal.admin_url, "hp-trace"))["feedback"]
        status, answer = run(status_and_json(http, "POST", url, body))
        if status == 200:
            return
        assert_refusal(status, answer)
        assert run(trace_of(http, literal.admin_url, "hp-trace"))["feedback"] == before

    await asyncio.to_thread(check)


async def test_valid_feedback_bodies_read_back_as_sent(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A valid POST /feedback body is stored as one event with exactly its values."""
    run = in_thread(asyncio.get_running_loop())
    numbers = itertools.count()

    @examples(60)
    @given(st.sampled_from(["positive", "negative"]), st.integers(1, 5), texts)
    def check(verdict: str, rating: int, comment: str) -> None:
        feedback_id = f"fb-{next(numbers)}"
        sent = {"user_feedback": verdict, "user_feedback_rating": rating,
                "user_feedback_comment": comment}  # fmt: skip
        body = orjson.dumps({"trace_id": "hp-trace", "feedback_id": feedback_id,
                             "attributes": sent})  # fmt: skip
        status, answer = run(status_and_json(http, "POST", f"{literal.url}/feedback", body))
        assert (status, answer["status"]) == (200, "applied")
        events = run(trace_of(http, literal.admin_url, "hp-trace"))["feedback"]
        (event,) = [e for e in events if e["feedback_id"] == feedback_id]
        assert {k: event["attributes"][k] for k in sent} == sent

    await asyncio.to_thread(check)


async def test_patch_bodies_never_fail_and_refusals_change_nothing(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """PATCH /api/traces/{id} with any bytes: 200 or a 4xx; after a 4xx the trace is as it was."""
    run = in_thread(asyncio.get_running_loop())
    url = f"{literal.admin_url}/api/traces/hp-trace"
    ops = st.fixed_dictionaries({"operation": st.sampled_from(["create", "delete", "x"]),
                                 "key": json_value, "tag": json_value, "value": json_value})
    bodies = raw_body | st.fixed_dictionaries({}, optional={
        "attributes": attributes | st.lists(ops, max_size=2), "tags": st.lists(
            json_value | ops, max_size=2)}).map(orjson.dumps)  # fmt: skip

    @examples(120)
    @given(bodies)
    def check(body: bytes) -> None:
        before = run(trace_of(http, literal.admin_url, "hp-trace"))
        status, answer = run(status_and_json(http, "PATCH", url, body))
        if status == 200:
            return
        assert_refusal(status, answer)
        after = run(trace_of(http, literal.admin_url, "hp-trace"))
        assert after == before

    await asyncio.to_thread(check)


async def test_valid_patches_read_back_as_sent(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A flat PATCH sets exactly its attributes and tags on the trace."""
    run = in_thread(asyncio.get_running_loop())
    url = f"{literal.admin_url}/api/traces/hp-trace"
    tags = st.from_regex(r"[a-z][a-z0-9_.:\-]{0,20}", fullmatch=True)

    @examples(60)
    @given(st.from_regex(r"note_[a-z]{1,8}", fullmatch=True), texts | json_value, tags)
    def check(key: str, value: Any, tag: str) -> None:
        body = orjson.dumps({"attributes": {key: value}, "tags": [tag]})
        status, answer = run(status_and_json(http, "PATCH", url, body))
        assert status == 200, answer
        trace = run(trace_of(http, literal.admin_url, "hp-trace"))
        assert trace["attributes"][key] == value
        assert tag in trace["tags"]

    await asyncio.to_thread(check)


async def test_admin_query_strings_never_fail(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """GET /api/traces and dataset rows with any query string: 200 or a 400 naming it."""
    run = in_thread(asyncio.get_running_loop())
    names = st.sampled_from(["feedback", "rating_min", "since", "until", "limit", "cursor",
                             "tag", "model", "has_feedback", "format", "annotation_status", "x"])
    values = st.text(max_size=30) | st.sampled_from(["1", "0", "2026-11-01", "1e309", "%ff"])
    pairs = st.lists(st.tuples(names, values), max_size=4)

    @examples(120)
    @given(pairs, st.booleans())
    def check(query: list[tuple[str, str]], rows: bool) -> None:
        encoded = "&".join(f"{quote(n)}={quote(v, safe='%')}" for n, v in query)
        path = "/api/datasets/hp-set/rows" if rows else "/api/traces"
        status, answer = run(status_and_json(http, "GET", f"{literal.admin_url}{path}?{encoded}"))
        if status != 200:
            assert_refusal(status, answer)

    await asyncio.to_thread(check)


async def test_dataset_bodies_never_fail_and_refusals_add_nothing(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Row additions and row patches with any body: 200 or a 4xx; a 4xx adds no row."""
    run = in_thread(asyncio.get_running_loop())
    add = rows_url(literal, "hp-set")
    bodies = raw_body | st.fixed_dictionaries({}, optional={
        "trace_ids": json_value | st.lists(st.just("hp-trace") | st.text(max_size=5), max_size=3),
        "filter": json_value | st.dictionaries(st.sampled_from(["feedback", "tag", "x"]),
                                               json_value, max_size=2),
        "columns": json_value, "annotation": json_value,
        "annotation_status": json_value}).map(orjson.dumps)  # fmt: skip

    @examples(100)
    @given(bodies, st.booleans())
    def check(body: bytes, patch: bool) -> None:
        before = run(call(http, "GET", add))[1]
        url = f"{add}/hp-trace" if patch else add
        status, answer = run(status_and_json(http, "PATCH" if patch else "POST", url, body))
        if status == 200:
            return
        assert_refusal(status, answer)
        assert run(call(http, "GET", add))[1] == before

    await asyncio.to_thread(check)


async def test_score_bodies_never_fail_refusals_store_nothing_and_valid_ones_read_back(
    literal: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """POST /api/traces/{id}/scores with any body: 200 or a 4xx; after a 4xx the trace's
    scores are as they were; after a 200 the score reads back with the values sent."""
    run = in_thread(asyncio.get_running_loop())
    url = f"{literal.admin_url}/api/traces/hp-trace/scores"
    numbers = itertools.count()
    accepted: list[str] = []
    valid = st.fixed_dictionaries(
        {"name": st.from_regex(r"[a-z][a-z0-9_.\-]{0,20}", fullmatch=True),
         "value": st.floats(-1e6, 1e6, allow_nan=False), "explanation": texts},
        optional={"label": st.from_regex(r"[a-z][a-z0-9_.\-]{0,10}", fullmatch=True)})
    bodies = raw_body | st.fixed_dictionaries({}, optional={
        "name": json_value | st.just("judge"), "value": json_value, "label": json_value,
        "explanation": json_value, "score_id": json_value}).map(orjson.dumps)  # fmt: skip

    @examples(100)
    @given(bodies | valid.map(orjson.dumps))
    def check(body: bytes) -> None:
        sent = orjson.loads(body) if body[:1] == b"{" and _json(body) else None
        score_id = f"sc-{next(numbers)}"
        if isinstance(sent, dict) and "score_id" not in sent:
            sent["score_id"] = score_id
            body = orjson.dumps(sent)
        before = run(trace_of(http, literal.admin_url, "hp-trace"))["scores"]
        status, answer = run(status_and_json(http, "POST", url, body))
        after = run(trace_of(http, literal.admin_url, "hp-trace"))["scores"]
        if status != 200:
            assert_refusal(status, answer)
            assert after == before
            return
        assert isinstance(sent, dict)
        (stored,) = [s for s in after if s["score_id"] == sent["score_id"]]
        for key in ("name", "value", "explanation"):
            if sent.get(key) is not None:
                assert stored[key] == sent[key], key
        accepted.append(sent["score_id"])

    await asyncio.to_thread(check)
    assert accepted, "no generated score was valid: the round trip went untested"


def _json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


# ----------------------------------------------------------------------------- proxied calls

header_names = st.sampled_from(
    ["X-Trace-Id", "X-Trace-Tags", "X-Trace-Attributes", "X-Session-Id", "X-Feedback",
     "X-Feedback-Rating", "X-Feedback-Comment", "X-Feedback-Timestamp", "X-Capture",
     "traceparent", "x-portkey-metadata", "adaline-trace-attributes", "Helicone-Property-A",
     "X-Other"]
) | st.from_regex(rb"[!#$%&'*+.^_`|~0-9A-Za-z\-]{1,20}", fullmatch=True).map(bytes.decode)
header_bytes = st.binary(max_size=40).filter(lambda b: not set(b) & {0, 10, 13})


async def test_proxied_calls_with_any_header_bytes_never_fail(
    literal: RunningProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """Any header names and bytes: the upstream answer or a 400; a 400 forwards nothing and
    records no span; our own headers never reach the upstream."""
    run = in_thread(asyncio.get_running_loop())
    port = int(literal.url.rsplit(":", 1)[1])
    numbers = itertools.count()
    refused: list[str] = []

    @examples(120)
    @given(st.lists(st.tuples(header_names.map(str.encode), header_bytes), max_size=4))
    def check(headers: list[tuple[bytes, bytes]]) -> None:
        trace_id = f"hp-call-{next(numbers)}"
        before = len(fake_provider.requests)
        status = run(raw_call(port, headers, trace_id))
        if status != 200:
            assert status in {400, 431}, status
            assert len(fake_provider.requests) == before
            refused.append(trace_id)
            return
        sent = {name.lower() for name in fake_provider.requests[-1].headers}
        ours = ("x-trace", "x-feedback", "x-capture", "x-session", "helicone-", "adaline-")
        assert not [name for name in sent if name.startswith(ours)]

    await asyncio.to_thread(check)
    async with http.post(f"{literal.url}/openai/v1/chat/completions",
                         json={"model": "gpt-4o-mini", "messages": []},
                         headers={"X-Trace-Id": "hp-marker"}) as resp:  # fmt: skip
        assert resp.status == 200
    await wait_for_trace(http, literal.admin_url, "hp-marker")  # the writer is past the others
    for trace_id in refused:
        async with http.get(f"{literal.admin_url}/api/traces/{trace_id}") as resp:
            assert resp.status == 404, trace_id

