"""The proxy's Redis client on a real Redis Cluster: the test cluster itself, the store's writes
across masters, and the fail-fast policy when masters die and come back.

The store's full contract runs on the cluster too (``redis_backend``, tests/conftest.py); this
module covers what only a cluster has. Tests that kill nodes use a cluster of their own, so the
session's shared cluster never sees a failure.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from proxy.store.connection import ClusterUnreachable, FastConnection, connect_cluster
from proxy.store.embedded import free_port
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.writer.writer import Writer
from tests.cluster_support import LocalCluster, start_cluster
from tests.conftest import StartProxy
from tests.factories import span_record

SLOTS = 16384
FAIL_FAST_S = 0.5  # a dead node must cost at most this much per call (connection refused)


def trace_on(cluster: LocalCluster, keys: Keys, master: int) -> str:
    """A trace id whose keys live on master ``master`` (asked while that master runs)."""
    for n in range(1000):
        trace_id = f"tr-{n}"
        if cluster.master_of(keys.trace(trace_id).trace) == master:
            return trace_id
    raise AssertionError(f"no trace id hashes to master {master}")


# -- the shared session cluster ------------------------------------------------------------


def test_the_test_cluster_has_three_masters_covering_every_slot(
    redis_cluster: LocalCluster,
) -> None:
    node = redis_cluster.nodes[0]
    with redis.Redis(host="127.0.0.1", port=node.port) as client:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    masters = {int(master[1]) for _, _, master, *_ in ranges}
    assert masters == {n.port for n in redis_cluster.nodes}
    assert sum(end - start + 1 for start, end, *_ in ranges) == SLOTS
    redis_cluster.wait_for_state("ok", timeout=0)


async def test_a_store_batch_spans_every_master(
    redis_cluster: LocalCluster, key_prefix: str
) -> None:
    """One pipelined batch writes traces living on all three masters, and reads them back:
    the cluster runs of the contract tests really cross nodes."""
    keys = Keys(key_prefix)
    trace_ids = [trace_on(redis_cluster, keys, master) for master in range(3)]
    client = connect_cluster(redis_cluster.url)
    try:
        store = RedisStore(client, keys, retention_days=30)  # type: ignore[arg-type]
        await store.write_batch([span_record(t, session_id="s1") for t in trace_ids])
        for trace_id in trace_ids:
            trace = await store.get_trace(trace_id)
            assert trace is not None
            assert trace["session_id"] == "s1"
        assert {node.connection_class for node in client.get_nodes()} == {FastConnection}
    finally:
        await client.aclose()


# -- a cluster whose masters die -----------------------------------------------------------


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of this module's own: its tests kill masters."""
    cluster = start_cluster(tmp_path_factory.mktemp("own-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
async def own_client(own_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = connect_cluster(own_cluster.url, timeout=FAIL_FAST_S)
    yield client
    await client.aclose()


@pytest.fixture
def own_store(own_client: RedisCluster, key_prefix: str) -> RedisStore:
    return RedisStore(own_client, Keys(key_prefix), retention_days=30)  # type: ignore[arg-type]


async def timed(operation: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        return await operation, time.monotonic() - started
    except Exception as exc:  # the test looks at what was raised, and when
        return exc, time.monotonic() - started


async def test_a_dead_master_fails_fast_and_its_return_is_picked_up(
    own_cluster: LocalCluster, own_store: RedisStore, key_prefix: str
) -> None:
    """Writes to a dead master's slots fail at once as StoreUnavailable (the writer spools),
    ``ping`` says Redis is not all there, other masters keep answering, and once the master is
    back (empty: no scripts, no data) the same client and store write to it again."""
    keys = Keys(key_prefix)
    victim = 1
    dead_trace = trace_on(own_cluster, keys, victim)
    live_trace = trace_on(own_cluster, keys, (victim + 1) % 3)
    await own_store.write_batch([span_record(live_trace)])
    own_cluster.kill(victim)
    try:
        failed, took = await timed(own_store.write_batch([span_record(dead_trace)]))
        assert isinstance(failed, StoreUnavailable), failed
        assert took < FAIL_FAST_S
        assert await own_store.ping() is False
        assert await own_store.get_trace(live_trace) is not None  # before the cluster says fail
    finally:
        own_cluster.restart(victim)
    await own_store.write_batch([span_record(dead_trace)])  # NOSCRIPT there: scripts reloaded
    assert await own_store.get_trace(dead_trace) is not None
    assert await own_store.ping() is True


async def test_with_every_node_down_records_are_spooled_not_dropped(
    own_cluster: LocalCluster, own_client: RedisCluster, own_store: RedisStore, tmp_path: Path
) -> None:
    """No node answering is ``ClusterUnreachable``, a redis ConnectionError (redis-py's own
    RedisClusterException is not a RedisError): the store says unavailable, the writer spools
    and replays once the cluster is back, dropping nothing."""
    writer = Writer(own_store, tmp_path / "spool", flush_interval=0.01, retry_interval=0.05)
    await writer.start()
    try:
        for index in range(3):
            own_cluster.kill(index)
        try:
            assert await own_store.ping() is False  # a node refuses: the next call reloads
            failed, took = await timed(own_store.get_trace("any"))
            assert isinstance(failed, StoreUnavailable), failed
            assert isinstance(failed.__cause__, ClusterUnreachable), failed.__cause__
            assert took < FAIL_FAST_S
            writer.submit(span_record("tr-spooled"))
            await writer.wait_until(lambda: writer.spool_bytes > 0, deadline=5)
        finally:
            for index in range(3):
                own_cluster.restart(index, wait=False)
            own_cluster.wait_for_state("ok")
        await writer.wait_idle(deadline=10)
    finally:
        await writer.close(deadline=5)
    assert writer.dropped == 0
    assert await own_store.get_trace("tr-spooled") is not None


async def test_a_proxy_on_an_unreachable_cluster_starts_forwards_and_queues_feedback(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """No cluster node answers at start-up: the proxy still starts (its Redis checks see a
    ConnectionError, not redis-py's RedisClusterException), forwards at once, queues feedback,
    and its admin /readyz says Redis is away."""
    proxy = await start(
        **{"redis.url": f"redis://127.0.0.1:{free_port()}", "redis.cluster": True,
           "writer.write_timeout": 0.3}
    )  # fmt: skip
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    started = time.monotonic()
    async with http.post(
        f"{proxy.url}/v1/chat/completions", data=body, headers={"X-Feedback": "positive"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["X-Feedback-Status"] == "queued"
    assert time.monotonic() - started < 1.0
    async with http.get(f"{proxy.admin_url}/readyz") as resp:
        assert resp.status == 503


# A trace id holding "script": the store once took any error quoting it for a script's own
# refusal, and the writer dropped the batch (CLUSTERDOWN, OOM) instead of spooling it.
@pytest.mark.parametrize("trace_id", ["plain-1", "transcript-1"])
async def test_a_down_slot_is_unavailable_whatever_the_trace_id(
    own_cluster: LocalCluster, own_store: RedisStore, key_prefix: str, trace_id: str
) -> None:
    """CLUSTERDOWN (a slot nobody serves, as while a master is down past the node timeout) is
    Redis being away: the writer must spool the batch, so the store says StoreUnavailable."""
    key = Keys(key_prefix).trace(trace_id).trace
    owner = own_cluster.nodes[own_cluster.master_of(key)]
    await own_store.write_batch([span_record("warm-up")])  # scripts loaded, slots known
    with redis.Redis(host="127.0.0.1", port=owner.port) as node:
        node.execute_command("CLUSTER", "DELSLOTS", key_slot(key.encode()))
        try:
            failed, _ = await timed(own_store.write_batch([span_record(trace_id)]))
        finally:
            node.execute_command("CLUSTER", "ADDSLOTS", key_slot(key.encode()))
            own_cluster.wait_for_state("ok")
    assert isinstance(failed, StoreUnavailable), failed
