"""Feedback merges are atomic per trace, even with several proxy processes writing at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from proxy.store.embedded import free_port
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_healthy

SERVE_TIMEOUT = 20
REPO_ROOT = str(Path(__file__).resolve().parents[1])
TOKEN_SECRET = "shared-secret-of-the-replicas"
EVENTS = 200
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Replica:
    """One ``python -m proxy serve`` process: its proxy and admin URLs."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, admin_port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"


def _spawn(env: dict[str, str], upstream: str, redis_url: str, tmp_path: Path) -> Replica:
    port, admin_port = free_port(), free_port()
    env = {
        **env,
        "FEEDBACK_PROXY_ADMIN__PORT": str(admin_port),
        "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(tmp_path / f"spool-{port}"),
    }
    args = ["--port", str(port), "--upstream", upstream, "--redis", redis_url]
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Replica(process, port, admin_port)


@asynccontextmanager
async def two_replicas(
    http: aiohttp.ClientSession,
    fake_provider: FakeProvider,
    redis_server: str,
    key_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two proxy processes on one Redis and key prefix, sharing the feedback token secret."""
    env = {
        **os.environ,
        "PYTHONPATH": REPO_ROOT,
        "FEEDBACK_PROXY_REDIS__KEY_PREFIX": key_prefix,
        "FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET": TOKEN_SECRET,
    }
    replicas = [_spawn(env, fake_provider.base_url, redis_server, tmp_path) for _ in range(2)]
    try:
        await asyncio.gather(
            *(wait_healthy(http, r.admin_url, SERVE_TIMEOUT, r.process) for r in replicas)
        )
        yield replicas[0], replicas[1]
    finally:
        for replica in replicas:
            replica.process.kill()
        for replica in replicas:
            replica.process.wait(SERVE_TIMEOUT)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{url}/feedback", data=orjson.dumps(body),
                         headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
        assert resp.status == 200, await resp.text()
        return dict(orjson.loads(await resp.read()))


async def test_concurrent_feedback_from_two_processes_loses_nothing(
    http: aiohttp.ClientSession,
    fake_provider: FakeProvider,
    redis_server: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """200 votes at once on one trace through two replicas: 200 events and all 200 tags."""
    async with (
        asyncio.timeout(SERVE_TIMEOUT),
        two_replicas(http, fake_provider, redis_server, key_prefix, tmp_path) as replicas,
    ):
        bodies = [
            {
                "trace_id": "busy",
                "feedback_id": f"fb-{i}" if i % 2 else None,
                "attributes": {"user_feedback_comment": f"comment {i}"},
                "tags": [f"tag-{i}"],
            }
            for i in range(EVENTS)
        ]
        answers = await asyncio.gather(
            *(_post(http, replicas[i % 2].url, body) for i, body in enumerate(bodies))
        )
        assert {a["status"] for a in answers} == {"applied"}
        async with http.get(f"{replicas[0].admin_url}/api/traces/busy") as resp:
            trace = await resp.json()
    events = trace["feedback"]
    assert len(events) == EVENTS
    comments = {e["attributes"]["user_feedback_comment"] for e in events}
    assert comments == {f"comment {i}" for i in range(EVENTS)}
    assert set(trace["tags"]) == {f"tag-{i}" for i in range(EVENTS)}
    assert trace["attributes"]["user_feedback_comment"] in comments


async def test_a_feedback_token_from_one_replica_is_accepted_by_the_other(
    http: aiohttp.ClientSession,
    fake_provider: FakeProvider,
    redis_server: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    """With one configured secret, a browser may send its vote to any replica."""
    async with (
        asyncio.timeout(SERVE_TIMEOUT),
        two_replicas(http, fake_provider, redis_server, key_prefix, tmp_path) as (first, second),
    ):
        async with http.post(f"{first.url}/v1/chat/completions", data=orjson.dumps(CHAT),
                             headers={"X-Trace-Id": "roaming"}) as resp:  # fmt: skip
            assert resp.status == 200
            token = resp.headers["X-Feedback-Token"]
        vote = {"trace_id": "roaming", "attributes": {"user_feedback": "positive"}}
        async with http.post(f"{second.url}/feedback", data=orjson.dumps(vote),
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"}) as resp:  # fmt: skip
            assert resp.status == 200
