"""OTLP export end to end: proxied calls and feedback reach a real OTLP/HTTP receiver.

The receiver (tests/otlp_receiver.py) decodes with opentelemetry-proto. Delivery is checked the
way an operator would: everything arrives, once, across a collector outage and a proxy
restart; a hung collector never holds up a proxied call; two proxies on one Redis split
nothing twice.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.store.keys import Keys
from proxy.tracing.context import w3c_trace_id_for
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import FakeProvider
from tests.otlp_receiver import OtlpReceiver, attrs
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
WAIT = 20.0  # the exporter reads every 0.5 s; generous on the shared 2-core box


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    await otlp.start()
    yield otlp
    otlp.release()
    await otlp.stop()


def export_settings(receiver: OtlpReceiver, **more: Any) -> dict[str, Any]:
    """Fast retries and a short lease, so outages and takeovers play out in seconds."""
    return {
        "export.otlp.endpoint": receiver.endpoint,
        "export.otlp.timeout": 1.0,
        "export.otlp.max_attempts": 2,
        "export.otlp.max_backoff": 0.3,
        "export.otlp.lease_seconds": 2.0,
        "export.otlp.headers": {"authorization": "Bearer collector-secret"},
        **more,
    }


async def call(
    http: aiohttp.ClientSession, proxy: RunningProxy, headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, str, str]:  # fmt: skip
    async with http.post(
        f"{proxy.url}/v1/chat/completions", data=orjson.dumps(body or CHAT), headers=headers or {}
    ) as resp:
        await resp.read()
        return resp.status, resp.headers["X-Trace-Id"], resp.headers["X-Span-Id"]


async def test_a_proxied_call_arrives_as_a_genai_client_span(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession,
    fake_provider: FakeProvider,
) -> None:  # fmt: skip
    """Its trace-id is the one the upstream saw in traceparent; attributes one by one."""
    proxy = await start(**export_settings(receiver))
    headers = {
        "X-Trace-Id": "order-4711", "X-Parent-Span-Id": "00f067aa0ba902b7",
        "X-Session-Id": "sess-1", "X-User-Id": "user-1", "X-Trace-Tags": "beta,checkout",
        "X-Trace-Name": "checkout",
    }  # fmt: skip
    status, trace_id, span_id = await call(http, proxy, headers)
    assert status == 200
    upstream_traceparent = fake_provider.requests[-1].headers["traceparent"]
    (span,) = await eventually(lambda: receiver.received.spans, timeout=WAIT, what="the span")
    assert f"00-{span.trace_id.hex()}-{span.span_id.hex()}-01" == upstream_traceparent
    assert span.trace_id.hex() == w3c_trace_id_for("order-4711")
    assert span.span_id.hex() == span_id
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == 3  # SPAN_KIND_CLIENT
    assert 0 < span.start_time_unix_nano < span.end_time_unix_nano
    found = attrs(span.attributes)
    expected = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 1,
        "gen_ai.usage.output_tokens": 5, "server.address": "127.0.0.1",
        "http.request.method": "POST", "http.response.status_code": 200,
        "session.id": "sess-1", "user.id": "user-1", "feedback_proxy.trace_id": trace_id,
        "feedback_proxy.trace_name": "checkout", "feedback_proxy.tags": ["beta", "checkout"],
    }  # fmt: skip
    assert {key: found.get(key) for key in expected} == expected
    assert "gen_ai.input.messages" not in found  # content is opt-in
    assert len({r.SerializeToString() for r in receiver.received.resources}) == 1
    assert attrs(receiver.received.resources[0].attributes)["service.name"] == "feedback-proxy"
    assert receiver.received.gzipped == receiver.received.requests
    assert receiver.received.headers[0]["authorization"] == "Bearer collector-secret"
    async with http.get(f"{proxy.admin_url}/metrics") as resp:
        text = await resp.text()
    assert metric(text, 'feedback_proxy_otlp_exported_total{signal="spans"}') == 1
    assert metric(text, 'feedback_proxy_otlp_failed_requests_total{signal="spans"}') == 0


def _is_user_feedback(record: Any) -> bool:
    name = attrs(record.attributes)["gen_ai.evaluation.name"]
    return name in {"user_feedback", "user_feedback_rating"}


async def test_feedback_becomes_an_evaluation_event_on_the_span(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession
) -> None:
    """Trace-level feedback (no span named) lands on the trace's latest span."""
    proxy = await start(**export_settings(receiver))
    _, trace_id, _ = await call(http, proxy, {"X-Trace-Id": "fb-trace"})
    _, _, latest = await call(http, proxy, {"X-Trace-Id": "fb-trace"})
    await eventually(lambda: len(receiver.received.spans) == 2, timeout=WAIT, what="2 spans")
    feedback = {"X-Trace-Id": "fb-trace", "X-Feedback": "negative", "X-Feedback-Rating": "2",
                "X-Feedback-Comment": "wrong city", "X-Feedback-Category": "incorrect"}  # fmt: skip
    async with http.post(f"{proxy.url}/feedback", headers=feedback) as resp:
        assert resp.status < 300, await resp.text()
    # The second call repeats the first one's input: besides the vote and the rating, the
    # export also carries that "regenerated" implicit signal (checked in its own test).
    records = await eventually(
        lambda: [r for r in receiver.received.logs if _is_user_feedback(r)],
        until=lambda r: len(r) == 2,
        timeout=WAIT,
        what="2 user feedback records",
    )
    by_name = {attrs(r.attributes)["gen_ai.evaluation.name"]: r for r in records}
    vote, rating = by_name["user_feedback"], by_name["user_feedback_rating"]
    for record in records:
        assert record.event_name == "gen_ai.evaluation.result"
        assert record.trace_id.hex() == w3c_trace_id_for(trace_id)
        assert record.span_id.hex() == latest
        assert attrs(record.attributes)["gen_ai.evaluation.explanation"] == "wrong city"
        assert attrs(record.attributes)["feedback_proxy.category"] == "incorrect"
    assert attrs(vote.attributes)["gen_ai.evaluation.score.label"] == "negative"
    assert attrs(rating.attributes)["gen_ai.evaluation.score.value"] == 2


async def test_failed_calls_are_error_spans_and_content_is_opt_in(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession
) -> None:
    proxy = await start(**export_settings(receiver, **{"export.otlp.content": True}))
    status, _, failed_id = await call(http, proxy, body={**CHAT, "model": "error-500"})
    assert status == 500
    _, _, ok_id = await call(http, proxy)
    spans = await eventually(
        lambda: receiver.received.spans, until=lambda s: len(s) == 2, timeout=WAIT, what="spans"
    )
    by_id = {span.span_id.hex(): span for span in spans}
    failed, ok = by_id[failed_id], by_id[ok_id]
    assert failed.status.code == 2  # STATUS_CODE_ERROR
    assert attrs(failed.attributes)["http.response.status_code"] == 500
    assert ok.status.code == 0
    assert attrs(ok.attributes)["gen_ai.input.messages"] == '[{"role":"user","content":"hi"}]'
    assert "Hello from fake gpt-4o-mini!" in attrs(ok.attributes)["gen_ai.output.messages"]


async def test_scores_and_implicit_entries_on_the_stream_are_exported(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession,
    redis_client: aioredis.Redis, keys: Keys,
) -> None:  # fmt: skip
    """Entries of type score and implicit (written by the §12 features) map to evaluations."""
    proxy = await start(**export_settings(receiver))
    _, trace_id, span_id = await call(http, proxy, {"X-Trace-Id": "scored"})
    await eventually(lambda: receiver.received.spans, timeout=WAIT, what="the span")
    score = {"score_id": "s1", "name": "faithfulness", "value": 0.5, "label": "pass",
             "explanation": "fine", "span_id": span_id, "source": "judge",
             "created_at": "2026-11-26T12:00:00.000Z"}  # fmt: skip
    signal = {"signal": "regenerated", "at": "2026-11-26T12:00:01.000Z", "by_span_id": "c" * 16}
    for kind, data in (("score", score), ("implicit", signal)):
        fields = {
            "type": kind,
            "trace_id": trace_id,
            "span_id": span_id,
            "data": orjson.dumps(data),
        }
        await redis_client.xadd(keys.events, fields)  # type: ignore[arg-type]
    records = await eventually(
        lambda: receiver.received.logs, until=lambda r: len(r) == 2, timeout=WAIT, what="records"
    )
    found = [attrs(r.attributes) for r in records]
    assert [f["gen_ai.evaluation.name"] for f in found] == ["faithfulness", "implicit_feedback"]
    assert found[0]["gen_ai.evaluation.score.value"] == 0.5
    assert found[1]["gen_ai.evaluation.score.label"] == "regenerated"
    assert all(r.span_id.hex() == span_id for r in records)


async def test_a_score_posted_to_the_admin_api_is_exported_on_its_span(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession
) -> None:
    """The whole path of §12 to §10: POST /api/traces/{id}/scores, the event stream, OTLP."""
    proxy = await start(**export_settings(receiver))
    _, trace_id, span_id = await call(http, proxy, {"X-Trace-Id": "scored-e2e"})
    await eventually(lambda: receiver.received.spans, timeout=WAIT, what="the span")
    score = {"name": "faithfulness", "value": 0.25, "label": "fail",
             "explanation": "cites nothing", "span_id": span_id}  # fmt: skip
    url = f"{proxy.admin_url}/api/traces/{trace_id}/scores"
    async with http.post(url, json=score) as resp:
        assert resp.status == 200, await resp.text()
    records = await eventually(
        lambda: receiver.received.logs, until=lambda r: len(r) == 1, timeout=WAIT, what="a record"
    )
    found = attrs(records[0].attributes)
    assert found["gen_ai.evaluation.name"] == "faithfulness"
    assert found["gen_ai.evaluation.score.value"] == 0.25
    assert found["gen_ai.evaluation.score.label"] == "fail"
    assert found["gen_ai.evaluation.explanation"] == "cites nothing"
    assert records[0].span_id.hex() == span_id
    assert records[0].trace_id.hex() == w3c_trace_id_for(trace_id)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


async def test_collector_down_then_up_across_a_restart_every_span_arrives_once(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession
) -> None:
    """What waited in Redis goes out when the collector answers again, sent by the next run."""
    settings = export_settings(receiver)
    first = await start(**settings)
    sent = [(await call(http, first, {"X-Trace-Id": f"early-{i}"}))[2] for i in range(5)]
    await eventually(lambda: len(receiver.received.spans) == 5, timeout=WAIT, what="5 spans")
    await receiver.stop()  # the collector is down
    sent += [(await call(http, first, {"X-Trace-Id": f"down-{i}"}))[2] for i in range(10)]
    async with http.post(
        f"{first.url}/feedback", headers={"X-Trace-Id": "down-3", "X-Feedback": "positive"}
    ) as resp:
        assert resp.status < 300

    async def failing() -> float:
        async with http.get(f"{first.admin_url}/metrics") as resp:
            text = await resp.text()
        name = "feedback_proxy_otlp_failed_requests_total"
        return sum(metric(text, f'{name}{{signal="{signal}"}}') for signal in ("spans", "logs"))

    await eventually(failing, until=lambda n: n >= 1, timeout=WAIT, what="failed attempts")
    await first.listeners.stop()  # the proxy restarts while the collector is still down
    sent += [(await call(http, second := await start(**settings), {"X-Trace-Id": f"after-{i}"}))[2]
             for i in range(5)]  # fmt: skip
    await receiver.start()  # the collector is back
    await eventually(lambda: set(receiver.span_ids()) >= set(sent), timeout=WAIT, what="every span")
    await eventually(lambda: receiver.received.logs, timeout=WAIT, what="the vote")
    assert Counter(receiver.span_ids()) == Counter(sent)  # each once
    assert len(receiver.received.logs) == 1

    async def pending() -> float:
        async with http.get(f"{second.admin_url}/metrics") as resp:
            return metric(await resp.text(), "feedback_proxy_otlp_pending")

    await eventually(pending, until=lambda n: n == 0, timeout=WAIT, what="no backlog")


async def test_a_hung_collector_never_holds_up_a_proxied_call(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession
) -> None:
    """While the exporter waits on a collector that does not answer, calls go through."""
    receiver.hang.set()
    slow = {"export.otlp.timeout": 5.0, "export.otlp.lease_seconds": 10.0}
    proxy = await start(**export_settings(receiver, **slow))
    await call(http, proxy)
    await eventually(lambda: receiver.received.headers, timeout=WAIT, what="an export request")
    results = await asyncio.gather(*(call(http, proxy) for _ in range(20)))
    assert {status for status, _, _ in results} == {200}
    assert receiver.hang.is_set()
    assert not receiver.received.spans  # the export is still stuck
    receiver.release()
    ids = [span_id for _, _, span_id in results]
    await eventually(lambda: set(receiver.span_ids()) >= set(ids), timeout=WAIT, what="spans")


async def test_two_proxies_share_the_export_without_duplicates(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Both export; one holds the lease at a time; when it stops the other takes over."""
    settings = export_settings(receiver)
    one = await start(**settings, **{"writer.spool_dir": str(tmp_path / "one")})
    two = await start(**settings, **{"writer.spool_dir": str(tmp_path / "two")})
    sent = []
    for i in range(20):
        sent.append((await call(http, one if i % 2 else two, {"X-Trace-Id": f"pair-{i}"}))[2])
    await eventually(lambda: set(receiver.span_ids()) >= set(sent), timeout=WAIT, what="spans")
    await one.listeners.stop()
    later = [(await call(http, two, {"X-Trace-Id": f"later-{i}"}))[2] for i in range(5)]
    await eventually(lambda: set(receiver.span_ids()) >= set(later), timeout=WAIT, what="later")
    assert Counter(receiver.span_ids()) == Counter(sent + later)


async def test_export_goes_on_when_the_stream_was_deleted(
    start: StartProxy, receiver: OtlpReceiver, http: aiohttp.ClientSession,
    redis_client: aioredis.Redis, keys: Keys,
) -> None:  # fmt: skip
    """A stream deleted by hand (and its group with it) is made again; export goes on."""
    proxy = await start(**export_settings(receiver))
    first = (await call(http, proxy))[2]
    await eventually(lambda: first in receiver.span_ids(), timeout=WAIT, what="first span")
    await redis_client.delete(keys.events)
    later = (await call(http, proxy))[2]
    await eventually(lambda: later in receiver.span_ids(), timeout=WAIT, what="later span")
