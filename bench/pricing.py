#!/usr/bin/env python3
"""Micro-benchmark: what pricing a span costs, on the writer's side, per span.

Times ``RedisStore._queue_span`` (what the writer task does per span before the batch goes to
Redis: price it, serialise it, build the script's and the stream's arguments) into a pipeline
that only keeps the commands, once with ``pricer=None`` (pricing off) and once with the
``SpanPricer`` (pricing on), in the same run; the difference is what pricing adds. Also
``SpanPricer.cost`` alone, an uncached lookup in the price table (``PriceTable.find_model``:
a known model, and an unknown one, which tries every model, the fallbacks and the date
rewrite), and ``genai_prices.calc_price``, which the proxy no longer calls, for comparison.
Spans are a mix of OpenAI chat (with cached tokens), Anthropic messages (cache reads and
writes) and an unknown model, all of them warm in the cache, as in steady traffic.

  .venv/bin/python bench/pricing.py             # ~10 s
  .venv/bin/python bench/pricing.py --n 20000   # quicker, noisier

Each figure is the best of ``--reps`` runs of ``--n`` spans (µs per span).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from genai_prices import Usage, calc_price  # noqa: E402

from proxy.recording.price_cache import load_price_table  # noqa: E402
from proxy.recording.pricing import SpanPricer  # noqa: E402
from proxy.store.keys import Keys  # noqa: E402
from proxy.store.redis_store import RedisStore  # noqa: E402

SPANS = [
    ("openai", "/v1/chat/completions", "gpt-4o-mini",
     {"input_tokens": 1200, "output_tokens": 80, "total_tokens": 1280, "cache_read_tokens": 1024,
      "cache_write_tokens": None}),
    ("anthropic", "/v1/messages", "claude-3-5-haiku-latest",
     {"input_tokens": 30, "output_tokens": 200, "total_tokens": 230, "cache_read_tokens": 4000,
      "cache_write_tokens": 500}),
    ("openai", "/v1/chat/completions", "my-fine-tune",
     {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cache_read_tokens": None,
      "cache_write_tokens": None}),
]  # fmt: skip


class _Pipe:
    """Keeps the last command: a pipeline without the network."""

    last: tuple[Any, ...] = ()

    def execute_command(self, *args: Any) -> None:
        self.last = args


def span_record(i: int) -> dict[str, Any]:
    upstream, path, model, usage = SPANS[i % len(SPANS)]
    started_ms = int(time.time() * 1000)
    return {
        "id": f"span:t{i}:s{i}", "kind": "span", "started_ms": started_ms,
        "trace": {"trace_id": f"trace-{i}", "name": None, "session_id": "s1", "user_id": "u1",
                  "attributes": {"env": "prod"}, "tags": ["a"]},
        "span": {"span_id": f"{i:016x}", "parent_span_id": None, "upstream": upstream,
                 "method": "POST", "path": path, "status": 200,
                 "started_at": "2026-12-02T12:00:00Z", "duration_ms": 812.4, "ttft_ms": None,
                 "stream": False, "model": model,
                 "response_model": model, "finish_reason": "stop", "usage": usage,
                 "raw_usage": None, "input": {"messages": [{"role": "user", "content": "Hi"}]},
                 "output": {"text": "Hello!", "tool_calls": []}, "request_bytes": 100,
                 "response_bytes": 400, "error": None, "attributes": {}, "tags": []},
    }  # fmt: skip


def best_us(make: Callable[[], Callable[[], None]], n: int, reps: int) -> float:
    """Best of ``reps`` timings of ``n`` calls (a fresh batch of work per rep), µs per call."""
    best = float("inf")
    for _ in range(reps):
        run = make()
        started = time.process_time()
        for _ in range(n):
            run()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def queue_spans(store: RedisStore, n: int) -> Callable[[], Callable[[], None]]:
    template = [span_record(i) for i in range(len(SPANS))]

    def make() -> Callable[[], None]:
        records = [copy.deepcopy(template[i % len(template)]) for i in range(n)]
        pipe, it = _Pipe(), iter(records)

        def run() -> None:
            store._queue_span(pipe, "sha", next(it), "1764676800000")  # type: ignore[arg-type]

        return run

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    urls = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}
    pricer = SpanPricer(load_price_table(), urls)
    off = RedisStore(None, Keys("bench"), 30)  # type: ignore[arg-type]
    on = RedisStore(None, Keys("bench"), 30, pricer=pricer)  # type: ignore[arg-type]
    spans = [span_record(i)["span"] for i in range(len(SPANS))]
    for span in spans:
        pricer.cost(span, int(time.time() * 1000))  # warm: steady traffic hits the cache
    i = iter(range(10**9))
    now_ms = int(time.time() * 1000)

    def cost_only() -> Callable[[], None]:
        return lambda: pricer.cost(spans[next(i) % 3], now_ms)  # type: ignore[arg-type]

    usage = Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=80)

    def uncached() -> Callable[[], None]:
        return lambda: calc_price(usage, "gpt-4o-mini", provider_id="openai")

    table = load_price_table()
    assert table is not None, "no price table: see the proxy.pricing log lines"

    def found() -> Callable[[], None]:
        return lambda: table.find_model("openai", "gpt-4o-mini")

    def missed() -> Callable[[], None]:
        return lambda: table.find_model("openai", "my-fine-tune-20251211")

    base = best_us(queue_spans(off, args.n), args.n, args.reps)
    priced = best_us(queue_spans(on, args.n), args.n, args.reps)
    alone = best_us(cost_only, args.n, args.reps)
    lookup = best_us(uncached, max(args.n // 20, 500), args.reps)
    hit = best_us(found, max(args.n // 20, 500), args.reps)
    miss = best_us(missed, max(args.n // 20, 500), args.reps)
    print(f"_queue_span, pricing off:        {base:6.2f} µs/span")
    print(f"_queue_span, pricing on:         {priced:6.2f} µs/span")
    print(f"pricing adds (same run):         {priced - base:6.2f} µs/span (bar: <= 10)")
    print(f"SpanPricer.cost alone (cached):  {alone:6.2f} µs/span")
    print(f"table lookup, known model:       {hit:6.2f} µs/call (once per model, then cached)")
    print(f"table lookup, unknown model:     {miss:6.2f} µs/call (once per model, then cached)")
    print(f"genai_prices.calc_price (lookup): {lookup:6.2f} µs/call, for comparison")


if __name__ == "__main__":
    main()
