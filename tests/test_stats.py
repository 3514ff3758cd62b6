"""Feedback stats on a real Redis: counters kept at merge time equal counts computed here."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.admin.api.stats import parse_stats_query
from proxy.admin.params import InvalidParameter
from proxy.core.records import iso_from_ms
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.store.stats import HOUR_MS, FeedbackStats, StatsQuery
from tests.conftest import StartProxy
from tests.factories import Fixture, feedback, feedback_of, plan_traces, span_record, spans_of
from tests.waiting import eventually

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

DAY_MS = 24 * HOUR_MS
# Three UTC days back, so the fixture spans day and hour buckets without touching "now".
BASE_MS = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS


@pytest.fixture
def stats(redis_client: aioredis.Redis, keys: Keys) -> FeedbackStats:
    return FeedbackStats(redis_client, keys)


@pytest.fixture
async def traces(store: RedisStore) -> Fixture:
    """200 traces over three days (every 20 minutes or so) with random spans and feedback,
    votes changed through feedback_id among them; written through the store."""
    rng = random.Random(11)
    plan = plan_traces(rng, 200, BASE_MS)
    for p in plan:
        p.created_ms = BASE_MS + rng.randrange(3 * DAY_MS)
    await store.write_batch([r for p in plan for r in spans_of(rng, p)])
    await store.write_batch([r for p in plan for r in feedback_of(rng, p)])
    return plan


def expected(plan: Fixture, step: int, group_by: str | None) -> dict[tuple[int, str], list[Any]]:
    """(bucket start, group) -> [traces, positive, negative, ratings], computed from the plan."""
    rows: dict[tuple[int, str], list[Any]] = defaultdict(lambda: [0, 0, 0, []])
    for p in plan:
        groups = {"": [""], "model": p.models, "upstream": p.upstreams}[group_by or ""]
        for group in groups:
            row = rows[p.created_ms - p.created_ms % step, group]
            row[0] += 1
            vote = p.attributes.get("user_feedback")
            row[1] += vote == "positive"
            row[2] += vote == "negative"
            if "user_feedback_rating" in p.attributes:
                row[3].append(p.attributes["user_feedback_rating"])
    return rows


def as_expected(rows: list[dict[str, Any]], group_by: str | None) -> dict[Any, list[Any]]:
    """The answer's rows in the shape of expected() (ratings as count and average)."""
    return {
        (row["bucket_start"], row.get(group_by, "") if group_by else ""): [
            row["traces"], row["positive"], row["negative"], row["rating_count"],
            row["rating_average"],
        ]
        for row in rows
    }  # fmt: skip


def summarised(rows: dict[tuple[int, str], list[Any]]) -> dict[Any, list[Any]]:
    return {
        (iso_from_ms(start), group): [
            traces, positive, negative, len(ratings),
            round(sum(ratings) / len(ratings), 4) if ratings else None,
        ]
        for (start, group), (traces, positive, negative, ratings) in rows.items()
    }  # fmt: skip


@pytest.mark.parametrize("bucket", ["day", "hour"])
@pytest.mark.parametrize("group_by", [None, "model", "upstream"])
async def test_stats_equal_counts_computed_from_the_traces(
    traces: Fixture, stats: FeedbackStats, bucket: str, group_by: str | None
) -> None:
    """Per bucket (and model or upstream): traces, votes as they are now, rating count and
    average, exactly as computed from what was written."""
    query = StatsQuery(bucket, BASE_MS, BASE_MS + 3 * DAY_MS - 1, group_by)
    rows = await stats.query(query)
    want = summarised(expected(traces, {"day": DAY_MS, "hour": HOUR_MS}[bucket], group_by))
    got = as_expected(rows, group_by)
    if group_by is None:  # every bucket is listed, zeros included
        assert len(rows) == len(query.starts())
        got = {key: value for key, value in got.items() if value[0]}
    assert got == want
    assert sum(value[1] for value in want.values()) > 0
    assert sum(v[2] for v in want.values()) > 0


async def test_a_changed_vote_moves_its_count(store: RedisStore, stats: FeedbackStats) -> None:
    """negative then positive under one feedback_id: one positive, no negative; a replay of
    the older event and of the newer one changes nothing."""
    await store.write_batch([span_record("tr-v", started_ms=BASE_MS)])
    first = feedback("tr-v", "vote", user_feedback="negative", user_feedback_rating=1)
    second = feedback("tr-v", "vote", user_feedback="positive", user_feedback_rating=4)
    for record in (first, second, first, second):
        await store.write_batch([record])
    rows = await stats.query(StatsQuery("day", BASE_MS, BASE_MS, None))
    assert as_expected(rows, None) == {(iso_from_ms(BASE_MS), ""): [1, 1, 0, 1, 4.0]}


async def test_feedback_before_spans_counts_under_the_model_that_comes_later(
    store: RedisStore, stats: FeedbackStats
) -> None:
    """Feedback that arrives before the trace's first span is counted once the span names
    its model and upstream, and in the hour the span moved the trace's creation to."""
    await store.write_batch([feedback("tr-early", user_feedback="negative")])
    await store.write_batch([span_record("tr-early", started_ms=BASE_MS)])
    query = StatsQuery("hour", BASE_MS, BASE_MS + 3 * HOUR_MS, "model")
    assert as_expected(await stats.query(query), "model") == {
        (iso_from_ms(BASE_MS), "gpt-4o-mini"): [1, 0, 1, 0, None]
    }
    now_hour = await stats.query(StatsQuery("hour", BASE_MS, int(time.time() * 1000), None))
    assert sum(row["negative"] for row in now_hour) == 1  # not also in the feedback's hour


async def test_a_removed_rating_leaves_the_counters(
    store: RedisStore, stats: FeedbackStats
) -> None:
    """A rating removed by later feedback no longer counts: the day shows the trace with no
    rating and no average."""
    await store.write_batch([span_record("tr-r", started_ms=BASE_MS)])
    await store.write_batch([feedback("tr-r", user_feedback_rating=2)])
    removal = feedback("tr-r", user_feedback_comment="changed my mind")
    removal["delete_attributes"] = ["user_feedback_rating"]
    await store.write_batch([removal])
    rows = await stats.query(StatsQuery("day", BASE_MS, BASE_MS, None))
    assert as_expected(rows, None) == {(iso_from_ms(BASE_MS), ""): [1, 0, 0, 0, None]}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"bucket": ["week"]}, "bucket"),
        ({"group_by": ["user"]}, "group_by"),
        ({"since": ["yesterday"]}, "since"),
        ({"since": ["2026-11-02"], "until": ["2026-11-01"]}, "until"),
        ({"since": ["0"]}, "since"),
        ({"bucket": ["day", "hour"]}, "bucket"),
        ({"model": ["gpt-4o"]}, "model"),
    ],
)
def test_bad_parameters_name_themselves(params: dict[str, list[str]], param: str) -> None:
    """A bad stats query parameter is refused with a message naming that parameter."""
    with pytest.raises(InvalidParameter) as error:
        parse_stats_query(params, now_ms=int(time.time() * 1000))
    assert error.value.message.startswith(f"{param}: ")


def test_defaults_and_bare_dates() -> None:
    """No parameters: daily buckets over the last 30 days; hourly: the last 24 hours; a bare
    date covers that whole UTC day."""
    now = 1_795_000_000_000
    assert parse_stats_query({}, now) == StatsQuery("day", now - 30 * DAY_MS + 1, now, None)
    hourly = parse_stats_query({"bucket": ["hour"], "group_by": ["model"]}, now)
    assert hourly == StatsQuery("hour", now - DAY_MS + 1, now, "model")
    day = parse_stats_query({"since": ["2026-11-01"], "until": ["2026-11-01"]}, now)
    assert (day.since_ms, day.until_ms - day.since_ms) == (1_793_491_200_000, DAY_MS - 1)


async def test_stats_through_the_proxy_follow_votes_sent_as_headers(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Three traces through the proxy, two thumbs-down (one later changed to up) and a
    rating: the admin API reports them per model."""
    proxy = await start()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    calls = [
        ("tr-a", {}),
        ("tr-a", {"X-Feedback": "negative", "X-Feedback-Id": "f1"}),
        ("tr-b", {"X-Feedback": "negative", "X-Feedback-Rating": "2"}),
        ("tr-c", {}),
        ("tr-a", {"X-Feedback": "positive", "X-Feedback-Id": "f1"}),
    ]
    for trace_id, headers in calls:
        async with http.post(
            f"{proxy.url}/v1/chat/completions",
            json=chat,
            headers={"X-Trace-Id": trace_id, **headers},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers.get("X-Feedback-Status", "applied") == "applied"

    async def by_model() -> Any:
        async with http.get(
            f"{proxy.admin_url}/api/stats/feedback", params={"group_by": "model"}
        ) as resp:
            assert resp.status == 200
            return await resp.json()

    def model_rows(body: Any) -> list[Any]:
        return [r for r in body["buckets"] if r["model"] == "gpt-4o-mini"]

    def totals(body: Any) -> list[int]:
        keys = ("traces", "positive", "negative", "rating_count")
        return [sum(r[k] for r in model_rows(body)) for k in keys]

    # spans are written behind the responses: wait for all of them
    body = await eventually(by_model, until=lambda body: totals(body) == [3, 1, 1, 1])
    assert totals(body) == [3, 1, 1, 1]
    assert [r["rating_average"] for r in model_rows(body) if r["rating_count"]] == [2.0]
    assert body["group_by"] == "model"
    assert body["bucket"] == "day"


async def test_a_bucket_is_counted_whole_even_when_until_cuts_it(
    store: RedisStore, stats: FeedbackStats
) -> None:
    """until at noon: the day's row still counts the evening's trace and its vote (traces
    and votes cover the same span of time)."""
    evening = BASE_MS + 20 * HOUR_MS
    await store.write_batch([span_record("tr-late", started_ms=evening)])
    await store.write_batch([feedback("tr-late", user_feedback="negative")])
    rows = await stats.query(StatsQuery("day", BASE_MS, BASE_MS + 12 * HOUR_MS, None))
    assert as_expected(rows, None) == {(iso_from_ms(BASE_MS), ""): [1, 0, 1, 0, None]}
