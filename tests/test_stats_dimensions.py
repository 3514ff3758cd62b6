"""Stats by a trace attribute (``[stats] dimensions``): counters kept at merge time, compared
with counts this test keeps itself, the bound of 100 values per key and hour, and the 400 for
a key that is not configured."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.store.stats import DIMENSION_LIMIT, HOUR_MS, OTHER, FeedbackStats, StatsQuery
from tests.conftest import StartProxy
from tests.factories import feedback, span_record
from tests.recording_helpers import wait_for_trace
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends

KEY = "prompt_version"
GROUP = f"attributes.{KEY}"
# Two hours back, so the fixture's hour is whole and "now" never moves into it.
HOUR = (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS


@pytest.fixture
async def dim_store(redis_client: aioredis.Redis, keys: Keys) -> Any:
    store = RedisStore(redis_client, keys, retention_days=30, dimensions=(KEY, "tier"))
    yield store
    await store.close()


def stats_query(group_by: str | None = GROUP) -> StatsQuery:
    return StatsQuery(bucket="hour", since_ms=HOUR, until_ms=HOUR + HOUR_MS - 1, group_by=group_by)


def by_group(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row[GROUP]: row for row in rows}


def span_of(trace_id: str, n: int, version: str | None) -> dict[str, Any]:
    attributes = {} if version is None else {KEY: version}
    return span_record(trace_id, f"{n:016x}", HOUR + 1000 + n, attributes=attributes)


async def test_grouped_counts_equal_an_independent_count(
    dim_store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """60 traces over four prompt versions with random votes and ratings, some votes changed
    through X-Feedback-Id and some traces moved to another version by a later span: every
    group's traces, calls, votes and ratings equal what this test counted."""
    rng = random.Random(15)
    versions = ("v1", "v2", "v3", "v4")
    first: dict[str, str] = {}  # the version each trace's first span carried
    final: dict[str, str] = {}  # the version it has at the end (feedback counts follow it)
    calls: dict[str, int] = defaultdict(int)  # calls counted under the version they saw
    votes: dict[str, dict[str, Any]] = {}
    spans, later, records = [], [], []
    for i in range(60):
        trace_id = f"dim-{i:03d}"
        first[trace_id] = final[trace_id] = rng.choice(versions)
        spans.append(span_of(trace_id, 0, first[trace_id]))
        calls[first[trace_id]] += 1
        attrs: dict[str, Any] = {"user_feedback": rng.choice(("positive", "negative"))}
        if rng.random() < 0.5:
            attrs["user_feedback_rating"] = rng.choice((1, 2, 3, 4, 5))
        if rng.random() < 0.3:  # first the other vote, then changed through the same id
            other = "negative" if attrs["user_feedback"] == "positive" else "positive"
            records.append(feedback(trace_id, "vote", user_feedback=other))
        records.append(feedback(trace_id, "vote", **attrs))
        votes[trace_id] = attrs
        if rng.random() < 0.25:  # a later call of the trace under another prompt version
            final[trace_id] = rng.choice([v for v in versions if v != first[trace_id]])
            later.append(span_of(trace_id, 1, final[trace_id]))
            calls[final[trace_id]] += 1
    await dim_store.write_batch(spans)
    for record in records:
        await dim_store.merge_feedback(record)
    await dim_store.write_batch(later)  # after the votes: their counts must move

    rows = by_group(await FeedbackStats(redis_client, keys).query(stats_query()))
    assert set(rows) == set(versions)
    for version in versions:
        mine = [t for t in final if final[t] == version]
        row = rows[version]
        assert row["traces"] == sum(1 for t in first if first[t] == version), version
        assert row["calls"] == calls[version], version
        assert row["positive"] == sum(votes[t]["user_feedback"] == "positive" for t in mine)
        assert row["negative"] == sum(votes[t]["user_feedback"] == "negative" for t in mine)
        ratings = [
            votes[t]["user_feedback_rating"] for t in mine if "user_feedback_rating" in votes[t]
        ]
        assert row["rating_count"] == len(ratings)
        if ratings:
            assert row["rating_average"] == pytest.approx(sum(ratings) / len(ratings), abs=1e-4)
    # the ungrouped totals are untouched by the dimension
    total = (await FeedbackStats(redis_client, keys).query(stats_query(None)))[0]
    assert total["positive"] == sum(v["user_feedback"] == "positive" for v in votes.values())
    assert total["calls"] == len(spans) + len(later)


async def test_a_changed_vote_and_a_replay_move_the_count_once(
    dim_store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A thumbs-down changed to thumbs-up under the same feedback id moves one count from
    negative to positive in its version's group; replaying the batch changes nothing; a later
    change of the version itself moves the vote to the new version's group."""
    await dim_store.write_batch([span_of("dim-change", 0, "v7")])
    await dim_store.merge_feedback(feedback("dim-change", "f1", user_feedback="negative"))
    stats = FeedbackStats(redis_client, keys)
    row = by_group(await stats.query(stats_query()))["v7"]
    assert (row["positive"], row["negative"]) == (0, 1)
    changed = feedback("dim-change", "f1", user_feedback="positive")
    await dim_store.merge_feedback(changed)
    await dim_store.write_batch([changed, span_of("dim-change", 0, "v7")])  # replays
    row = by_group(await stats.query(stats_query()))["v7"]
    assert (row["positive"], row["negative"], row["traces"], row["calls"]) == (1, 0, 1, 1)
    # a reviewer's PATCH sets another version: the vote moves with it, the call stays
    await dim_store.merge_feedback(feedback("dim-change", "patch", **{KEY: "v8"}))
    rows = by_group(await stats.query(stats_query()))
    assert (rows["v7"]["positive"], rows["v7"]["calls"], rows["v7"]["traces"]) == (0, 1, 1)
    assert (rows["v8"]["positive"], rows["v8"]["negative"], rows["v8"]["calls"]) == (1, 0, 0)


async def test_values_past_the_bound_count_as_other(
    dim_store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """105 distinct values in one hour: the first 100 get groups of their own, the last 5
    are counted together under "(other)" (traces, calls and votes alike)."""
    extra = 5
    spans = [span_of(f"dim-b{i:03d}", i, f"p{i:03d}") for i in range(DIMENSION_LIMIT + extra)]
    for span in spans:  # one at a time, so the first 100 values are the first admitted
        await dim_store.write_batch([span])
    for i in range(DIMENSION_LIMIT + extra):
        await dim_store.merge_feedback(feedback(f"dim-b{i:03d}", user_feedback="positive"))
    rows = by_group(await FeedbackStats(redis_client, keys).query(stats_query()))
    assert len(rows) == DIMENSION_LIMIT + 1
    assert {f"p{i:03d}" for i in range(DIMENSION_LIMIT)} <= set(rows)
    other = rows[OTHER]
    assert (other["traces"], other["calls"], other["positive"]) == (extra, extra, extra)
    assert all(rows[f"p{i:03d}"]["positive"] == 1 for i in range(DIMENSION_LIMIT))


async def test_group_by_an_unconfigured_attribute_is_400_naming_it(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Only keys listed in [stats] dimensions can group; another key is a 400 naming it. A
    configured key groups the proxy's own traffic."""
    proxy = await start(**{"stats.dimensions": [KEY]})
    url = f"{proxy.admin_url}/api/stats/feedback"
    async with http.get(url, params={"group_by": "attributes.team"}) as resp:
        assert resp.status == 400
        body = await resp.json()
        assert "'team'" in body["error"]["message"]
        assert body["error"]["param"] == "group_by"
    headers = {"X-Trace-Id": "dim-proxy", "X-Trace-Attributes": json.dumps({KEY: "v9"}),
               "X-Feedback": "negative", "Content-Type": "application/json"}  # fmt: skip
    body_json = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(
        f"{proxy.url}/v1/chat/completions", data=json.dumps(body_json), headers=headers
    ) as resp:
        assert resp.status == 200
    await wait_for_trace(http, proxy.admin_url, "dim-proxy")

    async def grouped() -> Any:
        params = {"group_by": GROUP, "bucket": "hour"}
        async with http.get(url, params=params) as resp:
            assert resp.status == 200
            return [r for r in (await resp.json())["buckets"] if r[GROUP] == "v9"]

    rows = await eventually(grouped, until=lambda r: sum(x["calls"] for x in r) == 1,
                            what="the call counted under v9")  # fmt: skip
    assert sum(r["negative"] for r in rows) == 1
    assert sum(r["traces"] for r in rows) == 1
    assert sum(r["cost_usd"] for r in rows) > 0


@pytest.mark.parametrize(
    ("dimensions", "problem"),
    [(["a", "a"], "twice"), (["bad\x1fkey"], "not an attribute key"), ([" x"], "not an")],
)
def test_bad_dimensions_stop_start_up_naming_the_key(dimensions: list[str], problem: str) -> None:
    """A repeated or unprintable dimension key is a configuration error naming stats.dimensions."""
    from proxy.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings(env={}, overrides={"stats.dimensions": dimensions})
    assert caught.value.key == "stats.dimensions"


async def test_a_long_multibyte_value_is_cut_on_a_character_boundary(
    dim_store: RedisStore,
) -> None:
    """A value longer than 256 bytes whose byte 256 falls inside a character: its call and
    its vote are counted under the value cut before that character (it used to come back as
    invalid UTF-8, losing the batch's calls and failing the vote's merge)."""
    value = "a" * 255 + "é" + "tail"
    await dim_store.write_batch([span_of("dim-long", 0, value)])
    merged = await dim_store.merge_feedback(feedback("dim-long", "vote", user_feedback="negative"))
    assert merged.status == "applied"
    rows = by_group(await FeedbackStats(dim_store._client, dim_store._keys).query(stats_query()))
    assert list(rows) == ["a" * 255]
    assert rows["a" * 255]["calls"] == 1
    assert rows["a" * 255]["negative"] == 1
