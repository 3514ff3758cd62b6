"""The application client (feedback_proxy) end to end: the official SDKs through the proxy.

A Trace groups SDK calls (JSON and streamed) into one trace with its name, session, user,
attributes and tags; answer_ids reads each answer's IDs and token from the SDK's raw-response
objects; the feedback clients record votes that the admin API then shows. Sync SDK code runs
in a worker thread, because this test's loop serves the proxy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web

from feedback_proxy import (
    AnswerIds,
    AsyncFeedbackClient,
    Feedback,
    FeedbackClient,
    ProxyRefused,
    ProxyUnreachable,
    TokenExpired,
    Trace,
    answer_ids,
    feedback_headers,
)
from proxy.feedback.token import issue
from proxy.store.embedded import free_port
from tests.clients import call
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import reply_text
from tests.waiting import eventually

MESSAGES: list[Any] = [{"role": "user", "content": "say hello to me"}]
SECRET = "client-test-secret-of-some-length"


def trace_for(test: str) -> Trace:
    return Trace(
        trace_id=f"client-{test}-{time.time_ns()}",
        name="support-chat",
        session_id="session-7",
        user_id="user-42",
        attributes={"customer_tier": "gold", "locale": "de-CH"},
        tags=["beta", "web"],
    )


async def trace_with_spans(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str,
                           spans: int) -> dict[str, Any]:  # fmt: skip
    """The trace on the admin API once ``spans`` spans have landed."""

    async def probe() -> tuple[int, Any]:
        return await call(http, "GET", f"{proxy.admin_url}/api/traces/{trace_id}")

    answer = await eventually(
        probe,
        until=lambda answer: answer[0] == 200 and len(answer[1]["spans"]) >= spans,
        what=f"{spans} spans of {trace_id}",
    )
    return dict(answer[1])


def assert_trace_context(trace: dict[str, Any], grouped: Trace) -> None:
    assert trace["name"] == grouped.name
    assert trace["session_id"] == grouped.session_id
    assert trace["user_id"] == grouped.user_id
    assert trace["attributes"]["customer_tier"] == "gold"
    assert trace["attributes"]["locale"] == "de-CH"
    assert {"beta", "web"} <= set(trace["tags"])


async def test_openai_async_json_and_stream_join_one_trace_and_take_feedback(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Two calls of a traced AsyncOpenAI (JSON, streamed) are two spans of one trace with the
    Trace's context; feedback by the stream's token, then a changed vote under the same
    feedback ID, leaves one event with the final vote."""
    grouped = trace_for("openai-async")
    base = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
    async with base:
        chat = grouped.client(base)
        raw = await chat.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        assert raw.parse().choices[0].message.content == reply_text("gpt-4o-mini")
        first = answer_ids(raw)
        stream = await chat.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        streamed = answer_ids(stream)  # the headers arrive before the first chunk
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reply_text("gpt-4o-mini")
    assert first.trace_id == streamed.trace_id == grouped.trace_id
    assert first.span_id != streamed.span_id
    assert streamed.feedback_token
    assert base._custom_headers.get("X-Trace-Id") is None  # the original client is unchanged

    feedback = AsyncFeedbackClient(proxy.url)
    answer = await feedback.send(streamed, vote="negative", comment="Zu vage ü", feedback_id="v1")
    assert answer == {"trace_id": grouped.trace_id, "applied": True, "status": "applied"}
    await feedback.send(streamed, Feedback(vote="positive"), feedback_id="v1")
    trace = await trace_with_spans(http, proxy, grouped.trace_id, 2)
    assert_trace_context(trace, grouped)
    assert [event["attributes"]["user_feedback"] for event in trace["feedback"]] == ["positive"]
    assert trace["attributes"]["user_feedback"] == "positive"


async def test_anthropic_sync_json_and_messages_stream_with_a_blocking_client(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """The sync Anthropic client, traced: with_raw_response and messages.stream give the IDs;
    the blocking FeedbackClient rates one span with a reason and a rating."""
    grouped = trace_for("anthropic-sync")

    def app_code() -> tuple[AnswerIds, AnswerIds, str, dict[str, Any]]:
        with anthropic.Anthropic(
            base_url=proxy.url + "/anthropic", api_key="sk-ant", max_retries=0
        ) as base:
            claude = grouped.client(base)
            raw = claude.messages.with_raw_response.create(
                model="claude-3-5-haiku-latest", max_tokens=64, messages=MESSAGES
            )
            first = answer_ids(raw)
            with claude.messages.stream(
                model="claude-3-5-haiku-latest", max_tokens=64, messages=MESSAGES
            ) as stream:
                streamed = answer_ids(stream)
                text = "".join(stream.text_stream)
        sent = FeedbackClient(proxy.url).send(
            first, vote="negative", reason="hallucination", rating=2, span=True
        )
        return first, streamed, text, sent

    first, streamed, text, sent = await asyncio.to_thread(app_code)
    assert text == reply_text("claude-3-5-haiku-latest")
    assert first.trace_id == streamed.trace_id == grouped.trace_id
    assert sent["applied"] is True
    trace = await trace_with_spans(http, proxy, grouped.trace_id, 2)
    assert_trace_context(trace, grouped)
    assert trace["feedback"][0]["span_id"] == first.span_id
    rated = next(span for span in trace["spans"] if span["span_id"] == first.span_id)
    assert rated["attributes"]["feedback_reason"] == "hallucination"
    assert rated["attributes"]["user_feedback_rating"] == 2
    assert "user_feedback" not in trace["attributes"]  # a span's rating is not the verdict


async def test_feedback_headers_on_a_later_call_are_confirmed_in_its_answer(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """feedback_headers as extra_headers of the next call: the answer says applied, and the
    percent-encoded comment arrives as the user wrote it."""
    grouped = trace_for("headers")
    async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="sk", max_retries=0) as c:
        chat = grouped.client(c)
        await chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        raw = await chat.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers=feedback_headers(
                Feedback(vote="negative", comment="Antwort war zu vage, ß"), feedback_id="h1"
            ),
        )
    assert answer_ids(raw).feedback_status == "applied"
    trace = await trace_with_spans(http, proxy, grouped.trace_id, 2)
    assert trace["attributes"]["user_feedback_comment"] == "Antwort war zu vage, ß"


async def test_refusals_name_the_field_and_an_expired_token_is_its_own_error(
    start: StartProxy,
) -> None:
    """A reason outside the taxonomy: ProxyRefused naming attributes.feedback_reason; an
    expired token: TokenExpired; a proxy that is not there: ProxyUnreachable."""
    proxy = await start(**{"feedback.token_secret": SECRET})
    feedback = AsyncFeedbackClient(proxy.url)
    token = issue(SECRET.encode(), "t-expired", "s-1", int(time.time()) + 600)
    ids = AnswerIds("t-expired", "s-1", token)
    with pytest.raises(ProxyRefused) as refused:
        await feedback.send(ids, vote="negative", reason="because")
    assert (refused.value.status, refused.value.field) == (400, "attributes.feedback_reason")
    assert "feedback_reason" in str(refused.value)
    old = AnswerIds("t-expired", "s-1", issue(SECRET.encode(), "t-expired", "s-1", 1))
    with pytest.raises(TokenExpired) as expired:
        await feedback.send(old, vote="positive")
    assert expired.value.status == 401
    with pytest.raises(ProxyUnreachable):
        await AsyncFeedbackClient(f"http://127.0.0.1:{free_port()}", timeout=2).send(
            "t-1", vote="positive"
        )


async def test_client_score_is_recorded_on_the_trace_and_replaced_by_its_score_id(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """An evaluator score through the admin API (§12) shows in the trace's scores; the same
    score_id again replaces it. Needs POST /api/traces/{id}/scores (built on another branch):
    skipped where the admin API does not list it yet."""
    _, document = await call(http, "GET", f"{proxy.admin_url}/openapi.json")
    if "/api/traces/{trace_id}/scores" not in document.get("paths", {}):
        pytest.skip("POST /api/traces/{trace_id}/scores is not built on this branch")
    grouped = trace_for("score")
    async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="sk", max_retries=0) as c:
        ids = answer_ids(
            await grouped.client(c).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        )
    await trace_with_spans(http, proxy, ids.trace_id, 1)
    scores = AsyncFeedbackClient(proxy.url, admin_url=proxy.admin_url)
    await scores.score(ids.trace_id, "judge.correct", value=0.2, label="fail", score_id="j1")
    await asyncio.to_thread(
        FeedbackClient(proxy.url, admin_url=proxy.admin_url).score,
        ids.trace_id, "judge.correct", value=0.9, label="pass", score_id="j1",
    )  # fmt: skip
    trace = await trace_with_spans(http, proxy, ids.trace_id, 1)
    assert [(s["name"], s.get("value"), s.get("label")) for s in trace["scores"]] == [
        ("judge.correct", 0.9, "pass")
    ]


async def test_an_sdk_error_still_gives_the_answer_ids(proxy: RunningProxy) -> None:
    """A provider error raised by the SDK carries the response: its trace ID and a token, so
    a failed answer can be rated too."""
    grouped = trace_for("error")
    async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="sk", max_retries=0) as c:
        with pytest.raises(openai.InternalServerError) as caught:
            await grouped.client(c).chat.completions.create(model="error-500", messages=MESSAGES)
    ids = answer_ids(caught.value)
    assert ids.trace_id == grouped.trace_id
    assert ids.feedback_token
    sent = await AsyncFeedbackClient(proxy.url).send(ids, vote="negative", reason="other")
    assert sent["applied"] is True


async def test_score_requests_have_the_spec_shape_and_refusals_name_the_field() -> None:
    """Against a stand-in admin listener (the real scores route is built on another branch):
    POST /api/traces/{id}/scores with the admin token and only the given fields; a 400 with
    the admin API's ``param`` arrives as ProxyRefused naming it."""
    seen: list[tuple[str, str | None, Any]] = []

    async def scores(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, request.headers.get("Authorization"), body))
        if body["name"] == "Bad Name":
            message = "name: must be 1-64 characters of a-z 0-9 _ . -"
            error = {"message": message, "code": "invalid_score", "param": "name"}
            return web.json_response({"error": error}, status=400)
        return web.json_response({"trace_id": request.match_info["id"], "applied": True,
                                  "status": "applied"})  # fmt: skip

    app = web.Application()
    app.router.add_post("/api/traces/{id}/scores", scores)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    admin_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        client = AsyncFeedbackClient("http://unused", admin_url=admin_url, admin_token="adm-1")
        answer = await client.score("conv:42", "judge.correct", value=0.5, explanation="ok")
        with pytest.raises(ProxyRefused) as refused:
            await client.score("conv:42", "Bad Name", label="pass")
    finally:
        await runner.cleanup()
    assert answer == {"trace_id": "conv:42", "applied": True, "status": "applied"}
    assert seen[0] == ("/api/traces/conv:42/scores", "Bearer adm-1",
                       {"name": "judge.correct", "value": 0.5, "explanation": "ok"})  # fmt: skip
    assert (refused.value.status, refused.value.code, refused.value.field) == (
        400, "invalid_score", "name")  # fmt: skip
    with pytest.raises(ValueError, match="admin_url"):
        await AsyncFeedbackClient("http://unused").score("t", "judge")
