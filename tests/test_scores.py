"""Evaluator scores: POST /api/traces/{id}/scores, the trace's ``scores``, the score filters,
the event stream, and scores queued through the spool while Redis is away."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.core.records import ScoreRecord
from proxy.feedback.scores import InvalidScore, parse_score, score_record
from proxy.store.embedded import EmbeddedRedis
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.conftest import RunningProxy, StartProxy
from tests.factories import make_trace
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(url, data=orjson.dumps(body)) as resp:
        return resp.status, orjson.loads(await resp.read())


async def get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return dict(orjson.loads(await resp.read()))


# -- validation (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"value": 1}, "name"),
        ({"name": "", "value": 1}, "name"),
        ({"name": "Upper", "value": 1}, "name"),
        ({"name": "x" * 65, "value": 1}, "name"),
        ({"name": "has space", "value": 1}, "name"),
        ({"name": "judge"}, "value"),
        ({"name": "judge", "value": "0.5"}, "value"),
        ({"name": "judge", "value": True}, "value"),
        ({"name": "judge", "value": 1e400}, "value"),
        ({"name": "judge", "label": "two words"}, "label"),
        ({"name": "judge", "label": 3}, "label"),
        ({"name": "judge", "label": "x" * 65}, "label"),
        ({"name": "judge", "value": 1, "explanation": 5}, "explanation"),
        ({"name": "judge", "value": 1, "explanation": "x" * 2001}, "explanation"),
        ({"name": "judge", "value": 1, "explanation": "a\x00b"}, "explanation"),
        ({"name": "judge", "value": 1, "span_id": "no spaces"}, "span_id"),
        ({"name": "judge", "value": 1, "score_id": "x" * 129}, "score_id"),
        ({"name": "judge", "value": 1, "extra": 1}, "extra"),
    ],
)
def test_invalid_score_names_the_field(body: Any, field: str) -> None:
    """Each broken rule is refused with a message that starts with the field's name."""
    with pytest.raises(InvalidScore) as caught:
        parse_score(body)
    assert caught.value.message.startswith(f"{field}: ")


def test_valid_score_is_normalised() -> None:
    """Labels are trimmed and lowercased; integers become floats; absent fields are None."""
    fields = parse_score({"name": "judge.v2", "value": 1, "label": " PASS "})
    assert fields == {"name": "judge.v2", "value": 1.0, "label": "pass", "explanation": None,
                      "span_id": None, "score_id": None}  # fmt: skip
    assert parse_score({"name": "j", "value": None, "label": "bad"})["value"] is None


# -- the API -----------------------------------------------------------------------------------


async def test_score_is_kept_on_the_trace_and_replaced_by_its_id(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore
) -> None:
    """A score lands in the trace's ``scores``; the same score_id again replaces it."""
    await make_trace(store, "sc-1")
    url = f"{admin.admin_url}/api/traces/sc-1/scores"
    body = {"name": "judge", "value": 0.2, "label": "fail", "explanation": "wrong city",
            "score_id": "s1"}  # fmt: skip
    status, answer = await post(http, url, body)
    assert (status, answer) == (200, {"trace_id": "sc-1", "applied": True, "status": "applied"})
    status, _ = await post(http, url, {**body, "value": 0.9, "label": "pass"})
    assert status == 200
    await post(http, url, {"name": "tone", "value": 3})
    trace = await get(http, f"{admin.admin_url}/api/traces/sc-1")
    by_name = {s["name"]: s for s in trace["scores"]}
    assert len(trace["scores"]) == 2
    assert by_name["judge"]["value"] == 0.9
    assert by_name["judge"]["label"] == "pass"
    assert by_name["judge"]["explanation"] == "wrong city"
    assert by_name["judge"]["source"] == "api"
    assert by_name["tone"]["label"] is None
    assert by_name["tone"]["score_id"]


async def test_bad_score_answers_400_and_stores_nothing(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore
) -> None:
    """A refused body names the field and leaves the trace without scores."""
    await make_trace(store, "sc-bad")
    status, answer = await post(
        http, f"{admin.admin_url}/api/traces/sc-bad/scores", {"name": "judge", "value": "high"}
    )
    assert status == 400
    assert answer["error"]["message"].startswith("value: ")
    trace = await get(http, f"{admin.admin_url}/api/traces/sc-bad")
    assert trace["scores"] == []


async def test_score_for_an_unknown_trace_is_404(
    admin: RunningProxy, http: aiohttp.ClientSession, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Scoring a trace that does not exist is a 404 and creates nothing."""
    status, _answer = await post(
        http, f"{admin.admin_url}/api/traces/nope/scores", {"name": "judge", "value": 1}
    )
    assert status == 404
    assert not await redis_client.exists(*keys.trace("nope").all())


async def test_score_filters_and_event_stream(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore,
    redis_client: aioredis.Redis, keys: Keys,
) -> None:  # fmt: skip
    """``score=`` lists traces with that score, ``score_label=`` those with that label (a
    replaced label no longer matches); every score is an entry of the event stream."""
    for trace_id in ("f-a", "f-b", "f-c"):
        await make_trace(store, trace_id)
    base = admin.admin_url
    await post(http, f"{base}/api/traces/f-a/scores", {"name": "judge", "label": "pass"})
    await post(http, f"{base}/api/traces/f-b/scores",
               {"name": "judge", "label": "pass", "score_id": "b1"})  # fmt: skip
    await post(http, f"{base}/api/traces/f-b/scores",
               {"name": "judge", "label": "fail", "score_id": "b1"})  # fmt: skip
    await post(http, f"{base}/api/traces/f-c/scores", {"name": "tone", "value": 2})

    async def listed(query: str) -> set[str]:
        page = await get(http, f"{base}/api/traces?{query}")
        return {t["trace_id"] for t in page["traces"]}

    assert await listed("score=judge") == {"f-a", "f-b"}
    assert await listed("score_label=judge:pass") == {"f-a"}
    assert await listed("score_label=judge:FAIL") == {"f-b"}
    assert await listed("score=tone") == {"f-c"}
    assert await listed("score=judge&score_label=tone:x") == set()
    entries = await redis_client.xrange(keys.events)
    scores = [e for _, e in entries if e[b"type"] == b"score"]
    assert len(scores) == 4
    data = orjson.loads(scores[-1][b"data"])
    assert scores[-1][b"trace_id"] == b"f-c"
    assert data["name"] == "tone"
    assert data["value"] == 2


@pytest.mark.parametrize(
    ("query", "param"),
    [("score=Bad!", "score"), ("score_label=judge", "score_label"),
     ("score_label=judge:", "score_label"), ("implicit=clicked", "implicit")],
)  # fmt: skip
async def test_bad_signal_filters_are_400(
    admin: RunningProxy, http: aiohttp.ClientSession, query: str, param: str
) -> None:
    """Signal filters are strict like the others: a 400 naming the parameter."""
    async with http.get(f"{admin.admin_url}/api/traces?{query}") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"].startswith(f"{param}: ")


# -- replays -----------------------------------------------------------------------------------


def _record(trace_id: str, **fields: Any) -> ScoreRecord:
    return score_record(trace_id, parse_score(fields))


async def test_replayed_score_is_stored_once_and_may_create_its_trace(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A queued score reaches Redis through write_batch: sent twice it is stored once, and a
    score whose trace has no span yet is kept (its trace appears)."""
    record = _record("early", name="judge", value=0.7, score_id="s-1")
    await store.write_batch([record])
    await store.write_batch([record])
    trace = await store.get_trace("early")
    assert trace is not None
    assert [s["score_id"] for s in trace["scores"]] == ["s-1"]
    assert await redis_client.zscore(keys.index("score", "judge"), "early") is not None
    entries = [e for _, e in await redis_client.xrange(keys.events) if e[b"type"] == b"score"]
    assert len(entries) == 2  # a replay publishes again: consumers dedupe on score_id
    assert {orjson.loads(e[b"data"])["score_id"] for e in entries} == {"s-1"}


async def test_a_score_whose_second_step_failed_reaches_the_stream_on_replay(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live merge lands but its second step (indexes, stream) fails, so the client hears
    "queued"; the replay finds the score stored ("duplicate") and still publishes it once."""
    await make_trace(store, "cut-score")
    record = _record("cut-score", name="judge", value=0.4, score_id="cut-1")
    real = store._score_indexes

    async def fail(*args: Any) -> None:
        raise StoreUnavailable("second step cut")

    monkeypatch.setattr(store, "_score_indexes", fail)
    with pytest.raises(StoreUnavailable):
        await store.merge_score(record)
    monkeypatch.setattr(store, "_score_indexes", real)
    await store.write_batch([record])
    entries = [e for _, e in await redis_client.xrange(keys.events) if e[b"type"] == b"score"]
    assert [orjson.loads(e[b"data"])["score_id"] for e in entries] == ["cut-1"]
    assert await redis_client.zscore(keys.index("score", "judge"), "cut-score") is not None


async def _merge_newer_then_replay_older(store: RedisStore, trace_id: str) -> None:
    """Score "judge" at 0.9 (dated far ahead), then a late replay of its older 0.1 version."""
    await make_trace(store, trace_id)
    old = _record(trace_id, name="judge", value=0.1, score_id="s")
    new = _record(trace_id, name="judge", value=0.9, score_id="s")
    new["score"]["created_at"] = "2999-01-01T00:00:00.000Z"
    await store.merge_score(new)
    await store.write_batch([old])


async def test_a_late_older_score_is_not_published_again(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A replayed older version that loses to the stored newer one puts nothing on the stream
    (it would tell consumers an outdated value)."""
    await _merge_newer_then_replay_older(store, "late-score")
    entries = [e for _, e in await redis_client.xrange(keys.events) if e[b"type"] == b"score"]
    assert [orjson.loads(e[b"data"])["value"] for e in entries] == [0.9]


async def test_an_older_version_never_replaces_a_newer_one(store: RedisStore) -> None:
    """Out of order (a late replay of an earlier version): the newer score stays."""
    await _merge_newer_then_replay_older(store, "order")
    trace = await store.get_trace("order")
    assert trace is not None
    assert [s["value"] for s in trace["scores"]] == [0.9]


async def test_score_while_redis_is_down_is_queued_and_applied_once_later(
    start: StartProxy, own_redis: EmbeddedRedis, http: aiohttp.ClientSession
) -> None:
    """With Redis away the answer says queued; once Redis is back the score lands once (the
    spool replay creates the trace if it has no span yet)."""
    proxy = await start(**{"redis.url": own_redis.url, "writer.write_timeout": 0.3})
    own_redis.stop()
    url = f"{proxy.admin_url}/api/traces/q-score/scores"
    body = {"name": "judge", "value": 0.3, "score_id": "q1", "explanation": "late"}
    status, answer = await post(http, url, body)
    assert (status, answer) == (200, {"trace_id": "q-score", "applied": False, "status": "queued"})
    status, _ = await post(http, url, body)  # a client retry while still queued
    assert status == 200
    own_redis.start()

    async def landed() -> dict[str, Any] | None:
        async with http.get(f"{proxy.admin_url}/api/traces/q-score") as resp:
            return dict(await resp.json()) if resp.status == 200 else None

    await eventually(landed, timeout=10, what="the queued score's trace")
    await proxy.listeners.services.writer.wait_idle(5)
    trace = await get(http, f"{proxy.admin_url}/api/traces/q-score")
    assert [(s["score_id"], s["value"]) for s in trace["scores"]] == [("q1", 0.3)]


async def test_dataset_rows_by_score_filter(
    admin: RunningProxy, http: aiohttp.ClientSession, store: RedisStore
) -> None:
    """The score filters work in a dataset's ``filter`` too: failed judgements to review."""
    for trace_id, label in (("ds-pass", "pass"), ("ds-fail", "fail")):
        await make_trace(store, trace_id)
        await post(http, f"{admin.admin_url}/api/traces/{trace_id}/scores",
                   {"name": "judge", "label": label})  # fmt: skip
    status, answer = await post(http, f"{admin.admin_url}/api/datasets/judged/rows",
                                {"filter": {"score_label": "judge:fail"}})  # fmt: skip
    assert status == 200
    assert answer["added"] == 1
    rows = await get(http, f"{admin.admin_url}/api/datasets/judged/rows")
    assert [row["trace_id"] for row in rows["rows"]] == ["ds-fail"]
