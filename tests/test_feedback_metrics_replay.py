"""/metrics counts every applied vote once, whether it was merged at once or queued while
Redis was away and merged by the writer's replay later, and under the model of its call even
when the call's span had not reached Redis yet."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson

from proxy.feedback.events import feedback_record
from proxy.feedback.model_lookup import RecentModels, TraceModels
from proxy.feedback.parse import Feedback
from proxy.feedback.service import FeedbackService
from proxy.store.connection import connect
from proxy.store.embedded import EmbeddedRedis
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.writer import Writer
from tests.conftest import StartProxy
from tests.recording_helpers import wait_for_trace
from tests.test_metrics import get, scrape, scrape_until

MODEL = "gpt-4o-mini"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def votes(samples: dict, value: str, model: str) -> float:  # type: ignore[type-arg]
    return get(samples, "feedback_proxy_feedback_votes", value=value, model=model) or 0


async def test_votes_queued_while_redis_was_away_count_once_applied(
    start: StartProxy, own_redis: EmbeddedRedis, http: aiohttp.ClientSession
) -> None:
    """Calls and votes while Redis is down: every vote answers "queued", none counts yet;
    once the replay merged them, each counts once under its call's model."""
    proxy = await start(**{"redis.url": own_redis.url, "writer.write_timeout": 0.3})
    own_redis.stop()
    traces = [f"queued-vote-{i}" for i in range(5)]
    for trace_id in traces:
        async with http.post(
            f"{proxy.url}/v1/chat/completions",
            data=orjson.dumps(CHAT),
            headers={"X-Trace-Id": trace_id},
        ) as resp:
            assert resp.status == 200
        headers = {"X-Trace-Id": trace_id, "X-Feedback": "negative"}
        async with http.post(f"{proxy.url}/feedback", headers=headers) as resp:
            assert (await resp.json())["status"] == "queued"
    assert votes(await scrape(http, proxy.admin_url), "negative", MODEL) == 0
    own_redis.start()
    samples = await scrape_until(
        http, proxy.admin_url, lambda s: votes(s, "negative", MODEL) == len(traces), timeout=15
    )
    assert votes(samples, "negative", MODEL) == len(traces)
    assert votes(samples, "negative", "") == 0
    for trace_id in traces:
        trace = await wait_for_trace(http, proxy.admin_url, trace_id)
        assert trace["attributes"]["user_feedback"] == "negative"


async def test_feedback_before_its_span_reached_redis_counts_under_the_calls_model(
    redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    """The span is still on its way (not in Redis): the label comes from this process's
    memory of the spans it recorded, not ``""``."""
    client = connect(redis_server)
    store = RedisStore(client, Keys(key_prefix), retention_days=30)
    writer = Writer(store, tmp_path / "spool")
    models = TraceModels(store, 1.0, RecentModels())
    service = FeedbackService(store, writer, timeout=1.0, models=models)
    service.span_recorded("early-vote", MODEL)  # handed to the writer, not written yet
    feedback = Feedback({"user_feedback": "positive"}, ("thumbs-up",), None, None)
    assert await service.apply(feedback_record("early-vote", feedback, "route")) == "applied"
    assert service.counts.counts[("value", "positive", MODEL)] == 1
    assert service.counts.counts[("value", "positive", "")] == 0
    await store.close()
    await client.aclose()
