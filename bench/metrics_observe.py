#!/usr/bin/env python3
"""Micro-benchmark: what counting one call for ``GET /metrics`` costs on the hot path.

Times ``Call._observe`` (what ``Call.finish`` adds per call: route, model, usage, TTFT read
from the call and its span, then ``CallMetrics.observe``) for a JSON call and a streamed one,
and, for comparison, the same five series kept by prometheus_client's labelled children
(cached, not ``.labels()`` per call), in its single-process and multiprocess (mmap) modes.

  .venv/bin/python bench/metrics_observe.py            # ~10 s
  .venv/bin/python bench/metrics_observe.py --n 50000  # quicker, noisier

Each figure is the best of ``--reps`` runs of ``--n`` calls (µs per call): the floor this
machine can do, which is what a per-request CPU budget is about.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from proxy.config import load_settings  # noqa: E402
from proxy.gateway.call import Call  # noqa: E402
from proxy.gateway.upstream import Router  # noqa: E402
from proxy.metrics.calls import DURATION_BUCKETS, TTFT_BUCKETS, CallMetrics  # noqa: E402
from proxy.tracing.context import parse_trace_context  # noqa: E402

USAGE = {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52}


def best_us(run: Callable[[], None], n: int, reps: int) -> float:
    """Best of ``reps`` timings of ``n`` calls of ``run``, in µs per call."""
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(n):
            run()
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def a_call(stream: bool) -> tuple[Call, dict[str, object]]:
    """A finished call as ``forward`` leaves it, with the span its recorder produced."""
    settings = load_settings(env={})
    route = Router(settings.upstreams, settings.proxy.default_upstream).resolve(
        "/v1/chat/completions"
    )
    call = Call("POST", "/v1/chat/completions")
    context = parse_trace_context({})
    recorder = call.routed(route, context, settings.capture)
    recorder.response_started("text/event-stream" if stream else "application/json", "")
    recorder.response_chunk(b"data: {}\n\n")
    call.upstream_started(200)
    span = {"model": "gpt-4o-mini", "usage": USAGE}
    return call, span


def ours(n: int, reps: int) -> None:
    metrics = CallMetrics()
    for stream in (False, True):
        call, span = a_call(stream)
        us = best_us(lambda c=call, s=span: c._observe(metrics, s), n, reps)
        print(f"Call._observe ({'streamed' if stream else 'JSON'} call): {us:.2f} µs")
    us = best_us(
        lambda: metrics.observe(
            upstream="openai",
            model="gpt-4o-mini",
            status=200,
            duration=0.8,
            ttft=None,
            usage=USAGE,
            error=None,
        ),
        n,
        reps,
    )
    print(f"CallMetrics.observe alone (JSON call): {us:.2f} µs")


def prometheus_client_children(n: int, reps: int) -> None:
    """The same series with prometheus_client; run in a child when multiprocess mode is on,
    because that mode is chosen from the environment when prometheus_client is imported."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = None if "PROMETHEUS_MULTIPROC_DIR" in os.environ else CollectorRegistry()
    labels = ["upstream", "model", "status"]
    requests = Counter("r", "r", labels, registry=registry).labels("openai", "gpt-4o-mini", "200")
    duration = Histogram("d", "d", labels, registry=registry, buckets=DURATION_BUCKETS)
    latency = duration.labels("openai", "gpt-4o-mini", "200")
    ttft = Histogram("t", "t", ["upstream", "model"], registry=registry, buckets=TTFT_BUCKETS)
    first = ttft.labels("openai", "gpt-4o-mini")
    tokens = Counter("k", "k", ["upstream", "model", "kind"], registry=registry)
    tokens_in, tokens_out = (tokens.labels("openai", "gpt-4o-mini", k) for k in ("in", "out"))

    def json_call() -> None:
        requests.inc()
        latency.observe(0.8)
        tokens_in.inc(12)
        tokens_out.inc(40)

    def streamed_call() -> None:
        json_call()
        first.observe(0.12)

    mode = "multiprocess (mmap)" if registry is None else "single process"
    print(f"prometheus_client children, {mode}, JSON call: {best_us(json_call, n, reps):.2f} µs")
    print(f"prometheus_client children, {mode}, streamed: {best_us(streamed_call, n, reps):.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="calls per timing")
    parser.add_argument("--reps", type=int, default=5, help="timings; the best is shown")
    parser.add_argument("--prometheus-client-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prometheus_client_only:
        prometheus_client_children(args.n, args.reps)
        return
    print(f"Python {sys.version.split()[0]}, best of {args.reps} x {args.n} calls")
    ours(args.n, args.reps)
    prometheus_client_children(args.n, args.reps)
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        argv = [sys.executable, __file__, "--n", str(args.n), "--reps", str(args.reps)]
        subprocess.run([*argv, "--prometheus-client-only"], env=env, check=True)


if __name__ == "__main__":
    main()
