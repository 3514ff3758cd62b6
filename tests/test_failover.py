"""Redis failing under the proxy: a master killed under load is replaced by its replica and
nothing is lost or doubled; a hung Redis (accepts connections, never answers) gets admin
requests a 503 within 2 s instead of holding them.

The failover test prints what it measured (``pytest tests/test_failover.py -s``): how long
the cluster had no writable master for the killed slots, and how long callers saw their
feedback ``queued`` instead of ``applied``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.store.embedded import EmbeddedRedis, free_port
from proxy.store.keys import Keys
from tests.cluster_support import LocalCluster, start_cluster
from tests.conftest import RunningProxy, StartProxy
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)  # each test is bounded well below: ~10-20 s

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
WORKERS = 4
PAUSE_S = 0.02  # between one worker's calls: at most 4 x 50 = 200 calls/s
MAX_CALLS = 600  # per worker, whatever happens
ADMIN_DEADLINE = aiohttp.ClientTimeout(total=2.0)  # a hung Redis must not hold admin requests


@dataclass
class Load:
    """What the workers sent and got: per trace, its calls and its one vote."""

    statuses: list[int] = field(default_factory=list)
    spans: dict[str, int] = field(default_factory=dict)
    votes: dict[str, str] = field(default_factory=dict)
    queued_at: list[float] = field(default_factory=list)  # when a vote came back "queued"


async def worker(
    http: aiohttp.ClientSession, proxy: RunningProxy, index: int, load: Load, stop: asyncio.Event
) -> None:
    """Pairs of calls per trace: a plain one, then one carrying the trace's vote."""
    for n in range(MAX_CALLS):
        if stop.is_set():
            return
        trace_id = f"fo-{index}-{n // 2}"
        headers = {"X-Trace-Id": trace_id}
        vote = "negative" if n % 4 == 1 else "positive"
        if n % 2:
            headers |= {"X-Feedback": vote, "X-Feedback-Id": f"vote-{trace_id}"}
        async with http.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=headers) as r:
            await r.read()
            load.statuses.append(r.status)
            load.spans[trace_id] = load.spans.get(trace_id, 0) + 1
            if n % 2:
                load.votes[trace_id] = vote
                if r.headers.get("X-Feedback-Status") == "queued":
                    load.queued_at.append(time.monotonic())
        await asyncio.sleep(PAUSE_S)


async def trace_of(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> Any:
    async with http.get(f"{proxy.admin_url}/api/traces/{trace_id}") as resp:
        return await resp.json() if resp.status == 200 else None


async def not_as_sent(
    http: aiohttp.ClientSession, proxy: RunningProxy, load: Load
) -> list[tuple[str, Any]]:
    """The traces whose spans (each once) or vote (once) are not what was sent."""
    gate = asyncio.Semaphore(16)

    async def one(trace_id: str) -> tuple[str, Any] | None:
        async with gate:
            trace = await trace_of(http, proxy, trace_id)
        if trace is None:
            return (trace_id, "missing")
        spans = sorted(span["span_id"] for span in trace["spans"])
        votes = [e["attributes"].get("user_feedback") for e in trace["feedback"]]
        expected = [load.votes[trace_id]] if trace_id in load.votes else []
        if len(spans) != load.spans[trace_id] or len(set(spans)) != len(spans) or votes != expected:
            return (trace_id, {"spans": spans, "sent": load.spans[trace_id], "votes": votes})
        return None

    found = await asyncio.gather(*(one(t) for t in load.spans))
    return [mismatch for mismatch in found if mismatch is not None]


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three masters with a replica each; a master counts as failed after 1 s."""
    cluster = start_cluster(tmp_path / "cluster", node_timeout_ms=1000, replicas=1)
    yield cluster
    cluster.stop()


async def test_a_killed_master_is_replaced_by_its_replica_and_nothing_is_lost(
    start: StartProxy,
    replicated_cluster: LocalCluster,
    key_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    """Four clients call and vote at ~200 calls/s; the master holding the trace listing's
    index is SIGKILLed; its replica takes over. Every call is answered 200, and once the
    spool has been replayed every span and every vote is in Redis exactly once."""
    cluster = replicated_cluster
    proxy = await start(**{"redis.url": cluster.url, "redis.cluster": True})
    victim = cluster.master_of(Keys(key_prefix).index_by_time)
    load, stop = Load(), asyncio.Event()
    workers = [asyncio.create_task(worker(http, proxy, i, load, stop)) for i in range(WORKERS)]
    try:
        await eventually(lambda: len(load.statuses) >= 100, what="the load running")
        killed = time.monotonic()
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_promoted, cluster.replica_of(victim), 15.0)
        promoted = time.monotonic()
        sent_by_promotion = len(load.statuses)
        await eventually(
            lambda: len(load.statuses) >= sent_by_promotion + 100, what="load after failover"
        )
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert set(load.statuses) == {200}, f"{len(load.statuses)} calls: {set(load.statuses)}"
    await eventually(
        lambda: not_as_sent(http, proxy, load),
        until=lambda mismatches: not mismatches,
        timeout=20,
        interval=0.5,
        what="every span and vote in Redis once",
    )
    queued = load.queued_at
    print(
        f"\nfailover: {len(load.statuses)} calls ({len(load.votes)} votes), all 200; "
        f"kill -> replica promoted and cluster ok: {promoted - killed:.2f} s; votes answered "
        f"'queued': {len(queued)}"
        + (f", from {queued[0] - killed:+.2f} s to {queued[-1] - killed:+.2f} s" if queued else "")
    )


@dataclass
class Hung:
    """A Redis whose processes can be stopped (SIGSTOP) and continued."""

    url: str
    cluster: bool
    pids: list[int]

    def stop(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(params=["single", "cluster"])
async def hung(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hung]:
    if request.param == "single":
        server = EmbeddedRedis(tmp_path / "redis", port=free_port())
        server.start()
        process = server._process
        assert process is not None
        target = Hung(server.url, False, [process.pid])
        try:
            yield target
        finally:
            target.resume()
            server.stop()
        return
    cluster = start_cluster(tmp_path / "cluster", node_timeout_ms=1000)
    pids = [node.process.pid for node in cluster.nodes if node.process is not None]
    target = Hung(cluster.url, True, pids)
    try:
        yield target
    finally:
        target.resume()
        cluster.stop()


async def test_admin_answers_503_within_two_seconds_while_redis_hangs(
    start: StartProxy, hung: Hung, http: aiohttp.ClientSession
) -> None:
    """Redis stopped (SIGSTOP: connections accepted, nothing answered), a single server or
    every node of a cluster: each admin request gets its 503 before a 2 s client deadline,
    the second as fast as the first (a cluster's topology reload is bounded too), calls are
    still forwarded, and once Redis continues their spans are there."""
    proxy = await start(**{"redis.url": hung.url, "redis.cluster": hung.cluster})
    hung.stop()
    for path in ["/readyz", "/api/traces", "/api/traces/hung-1", "/api/stats/feedback?bucket=hour"]:
        async with http.get(f"{proxy.admin_url}{path}", timeout=ADMIN_DEADLINE) as resp:
            assert resp.status == 503, path
    async with http.post(
        f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"X-Trace-Id": "hung-1"}
    ) as resp:
        assert resp.status == 200
    hung.resume()
    trace = await eventually(
        lambda: trace_of(http, proxy, "hung-1"), timeout=15, what="the span after the stall"
    )
    assert len(trace["spans"]) == 1
