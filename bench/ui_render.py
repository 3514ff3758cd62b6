#!/usr/bin/env python3
"""Monitor page benchmark: how long the admin listener takes to answer its two heaviest
pages, and how many bytes a first load transfers.

Starts a throwaway ``redis-server`` (``trace_query.redis_server``), fills it with 100,000
one-span traces through ``RedisStore.write_batch`` (``trace_query.fill``: pipelined batches,
about 10 % negative and 10 % positive votes, bounded by a deadline) plus one trace of 50 spans
(chat input, answers, a tool call per fifth span, five feedback events), starts the listeners
on it and times, 100 calls each after warm-up (ms, median / p95):

  page   ``GET /ui/traces?limit=100``, ``GET /ui/traces?feedback=negative&limit=100``,
         ``GET /ui/traces/{the 50-span trace}`` over loopback HTTP (aiohttp client in the same
         process and loop: an upper bound of the server's time)
  api    the same data as JSON (``/api/traces?...``, ``/api/traces/{id}``): the baseline; the
         ratio page / api is what the HTML costs on top of the query
  render the template alone, with the data fetched once (Jinja2, no I/O)

and the first-load transfer of each page: its HTML plus the stylesheet and the icon it links
(no compression; the page loads nothing else).

  .venv/bin/python bench/ui_render.py            # ~1 min
  .venv/bin/python bench/ui_render.py --quick    # 10 000 traces, 30 calls
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import aiohttp  # noqa: E402
import aiohttp_jinja2  # noqa: E402
from aiohttp import web  # noqa: E402
from trace_query import PREFIX, fill, redis_server  # noqa: E402

from proxy.admin.params import trace_list_names  # noqa: E402
from proxy.admin.ui.forms import default_column_rows  # noqa: E402
from proxy.admin.ui.present import span_inputs, timeline  # noqa: E402
from proxy.admin.ui.routes import mount_ui  # noqa: E402
from proxy.config import load_settings  # noqa: E402
from proxy.core.records import iso_from_ms  # noqa: E402
from proxy.feedback.events import feedback_record  # noqa: E402
from proxy.feedback.parse import Feedback, feedback_tags  # noqa: E402
from proxy.runtime.server import bound_port, start_listeners  # noqa: E402
from proxy.store.query_plan import TraceFilter  # noqa: E402
from proxy.store.redis_store import RedisStore  # noqa: E402

BIG = "conv-50-spans"
DEADLINE_S = 150


def big_trace(base_ms: int) -> list[dict[str, Any]]:
    """50 spans of one conversation, each with the growing chat so far and an answer."""
    rng, records, history = random.Random(7), [], []
    for n in range(50):
        started = base_ms + n * 2_000
        history.append(
            {"role": "user", "content": f"Question {n}: " + "why? " * rng.randrange(5, 60)}
        )
        tools = (
            [
                {
                    "id": f"c{n}",
                    "type": "function",
                    "function": {
                        "name": "search",
                        "arguments": '{"query": "refund policy", "limit": 5}',
                    },
                }
            ]
            if n % 5 == 0
            else []
        )
        answer = f"Answer {n}: " + "because. " * rng.randrange(10, 120)
        records.append({
            "id": f"span:{BIG}:{n:016x}", "kind": "span", "started_ms": started,
            "trace": {"trace_id": BIG, "name": "long-chat", "session_id": "s-big",
                      "user_id": "u-big", "attributes": {}, "tags": []},
            "span": {"span_id": f"{n:016x}", "parent_span_id": None, "upstream": "openai",
                     "method": "POST", "path": "/v1/chat/completions", "status": 200,
                     "started_at": iso_from_ms(started), "duration_ms": 900.0 + n,
                     "ttft_ms": 200.0, "stream": True, "model": "gpt-4o-mini",
                     "finish_reason": "tool_calls" if tools else "stop",
                     "usage": {"input_tokens": 100 * n, "output_tokens": 80,
                               "total_tokens": 100 * n + 80},
                     "input": {"messages": list(history[-12:])},
                     "output": {"text": answer, "tool_calls": tools}, "error": None,
                     "attributes": {}, "tags": []},
        })  # fmt: skip
        history.append({"role": "assistant", "content": answer})
    return records


async def write_big(store: RedisStore, base_ms: int) -> None:
    await store.write_batch(big_trace(base_ms))  # type: ignore[arg-type]
    for i, vote in enumerate(("negative", "positive", "negative", "negative", "positive")):
        attrs = {"user_feedback": vote, "user_feedback_comment": f"event {i}"}
        event = Feedback(attrs, feedback_tags(attrs), None, None)
        await store.merge_feedback(feedback_record(BIG, event, source="header"))


async def timed(run: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    for _ in range(5):
        await run()
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20)[18]


def getter(http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[bytes]]:
    async def get() -> bytes:
        async with http.get(url) as resp:
            assert resp.status == 200, (url, resp.status)
            return await resp.read()

    return get


async def main(size: int, n: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    with redis_server() as url, tempfile.TemporaryDirectory() as spool:
        settings = load_settings(env={}, overrides={
            "redis.url": url, "redis.key_prefix": PREFIX, "proxy.host": "127.0.0.1",
            "proxy.port": 0, "admin.host": "127.0.0.1", "admin.port": 0,
            "writer.spool_dir": spool, "redis.data_dir": spool,
        })  # fmt: skip
        listeners = await start_listeners(settings)
        services = listeners.services
        try:
            base_ms = int(time.time() * 1000) - size * 1000 - 600_000
            began = time.monotonic()
            stored = await fill(services.store, 0, size, base_ms, deadline)
            await write_big(services.store, int(time.time() * 1000) - 300_000)
            print(f"filled {stored} traces + one of 50 spans in {time.monotonic() - began:.1f} s")
            origin = f"http://127.0.0.1:{bound_port(listeners.admin)}"
            async with aiohttp.ClientSession() as http:
                await report(services, http, origin, n)
        finally:
            await listeners.stop()


async def report(services: Any, http: aiohttp.ClientSession, origin: str, n: int) -> None:
    pages = {
        "traces limit=100": ("/ui/traces?limit=100", "/api/traces?limit=100"),
        "traces feedback=negative": (
            "/ui/traces?feedback=negative&limit=100",
            "/api/traces?feedback=negative&limit=100",
        ),
        "trace of 50 spans": (f"/ui/traces/{BIG}", f"/api/traces/{BIG}"),
    }
    statics = [
        await getter(http, origin + p)() for p in ("/ui/static/ui.css", "/ui/static/favicon.svg")
    ]
    render = await render_timers(services, n)
    print(f"\n{n} calls each after warm-up, ms, median / p95 (busy shared 2-core machine)")
    header = ("page", "page over HTTP", "API (JSON)", "x API", "render only", "first load")
    print("{:<26} {:>16} {:>16} {:>6} {:>14} {:>12}".format(*header))
    for name, (page, api) in pages.items():
        html = await getter(http, origin + page)()
        page_t = await timed(getter(http, origin + page), n)
        api_t = await timed(getter(http, origin + api), n)
        kib = (len(html) + sum(map(len, statics))) / 1024
        r = render[name]
        cells = (f"{page_t[0]:.1f} / {page_t[1]:.1f}", f"{api_t[0]:.1f} / {api_t[1]:.1f}",
                 f"{page_t[0] / api_t[0]:.2f}", f"{r[0]:.1f} / {r[1]:.1f}", f"{kib:.1f} KiB")
        print("{:<26} {:>16} {:>16} {:>6} {:>14} {:>12}".format(name, *cells))


async def render_timers(services: Any, n: int) -> dict[str, tuple[float, float]]:
    """The templates alone, with data fetched once (the share Jinja2 takes)."""
    app = web.Application()
    mount_ui(app)
    env = aiohttp_jinja2.get_env(app)
    shared = {"csrf": "x" * 32, "auth_on": False, "signed_in": False, "path": "/ui/traces"}
    out = {}
    lists = {"traces limit=100": TraceFilter(), "traces feedback=negative": TraceFilter("negative")}
    for name, filters in lists.items():
        found = await services.traces.run(filters, 100)
        context = {
            **shared, "params": {}, "tags": [""], "names": trace_list_names(),
            "page_sizes": (50, 100), "traces": found.traces, "error": None,
            "next_url": "/ui/traces?cursor=x", "first_url": None, "filtered": False,
        }  # fmt: skip
        template = env.get_template("traces.html")
        out[name] = await timed(_sync(lambda t=template, c=context: t.render(c)), n)
    trace = await services.store.get_trace(BIG)
    spans = trace["spans"]
    context = {
        **shared, "trace": trace, "timeline": timeline(spans), "inputs": span_inputs(spans),
        "notice": None, "notice_dataset": None, "datasets": [], "sources": [],
        "column_rows": default_column_rows(), "feedback_form": {}, "dataset_value": "",
        "categories": [], "reasons": [],
    }  # fmt: skip
    template = env.get_template("trace.html")
    out["trace of 50 spans"] = await timed(_sync(lambda: template.render(context)), n)
    return out


def _sync(work: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return work()

    return run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 000 traces, 30 calls")
    args = parser.parse_args()
    asyncio.run(main(10_000 if args.quick else 100_000, 30 if args.quick else 100))
