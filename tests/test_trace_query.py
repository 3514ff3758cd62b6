"""Trace lists on a real Redis: every filter, AND-combinations, order, cursors, stale indexes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.admin.params import InvalidParameter, parse_trace_list
from proxy.core.records import iso_from_ms
from proxy.store.keys import Keys
from proxy.store.query_plan import (
    Position,
    TraceFilter,
    decode_cursor,
    driver_indexes,
    encode_cursor,
    positions_after,
    smallest,
)
from proxy.store.redis_store import RedisStore
from proxy.store.trace_query import TraceQuery
from tests.conftest import StartProxy
from tests.factories import (
    Fixture,
    Planned,
    feedback,
    feedback_of,
    plan_traces,
    span_record,
    spans_of,
)

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

N_TRACES = 300


@pytest.fixture
def query(redis_client: aioredis.Redis, keys: Keys) -> TraceQuery:
    return TraceQuery(redis_client, keys)


@pytest.fixture
async def traces(store: RedisStore, redis_client: aioredis.Redis, keys: Keys) -> Fixture:
    """300 traces with known spans and feedback, written through the store."""
    rng = random.Random(5)
    plan = plan_traces(rng, N_TRACES, int(time.time() * 1000) - 3_600_000)
    await store.write_batch([r for p in plan for r in spans_of(rng, p)])
    await store.write_batch([r for p in plan for r in feedback_of(rng, p)])
    for p in plan[::23]:  # a reviewer filled some (as the datasets API will)
        if p.annotation == "empty":
            p.annotation = "filled"
            await redis_client.hset(keys.trace(p.trace_id).trace, "annotation_status", "filled")
            await redis_client.zadd(keys.index("annotation", "filled"), {p.trace_id: p.created_ms})
    return plan


def newest_first(plan: Fixture, keep: Callable[[Planned], bool]) -> list[str]:
    """The IDs matching ``keep``, newest first, ties by trace_id descending."""
    hits = sorted((p for p in plan if keep(p)), key=lambda p: (p.created_ms, p.trace_id))
    return [p.trace_id for p in reversed(hits)]


async def collect(query: TraceQuery, params: dict[str, list[str]], limit: int = 500) -> list[str]:
    """Every page of a query, following next_cursor to the end."""
    parsed = parse_trace_list(params)
    ids: list[str] = []
    cursor = None
    for _ in range(10_000):
        page = await query.run(parsed.filters, limit, cursor)
        ids += [t["trace_id"] for t in page.traces]
        if page.next_cursor is None:
            return ids
        cursor = decode_cursor(page.next_cursor)
    raise AssertionError("pagination never ended")


def rating(p: Planned) -> float | None:
    value = p.attributes.get("user_feedback_rating")
    return None if value is None else float(value)


def attr(key: str, value: Any) -> Callable[[Planned], bool]:
    return lambda p: p.attributes.get(key) == value


def rated(low: float, high: float) -> Callable[[Planned], bool]:
    return lambda p: (r := rating(p)) is not None and low <= r <= high


SINGLE: list[tuple[dict[str, list[str]], Callable[[Planned], bool]]] = [
    ({}, lambda p: True),
    ({"feedback": ["negative"]}, attr("user_feedback", "negative")),
    ({"feedback": ["Positive"]}, attr("user_feedback", "positive")),
    ({"rating_min": ["3"]}, rated(3, 5)),
    ({"rating_max": ["2.5"]}, rated(1, 2.5)),
    ({"rating_min": ["2.5"], "rating_max": ["2.5"]}, rated(2.5, 2.5)),
    ({"rating_min": ["4"], "rating_max": ["4.0"]}, rated(4, 4)),
    ({"category": ["incorrect"]}, attr("user_feedback_category", "incorrect")),
    ({"reason": ["hallucination"]}, attr("feedback_reason", "hallucination")),
    ({"tag": ["alpha"]}, lambda p: "alpha" in p.tags),
    ({"tag": ["thumbs-down"]}, lambda p: "thumbs-down" in p.tags),
    ({"tag": ["flagged"]}, lambda p: "flagged" in p.tags),
    ({"annotation_status": ["empty"]}, lambda p: p.annotation == "empty"),
    ({"annotation_status": ["filled"]}, lambda p: p.annotation == "filled"),
    ({"has_feedback": ["true"]}, lambda p: p.has_feedback),
    ({"has_feedback": ["false"]}, lambda p: not p.has_feedback),
    ({"model": ["gpt-4o"]}, lambda p: "gpt-4o" in p.models),
    ({"upstream": ["anthropic"]}, lambda p: "anthropic" in p.upstreams),
    ({"session_id": ["s3"]}, lambda p: p.session_id == "s3"),
    ({"user_id": ["u1"]}, lambda p: p.user_id == "u1"),
]

COMBINED: list[tuple[dict[str, list[str]], Callable[[Planned], bool]]] = [
    ({"feedback": ["negative"], "reason": ["hallucination"]},
     lambda p: attr("user_feedback", "negative")(p)
     and attr("feedback_reason", "hallucination")(p)),
    ({"tag": ["alpha", "beta"]}, lambda p: {"alpha", "beta"} <= p.tags),
    ({"feedback": ["negative"], "upstream": ["anthropic"], "model": ["gpt-4o-mini"]},
     lambda p: attr("user_feedback", "negative")(p) and "anthropic" in p.upstreams
     and "gpt-4o-mini" in p.models),
    ({"has_feedback": ["false"], "session_id": ["s1"]},
     lambda p: not p.has_feedback and p.session_id == "s1"),
    ({"rating_min": ["2"], "rating_max": ["4"], "user_id": ["u2"], "tag": ["gamma"]},
     lambda p: rated(2, 4)(p) and p.user_id == "u2" and "gamma" in p.tags),
    ({"feedback": ["positive"], "annotation_status": ["empty"]},
     lambda p: attr("user_feedback", "positive")(p) and p.annotation == "empty"),
    ({"category": ["unhelpful"], "has_feedback": ["true"], "upstream": ["openai"]},
     lambda p: attr("user_feedback_category", "unhelpful")(p) and "openai" in p.upstreams),
]  # fmt: skip


@pytest.mark.parametrize(("params", "keep"), SINGLE, ids=lambda v: str(v)[:40])
async def test_each_filter_alone_returns_exactly_the_matching_traces(
    query: TraceQuery,
    traces: Fixture,
    params: dict[str, list[str]],
    keep: Callable[[Planned], bool],
) -> None:
    """One filter: exactly the traces the fixture says match, newest first."""
    expected = newest_first(traces, keep)
    assert expected
    assert await collect(query, params) == expected


@pytest.mark.parametrize(("params", "keep"), COMBINED, ids=lambda v: str(v)[:60])
async def test_filters_combine_with_and(
    query: TraceQuery,
    traces: Fixture,
    params: dict[str, list[str]],
    keep: Callable[[Planned], bool],
) -> None:
    """Several filters: only traces matching all of them, newest first."""
    assert await collect(query, params) == newest_first(traces, keep)


async def test_since_and_until_are_inclusive_in_iso_and_epoch_ms(
    query: TraceQuery, traces: Fixture
) -> None:
    """since/until bound the creation time, both ends included, in either spelling."""
    since, until = traces[60].created_ms, traces[210].created_ms

    def keep(p: Planned) -> bool:
        return since <= p.created_ms <= until

    iso = {"since": [iso_from_ms(since)], "until": [iso_from_ms(until).replace("Z", "+00:00")]}
    assert await collect(query, iso) == newest_first(traces, keep)
    epoch = {"since": [str(since)], "until": [str(until)], "feedback": ["negative"]}
    negative = attr("user_feedback", "negative")
    assert await collect(query, epoch, limit=4) == newest_first(
        traces, lambda p: keep(p) and negative(p)
    )


@pytest.mark.parametrize("limit", [1, 7, 50])
async def test_small_pages_return_every_match_once_in_order(
    query: TraceQuery, traces: Fixture, limit: int
) -> None:
    """Following next_cursor with small limits yields the same list as one big page."""
    for params, keep in [({}, lambda p: True), ({"feedback": ["negative"]}, SINGLE[1][1])]:
        assert await collect(query, params, limit) == newest_first(traces, keep)


async def test_summary_shows_what_the_trace_shows(
    query: TraceQuery, store: RedisStore, traces: Fixture
) -> None:
    """A summary's fields are the same values GET /api/traces/{id} shows."""
    page = await query.run(TraceFilter(has_feedback=True), limit=40)
    assert len(page.traces) == 40
    for summary in page.traces:
        full = await store.get_trace(summary["trace_id"])
        assert full is not None
        assert summary == {key: full[key] for key in summary}
        assert set(summary) == {"trace_id", "name", "session_id", "user_id", "created_at",
                                "updated_at", "attributes", "tags", "annotation_status",
                                "span_count", "models", "cost_usd", "total_tokens"}  # fmt: skip


async def test_pagination_during_concurrent_inserts_loses_and_repeats_nothing(
    query: TraceQuery, store: RedisStore, traces: Fixture
) -> None:
    """New negative traces arrive while a client pages: every old match comes exactly once."""
    expected = newest_first(traces, attr("user_feedback", "negative"))
    filters = TraceFilter(feedback="negative")
    seen: list[str] = []

    async def page_through() -> None:
        cursor: Position | None = None
        while True:
            page = await query.run(filters, 3, cursor)
            seen.extend(t["trace_id"] for t in page.traces)
            if page.next_cursor is None:
                return
            cursor = decode_cursor(page.next_cursor)
            await asyncio.sleep(0)

    async def insert() -> None:
        for i in range(40):
            trace_id = f"new-{i:03d}"
            await store.write_batch([span_record(trace_id)])
            await store.write_batch([feedback(trace_id, user_feedback="negative")])
            await asyncio.sleep(0)

    await asyncio.gather(page_through(), insert())
    assert len(seen) == len(set(seen))
    assert [t for t in seen if not t.startswith("new-")] == expected


async def test_a_big_group_sharing_one_millisecond_pages_exactly(
    query: TraceQuery, store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """80 traces in two milliseconds: id order, exactly once, even when members come and go."""
    now = int(time.time() * 1000)
    ids = [f"tie-{i:03d}" for i in range(80)]
    await store.write_batch([span_record(t, started_ms=now - (i % 2)) for i, t in enumerate(ids)])
    scores = {t: now - i % 2 for i, t in enumerate(ids)} | {"tie-000a": now}
    order = sorted(ids, key=lambda t: (scores[t], t), reverse=True)
    seen: list[str] = []
    page = await query.run(TraceFilter(), 7)
    seen += [t["trace_id"] for t in page.traces]
    assert seen == order[:7]
    await redis_client.zrem(keys.index_by_time, order[2])  # a member before the cursor goes
    await store.write_batch([span_record("tie-000a", started_ms=now)])  # one lands behind it
    while page.next_cursor is not None:
        page = await query.run(TraceFilter(), 7, decode_cursor(page.next_cursor))
        seen += [t["trace_id"] for t in page.traces]
    rest = sorted({*order[7:], "tie-000a"}, key=lambda t: (scores[t], t), reverse=True)
    assert seen == order[:7] + rest


async def test_changed_vote_no_longer_matches_although_its_index_entry_stays(
    query: TraceQuery, store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Negative then positive with the same feedback_id: feedback=negative skips the trace."""
    await store.write_batch([span_record("tr-1")])
    await store.merge_feedback(feedback("tr-1", "vote-1", user_feedback="negative"))
    await store.merge_feedback(feedback("tr-1", "vote-1", user_feedback="positive"))
    assert await redis_client.zscore(keys.index("feedback", "negative"), "tr-1") is not None
    assert (await query.run(TraceFilter(feedback="negative"))).traces == []
    assert (await query.run(TraceFilter(tags=("thumbs-down",)))).traces == []
    (trace,) = (await query.run(TraceFilter(feedback="positive"))).traces
    assert trace["trace_id"] == "tr-1"


async def test_an_expired_traces_index_entries_are_skipped(
    query: TraceQuery, store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A trace whose keys expired (index entries not pruned yet) never shows."""
    for trace_id in ("gone", "kept"):
        await store.write_batch([span_record(trace_id)])
        await store.merge_feedback(feedback(trace_id, user_feedback="negative"))
    await redis_client.delete(*keys.trace("gone").all())
    for filters in (
        TraceFilter(),
        TraceFilter(feedback="negative"),
        TraceFilter(model="gpt-4o-mini"),
    ):
        page = await query.run(filters)
        assert [t["trace_id"] for t in page.traces] == ["kept"], filters


async def test_feedback_that_arrived_before_its_span_is_found(
    query: TraceQuery, store: RedisStore
) -> None:
    """Feedback merged before any span still lists the trace under its feedback filters."""
    await store.merge_feedback(feedback("early", user_feedback="negative"))
    await store.write_batch([span_record("early")])
    page = await query.run(TraceFilter(feedback="negative", model="gpt-4o-mini"))
    assert [t["trace_id"] for t in page.traces] == ["early"]


async def test_a_spent_scan_budget_returns_a_short_page_and_a_cursor(
    query: TraceQuery, store: RedisStore
) -> None:
    """One match among 250 traces with limit=1: an empty page with a cursor, then the match."""
    now = int(time.time() * 1000)
    await store.write_batch([span_record(f"b{i:03d}", started_ms=now - i) for i in range(250)])
    await store.write_batch([feedback(f"b{i:03d}", user_feedback_rating=3) for i in range(249)])
    first = await query.run(TraceFilter(has_feedback=False), 1)
    assert first.traces == []
    assert first.next_cursor is not None
    second = await query.run(TraceFilter(has_feedback=False), 1, decode_cursor(first.next_cursor))
    assert [t["trace_id"] for t in second.traces] == ["b249"]
    assert second.next_cursor is None


def test_the_smallest_named_index_drives(keys: Keys) -> None:
    """Equality filters name their indexes; the smallest wins; nothing named means idx:time."""
    assert driver_indexes(TraceFilter(), keys) == [keys.index_by_time]
    assert driver_indexes(TraceFilter(has_feedback=False), keys) == [keys.index_by_time]
    assert driver_indexes(TraceFilter(rating_min=2), keys) == [keys.index("has_feedback", "1")]
    assert driver_indexes(TraceFilter(rating_min=2.5, rating_max=2.5), keys) == [
        keys.index("rating", "2.5")
    ]
    named = driver_indexes(TraceFilter(feedback="negative", tags=("a", "b")), keys)
    assert named == [keys.index("feedback", "negative"), keys.index("tag", "a"),
                     keys.index("tag", "b")]  # fmt: skip
    assert smallest(named, [30, 4, 4]) == keys.index("tag", "a")


def test_cursor_round_trips_and_positions_count_within_a_millisecond() -> None:
    """A cursor reads back as its position; offsets count members sharing a score."""
    position = Position(1700000000123.0, "t-9", 4)
    assert decode_cursor(encode_cursor(position)) == position
    items = [("t-8", 5.0), ("t-7", 5.0), ("z", 4.0), ("y", 4.0), ("x", 3.0)]
    after = positions_after(Position(5.0, "t-9", 2), items, 2)
    assert [(p.score, p.trace_id, p.offset) for p in after] == [
        (5.0, "t-8", 3), (5.0, "t-7", 4), (4.0, "z", 1), (4.0, "y", 2), (3.0, "x", 1)
    ]  # fmt: skip


BAD: list[tuple[dict[str, list[str]], str]] = [
    ({"feedback": ["meh"]}, "feedback"),
    ({"rating_min": ["0"]}, "rating_min"),
    ({"rating_max": ["five"]}, "rating_max"),
    ({"rating_min": ["4"], "rating_max": ["2"]}, "rating_max"),
    ({"category": [" "]}, "category"),
    ({"reason": [""]}, "reason"),
    ({"tag": ["ok", ""]}, "tag"),
    ({"annotation_status": ["done"]}, "annotation_status"),
    ({"has_feedback": ["yes"]}, "has_feedback"),
    ({"model": [""]}, "model"),
    ({"upstream": ["x" * 200]}, "upstream"),
    ({"session_id": [""]}, "session_id"),
    ({"user_id": ["u" * 129]}, "user_id"),
    ({"since": ["2026-11-01T12:00:00"]}, "since"),
    ({"until": ["yesterday"]}, "until"),
    ({"since": ["2026-11-02"], "until": ["2026-11-01"]}, "until"),
    ({"limit": ["0"]}, "limit"),
    ({"limit": ["501"]}, "limit"),
    ({"limit": ["ten"]}, "limit"),
    ({"cursor": ["not-a-cursor"]}, "cursor"),
    ({"feedback": ["negative", "positive"]}, "feedback"),
    ({"colour": ["red"]}, "colour"),
]


@pytest.mark.parametrize(("params", "name"), BAD, ids=lambda v: str(v)[:40])
def test_bad_parameters_are_refused_naming_the_parameter(
    params: dict[str, list[str]], name: str
) -> None:
    """Each bad value (or unknown name) raises InvalidParameter whose message starts with it."""
    with pytest.raises(InvalidParameter) as caught:
        parse_trace_list(params)
    assert caught.value.message.startswith(f"{name}: ")


def test_good_parameters_parse_to_filters() -> None:
    """Dates, offsets sent as a space (an unencoded +) and epoch ms all read as ms."""
    parsed = parse_trace_list({
        "since": ["2026-11-01T01:00:00 01:00"], "until": ["2026-11-01"], "tag": ["a", "a", "b"],
        "category": [" Incorrect "], "has_feedback": ["TRUE"], "limit": ["500"],
    })  # fmt: skip
    midnight = 1793491200000  # 2026-11-01T00:00:00Z
    assert parsed.filters.since_ms == midnight
    assert parsed.filters.until_ms == midnight + 86_400_000 - 1
    assert parsed.filters.tags == ("a", "b")
    assert parsed.filters.category == "incorrect"
    assert parsed.filters.has_feedback is True
    assert parsed.limit == 500


async def test_http_lists_pages_and_refuses_bad_parameters(
    start: StartProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Over HTTP: summaries newest first with next_cursor; bad values answer 400 naming them."""
    proxy = await start()
    now = int(time.time() * 1000)
    await store.write_batch([span_record(f"h{i}", started_ms=now - i) for i in range(5)])
    await store.write_batch([feedback(f"h{i}", user_feedback="negative") for i in (0, 2, 3)])
    url = f"{proxy.admin_url}/api/traces"
    async with http.get(url, params={"feedback": "negative", "limit": "2"}) as resp:
        assert resp.status == 200
        first = await resp.json()
    assert [t["trace_id"] for t in first["traces"]] == ["h0", "h2"]
    params = {"feedback": "negative", "limit": "2", "cursor": first["next_cursor"]}
    async with http.get(url, params=params) as resp:
        second = await resp.json()
    assert [t["trace_id"] for t in second["traces"]] == ["h3"]
    assert second["next_cursor"] is None
    for bad, name in [
        ({"limit": "501"}, "limit"),
        ({"since": "x"}, "since"),
        ({"foo": "1"}, "foo"),
    ]:
        async with http.get(url, params=bad) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert error["code"] == "invalid_parameter"
        assert error["type"] == "invalid_request_error"  # the proxy listener's shape
        assert error["param"] == name
        assert error["message"].startswith(f"{name}: ")
