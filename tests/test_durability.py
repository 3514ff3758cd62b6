"""Durability end to end: Redis going away and SIGTERM during streams lose no span."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from proxy.store.connection import connect
from proxy.store.embedded import EmbeddedRedis, free_port
from tests.conftest import StartProxy
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_for_trace, wait_healthy
from tests.waiting import eventually

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def call(http: aiohttp.ClientSession, url: str, trace_id: str, stream: bool = False) -> int:
    body = orjson.dumps({**CHAT, "stream": stream})
    async with http.post(f"{url}/v1/chat/completions", data=body,
                         headers={"X-Trace-Id": trace_id}) as resp:  # fmt: skip
        await resp.read()
        return resp.status


async def test_redis_down_then_back_every_span_lands_exactly_once(
    start: StartProxy, own_redis: EmbeddedRedis, http: aiohttp.ClientSession
) -> None:
    """Calls keep working while Redis is down; afterwards every span is in Redis once."""
    proxy = await start(**{"redis.url": own_redis.url, "writer.write_timeout": 0.3})
    before = [f"before-{i}" for i in range(10)]
    during = [f"during-{i}" for i in range(20)]
    assert {await call(http, proxy.url, t) for t in before} == {200}
    for trace_id in before:
        await wait_for_trace(http, proxy.admin_url, trace_id)
    own_redis.stop()
    statuses = await asyncio.gather(
        *(call(http, proxy.url, t, stream=i % 2 == 0) for i, t in enumerate(during))
    )
    assert set(statuses) == {200}  # forwarding never waited on Redis
    async with http.get(f"{proxy.admin_url}/readyz") as resp:
        assert resp.status == 503
    own_redis.start()
    for trace_id in before + during:
        trace = await wait_for_trace(http, proxy.admin_url, trace_id, timeout=15)
        assert trace["span_count"] == 1
        assert len(trace["spans"]) == 1
    # The event stream shows the replay did not send anything twice.
    client = connect(own_redis.url)
    entries = await client.xrange(f"{proxy.settings.redis.key_prefix}:events")
    await client.aclose()
    streamed = sorted(fields[b"trace_id"].decode() for _, fields in entries)
    assert streamed == sorted(before + during)


SERVE_TIMEOUT = 30
REPO_ROOT = str(Path(__file__).resolve().parents[1])


def _serve(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """`serve` with its output appended to cwd/serve.log (a pipe nobody reads could fill up
    and stall it, and would be left open)."""
    with (cwd / "serve.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_sigterm_during_streams_finishes_them_and_records_every_span(
    fake_provider: FakeProvider,
    redis_server: str,
    key_prefix: str,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    """SIGTERM lets running streams finish (the admin /readyz says "draining" meanwhile),
    flushes their spans, then the process exits 0."""
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": REPO_ROOT,
        "FEEDBACK_PROXY_REDIS__KEY_PREFIX": key_prefix,
        "FEEDBACK_PROXY_ADMIN__PORT": str(admin_port),
        "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(tmp_path / "spool"),
        "FEEDBACK_PROXY_PROXY__DRAIN_SECONDS": "10",
    }
    args = ["--port", str(port), "--upstream", fake_provider.base_url, "--redis", redis_server]
    process = _serve(args, env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(http, url, SERVE_TIMEOUT, process)
        body = orjson.dumps({**CHAT, "model": "slow", "stream": True})
        responses = [
            await http.post(
                f"{url}/v1/chat/completions", data=body, headers={"X-Trace-Id": f"drain-{i}"}
            )
            for i in range(5)
        ]
        process.send_signal(signal.SIGTERM)
        admin = f"http://127.0.0.1:{admin_port}"
        await wait_draining(http, admin)  # while the streams still run
        bodies = [await r.read() for r in responses]
        assert all(b"[DONE]" in b for b in bodies)  # every running stream finished
        assert await asyncio.to_thread(process.wait, SERVE_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    # A fresh proxy on the same Redis reads the spans the first one flushed on its way out.
    env["FEEDBACK_PROXY_ADMIN__PORT"] = str(free_port())
    reader = _serve(["--port", str(free_port()), "--redis", redis_server], env, tmp_path)
    try:
        admin = f"http://127.0.0.1:{env['FEEDBACK_PROXY_ADMIN__PORT']}"
        await wait_healthy(http, admin, SERVE_TIMEOUT, reader)
        for i in range(5):
            trace = await wait_for_trace(http, admin, f"drain-{i}", timeout=2)
            assert trace["spans"][0]["output"]["text"]
            assert trace["spans"][0]["error"] is None
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.wait(SERVE_TIMEOUT)


async def wait_draining(http: aiohttp.ClientSession, admin: str, timeout: float = 3) -> None:
    """Until the admin /readyz answers 503 "draining"; fails after ``timeout`` (SIGTERM is
    handled asynchronously)."""

    async def readiness() -> tuple[int, Any]:
        async with http.get(f"{admin}/readyz") as resp:
            return resp.status, await resp.json()

    await eventually(
        readiness,
        until=lambda answer: answer[0] == 503 and answer[1]["status"] == "draining",
        timeout=timeout,
        what="/readyz answering 503 draining",
    )
