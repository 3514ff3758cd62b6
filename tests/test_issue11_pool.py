"""Issue 11 item 2: the Redis pool is sized by ``redis.max_connections`` and a caller waits for
a free connection (bounded) instead of failing at once, so only a Redis that is really away
makes feedback ``queued`` or the admin API answer 503."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.config import RedisSettings
from proxy.store.connection import connect_to
from proxy.store.embedded import free_port
from proxy.store.redis_store import RedisStore
from tests.conftest import StartProxy
from tests.factories import make_trace

FEEDBACK_CALLS = 400
DATASET_ADDS = 8
TRACES_PER_ADD = 60  # more than the store fetches at once (FETCH_CONCURRENCY)


@pytest.fixture
async def wide_http() -> asyncio.AsyncIterator[aiohttp.ClientSession]:  # type: ignore[name-defined]
    """A client with no connection cap of its own, so the proxy sees every call at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def post_feedback(http: aiohttp.ClientSession, url: str, trace_id: str) -> str:
    body = orjson.dumps({"trace_id": trace_id, "attributes": {"user_feedback": "negative"}})
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{url}/feedback", data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return str(orjson.loads(await response.read())["status"])


async def test_400_concurrent_feedback_posts_are_all_applied(
    start: StartProxy, wide_http: aiohttp.ClientSession
) -> None:
    """More concurrent merges than connections: each waits for a free one and is applied.

    The generous write timeout keeps a busy test machine from making a slow merge "queued":
    what is tested is that no merge fails at once for want of a connection."""
    proxy = await start(**{"redis.max_connections": 64, "writer.write_timeout": 10})
    statuses = await asyncio.gather(
        *(post_feedback(wide_http, proxy.url, f"pool-{n}") for n in range(FEEDBACK_CALLS))
    )
    assert statuses.count("applied") == FEEDBACK_CALLS, {s: statuses.count(s) for s in statuses}


async def test_concurrent_dataset_row_adds_all_answer_200(
    start: StartProxy,
    wide_http: aiohttp.ClientSession,
    store: RedisStore,
) -> None:
    """Each add reads its traces many at a time; several adds at once still all succeed."""
    proxy = await start()
    ids = [f"ds-{n}" for n in range(TRACES_PER_ADD)]
    await asyncio.gather(*(make_trace(store, trace_id) for trace_id in ids))

    async def add(n: int) -> tuple[int, int]:
        url = f"{proxy.admin_url}/api/datasets/pool-{n}/rows"
        async with wide_http.post(url, json={"trace_ids": ids}) as response:
            body = await response.json()
            return response.status, body.get("added", -1)

    results = await asyncio.gather(*(add(n) for n in range(DATASET_ADDS)))
    assert results == [(200, TRACES_PER_ADD)] * DATASET_ADDS


@pytest.mark.redis_backends
async def test_the_pool_never_opens_more_than_max_connections(
    redis_backend: str, redis_url: str, key_prefix: str
) -> None:
    """200 commands at once on a pool of 4: all answered, with at most 4 connections open."""
    settings = RedisSettings(url=redis_url, cluster=redis_backend == "cluster", max_connections=4)
    client = connect_to(settings)
    try:
        keys = [f"{key_prefix}:pool:{n}" for n in range(200)]
        await asyncio.gather(*(client.set(key, b"1", ex=60) for key in keys))
        assert await asyncio.gather(*(client.get(key) for key in keys)) == [b"1"] * 200
        assert max(_open_connections(client).values()) <= 4
    finally:
        await client.aclose()


def _open_connections(client: aioredis.Redis) -> dict[str, int]:
    """Connections the client holds, per server."""
    nodes = getattr(client, "get_nodes", None)
    if nodes is not None:
        return {node.name: len(node._connections) for node in nodes()}
    pool = client.connection_pool
    return {"single": len(pool._available_connections) + len(pool._in_use_connections)}


async def test_a_dead_redis_still_fails_fast_with_a_small_pool() -> None:
    """Nothing listens: every one of many callers gets ConnectionError at once, not after a
    wait for a pool slot or redis-py's retries."""
    client = connect_to(RedisSettings(url=f"redis://127.0.0.1:{free_port()}", max_connections=2))
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.get("k") for _ in range(100)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results[:3]
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
