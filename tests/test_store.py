"""The trace store on a real Redis: idempotent span writes, indexes, retention, read-back."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.factories import span_record

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

DAY_MS = 86_400_000


def test_a_traces_keys_share_one_cluster_slot(keys: Keys) -> None:
    """Every key of one trace hashes to the same slot, so one Lua script may touch them all."""
    slots = {key_slot(k.encode()) for k in keys.trace("conv-42").all()}
    assert len(slots) == 1


async def test_writing_a_span_twice_keeps_one_copy(store: RedisStore) -> None:
    """A re-sent batch (spool replay) changes nothing: the span and its count stay single."""
    record = span_record()
    await store.write_batch([record])
    await store.write_batch([record, record])
    trace = await store.get_trace("tr-1")
    assert trace is not None
    assert trace["span_count"] == 1
    assert len(trace["spans"]) == 1


async def test_trace_fields_merge_across_spans(store: RedisStore) -> None:
    """Name/session/user take the latest value given; attributes merge by key; tags unite."""
    first = span_record(span_id="1" * 16, name="first", session_id="s1",
                        attributes={"a": 1, "b": {"x": 1}}, tags=["t1"])  # fmt: skip
    second = span_record(span_id="2" * 16, name="second",
                         attributes={"b": 2, "c": [1]}, tags=["t2", "t1"])  # fmt: skip
    await store.write_batch([first])
    await store.write_batch([second])
    trace = await store.get_trace("tr-1")
    assert trace is not None
    assert trace["name"] == "second"
    assert trace["session_id"] == "s1"
    assert trace["attributes"] == {"a": 1, "b": 2, "c": [1]}
    assert trace["tags"] == ["t1", "t2"]
    assert trace["span_count"] == 2


async def test_created_at_is_the_earliest_span_even_when_written_late(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A replayed older span moves the trace's creation time (and index score) back."""
    now = int(time.time() * 1000)
    await store.write_batch([span_record(span_id="1" * 16, started_ms=now)])
    await store.write_batch([span_record(span_id="2" * 16, started_ms=now - 5000)])
    trace = await store.get_trace("tr-1")
    assert trace is not None
    assert trace["spans"][0]["span_id"] == "2" * 16
    assert await redis_client.zscore(keys.index_by_time, "tr-1") == now - 5000
    assert int(await redis_client.hget(keys.trace("tr-1").trace, "created_ms")) == now - 5000


async def test_indexes_hold_the_trace_under_each_dimension(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Session, user, model, upstream and tag indexes list the trace."""
    await store.write_batch([span_record(session_id="s1", user_id="u1", tags=["x"])])
    for dimension, value in [("session", "s1"), ("user", "u1"), ("model", "gpt-4o-mini"),
                             ("upstream", "openai"), ("tag", "x")]:  # fmt: skip
        assert await redis_client.zscore(keys.index(dimension, value), "tr-1") is not None
    registered = await redis_client.smembers(keys.index_registry)
    assert keys.index("tag", "x").encode() in registered


async def test_trace_keys_expire_retention_days_after_creation(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Every key of a trace carries a TTL of retention_days from its creation."""
    await store.write_batch([span_record(tags=["x"], attributes={"k": 1})])
    present = [k for k in keys.trace("tr-1").all() if await redis_client.exists(k)]
    assert len(present) == 6  # trace, spans, attributes, tags, models, index names
    for key in present:
        ttl = await redis_client.ttl(key)
        assert 29 * 86400 < ttl <= 30 * 86400, key


async def test_prune_drops_index_entries_past_retention(
    store: RedisStore, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Index entries of traces older than retention are removed without scanning keys."""
    now = int(time.time() * 1000)
    await store.write_batch([span_record("old", started_ms=now - 31 * DAY_MS, tags=["x"])])
    await store.write_batch([span_record("new", started_ms=now, tags=["x"])])
    removed = await store.prune_indexes()
    assert removed >= 2
    members = await redis_client.zrange(keys.index("tag", "x"), 0, -1)
    assert members == [b"new"]


async def test_unknown_trace_reads_as_none(store: RedisStore) -> None:
    """A trace never written (or expired) is None."""
    assert await store.get_trace("nothing-here") is None


async def test_write_recovers_when_redis_lost_its_scripts(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """After a Redis restart (scripts flushed) the next batch loads the script and succeeds."""
    await store.write_batch([span_record(span_id="1" * 16)])
    await redis_client.script_flush()
    await store.write_batch([span_record(span_id="2" * 16)])
    trace = await store.get_trace("tr-1")
    assert trace is not None
    assert trace["span_count"] == 2
