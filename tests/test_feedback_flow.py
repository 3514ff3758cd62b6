"""Feedback end to end: headers on model calls and POST /feedback, as users see them (§4)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.feedback.token import issue
from proxy.store.embedded import EmbeddedRedis
from tests.clients import oai
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import FakeProvider, reply_text
from tests.recording_helpers import wait_for_trace
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

MODEL = "gpt-4o-mini"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "wie spät ist es"}]
CHAT = {"model": MODEL, "messages": MESSAGES}
PROXY_KEY = "pk-feedback-flow"
Json = dict[str, Any]


# ----------------------------------------------------------------------------- helpers


async def chat(client: openai.AsyncOpenAI, **headers: str) -> Any:
    """One chat completion with extra request headers; the raw response (headers readable)."""
    return await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers=headers
    )


async def raw_call(
    http: aiohttp.ClientSession, proxy: RunningProxy, headers: dict[str, str]
) -> tuple[int, Json, dict[str, str]]:
    """A chat completion sent byte for byte by aiohttp: (status, JSON body, response headers)."""
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions", data=orjson.dumps(CHAT), headers=headers
    ) as resp:
        return resp.status, orjson.loads(await resp.read()), dict(resp.headers)


async def post_feedback(
    http: aiohttp.ClientSession,
    proxy: RunningProxy,
    headers: dict[str, str] | None = None,
    body: Json | bytes | None = None,
) -> tuple[int, Json]:
    """POST /feedback on the proxy listener, in header form or JSON body form."""
    data = orjson.dumps(body) if isinstance(body, dict) else body
    send = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    async with http.post(f"{proxy.url}/feedback", data=data, headers=send) as resp:
        return resp.status, orjson.loads(await resp.read())


async def get_trace(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> Any:
    """The trace from the admin API, or None when it does not exist."""
    async with http.get(f"{proxy.admin_url}/api/traces/{trace_id}") as resp:
        assert resp.status in (200, 404), resp.status
        return await resp.json() if resp.status == 200 else None


async def wait_for_feedback(
    http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str, events: int, timeout: float
) -> Json:
    """The trace once its feedback history holds at least ``events`` events."""
    trace = await eventually(
        lambda: get_trace(http, proxy, trace_id),
        until=lambda trace: trace is not None and len(trace["feedback"]) >= events,
        timeout=timeout,
        interval=0.05,
        what=f"trace {trace_id} having {events} feedback event(s)",
    )
    return dict(trace)


async def flushed_absent(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> bool:
    """True when ``trace_id`` is not stored, checked after a later call's span was flushed."""
    later = f"later-{uuid.uuid4().hex[:8]}"
    status, _, _ = await raw_call(http, proxy, {"X-Trace-Id": later})
    assert status == 200
    await wait_for_trace(http, proxy.admin_url, later)  # the writer got past anything earlier
    return await get_trace(http, proxy, trace_id) is None


def feedback_headers_seen(fake_provider: FakeProvider) -> list[str]:
    """Names of any feedback header that reached the upstream."""
    return [
        name
        for request in fake_provider.requests
        for name in request.headers
        if name.lower().startswith("x-feedback")
    ]


# ----------------------------------------------------------------------------- the issue's story


async def test_chat_app_feedback_on_a_later_call_lands_on_the_conversation(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """A thumbs-down with category and comment on the next call is applied to the conversation."""
    async with oai(proxy, "conv-42") as client:
        first = await chat(client)
        second = await chat(
            client,
            **{
                "X-Feedback": "negative",
                "X-Feedback-Category": "incorrect",
                "X-Feedback-Comment": "Antwort%20war%20zu%20vage",
            },
        )
    assert first.headers.get("X-Feedback-Status") is None
    assert second.status_code == 200
    assert second.parse().choices[0].message.content == reply_text(MODEL)
    assert second.headers["X-Feedback-Status"] == "applied"
    assert second.headers["X-Trace-Id"] == "conv-42"
    trace = await wait_for_trace(http, proxy.admin_url, "conv-42", spans=2)
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["attributes"]["user_feedback_category"] == "incorrect"
    assert trace["attributes"]["user_feedback_comment"] == "Antwort war zu vage"
    assert trace["attributes"]["user_feedback_timestamp"].endswith("Z")
    assert "thumbs-down" in trace["tags"]
    assert trace["annotation_status"] == "empty"
    (event,) = trace["feedback"]
    assert event["source"] == "header"
    assert event["received_at"]
    assert event["span_id"] is None
    assert event["attributes"]["user_feedback"] == "negative"
    assert event["attributes"]["user_feedback_comment"] == "Antwort war zu vage"
    assert event["tags"] == ["thumbs-down"]
    assert len(fake_provider.requests) == 2
    assert feedback_headers_seen(fake_provider) == []


# ----------------------------------------------------------------------------- rejected input

REJECTED = [
    pytest.param({"X-Feedback-Rating": "nan"}, "X-Feedback-Rating", id="rating-nan"),
    pytest.param({"X-Feedback-Rating": "inf"}, "X-Feedback-Rating", id="rating-inf"),
    pytest.param({"X-Feedback-Rating": "1_0"}, "X-Feedback-Rating", id="rating-underscore"),
    pytest.param({"X-Feedback-Rating": "٣"}, "X-Feedback-Rating", id="rating-arabic-digit"),
    pytest.param({"X-Feedback-Rating": "6"}, "X-Feedback-Rating", id="rating-6"),
    pytest.param({"X-Feedback-Rating": "0"}, "X-Feedback-Rating", id="rating-0"),
    pytest.param({"X-Feedback-Category": "rude"}, "X-Feedback-Category", id="unknown-category"),
    pytest.param({"X-Feedback-Comment": "%zz"}, "X-Feedback-Comment", id="comment-bad-percent"),
    pytest.param({"X-Feedback-Comment": "%ff%fe"}, "X-Feedback-Comment", id="comment-not-utf8"),
    pytest.param(
        {"X-Feedback": "negative", "X-Feedback-Timestamp": "2026-01-02T10:00:00"},
        "X-Feedback-Timestamp",
        id="timestamp-without-zone",
    ),
    pytest.param(
        {
            "X-Feedback": "negative",
            "X-Feedback-Category": "incorrect",
            "X-Feedback-Comment": "zu%20vage",
            "X-Feedback-Rating": "6",
        },
        "X-Feedback-Rating",
        id="one-bad-among-good",
    ),
]


@pytest.mark.parametrize(("headers", "named"), REJECTED)
async def test_invalid_feedback_is_a_400_naming_the_header_and_nothing_happens(
    proxy: RunningProxy,
    http: aiohttp.ClientSession,
    fake_provider: FakeProvider,
    headers: dict[str, str],
    named: str,
) -> None:
    """Bad feedback gets a 400 naming the header; no model call is made and nothing is stored."""
    status, body, _ = await raw_call(http, proxy, {"X-Trace-Id": "bad-fb", **headers})
    assert status == 400
    assert named in body["error"]["message"]
    assert body["error"]["code"] == "invalid_feedback"
    assert fake_provider.requests == []
    assert await flushed_absent(http, proxy, "bad-fb")


async def test_on_invalid_warn_forwards_the_call_and_stores_no_feedback(
    start: StartProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """With on_invalid = "warn" the call answers, X-Feedback-Error says why, no feedback is kept."""
    proxy = await start(**{"feedback.on_invalid": "warn"})
    async with oai(proxy, "warn-1") as client:
        response = await chat(client, **{"X-Feedback": "negative", "X-Feedback-Rating": "6"})
    assert response.status_code == 200
    assert "X-Feedback-Rating" in response.headers["X-Feedback-Error"]
    assert response.headers.get("X-Feedback-Status") is None
    trace = await wait_for_trace(http, proxy.admin_url, "warn-1")
    assert trace["feedback"] == []
    assert "user_feedback" not in trace["attributes"]
    assert "user_feedback_rating" not in trace["attributes"]
    assert trace["tags"] == []
    assert trace["annotation_status"] is None
    assert feedback_headers_seen(fake_provider) == []


# ----------------------------------------------------------------------------- merge semantics


async def test_same_feedback_id_twice_is_one_changed_vote(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Re-sending an X-Feedback-Id with another vote replaces the vote instead of adding one."""
    async with oai(proxy, "vote-again", **{"X-Feedback-Id": "vote-1"}) as client:
        assert (await chat(client, **{"X-Feedback": "negative"})).status_code == 200
        changed = await chat(client, **{"X-Feedback": "positive"})
    assert changed.headers["X-Feedback-Status"] == "applied"
    trace = await wait_for_trace(http, proxy.admin_url, "vote-again", spans=2)
    (event,) = trace["feedback"]
    assert event["feedback_id"] == "vote-1"
    assert event["attributes"]["user_feedback"] == "positive"
    assert trace["attributes"]["user_feedback"] == "positive"
    assert "thumbs-up" in trace["tags"]
    assert "thumbs-down" not in trace["tags"]


async def test_a_later_rating_wins_and_both_stay_in_history(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Two ratings on two calls: the trace shows the second, the history both in order."""
    async with oai(proxy, "rated-twice") as client:
        await chat(client, **{"X-Feedback-Rating": "2"})
        await chat(client, **{"X-Feedback-Rating": "4.5"})
    trace = await wait_for_trace(http, proxy.admin_url, "rated-twice", spans=2)
    assert trace["attributes"]["user_feedback_rating"] == 4.5
    ratings = [e["attributes"]["user_feedback_rating"] for e in trace["feedback"]]
    assert ratings == [2, 4.5]


async def test_feedback_span_id_puts_feedback_on_that_span_only(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """X-Feedback-Span-Id names an earlier call: only that span carries the feedback."""
    async with oai(proxy, "span-aim") as client:
        first = await chat(client)
        target = first.headers["X-Span-Id"]
        second = await chat(client, **{"X-Feedback": "negative", "X-Feedback-Span-Id": target})
    assert second.headers["X-Feedback-Status"] == "applied"
    trace = await wait_for_trace(http, proxy.admin_url, "span-aim", spans=2)
    spans = {span["span_id"]: span for span in trace["spans"]}
    assert spans[target]["attributes"]["user_feedback"] == "negative"
    assert "thumbs-down" in spans[target]["tags"]
    other = spans[second.headers["X-Span-Id"]]
    assert "user_feedback" not in other["attributes"]
    assert "thumbs-down" not in other["tags"]
    assert "user_feedback" not in trace["attributes"]
    assert "thumbs-down" not in trace["tags"]
    assert trace["feedback"][0]["span_id"] == target


async def test_feedback_before_any_call_is_kept_and_joined_by_the_spans(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Feedback for a trace that has no calls yet is kept; the later call joins the same trace."""
    status, answer = await post_feedback(
        http, proxy, headers={"X-Trace-Id": "early-bird", "X-Feedback": "positive"}
    )
    assert (status, answer["status"]) == (200, "applied")
    async with oai(proxy, "early-bird") as client:
        await chat(client)
    trace = await wait_for_trace(http, proxy.admin_url, "early-bird")
    assert trace["attributes"]["user_feedback"] == "positive"
    assert "thumbs-up" in trace["tags"]
    assert len(trace["feedback"]) == 1
    assert trace["spans"][0]["output"]["text"] == reply_text(MODEL)
    assert trace["span_count"] == 1


# ----------------------------------------------------------------------------- Adaline dialect


async def test_adaline_trace_attributes_carry_feedback(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """A team on Adaline's headers gets its user_feedback attribute merged as feedback."""
    headers = {
        "adaline-trace-reference-id": "conv-ad",
        "adaline-trace-attributes": '{"user_feedback": "negative"}',
    }
    async with oai(proxy, **headers) as client:
        response = await chat(client)
    assert response.headers["X-Trace-Id"] == "conv-ad"
    assert response.headers["X-Feedback-Status"] == "applied"
    trace = await wait_for_trace(http, proxy.admin_url, "conv-ad")
    assert trace["attributes"]["user_feedback"] == "negative"
    assert "thumbs-down" in trace["tags"]
    assert not [n for r in fake_provider.requests for n in r.headers if n.startswith("adaline")]


async def test_invalid_adaline_feedback_value_is_rejected(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """An invalid user_feedback inside adaline-trace-attributes is a 400 and no model call."""
    headers = {
        "adaline-trace-reference-id": "conv-ad-bad",
        "adaline-trace-attributes": '{"user_feedback": "meh"}',
    }
    status, body, _ = await raw_call(http, proxy, headers)
    assert status == 400
    assert "user_feedback" in body["error"]["message"]
    assert fake_provider.requests == []
    assert await flushed_absent(http, proxy, "conv-ad-bad")


async def test_invalid_adaline_feedback_error_names_the_header_that_was_sent(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """The 400 for a bad value in adaline-trace-attributes names adaline-trace-attributes."""
    headers = {
        "adaline-trace-reference-id": "conv-ad-bad",
        "adaline-trace-attributes": '{"user_feedback": "meh"}',
    }
    status, body, _ = await raw_call(http, proxy, headers)
    assert status == 400
    assert "adaline-trace-attributes" in body["error"]["message"]


# ----------------------------------------------------------------------------- POST /feedback


async def test_feedback_route_header_form_applies_without_a_model_call(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """POST /feedback with X-Trace-Id and X-Feedback answers applied and calls no model."""
    status, answer = await post_feedback(
        http, proxy, headers={"X-Trace-Id": "route-h", "X-Feedback": "negative"}
    )
    assert status == 200
    assert answer == {"trace_id": "route-h", "applied": True, "status": "applied"}
    assert fake_provider.requests == []
    trace = await get_trace(http, proxy, "route-h")
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["feedback"][0]["source"] == "route"


async def test_feedback_route_json_body_form(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider
) -> None:
    """POST /feedback with a JSON body merges its attributes and tags into the trace."""
    body = {
        "trace_id": "route-j",
        "attributes": {"user_feedback_rating": 2, "feedback_reason": "Hallucination "},
        "tags": ["needs-review"],
    }
    status, answer = await post_feedback(http, proxy, body=body)
    assert (status, answer["applied"], answer["trace_id"]) == (200, True, "route-j")
    assert fake_provider.requests == []
    trace = await get_trace(http, proxy, "route-j")
    assert trace["attributes"]["user_feedback_rating"] == 2
    assert trace["attributes"]["feedback_reason"] == "hallucination"
    assert "needs-review" in trace["tags"]
    (event,) = trace["feedback"]
    assert event["source"] == "route"
    assert event["tags"] == ["needs-review"]


async def test_feedback_route_without_trace_id_is_a_400(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """POST /feedback with feedback headers but no X-Trace-Id is refused, naming X-Trace-Id."""
    status, answer = await post_feedback(http, proxy, headers={"X-Feedback": "positive"})
    assert status == 400
    assert "X-Trace-Id" in answer["error"]["message"]
    status, answer = await post_feedback(http, proxy, body={"attributes": {"x": 1}})
    assert status == 400
    assert "trace_id" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        pytest.param(b"{not json", "body", id="not-json"),
        pytest.param(b"[1, 2]", "body", id="not-an-object"),
        pytest.param({"trace_id": "route-bad"}, "body", id="no-feedback"),
        pytest.param(
            {"trace_id": "route-bad", "attributes": {"user_feedback": "meh"}},
            "attributes.user_feedback",
            id="bad-value",
        ),
        pytest.param({"trace_id": "route-bad", "tags": "one"}, "tags", id="tags-not-a-list"),
        pytest.param(
            {"trace_id": "route-bad", "attributes": [], "tags": ["x"]}, "attributes", id="attrs"
        ),
    ],
)
async def test_feedback_route_bad_body_is_a_400_and_stores_nothing(
    proxy: RunningProxy, http: aiohttp.ClientSession, body: Json | bytes, named: str
) -> None:
    """A malformed POST /feedback body is refused with a message naming the field."""
    status, answer = await post_feedback(http, proxy, body=body)
    assert status == 400
    assert named in answer["error"]["message"]
    assert await get_trace(http, proxy, "route-bad") is None


# ----------------------------------------------------------------------------- feedback tokens


@pytest.fixture
async def keyed(start: StartProxy) -> RunningProxy:
    """A proxy whose listener requires the proxy key."""
    return await start(**{"proxy.keys": [PROXY_KEY]})


async def token_call(proxy: RunningProxy, trace_id: str) -> tuple[str, str]:
    """(X-Feedback-Token, X-Span-Id) of a model call made with the proxy key."""
    async with oai(proxy, trace_id, **{"X-Proxy-Key": PROXY_KEY}) as client:
        response = await chat(client)
    return response.headers["X-Feedback-Token"], response.headers["X-Span-Id"]


async def test_feedback_token_admits_feedback_without_the_proxy_key(
    keyed: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A response's X-Feedback-Token, as Bearer or as X-Feedback-Token, lets a browser vote."""
    token, span_id = await token_call(keyed, "tok-ok")
    vote = {"X-Trace-Id": "tok-ok", "X-Feedback": "positive"}
    status, answer = await post_feedback(
        http, keyed, headers={**vote, "Authorization": f"Bearer {token}"}
    )
    assert (status, answer["status"]) == (200, "applied")
    body = {"trace_id": "tok-ok", "span_id": span_id, "attributes": {"user_feedback_rating": 5}}
    status, _ = await post_feedback(http, keyed, headers={"X-Feedback-Token": token}, body=body)
    assert status == 200
    trace = await get_trace(http, keyed, "tok-ok")
    assert len(trace["feedback"]) == 2
    assert trace["attributes"]["user_feedback"] == "positive"


async def test_feedback_token_is_refused_for_anything_else(
    keyed: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Another trace, another span, a tampered or expired token, or none at all: 401."""
    token, span_id = await token_call(keyed, "tok-bound")
    secret = keyed.listeners.services.token_secret
    expired = issue(secret, "tok-bound", span_id, int(time.time()) - 60)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    vote = {"attributes": {"user_feedback": "negative"}}
    attempts: list[tuple[dict[str, str], Json, str]] = [
        ({"X-Feedback-Token": token}, {"trace_id": "tok-other", **vote}, "invalid_feedback_token"),
        (
            {"X-Feedback-Token": token},
            {"trace_id": "tok-bound", "span_id": "00000000000000aa", **vote},
            "invalid_feedback_token",
        ),
        ({"Authorization": f"Bearer {tampered}"}, {"trace_id": "tok-bound", **vote}, "invalid"),
        ({"Authorization": f"Bearer {expired}"}, {"trace_id": "tok-bound", **vote}, "expired"),
        ({}, {"trace_id": "tok-bound", **vote}, "invalid_proxy_key"),
    ]
    for headers, body, code in attempts:
        status, answer = await post_feedback(http, keyed, headers=headers, body=body)
        assert status == 401, (headers, body)
        assert code in answer["error"]["code"]
    assert (await wait_for_trace(http, keyed.admin_url, "tok-bound"))["feedback"] == []
    assert await get_trace(http, keyed, "tok-other") is None


# ----------------------------------------------------------------------------- history cap


async def test_history_cap_refuses_the_next_event_with_413(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Past feedback.max_events_per_trace POST /feedback answers 413 and changes nothing."""
    proxy = await start(**{"feedback.max_events_per_trace": 3})
    for rating in ("1", "2", "3"):
        status, _ = await post_feedback(
            http, proxy, headers={"X-Trace-Id": "capped", "X-Feedback-Rating": rating}
        )
        assert status == 200
    status, answer = await post_feedback(
        http, proxy, headers={"X-Trace-Id": "capped", "X-Feedback-Rating": "5"}
    )
    assert status == 413
    assert "full" in answer["error"]["message"]
    assert "max_events_per_trace" in answer["error"]["message"]
    trace = await get_trace(http, proxy, "capped")
    assert len(trace["feedback"]) == 3
    assert trace["attributes"]["user_feedback_rating"] == 3


async def test_history_cap_on_a_model_call_still_answers_and_says_rejected(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Past the cap a model call carrying feedback still answers, with status rejected."""
    proxy = await start(**{"feedback.max_events_per_trace": 3})
    async with oai(proxy, "capped-call") as client:
        for _ in range(3):
            await chat(client, **{"X-Feedback": "positive"})
        response = await chat(client, **{"X-Feedback": "negative"})
    assert response.status_code == 200
    assert response.parse().choices[0].message.content == reply_text(MODEL)
    assert response.headers["X-Feedback-Status"] == "rejected"
    assert "full" in response.headers["X-Feedback-Error"]
    trace = await wait_for_trace(http, proxy.admin_url, "capped-call", spans=4)
    assert len(trace["feedback"]) == 3
    assert trace["attributes"]["user_feedback"] == "positive"


# ----------------------------------------------------------------------------- Redis down


async def test_feedback_while_redis_is_down_is_queued_and_applied_once_later(
    start: StartProxy, own_redis: EmbeddedRedis, http: aiohttp.ClientSession
) -> None:
    """With Redis down the call answers with status queued; once Redis is back it lands once."""
    proxy = await start(**{"redis.url": own_redis.url, "writer.write_timeout": 0.3})
    own_redis.stop()
    async with oai(proxy, "queued-fb") as client:
        response = await chat(client, **{"X-Feedback": "negative", "X-Feedback-Id": "q-1"})
    assert response.status_code == 200
    assert response.headers["X-Feedback-Status"] == "queued"
    status, answer = await post_feedback(
        http, proxy, headers={"X-Trace-Id": "queued-fb", "X-Feedback-Rating": "2"}
    )
    assert status == 200
    assert answer == {"trace_id": "queued-fb", "applied": False, "status": "queued"}
    own_redis.start()
    await wait_for_trace(http, proxy.admin_url, "queued-fb", timeout=10)
    await wait_for_feedback(http, proxy, "queued-fb", events=2, timeout=10)
    await proxy.listeners.services.writer.wait_idle(5)
    trace = await get_trace(http, proxy, "queued-fb")
    assert [e["feedback_id"] for e in trace["feedback"]] == ["q-1", None]  # each exactly once
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["attributes"]["user_feedback_rating"] == 2
    assert "thumbs-down" in trace["tags"]


# ----------------------------------------------------------------------------- review rules


async def test_negative_feedback_puts_the_trace_in_the_review_dataset(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A thumbs-down makes the trace a row of dataset "review", waiting for annotation."""
    async with oai(proxy, "to-review") as client:
        await chat(client)
        await wait_for_trace(http, proxy.admin_url, "to-review")
        await chat(client, **{"X-Feedback": "negative"})
        await chat(client, **{"X-Feedback": "negative", "X-Feedback-Rating": "1"})
    post_status, _ = await post_feedback(
        http, proxy, headers={"X-Trace-Id": "liked", "X-Feedback": "positive"}
    )
    assert post_status == 200
    rows = await proxy.listeners.services.store.dataset_rows("review")
    (row,) = rows
    assert row["trace_id"] == "to-review"
    assert row["annotation_status"] == "empty"
    assert row["feedback"]["user_feedback"] == "negative"
    assert row["output"]["text"] == reply_text(MODEL)
    assert (await get_trace(http, proxy, "to-review"))["annotation_status"] == "empty"


# ----------------------------------------------------------------------------- review fixes


async def test_feedback_on_a_refused_call_is_not_stored(
    start: StartProxy, fake_provider: FakeProvider, http: aiohttp.ClientSession
) -> None:
    """A call refused before forwarding (413 here) stores none of its feedback."""
    proxy = await start(**{"proxy.max_body_bytes": 100})
    headers = {"X-Trace-Id": "fb-413", "X-Feedback": "negative"}
    async with http.post(f"{proxy.url}/v1/chat/completions", data=b"x" * 200,
                         headers=headers) as resp:  # fmt: skip
        assert resp.status == 413
        assert "X-Feedback-Status" not in resp.headers
    assert fake_provider.requests == []
    trace = await wait_for_trace(http, proxy.admin_url, "fb-413")  # the refused call's span
    assert trace["spans"][0]["status"] == 413
    assert trace["feedback"] == []
    assert "user_feedback" not in trace["attributes"]


async def test_a_token_admits_feedback_keys_only(
    keyed: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """With a browser token, other attributes or custom tags are refused (400), nothing stored."""
    token, _ = await token_call(keyed, "tok-narrow")
    auth = {"X-Feedback-Token": token}
    for body in (
        {"trace_id": "tok-narrow", "attributes": {"user_feedback": "negative", "plan": "free"}},
        {"trace_id": "tok-narrow", "attributes": {"user_feedback": "negative"}, "tags": ["x"]},
    ):
        status, answer = await post_feedback(http, keyed, headers=auth, body=body)
        assert status == 400, answer
    trace = await wait_for_trace(http, keyed.admin_url, "tok-narrow")
    assert trace["feedback"] == []


async def test_browser_preflight_and_post_carry_cors_headers(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """A page on another origin can preflight and POST /feedback (tokens are not cookies)."""
    origin = {"Origin": "https://app.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "x-feedback-token, content-type"}  # fmt: skip
    async with http.options(f"{proxy.url}/feedback", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "x-feedback-token" in resp.headers["Access-Control-Allow-Headers"].lower()
    body = {"trace_id": "cors-1", "attributes": {"user_feedback": "positive"}}
    status, _ = await post_feedback(http, proxy, headers=origin, body=body)
    assert status == 200
    async with http.post(
        f"{proxy.url}/feedback", headers=origin, json={"trace_id": "cors-1"}
    ) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_feedback_on_a_chunked_body_over_the_cap_is_not_stored(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """A streamed body cut off at the cap (413) stores none of the call's feedback."""
    proxy = await start(**{"proxy.max_body_bytes": 300_000})

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"y" * 10_000

    headers = {"X-Trace-Id": "fb-chunked", "X-Feedback": "negative"}
    async with http.post(f"{proxy.url}/v1/chat/completions", data=body(), headers=headers) as resp:
        assert resp.status == 413
    trace = await wait_for_trace(http, proxy.admin_url, "fb-chunked")
    assert trace["feedback"] == []
