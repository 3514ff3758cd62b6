#!/usr/bin/env python3
"""What OTLP export costs the proxy: CPU per call and latency, export on vs off, same run.

Starts, all on 127.0.0.1 with ``bench/forwarding.py``'s helpers (each process in its own
process group; all are stopped at exit, on Ctrl-C/SIGTERM and on errors): the mock upstream,
a throwaway ``redis-server`` and a local OTLP/HTTP sink (this file's ``_sink``: an aiohttp
server that decodes every request with opentelemetry-proto and counts spans) on CPU 0; two
recording proxies on CPU 1, ``rec`` (export off, Redis db 0) and ``otlp`` (``export.otlp``
pointed at the sink, Redis db 1). Both are checked with one JSON and one streamed call and
warmed up (2,000 calls). Then ``--reps`` repetitions, targets interleaved, order rotated:

- **sat**: ``--conns`` connections in a closed loop, ``--sat-requests`` JSON calls. The CPU
  window runs from the load's start until the work the load caused is done: for ``rec`` until
  every span is on the event stream (XLEN), for ``otlp`` until the sink has every span (the
  exporter works behind the load). CPU is utime+stime from ``/proc/<pid>/stat``, divided by
  the answered calls.
- **rate**: an open loop at ``--rate`` req/s for ``--rate-seconds``: p50/p99 latency.

  .venv/bin/python bench/otlp_export.py             # ~2 min
  .venv/bin/python bench/otlp_export.py --reps 1 --sat-requests 2000   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import forwarding as fw  # noqa: E402

TARGETS = ("rec", "otlp")
DB = {"rec": 0, "otlp": 1}


def sink_main(argv: list[str]) -> None:
    """A minimal OTLP/HTTP receiver: decode, count, answer an empty success."""
    from aiohttp import web
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    port = int(argv[argv.index("--port") + 1])
    counts = {"spans": 0, "logs": 0, "requests": 0}

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        counts["requests"] += 1
        counts["spans"] += sum(
            len(s.spans) for r in message.resource_spans for s in r.scope_spans
        )
        return web.Response(content_type="application/x-protobuf")

    async def logs(request: web.Request) -> web.Response:
        message = ExportLogsServiceRequest.FromString(await request.read())
        counts["requests"] += 1
        counts["logs"] += sum(
            len(s.log_records) for r in message.resource_logs for s in r.scope_logs
        )
        return web.Response(content_type="application/x-protobuf")

    async def count(_: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/logs", logs)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def sink_count(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as resp:
        counts: dict[str, int] = json.loads(resp.read())
        return counts


def stream_length(b: fw.Bench, db: int) -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=b.redis_port, db=db, socket_timeout=10)
    try:
        return int(client.xlen("fp:events"))
    finally:
        client.close()


def done_count(b: fw.Bench, name: str, sink_port: int) -> int:
    """Spans the load's work has finished: on the stream (rec), at the sink (otlp)."""
    if name == "otlp":
        return sink_count(sink_port)["spans"]
    return stream_length(b, DB["rec"])


def settle(b: fw.Bench, name: str, sink_port: int, timeout: float = 60.0) -> float:
    """Wait (bounded) until every call sent to ``name`` so far is done; seconds waited."""
    t0 = time.monotonic()
    while done_count(b, name, sink_port) < b.sent[name]:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{name}: {done_count(b, name, sink_port)} of {b.sent[name]} done")
        time.sleep(0.05)
    return time.monotonic() - t0


def sat(b: fw.Bench, a: argparse.Namespace, name: str, sink_port: int) -> dict[str, Any]:
    pid = b.procs[name]["popen"].pid
    c0 = fw.proc_cpu_s(pid)
    out = b.load(name, "sat", ["--conns", str(a.conns), "--max-requests", str(a.sat_requests)],
                 a.sat_seconds)  # fmt: skip
    out["settle_s"] = settle(b, name, sink_port)
    cpu = fw.proc_cpu_s(pid) - c0
    out["cpu_us_per_req"] = cpu / max(1, out["ok"]) * 1e6
    return out


def rate(b: fw.Bench, a: argparse.Namespace, name: str) -> dict[str, Any]:
    n = str(int(a.rate * a.rate_seconds))
    return b.load(name, "rate", ["--rate", str(a.rate), "--max-requests", n], a.rate_seconds)


def start_proxies(b: fw.Bench, sink_port: int) -> None:
    os.environ.pop("FEEDBACK_PROXY_EXPORT__OTLP__ENDPOINT", None)
    b.start_proxy("rec", DB["rec"])
    os.environ["FEEDBACK_PROXY_EXPORT__OTLP__ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    try:
        b.start_proxy("otlp", DB["otlp"])
    finally:
        os.environ.pop("FEEDBACK_PROXY_EXPORT__OTLP__ENDPOINT", None)


def run(a: argparse.Namespace, run_dir: Path) -> int:
    ns = argparse.Namespace(
        builtin_mock=True, chunks=20, chunk_delay_ms=5.0, client_cpu=a.client_cpu,
        proxy_cpu=a.proxy_cpu, log_level="warning",
    )  # fmt: skip
    b = fw.Bench(ns, run_dir)
    print(f"# OTLP export cost — {fw.machine()}\nrun dir: {run_dir}", flush=True)
    b.start_mock()
    b.start_redis()
    sink_port = fw.free_port()
    b.procs["sink"] = fw.start("sink", [b.py, __file__, "_sink", "--port", str(sink_port)],
                               a.client_cpu, run_dir)  # fmt: skip
    fw.wait_port(sink_port, b.procs["sink"], 20)
    start_proxies(b, sink_port)
    for name in TARGETS:
        b.validate(name)
        b.load(name, "sat", ["--conns", str(a.conns), "--max-requests", "2000"], 20.0)
        settle(b, name, sink_port)
    reps: list[dict[str, Any]] = []
    for rep in range(a.reps):
        order = TARGETS if rep % 2 == 0 else TARGETS[::-1]
        reps.append({name: {"sat": sat(b, a, name, sink_port), "rate": rate(b, a, name)}
                     for name in order})  # fmt: skip
        print(f"rep {rep + 1}: " + ", ".join(
            f"{n} {reps[-1][n]['sat']['cpu_us_per_req']:.0f} µs/call" for n in TARGETS),
            flush=True)  # fmt: skip
    settle(b, "otlp", sink_port)  # the last rate phase's spans
    md = report(a, b, reps, sink_count(sink_port))
    (run_dir / "results.json").write_text(json.dumps({"args": vars(a), "reps": reps}, indent=1))
    (run_dir / "report.md").write_text(md + "\n")
    print("\n" + md + f"\n\nraw: {run_dir / 'results.json'}", flush=True)
    return 0


def _median(reps: list[dict[str, Any]], name: str, *path: str) -> float:
    values = [fw._get(rep[name], *path) for rep in reps]
    return statistics.median(v for v in values if v is not None)


def report(
    a: argparse.Namespace, b: fw.Bench, reps: list[dict[str, Any]], sink: dict[str, int]
) -> str:
    cpu = {n: _median(reps, n, "sat", "cpu_us_per_req") for n in TARGETS}
    rps = {n: _median(reps, n, "sat", "rps") for n in TARGETS}
    p50 = {n: _median(reps, n, "rate", "latency_ms", "p50") for n in TARGETS}
    p99 = {n: _median(reps, n, "rate", "latency_ms", "p99") for n in TARGETS}
    settle_s = {n: _median(reps, n, "sat", "settle_s") for n in TARGETS}
    lines = [
        f"### OTLP export on vs off: {a.reps} reps, sat {a.sat_requests:,} calls on "
        f"{a.conns} connections, rate {a.rate:g}/s for {a.rate_seconds:g} s",
        "",
        "| target | CPU µs/call (sat, until done) | req/s (sat) | settle after load (s) "
        "| p50 ms (rate) | p99 ms (rate) |",
        "|---|---|---|---|---|---|",
    ]
    for n in TARGETS:
        lines.append(f"| {n} | {cpu[n]:.0f} | {rps[n]:,.0f} | {settle_s[n]:.2f} | "
                     f"{p50[n]:.2f} | {p99[n]:.2f} |")  # fmt: skip
    lines += [
        "",
        f"- **CPU per call, export on / off: {cpu['otlp'] / cpu['rec']:.3f}** "
        f"(bar: ≤ 1.10); p50 on / off {p50['otlp'] / p50['rec']:.2f}, "
        f"p99 on / off {p99['otlp'] / p99['rec']:.2f}",
        f"- sink: {sink['spans']:,} spans in {sink['requests']:,} requests; calls sent to otlp "
        f"{b.sent['otlp']:,} → {'OK' if sink['spans'] == b.sent['otlp'] else 'MISMATCH'}",
        "",
        f"{fw.machine()}; " + "; ".join(b.notes),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--sat-requests", type=int, default=6000)
    p.add_argument("--sat-seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--rate-seconds", type=float, default=3.0)
    p.add_argument("--client-cpu", type=int, default=0)
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--out-dir", help="default /tmp/fp-bench/otlp-<timestamp>")
    return p.parse_args(argv)


def main() -> None:
    if sys.argv[1:2] == ["_sink"]:
        sink_main(sys.argv[2:])
        return
    fw.run_bench(parse_args(sys.argv[1:]), "otlp", run)


if __name__ == "__main__":
    main()
