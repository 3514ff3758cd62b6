"""What the app-side pieces cost: the widget's bytes and serving time, the client's import.

Prints, on this machine:
- the size of ``GET /feedback.js`` as sent and gzipped (default reasons);
- the time to answer ``GET /feedback.js`` with 200 and with 304 (a proxy listener on
  127.0.0.1 with a real Redis, ``--requests`` sequential requests on one keep-alive session),
  and the ratio to ``GET /healthz`` on the same listener in the same run (the baseline);
- the time of ``import feedback_proxy`` in a fresh interpreter, against ``import openai``
  (median of ``--imports`` runs).

    .venv/bin/python bench/client_widget.py [--requests 2000] [--imports 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from proxy.config import load_settings
from proxy.config.model import FeedbackSettings
from proxy.gateway.widget import widget_scripts
from proxy.runtime.server import bound_port, start_listeners
from proxy.store.embedded import EmbeddedRedis, free_port


async def _timed(
    session: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str]
) -> float:
    """Median microseconds per request of ``n`` sequential GETs."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def serving(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis", port=free_port(), persist=False)
        url = redis.start()
        settings = load_settings(env={}, overrides={
            "proxy.host": "127.0.0.1", "proxy.port": 0, "admin.port": 0, "redis.url": url,
            "writer.spool_dir": f"{tmp}/spool", "log.level": "warning",
        })  # fmt: skip
        listeners = await start_listeners(settings)
        try:
            base = f"http://127.0.0.1:{bound_port(listeners.proxy)}"
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                gz = {"Accept-Encoding": "gzip"}
                async with session.get(f"{base}/feedback.js", headers=gz) as response:
                    etag = response.headers["ETag"]
                await _timed(session, f"{base}/healthz", 200, {})  # warm-up
                health = await _timed(session, f"{base}/healthz", requests, {})
                full = await _timed(session, f"{base}/feedback.js", requests, gz)
                cached = await _timed(session, f"{base}/feedback.js", requests,
                                      {**gz, "If-None-Match": etag})  # fmt: skip
            print(f"GET /healthz (baseline)     {health:8.0f} µs median")
            print(f"GET /feedback.js 200 gzip   {full:8.0f} µs median  ({full / health:.2f}x)")
            print(f"GET /feedback.js 304        {cached:8.0f} µs median  ({cached / health:.2f}x)")
        finally:
            await listeners.stop()
            redis.stop()


def import_ms(module: str, runs: int) -> float:
    """Median wall time of ``python -c 'import module'`` minus an empty interpreter."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    empty = statistics.median(run("pass") for _ in range(runs))
    return (statistics.median(run(f"import {module}") for _ in range(runs)) - empty) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args()
    plain, packed = widget_scripts(FeedbackSettings().reasons)
    print(f"feedback.js: {len(plain.body)} bytes, {len(packed.body)} bytes gzipped")
    asyncio.run(serving(args.requests))
    ours, theirs = import_ms("feedback_proxy", args.imports), import_ms("openai", args.imports)
    print(f"import feedback_proxy       {ours:8.1f} ms   import openai {theirs:8.1f} ms "
          f"({ours / theirs:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
