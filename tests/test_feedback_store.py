"""Feedback merges on a real Redis: history, idempotency, later-wins, spans, caps, indexes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from proxy.config import ReviewRule
from proxy.core.records import iso_from_ms
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.factories import feedback, span_record

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

RULES = (
    ReviewRule(dataset="review", when={"user_feedback": "negative"}),
    ReviewRule(dataset="low", when={"user_feedback_rating": {"lte": 2}}),
)


@pytest.fixture
async def store(redis_client: aioredis.Redis, keys: Keys) -> AsyncIterator[RedisStore]:
    """Overrides conftest's ``store``: feedback history capped at 5 events, and RULES."""
    store = RedisStore(
        redis_client, keys, retention_days=30, max_feedback_events=5, review_rules=RULES
    )
    yield store
    await store.close()


async def trace_of(store: RedisStore, trace_id: str = "tr-1") -> dict[str, Any]:
    trace = await store.get_trace(trace_id)
    assert trace is not None
    return trace


async def test_negative_feedback_sets_attributes_tag_annotation_and_history(
    store: RedisStore,
) -> None:
    """A thumbs-down lands as attribute, tag thumbs-down, annotation empty and one event."""
    await store.write_batch([span_record()])
    result = await store.merge_feedback(
        feedback(user_feedback="negative", user_feedback_category="incorrect")
    )
    assert result.status == "applied"
    trace = await trace_of(store)
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["attributes"]["user_feedback_category"] == "incorrect"
    assert "thumbs-down" in trace["tags"]
    assert trace["annotation_status"] == "empty"
    assert [e["attributes"]["user_feedback"] for e in trace["feedback"]] == ["negative"]


async def test_same_feedback_id_replaces_its_event_and_moves_the_thumbs_tag(
    store: RedisStore,
) -> None:
    """A changed vote with the same X-Feedback-Id replaces the event: no pile-up, tag moves."""
    await store.merge_feedback(feedback(feedback_id="vote-1", user_feedback="negative"))
    again = await store.merge_feedback(feedback(feedback_id="vote-1", user_feedback="positive"))
    assert again.status == "replaced"
    assert again.previous is not None
    assert again.previous["attributes"]["user_feedback"] == "negative"
    trace = await trace_of(store)
    assert len(trace["feedback"]) == 1
    assert trace["attributes"]["user_feedback"] == "positive"
    assert "thumbs-up" in trace["tags"]
    assert "thumbs-down" not in trace["tags"]


async def test_history_keeps_order_and_later_merge_wins(store: RedisStore) -> None:
    """Events stay in arrival order; for one key the later merge wins."""
    await store.merge_feedback(feedback(user_feedback_rating=2))
    await store.merge_feedback(feedback(user_feedback_rating=5, user_feedback_comment="ok"))
    trace = await trace_of(store)
    assert [e["attributes"]["user_feedback_rating"] for e in trace["feedback"]] == [2, 5]
    assert trace["attributes"]["user_feedback_rating"] == 5
    assert trace["attributes"]["user_feedback_comment"] == "ok"


async def test_replayed_record_changes_nothing(store: RedisStore) -> None:
    """The same feedback record written twice (a spool replay) is one event."""
    record = feedback(user_feedback="positive")
    await store.write_batch([record])
    await store.write_batch([record])
    assert len((await trace_of(store))["feedback"]) == 1


async def test_annotation_status_is_not_reset_once_set(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Negative feedback sets annotation_status only when it has none."""
    await redis_client.hset(keys.trace("tr-1").trace, "annotation_status", "filled")
    await store.merge_feedback(feedback(user_feedback="negative"))
    assert (await trace_of(store))["annotation_status"] == "filled"


async def test_feedback_before_spans_is_kept_and_spans_join_it(store: RedisStore) -> None:
    """Feedback for a trace with no spans yet is kept; a span arriving later joins it."""
    await store.merge_feedback(feedback(user_feedback="negative"))
    await store.merge_feedback(feedback(span_id="a" * 16, user_feedback_comment="this one"))
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    await store.write_batch([span_record(started_ms=an_hour_ago)])
    trace = await trace_of(store)
    assert trace["attributes"]["user_feedback"] == "negative"
    (span,) = trace["spans"]
    assert span["attributes"] == {"user_feedback_comment": "this one"}
    assert trace["created_at"] == iso_from_ms(an_hour_ago)  # the span started first


async def test_span_targeted_feedback_stays_on_its_span(store: RedisStore) -> None:
    """Feedback with a span ID lands on that span, not on the trace's attributes."""
    await store.write_batch([span_record(span_id="a" * 16), span_record(span_id="b" * 16)])
    await store.merge_feedback(feedback(span_id="b" * 16, user_feedback="negative"))
    trace = await trace_of(store)
    by_id = {s["span_id"]: s for s in trace["spans"]}
    assert by_id["b" * 16]["attributes"] == {"user_feedback": "negative"}
    assert by_id["b" * 16]["tags"] == ["thumbs-down"]
    assert by_id["a" * 16]["attributes"] == {}
    assert "user_feedback" not in trace["attributes"]
    assert trace["annotation_status"] == "empty"


async def test_history_cap_refuses_more_events_and_changes_nothing(store: RedisStore) -> None:
    """Past max_feedback_events a new event is refused; replacing an existing one still works."""
    for i in range(5):
        assert (
            await store.merge_feedback(feedback(feedback_id=f"f{i}", user_feedback_rating=3))
        ).status == "applied"
    full = await store.merge_feedback(feedback(user_feedback_rating=1))
    assert full.status == "full"
    trace = await trace_of(store)
    assert len(trace["feedback"]) == 5
    assert trace["attributes"]["user_feedback_rating"] == 3
    again = await store.merge_feedback(feedback(feedback_id="f0", user_feedback_rating=4))
    assert again.status == "replaced"


async def test_feedback_indexes_list_the_trace(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """The trace appears in the feedback, category, reason, rating, annotation indexes."""
    await store.write_batch([span_record()])
    await store.merge_feedback(feedback(
        user_feedback="negative", user_feedback_category="incorrect",
        feedback_reason="hallucination", user_feedback_rating=2,
    ))  # fmt: skip
    for dimension, value in [("feedback", "negative"), ("category", "incorrect"),
                             ("reason", "hallucination"), ("rating", "2"),
                             ("annotation", "empty"), ("has_feedback", "1"),
                             ("tag", "thumbs-down")]:  # fmt: skip
        score = await redis_client.zscore(keys.index(dimension, value), "tr-1")
        assert score is not None, dimension


async def test_review_rules_add_matching_traces_once(store: RedisStore) -> None:
    """Feedback matching a review rule adds the trace to that dataset as an empty row, once."""
    await store.write_batch([span_record()])
    await store.merge_feedback(feedback(user_feedback="negative", user_feedback_rating=1))
    await store.merge_feedback(feedback(user_feedback="negative"))
    (row,) = await store.dataset_rows("review")
    assert row["trace_id"] == "tr-1"
    assert row["annotation_status"] == "empty"
    assert row["feedback"]["user_feedback"] == "negative"
    assert [r["trace_id"] for r in await store.dataset_rows("low")] == ["tr-1"]
    await store.merge_feedback(feedback("tr-2", user_feedback="positive", user_feedback_rating=5))
    assert [r["trace_id"] for r in await store.dataset_rows("review")] == ["tr-1"]


async def test_replayed_feedback_is_applied_past_the_cap(store: RedisStore) -> None:
    """Feedback already answered "queued" is applied on replay even when the cap is reached."""
    for i in range(5):
        await store.merge_feedback(feedback(feedback_id=f"f{i}", user_feedback_rating=3))
    await store.write_batch([feedback(user_feedback_rating=1)])  # a replay from the spool
    trace = await trace_of(store)
    assert len(trace["feedback"]) == 6
    assert trace["attributes"]["user_feedback_rating"] == 1


async def test_an_identical_replay_never_overwrites_a_newer_vote(store: RedisStore) -> None:
    """Re-applying an event already merged (a timed-out merge, replayed) changes nothing."""
    old = feedback(feedback_id="v", user_feedback="negative")
    await store.merge_feedback(old)
    await store.merge_feedback(feedback(user_feedback="positive"))
    again = await store.merge_feedback(old)
    assert again.status == "duplicate"
    trace = await trace_of(store)
    assert trace["attributes"]["user_feedback"] == "positive"
    assert len(trace["feedback"]) == 2


async def test_every_index_scores_the_trace_by_its_creation_time(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A later span's model, and feedback that came before any span, score at creation time."""
    now = int(time.time() * 1000)
    await store.merge_feedback(feedback(user_feedback="negative"))  # before any span
    first = span_record(span_id="1" * 16, started_ms=now - 60_000)
    second = span_record(span_id="2" * 16, started_ms=now - 30_000)
    second["span"]["model"] = "other-model"
    await store.write_batch([second])
    await store.write_batch([first])  # arrives last, but started first
    for index in (keys.index_by_time, keys.index("model", "other-model"),
                  keys.index("feedback", "negative"), keys.index("has_feedback", "1"),
                  keys.index("annotation", "empty"), keys.index("tag", "thumbs-down")):  # fmt: skip
        assert await redis_client.zscore(index, "tr-1") == now - 60_000, index


async def test_a_feedback_only_trace_is_listed_by_time(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Feedback for a trace with no spans yet still lists it in the time index."""
    await store.merge_feedback(feedback("fb-only", user_feedback="positive"))
    assert await redis_client.zscore(keys.index_by_time, "fb-only") is not None


async def test_a_replay_redoes_the_index_step_that_failed(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """If the index step after a merge failed, replaying the same record lists the trace."""
    record = feedback(user_feedback="negative")
    await store.merge_feedback(record)
    for index in (keys.index_by_time, keys.index("feedback", "negative")):
        await redis_client.zrem(index, "tr-1")  # as if the second round trip never happened
    await store.write_batch([record])
    for index in (keys.index_by_time, keys.index("feedback", "negative")):
        assert await redis_client.zscore(index, "tr-1") is not None, index


async def test_feedback_only_trace_keys_all_expire(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A trace made only of feedback leaves no key without a TTL."""
    await store.merge_feedback(feedback("fb-ttl", user_feedback="negative"))
    for key in keys.trace("fb-ttl").all():
        assert await redis_client.ttl(key) != -1, key


async def test_an_older_version_of_an_event_never_replaces_a_newer_one(store: RedisStore) -> None:
    """A late replay of an older vote with the same X-Feedback-Id leaves the newer vote."""
    older = feedback(feedback_id="vote", user_feedback="negative")
    newer = feedback(feedback_id="vote", user_feedback="positive")
    older["event"]["received_at"] = "2026-11-27T00:00:00.000Z"
    newer["event"]["received_at"] = "2026-11-27T00:00:01.000Z"
    await store.merge_feedback(newer)
    late = await store.merge_feedback(older)
    assert late.status == "duplicate"
    trace = await trace_of(store)
    assert trace["attributes"]["user_feedback"] == "positive"
    assert "thumbs-down" not in trace["tags"]


async def test_feedback_for_a_trace_past_retention_does_not_fail(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Feedback on a trace older than a lowered retention is merged without an error."""
    long_store = RedisStore(redis_client, keys, retention_days=30)
    short_store = RedisStore(redis_client, keys, retention_days=7)
    try:
        ten_days_ago = int(time.time() * 1000) - 10 * 86_400_000
        await long_store.write_batch([span_record("old-tr", started_ms=ten_days_ago)])
        result = await short_store.merge_feedback(feedback("old-tr", user_feedback="negative"))
    finally:
        await long_store.close()
        await short_store.close()
    assert result.status in ("applied", "replaced")
