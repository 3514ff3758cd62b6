"""Every in-process cache that traffic can grow has a bound, and hitting the bound loses nothing:
what reaches Redis is the same as with an unbounded cache (a forgotten entry only costs one
idempotent command)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from proxy.config import ReviewRule
from proxy.core.bounded import BoundedSet
from proxy.core.stream import TraceFacts
from proxy.exporters.otlp.mapping import Encoder
from proxy.exporters.otlp.spans import SHAPES_CACHED
from proxy.feedback.model_lookup import REMEMBERED_TRACES, RecentModels
from proxy.metrics.calls import MAX_MODELS, CallMetrics
from proxy.metrics.feedback import FeedbackCounts
from proxy.store import event_stream, redis_store
from proxy.store.keys import Keys
from proxy.store.redis_store import REGISTRY_CACHE, REVIEWED_CACHE, RedisStore
from tests.factories import feedback, span_record
from tests.otlp_receiver import attrs
from tests.test_otlp_mapping import TARGETS, entry, span_data


def test_a_bounded_set_forgets_its_oldest_items_past_capacity() -> None:
    seen: BoundedSet[str] = BoundedSet(3)
    for name in ["a", "b", "c", "b", "d", "e"]:
        seen.add(name)
    assert len(seen) == 3
    assert [n for n in "abcde" if n in seen] == ["c", "d", "e"]
    with pytest.raises(ValueError, match="capacity"):
        BoundedSet(0)


def test_the_store_caches_have_documented_bounds_of_a_few_thousand() -> None:
    """The bounds docs/operations.md names: small enough to fill in the first minutes at a
    moderate load (so memory is flat after) and to stay under 1 MiB each."""
    assert REGISTRY_CACHE == 1024
    assert REVIEWED_CACHE == 1024
    assert REMEMBERED_TRACES == 4096


def test_recent_models_keep_the_last_traces_only() -> None:
    recent = RecentModels(capacity=50)
    for i in range(500):
        recent.remember(f"t{i}", "gpt-4o")
    assert recent.models_of("t0") == set()
    assert recent.models_of("t499") == {"gpt-4o"}
    assert len(recent) == 50


def test_recent_models_tell_a_one_model_trace_from_a_mixed_one() -> None:
    """The compact one-model entry becomes a set once a second model shows up."""
    recent = RecentModels(capacity=4)
    for model in ["gpt-4o", "gpt-4o", "claude", "gpt-4o"]:
        recent.remember("mixed", model)
    recent.remember("one", "gpt-4o")
    recent.remember("one", None)
    assert recent.models_of("mixed") == {"gpt-4o", "claude"}
    assert recent.models_of("one") == {"gpt-4o"}
    assert recent.models_of("never") == set()
    for i in range(4):  # the oldest (least recently recorded) go first
        recent.remember(f"t{i}", "gpt-4o")
    assert recent.models_of("mixed") == set()
    assert recent.models_of("one") == set()


def test_the_otlp_encoder_keeps_a_few_hundred_span_shapes_and_every_span_its_own_values() -> None:
    """Token counts and sessions make a new shape of nearly every span (~6 KiB each): past
    SHAPES_CACHED the cache starts over, and no span gets another's tokens or session."""
    assert SHAPES_CACHED == 256
    encoder = Encoder(TARGETS, False, "svc", "1")
    n = 3 * SHAPES_CACHED
    entries = [
        entry("span", span_data(usage={"input_tokens": i, "output_tokens": 1}), trace_id=f"t{i}")
        for i in range(n)
    ]
    facts = {f"t{i}": TraceFacts(session_id=f"s{i}") for i in range(n)}
    spans = encoder.spans(entries, facts).resource_spans[0].scope_spans[0].spans
    values = [attrs(s.attributes) for s in spans]
    assert [(v["gen_ai.usage.input_tokens"], v["session.id"]) for v in values] == [
        (i, f"s{i}") for i in range(n)
    ]
    assert 0 < len(encoder._cache) <= SHAPES_CACHED


def test_the_export_reader_keeps_at_most_facts_cache_decoded_trace_fields() -> None:
    """Every new session makes new trace fields; the reader's cache of them starts over past
    FACTS_CACHE, and each entry still gets its own trace's fields."""
    assert event_stream.FACTS_CACHE == 1024
    facts: dict[bytes, TraceFacts | None] = {}
    n = 3 * event_stream.FACTS_CACHE
    for i in range(n):
        raw = orjson.dumps({"session_id": f"s{i}", "tags": ["a"]})
        found = event_stream._entry(b"1-0", {b"type": b"span", b"trace": raw}, facts)
        assert found.trace == TraceFacts(session_id=f"s{i}", tags=("a",))
    assert len(facts) <= event_stream.FACTS_CACHE + 1


def test_call_metric_series_stay_bounded_whatever_models_clients_name() -> None:
    """Model names come from request bodies: past MAX_MODELS distinct ones they count as
    "other", so the series are upstreams x (MAX_MODELS + 2) x statuses at most."""
    metrics = CallMetrics()
    for i in range(5 * MAX_MODELS):
        metrics.observe(upstream="openai", model=f"model-{i}", status=200, duration=0.1,
                        ttft=None, usage=None, error=None)  # fmt: skip
    rows = metrics.snapshot()["calls"]
    assert len(rows) == MAX_MODELS + 1
    assert ["openai", "other", "200"] in [labels for labels, _ in rows]
    counts = FeedbackCounts()
    for i in range(5 * MAX_MODELS):
        counts.add({"attributes": {"user_feedback": "negative"}}, None, f"m{i}")  # type: ignore[typeddict-item]
    assert len(counts.snapshot()) == MAX_MODELS + 1


on_both_backends = pytest.mark.redis_backends  # these run on a single Redis and on a Cluster


@pytest.fixture
async def small_store(
    redis_client: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RedisStore]:
    """A store whose caches hold 8 entries, so a test can go far past them."""
    monkeypatch.setattr(redis_store, "REGISTRY_CACHE", 8)
    monkeypatch.setattr(redis_store, "REVIEWED_CACHE", 8)
    rules = (ReviewRule(dataset="review", when={"user_feedback": "negative"}),)
    store = RedisStore(redis_client, keys, retention_days=30, review_rules=rules)
    yield store
    await store.close()


@on_both_backends
async def test_new_session_ids_past_the_registry_bound_are_all_registered(
    small_store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """60 sessions through a cache of 8: the cache stays at 8, and every session's index is
    in the registry (the prune finds it) and lists its trace."""
    for i in range(60):
        await small_store.write_batch([span_record(f"tr-{i}", session_id=f"sess-{i}")])
    assert len(small_store._registered) == 8
    registry = {m.decode() for m in await redis_client.smembers(keys.index_registry)}
    for i in range(60):
        index = keys.index("session", f"sess-{i}")
        assert index in registry
        assert await redis_client.zscore(index, f"tr-{i}") is not None
    # an evicted name coming back is registered again, harmlessly
    await small_store.write_batch([span_record("tr-again", session_id="sess-0")])
    assert await redis_client.zscore(keys.index("session", "sess-0"), "tr-again") is not None


@on_both_backends
async def test_review_rows_past_the_cache_bound_are_each_added_once(
    small_store: RedisStore,
) -> None:
    """30 thumbs-down traces, each voted twice, through a cache of 8: one row per trace."""
    for i in range(30):
        await small_store.write_batch([span_record(f"tr-{i}")])
    for _ in range(2):
        for i in range(30):
            await small_store.merge_feedback(feedback(f"tr-{i}", user_feedback="negative"))
    assert len(small_store._reviewed) == 8
    rows = await small_store.dataset_rows("review")
    assert sorted(r["trace_id"] for r in rows) == sorted(f"tr-{i}" for i in range(30))
