"""Several stateless proxy processes on one Redis Cluster: traffic and feedback for the same
traces spread over them lose and double nothing, every replica's admin API answers the same,
and a master that dies and returns costs nothing but a replay.

The replicas are real ``python -m proxy serve`` processes on their own ports, sharing the
cluster, the key prefix and the feedback token secret, each with its own spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from proxy.store.embedded import free_port
from tests.cluster_support import LocalCluster, start_cluster
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_healthy
from tests.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
SETTLE_TIMEOUT = 30.0
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Replica:
    url: str
    admin_url: str
    process: asyncio.subprocess.Process


async def _spawn(index: int, root: Path, redis_url: str, upstream: str, key_prefix: str) -> Replica:
    port, admin_port = free_port(), free_port()
    home = root / f"replica-{index}"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "FEEDBACK_PROXY_REDIS__CLUSTER": "true",
        "FEEDBACK_PROXY_REDIS__KEY_PREFIX": key_prefix,
        "FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET": "shared-by-every-replica",
        "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(home / "spool"),
        "FEEDBACK_PROXY_LOG__LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--redis", redis_url, "--host", "127.0.0.1",
        "--port", str(port), "--admin-port", str(admin_port), "--upstream", upstream,
        cwd=home, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Replica(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", process)


async def _stop(replica: Replica) -> None:
    """SIGTERM (drain, flush), then the exit code must be 0."""
    if replica.process.returncode is None:
        replica.process.send_signal(signal.SIGTERM)
    try:
        _, err = await asyncio.wait_for(replica.process.communicate(), 30)
    except TimeoutError:
        replica.process.kill()
        await replica.process.wait()
        raise AssertionError("replica did not stop within 30 s") from None
    assert replica.process.returncode == 0, err.decode()[-2000:]


@contextlib.asynccontextmanager
async def replicas(
    count: int, root: Path, cluster: LocalCluster, upstream: str, key_prefix: str,
    http: aiohttp.ClientSession,
) -> AsyncIterator[list[Replica]]:  # fmt: skip
    started = [await _spawn(i, root, cluster.url, upstream, key_prefix) for i in range(count)]
    try:
        for replica in started:
            await wait_healthy(http, replica.url, START_TIMEOUT, replica.process)
        yield started
    finally:
        for replica in started:
            await _stop(replica)


async def chat(
    http: aiohttp.ClientSession, replica: Replica, trace_id: str, **headers: str
) -> aiohttp.ClientResponse:
    async with http.post(
        f"{replica.url}/v1/chat/completions", json=CHAT, headers={"X-Trace-Id": trace_id, **headers}
    ) as resp:
        await resp.read()
        return resp


async def get_json(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with http.get(url, params=params or None) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def settled(check: Callable[[], Awaitable[bool]], timeout: float = SETTLE_TIMEOUT) -> None:
    """Until ``check()`` holds (spans are written behind the responses, and replays later)."""
    await eventually(
        check, timeout=timeout, interval=0.1, what="the cluster reaching the expected state"
    )


async def test_three_replicas_share_traces_without_losing_or_doubling_anything(
    redis_cluster: LocalCluster,
    fake_provider: FakeProvider,
    tmp_path: Path,
    key_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    """Each trace's three calls go to three different replicas; its vote is cast on one and
    changed (same X-Feedback-Id) on another; a hot trace takes 60 concurrent feedback posts
    over all three. Every span, event and tag is there once, and all admin APIs agree."""
    traces = [f"rep-{n:02d}" for n in range(24)]
    async with replicas(3, tmp_path, redis_cluster, fake_provider.base_url, key_prefix, http) as rs:

        async def conversation(n: int, trace_id: str) -> None:
            first = await chat(http, rs[n % 3], trace_id, **{"X-Feedback-Rating": "4"})
            vote = {"X-Feedback": "negative", "X-Feedback-Id": f"vote-{trace_id}"}
            second = await chat(http, rs[(n + 1) % 3], trace_id, **vote)
            vote["X-Feedback"] = "positive"
            third = await chat(http, rs[(n + 2) % 3], trace_id, **vote)
            assert [r.status for r in (first, second, third)] == [200, 200, 200]
            assert {r.headers["X-Feedback-Status"] for r in (first, second, third)} == {"applied"}

        async def hot(index: int, n: int) -> int:
            async with http.post(
                f"{rs[index].url}/feedback",
                headers={"X-Trace-Id": "rep-hot", "X-Feedback-Comment": f"note {n}",
                         "X-Feedback-Id": f"r{index}-{n}"},
            ) as resp:  # fmt: skip
                return resp.status

        results = await asyncio.gather(
            *(conversation(n, t) for n, t in enumerate(traces)),
            *(hot(i, n) for i in range(3) for n in range(20)),
        )
        assert all(status == 200 for status in results[len(traces) :])

        async def all_spans_written() -> bool:
            listed = await get_json(http, f"{rs[0].admin_url}/api/traces", limit="500")
            counts = {t["trace_id"]: t["span_count"] for t in listed["traces"]}
            return all(counts.get(t) == 3 for t in traces)

        await settled(all_spans_written)
        for trace_id in traces:
            trace = await get_json(http, f"{rs[1].admin_url}/api/traces/{trace_id}")
            assert len({s["span_id"] for s in trace["spans"]}) == 3
            assert len(trace["feedback"]) == 2  # the rating, and the vote replaced in place
            assert trace["attributes"]["user_feedback"] == "positive"
            assert trace["attributes"]["user_feedback_rating"] == 4
            assert "thumbs-up" in trace["tags"]
            assert "thumbs-down" not in trace["tags"]
        hot_trace = await get_json(http, f"{rs[2].admin_url}/api/traces/rep-hot")
        assert len(hot_trace["feedback"]) == 60

        answers = []
        for replica in rs:
            listed = await get_json(http, f"{replica.admin_url}/api/traces", feedback="positive")
            stats = await get_json(http, f"{replica.admin_url}/api/stats/feedback", bucket="hour")
            answers.append(([t["trace_id"] for t in listed["traces"]], stats["buckets"]))
        assert answers[0] == answers[1] == answers[2]
        assert sorted(answers[0][0]) == traces
        totals = [sum(b[k] for b in answers[0][1]) for k in ("positive", "negative")]
        assert totals == [len(traces), 0]  # each changed vote moved, none counted twice


async def test_a_master_that_dies_and_returns_costs_a_replay_not_a_record(
    fake_provider: FakeProvider,
    tmp_path: Path,
    key_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    """While a master is down (no replicas: the cluster cannot serve), two replicas keep
    answering every call, queue its feedback, and spool; once the master is back every span
    and every feedback event is in Redis, once."""
    cluster = start_cluster(tmp_path / "cluster")
    try:
        async with replicas(2, tmp_path, cluster, fake_provider.base_url, key_prefix, http) as rs:
            cluster.kill(1)
            cluster.wait_for_state("fail")
            traces = [f"down-{n:02d}" for n in range(12)]
            for n, trace_id in enumerate(traces):
                plain = await chat(http, rs[n % 2], trace_id)
                voted = await chat(http, rs[(n + 1) % 2], trace_id, **{"X-Feedback": "negative"})
                assert (plain.status, voted.status) == (200, 200)
                assert voted.headers["X-Feedback-Status"] == "queued"
            cluster.restart(1)

            async def all_back() -> bool:
                """Every span and every queued vote replayed (spans and votes replay from
                each replica's own spool, in their own time)."""
                listed = await get_json(http, f"{rs[0].admin_url}/api/traces", limit="500")
                found = {t["trace_id"]: t for t in listed["traces"]}
                return all(
                    t in found
                    and found[t]["span_count"] == 2
                    and found[t]["attributes"].get("user_feedback") == "negative"
                    for t in traces
                )

            await settled(all_back)
            for trace_id in traces:
                trace = await get_json(http, f"{rs[1].admin_url}/api/traces/{trace_id}")
                assert len(trace["spans"]) == 2
                assert len(trace["feedback"]) == 1
                assert trace["feedback"][0]["attributes"]["user_feedback"] == "negative"
                assert trace["attributes"]["user_feedback"] == "negative"
    finally:
        cluster.stop()
