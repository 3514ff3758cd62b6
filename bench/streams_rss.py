#!/usr/bin/env python3
"""Peak RSS of the recording proxy while it holds many concurrent SSE streams.

Starts, all on 127.0.0.1, with ``bench/forwarding.py``'s helpers (each process in its own
process group; all are stopped at exit, on Ctrl-C/SIGTERM/SIGHUP and on errors): the mock
upstream and a throwaway ``redis-server`` on CPU 0, the proxy (recording, ``log.level=warning``,
``admin.port=0``) on CPU 1. Then:

  1. checks one JSON and one streamed call, and warms up gently (1,000 JSON calls on 4
     connections, then 3 s of 8 concurrent streams), so that the peak below is the streams'
     and not a saturation phase's;
  2. reads the proxy's VmRSS (the baseline);
  3. runs ``--streams`` concurrent SSE streams in a closed loop for ``--seconds``
     (``forwarding.py _load stream`` on CPU 0; ``--chunks`` chunks ``--chunk-delay-ms`` apart,
     then a usage chunk and ``[DONE]``; ``--trace-fraction`` of them with trace headers, half
     of those with feedback headers), sampling VmRSS every ``--sample-ms``;
  4. reads VmHWM (the kernel's peak, whole life of the process) and VmRSS 3 s after the
     streams ended, and checks that every call is a span in Redis: the sum of ``span_count``
     over the traces in ``fp:idx:time`` must equal the calls sent (``fp:events`` alone can
     hold an entry twice after a spool replay, see docs/storage.md). It also counts the
     proxy's "redis unavailable; spooling" warnings: a write batch that took longer than
     ``writer.write_timeout`` (1 s) because Redis's core was saturated.

  5. with ``--stall-seconds S``: ``--stall-at`` seconds into the streams, Redis is stopped
     (SIGSTOP: a hung server, connections open, nothing answered) for S seconds and then
     continued, so the records go to the writer's queue and the spool and are replayed after;
     the report gives the peak RSS during the stall and during the replay.

  .venv/bin/python bench/streams_rss.py                       # 200 streams of ~5 s, 30 s
  .venv/bin/python bench/streams_rss.py --streams 50 --chunks 20 --chunk-delay-ms 5 \
      --seconds 30 --stall-at 5 --stall-seconds 15 --sample-ms 50   # Redis hung for 15 s
  .venv/bin/python bench/streams_rss.py --chunks 20 --chunk-delay-ms 5   # the harness's shape
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import forwarding as fw  # noqa: E402
from soak import spans_in_redis  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--streams", type=int, default=200, help="concurrent streams")
    p.add_argument("--seconds", type=float, default=30.0, help="how long the streams run")
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--chunk-delay-ms", type=float, default=50.0)
    p.add_argument("--trace-fraction", type=float, default=0.25)
    p.add_argument("--sample-ms", type=float, default=250.0)
    p.add_argument("--client-cpu", type=int, default=0)
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--builtin-mock", action="store_true")
    p.add_argument("--stall-seconds", type=float, default=0.0, help="SIGSTOP Redis this long")
    p.add_argument("--stall-at", type=float, default=5.0, help="seconds into the streams")
    p.add_argument("--out-dir", help="default /tmp/fp-bench/streams-<timestamp>")
    a = p.parse_args(argv)
    if a.streams < 1 or a.seconds <= 0 or a.sample_ms <= 0:
        p.error("--streams, --seconds and --sample-ms must be positive")
    return a


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def stream_load(b: fw.Bench, a: argparse.Namespace, conns: int, seconds: float) -> dict[str, Any]:
    bound = int(2 * seconds * conns * 1000 / max(1.0, a.chunks * a.chunk_delay_ms)) + 10
    extra = ["--conns", str(conns), "--max-requests", str(bound), "--timeout", "60",
             "--trace-fraction", str(a.trace_fraction)]  # fmt: skip
    # forwarding.Bench.load adds --min-events (a.chunks) and counts the calls sent
    return b.load("rec", "stream", extra, seconds)


def run(a: argparse.Namespace, run_dir: Path) -> int:
    ns = argparse.Namespace(
        builtin_mock=a.builtin_mock, chunks=a.chunks, chunk_delay_ms=a.chunk_delay_ms,
        client_cpu=a.client_cpu, proxy_cpu=a.proxy_cpu, log_level=a.log_level,
    )  # fmt: skip
    b = fw.Bench(ns, run_dir)
    print(f"# feedback-proxy streams RSS — {fw.machine()}\nrun dir: {run_dir}", flush=True)
    b.start_mock()
    b.start_redis()
    b.start_proxy("rec", 0)
    b.validate("rec")
    pid = b.procs["rec"]["popen"].pid
    before_warmup = status_kib(pid)
    b.load("rec", "sat", ["--conns", "4", "--max-requests", "1000"], 10.0)
    stream_load(b, a, 8, 3.0)
    time.sleep(1.0)
    base = status_kib(pid)
    cpu0 = fw.proc_cpu_s(pid)

    samples: list[tuple[float, int]] = []
    hwm: list[tuple[float, int]] = []  # VmHWM: catches a peak between two samples
    stop = threading.Event()

    def sampler() -> None:
        t0 = time.time()
        while not stop.is_set():
            with contextlib.suppress(OSError):
                st = status_kib(pid)
                samples.append((time.time() - t0, st["VmRSS"]))
                hwm.append((time.time() - t0, st["VmHWM"]))
            stop.wait(a.sample_ms / 1000)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    stall = Stall(b.procs["redis"]["popen"].pid, a.stall_at, a.stall_seconds)
    try:
        if a.stall_seconds > 0:
            stall.start()
        res = stream_load(b, a, a.streams, a.seconds)
    finally:
        stall.finish()
        stop.set()
        th.join(5)
    cpu = fw.proc_cpu_s(pid) - cpu0
    end = status_kib(pid)
    time.sleep(3.0)
    after = status_kib(pid)
    chk = verify(b)
    spooled = b.procs["rec"]["log"].read_text(errors="replace").count("redis unavailable")

    peak_t, peak_sampled = max(samples, key=lambda x: x[1]) if samples else (0.0, 0)
    mib = 1 / 1024
    lines = [
        f"### {a.streams} concurrent streams for {a.seconds:g} s ({a.chunks} chunks "
        f"{a.chunk_delay_ms:g} ms apart + usage + [DONE]); proxy recording, on one core",
        "",
        f"- streams: sent {res['sent']:,}, ok {res['ok']:,}, errors {res['error_count']}, "
        f"{res['rps']:.1f} streams/s, connections {res['connections']}; TTFT p50 / p99 "
        f"{fw._fmt(fw._get(res, 'ttft_ms', 'p50'))} / {fw._fmt(fw._get(res, 'ttft_ms', 'p99'))}"
        f" ms; total p50 {fw._fmt(fw._get(res, 'latency_ms', 'p50'), 1)} ms",
        f"- proxy CPU during the streams: {cpu / res['wall_s']:.0%} of its core",
        f"- RSS before warm-up {before_warmup['VmRSS'] * mib:.1f} MiB; baseline (after warm-up) "
        f"{base['VmRSS'] * mib:.1f} MiB",
        f"- **peak RSS during the streams (sampled every {a.sample_ms:g} ms): "
        f"{peak_sampled * mib:.1f} MiB** (at {peak_t:.1f} s); VmHWM (kernel peak, whole life) "
        f"{end['VmHWM'] * mib:.1f} MiB; at the end {end['VmRSS'] * mib:.1f} MiB; "
        f"3 s later {after['VmRSS'] * mib:.1f} MiB",
        *stall.report(samples, hwm),
        f"- Redis: calls sent {chk['sent']:,}, spans (sum of span_count over {chk['traces']:,} "
        f"traces) {chk['spans']:,}, span entries in fp:events {chk['span_entries']:,} (more: "
        f"replayed twice), spool files "
        f"{chk['spool_files']} → {'OK' if chk['ok'] else 'MISMATCH'}; 'redis unavailable; "
        f"spooling' warnings: {spooled}",
        "",
        f"{fw.machine()}; " + "; ".join(b.notes),
    ]
    md = "\n".join(lines)
    (run_dir / "results.json").write_text(
        json.dumps(
            {
                "args": vars(a),
                "load": res,
                "rss_samples": samples,
                "hwm_samples": hwm,
                "base": base,
                "end": end,
                "after": after,
                "before_warmup": before_warmup,
                "redis": chk,
                "cpu_s": cpu,
            },
            indent=1,
            default=str,
        )
    )
    (run_dir / "report.md").write_text(md + "\n")
    print("\n" + md + f"\n\nraw: {run_dir / 'results.json'}", flush=True)
    return 0 if chk["ok"] and not res["error_count"] else 1


class Stall(threading.Thread):
    """Stops Redis (SIGSTOP) ``at`` seconds from start for ``seconds``, then continues it."""

    def __init__(self, pid: int, at: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.at, self.seconds = pid, at, seconds
        self.t0 = time.time()
        self.stopped_at: float | None = None
        self.continued_at: float | None = None
        self._done = threading.Event()

    def run(self) -> None:
        if self._done.wait(self.at):
            return
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped_at = time.time() - self.t0
        self._done.wait(self.seconds)
        self._continue()

    def _continue(self) -> None:
        if self.stopped_at is not None and self.continued_at is None:
            os.kill(self.pid, signal.SIGCONT)
            self.continued_at = time.time() - self.t0

    def finish(self) -> None:
        """Always leaves Redis running (also when the load failed)."""
        self._done.set()
        if self.is_alive():
            self.join(5)
        self._continue()

    def report(self, samples: list[tuple[float, int]], hwm: list[tuple[float, int]]) -> list[str]:
        if self.stopped_at is None or self.continued_at is None:
            return []
        jumps = [(t, b - a) for (_, a), (t, b) in itertools.pairwise(hwm) if b - a > 1024]
        biggest = sorted(jumps, key=lambda j: -j[1])[:3]
        during = [kib for t, kib in samples if self.stopped_at <= t <= self.continued_at]
        replay = [kib for t, kib in samples if t > self.continued_at]
        before = [kib for t, kib in samples if t < self.stopped_at]
        peak = max(during, default=0) / 1024
        return [
            f"- **Redis stopped (SIGSTOP) from {self.stopped_at:.1f} s to {self.continued_at:.1f}"
            f" s: peak RSS {peak:.1f} MiB during the stall**, {max(replay, default=0) / 1024:.1f}"
            f" MiB after it (replay), {max(before, default=0) / 1024:.1f} MiB before it; VmHWM "
            "rose most at "
            + (
                ", ".join(f"{t:.2f} s (+{d / 1024:.1f} MiB)" for t, d in biggest)
                or "no point (< 1 MiB per sample)"
            )
        ]


def verify(b: fw.Bench) -> dict[str, Any]:
    """Wait (bounded) for the writer, then compare the spans in Redis with the calls sent."""
    sent, deadline = b.sent["rec"], time.time() + 30
    got = spans_in_redis(b)
    while got["spans"] < sent and time.time() < deadline:
        time.sleep(1.0)
        got = spans_in_redis(b)
    spool = b.run_dir / "spool-0"
    spooled = sum(1 for p in spool.rglob("*") if p.is_file()) if spool.exists() else 0
    return {"sent": sent, **got, "spool_files": spooled, "ok": got["spans"] == sent and not spooled}


def main() -> None:
    fw.run_bench(parse_args(sys.argv[1:]), "streams", run)


if __name__ == "__main__":
    main()
