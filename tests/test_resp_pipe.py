"""The span batch path's own connection (proxy/store/resp_pipe.py) on a real Redis.

It must write exactly what redis-py's pipeline wrote, reconnect after a restart (and reload the
scripts Redis lost), never read a reply stream that a timeout or a cancellation cut, and treat
an error reply in the middle of a batch as redis-py does: every command ran, the first error
is raised, the connection stays in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.store import redis_store
from proxy.store.connection import connect, connect_cluster
from proxy.store.embedded import EmbeddedRedis, free_port
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.store.resp_pipe import RespPipe, endpoint_of, pipe_for
from proxy.writer.writer import Writer
from tests.factories import feedback, span_record
from tests.waiting import eventually

HOUR_MS = 3_600_000


@pytest.fixture
async def pipe(redis_client: aioredis.Redis) -> AsyncIterator[RespPipe]:
    """A pipe to the session's redis-server, closed after the test."""
    pipe = pipe_for(redis_client)
    assert pipe is not None
    yield pipe
    await pipe.aclose()


@pytest.fixture
async def make_store(redis_client: aioredis.Redis) -> AsyncIterator[Any]:
    """Factory: a store on the session's Redis under a key prefix, closed after the test."""
    stores: list[RedisStore] = []

    def make(prefix: str, client: aioredis.Redis = redis_client) -> RedisStore:
        stores.append(RedisStore(client, Keys(prefix), retention_days=30))
        return stores[-1]

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own (no persistence: a restart loses data and scripts)."""
    server = EmbeddedRedis(tmp_path / "own-redis", port=free_port(), persist=False)
    server.start()
    yield server
    server.stop()


async def run(pipe: RespPipe, *commands: tuple[Any, ...]) -> list[Any]:
    batch = pipe.batch()
    for command in commands:
        batch.execute_command(*command)
    return await batch.execute()


async def dump(client: aioredis.Redis, prefix: str) -> dict[str, str]:
    """Every key under ``prefix`` with its type, content and the second it expires at, the
    prefix blanked out (stream entry ids, which are times, left out)."""
    out: dict[str, str] = {}
    async for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode()
        kind = (await client.type(key)).decode()
        if kind == "hash":
            value: Any = sorted((await client.hgetall(key)).items())
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = [fields for _, fields in await client.xrange(key)]
        else:
            value = await client.get(key)
        ttl = await client.pttl(key)
        # The moment it expires, not the time left: two dumps read a moment apart would round
        # the time left to different seconds (the script sets whole-second EXPIREATs).
        expires = round((time.time() * 1000 + ttl) / 1000) if ttl > 0 else ttl
        text = repr((kind, value, expires))
        out[key[len(prefix) :]] = text.replace(prefix, "<prefix>")
    return out


def parity_batches(now_ms: int) -> list[list[dict[str, Any]]]:
    """Batches that reach every branch of the span write: all trace fields, attributes and
    tags, several spans of a trace in one batch, a replay, a span without model or upstream,
    spans that join feedback (stats), and a late older span that moves creation back an hour."""
    full = {"name": "chat", "session_id": "s-1", "user_id": "ü-1",
            "attributes": {"k": 1, "nested": {"x": [1, "é"]}}, "tags": ["t1", "t2"]}  # fmt: skip
    first = span_record("tr-a", "a1" * 8, now_ms - 5000, **full)
    bare = span_record("tr-b", "b1" * 8, now_ms - 4000)
    bare["span"].update(model=None, upstream=None)
    batch_1 = [
        first,
        span_record("tr-a", "a2" * 8, now_ms - 3000, tags=["t3"], attributes={"k": 2}),
        bare,
        span_record("tr-c", "c1" * 8, now_ms - 2000),
        first,  # a replay within the batch
    ]
    batch_2 = [
        first,  # a replay of an earlier batch
        span_record("tr-a", "a0" * 8, now_ms - 2 * HOUR_MS, session_id="s-2"),
        span_record("tr-c", "c0" * 8, now_ms - 3 * HOUR_MS, tags=["late"]),
        span_record("tr-d", "d1" * 8, now_ms - 1000, user_id="u-2"),
    ]
    return [batch_1, batch_2]


async def write_all(
    store: RedisStore, vote: dict[str, Any], batches: list[list[dict[str, Any]]]
) -> None:
    await store.merge_feedback(vote)
    for batch in batches:
        await store.write_batch(batch)


async def test_a_batch_writes_exactly_what_redis_py_wrote(
    make_store: Any, redis_client: aioredis.Redis, key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The same records through both paths leave the same keys, values and TTLs."""
    now_ms = int(time.time() * 1000)
    monkeypatch.setattr(redis_store, "time", SimpleNamespace(time=lambda: now_ms / 1000))
    new = make_store(f"{key_prefix}-new")
    monkeypatch.setattr(redis_store, "pipe_for", lambda client: None)  # redis-py's pipeline
    old = make_store(f"{key_prefix}-old")
    assert new._resp is not None
    assert old._resp is None
    batches, vote = parity_batches(now_ms), feedback("tr-c", user_feedback="negative")
    await write_all(old, vote, batches)
    await write_all(new, vote, batches)
    expected = await dump(redis_client, f"{key_prefix}-old")
    assert len(expected) > 30  # traces, indexes, stats, the stream: the branches were reached
    assert await dump(redis_client, f"{key_prefix}-new") == expected


async def test_a_script_error_mid_batch_is_raised_as_before_and_the_rest_is_written(
    make_store: Any, redis_client: aioredis.Redis, key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A record the script refuses raises the same error type as redis-py's pipeline did (not
    StoreUnavailable: the writer then drops that record alone); the others are written."""
    now_ms = int(time.time() * 1000)
    batch = [span_record("ok-1", started_ms=now_ms), span_record("bad", started_ms=now_ms),
             span_record("ok-2", started_ms=now_ms)]  # fmt: skip
    new = make_store(f"{key_prefix}-new")
    monkeypatch.setattr(redis_store, "pipe_for", lambda client: None)
    old = make_store(f"{key_prefix}-old")
    errors = []
    for store, prefix in ((old, f"{key_prefix}-old"), (new, f"{key_prefix}-new")):
        await redis_client.set(Keys(prefix).trace("bad").spans, "not a hash")
        with pytest.raises(ResponseError) as caught:
            await store.write_batch(batch)
        errors.append(caught.value)
        assert await store.get_trace("ok-2") is not None
    assert type(errors[0]) is type(errors[1])
    assert "Command # 3 (EVALSHA)" in str(errors[1])
    assert "WRONGTYPE" in str(errors[1])


async def test_the_writer_drops_only_the_refused_record(
    make_store: Any, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    """End to end through the writer: the script error is a rejected record, not an outage."""
    store = make_store(key_prefix)
    await redis_client.set(Keys(key_prefix).trace("bad").spans, "not a hash")
    writer = Writer(store, tmp_path / "spool", flush_interval=0.01, write_timeout=2)
    await writer.start()
    for trace_id in ("ok-1", "bad", "ok-2"):
        writer.submit(span_record(trace_id))
    await writer.wait_idle(5)
    await writer.close(1)
    assert (writer.dropped, writer.written, writer.spooled) == (1, 2, 0)
    assert await store.get_trace("ok-1") is not None
    assert await store.get_trace("ok-2") is not None


async def test_an_error_reply_mid_batch_is_raised_after_every_command_ran(
    pipe: RespPipe, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """redis-py's pipeline semantics: all commands run, the first error is raised with its
    position, and the connection (same client id) serves the next batch in step."""
    key = f"{key_prefix}:k"
    await redis_client.set(f"{key}:string", "x")
    (client_id,) = await run(pipe, ("CLIENT", "ID"))
    with pytest.raises(ResponseError, match=r"Command # 2 \(LPUSH\).*WRONGTYPE"):
        await run(pipe, ("SET", f"{key}:a", 1), ("LPUSH", f"{key}:string", "y"),
                  ("INCR", f"{key}:string"), ("SET", f"{key}:b", 2))  # fmt: skip
    assert await redis_client.mget(f"{key}:a", f"{key}:b") == [b"1", b"2"]
    assert await run(pipe, ("CLIENT", "ID"), ("GET", f"{key}:b")) == [client_id, b"2"]


async def test_a_batch_cut_by_a_cancellation_is_never_read_again(
    pipe: RespPipe, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """The writer's wait_for cancels a batch whose replies have not arrived: that connection is
    closed (its late reply can never be taken for the next batch's) and a new one is used."""
    key = f"{key_prefix}:list"
    (old_id,) = await run(pipe, ("CLIENT", "ID"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run(pipe, ("BLPOP", key, 5)), 0.1)
    await wait_gone(redis_client, old_id)
    await redis_client.lpush(key, "late")  # would answer the cut BLPOP, had it survived
    new_id, pong = await run(pipe, ("CLIENT", "ID"), ("PING",))
    assert new_id != old_id
    assert pong == b"PONG"
    assert await redis_client.lrange(key, 0, -1) == [b"late"]


async def wait_gone(client: aioredis.Redis, client_id: int, timeout: float = 5) -> None:
    """Until Redis no longer lists connection ``client_id`` (CLIENT LIST)."""
    await eventually(
        lambda: client.execute_command("CLIENT", "LIST", "ID", client_id),
        until=lambda listed: not listed,
        timeout=timeout,
        interval=0.01,
        what=f"client {client_id} disconnecting",
    )


async def test_a_batch_past_the_socket_timeout_fails_and_the_next_one_reconnects(
    make_store: Any, redis_server: str, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A Redis too slow for the client's socket timeout is "unavailable" (the writer spools);
    the next batch opens a new connection and writes normally."""
    client = connect(redis_server, timeout=0.2)
    store = make_store(key_prefix, client)
    await store.write_batch([span_record("before")])
    await redis_client.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="Timeout"):
            await store.write_batch([span_record("paused")])
        assert time.monotonic() - started < 0.5
    finally:
        await redis_client.execute_command("CLIENT", "UNPAUSE")  # Redis is fast again
    await store.write_batch([span_record("after")])
    assert await store.get_trace("after") is not None
    await client.aclose()


async def test_redis_restarting_between_batches_reconnects_and_reloads_scripts(
    own_redis: EmbeddedRedis, make_store: Any, key_prefix: str
) -> None:
    """A restart closes the connection and empties the script cache: the next batch opens a
    new connection, gets NOSCRIPT, reloads the scripts and is written whole."""
    client = connect(own_redis.url)
    store = make_store(key_prefix, client)
    await store.write_batch([span_record("before")])
    assert store._resp is not None
    connection = store._resp._connection  # the batch path's own connection (resp_pipe.py)
    assert connection is not None
    assert not connection.closed
    own_redis.stop()
    own_redis.start()
    await eventually(  # the event loop has seen the batch connection close
        lambda: connection.closed, what="the old batch connection closing"
    )
    await revive(client)
    await store.write_batch([span_record("after", tags=["t"])])
    trace = await store.get_trace("after")
    assert trace is not None
    assert trace["tags"] == ["t"]
    assert await client.zscore(Keys(key_prefix).index("tag", "t"), "after") is not None
    assert "errorstat_NOSCRIPT" in await client.info("errorstats")
    await client.aclose()


async def revive(client: aioredis.Redis) -> None:
    """redis-py's own pool (script loads, reads) finds a dead connection by using it, once;
    that is the client's behaviour on both paths, not what these tests are about."""
    with contextlib.suppress(RedisConnectionError):
        await client.ping()
    assert await client.ping()


async def test_a_batch_while_redis_is_down_is_unavailable_then_the_next_reconnects(
    own_redis: EmbeddedRedis, make_store: Any, key_prefix: str
) -> None:
    """Redis down mid-life: StoreUnavailable (the writer spools), then back: written."""
    client = connect(own_redis.url)
    store = make_store(key_prefix, client)
    await store.write_batch([span_record("before")])
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        await store.write_batch([span_record("during")])
    own_redis.start()
    await revive(client)
    await store.write_batch([span_record("during")])
    assert await store.get_trace("during") is not None
    await client.aclose()


async def test_auth_and_select_come_from_the_url(
    make_store: Any, redis_server: str, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """A URL with a user, a password and a database: the batch connection logs in as that
    user and writes to that database; a wrong password is a refused connection."""
    user, password = f"fp-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis_client.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all"
    )
    host_port = redis_server.split("//")[1].split("/")[0]
    client = connect(f"redis://{user}:{password}@{host_port}/5")
    try:
        pipe = pipe_for(client)
        assert pipe is not None
        whoami, info = await run(pipe, ("ACL", "WHOAMI"), ("CLIENT", "INFO"))
        assert whoami == user.encode()
        assert b" db=5 " in info
        await pipe.aclose()
        store = make_store(key_prefix, client)
        await store.write_batch([span_record("in-db-5")])
        assert await client.exists(Keys(key_prefix).trace("in-db-5").trace) == 1
        assert await redis_client.exists(Keys(key_prefix).trace("in-db-5").trace) == 0
        wrong = pipe_for(connect(f"redis://{user}:nope@{host_port}/5"))
        assert wrong is not None
        with pytest.raises(AuthenticationError):
            await run(wrong, ("PING",))
    finally:  # keys first: deleting the user closes its connections
        await client.delete(*[k async for k in client.scan_iter(match=f"{key_prefix}:*")])
        await redis_client.execute_command("ACL", "DELUSER", user)
        await client.aclose()


async def test_a_unix_socket_url_works(tmp_path: Path, make_store: Any, key_prefix: str) -> None:
    """``unix://`` (the embedded Redis's default) is served by the same connection code."""
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    url = server.start()
    try:
        if not url.startswith("unix://"):
            pytest.skip("temporary path too long for a unix socket")
        client = connect(url)
        store = make_store(key_prefix, client)
        assert store._resp is not None
        await store.write_batch([span_record("over-unix")])
        assert await store.get_trace("over-unix") is not None
        await store.close()
        await client.aclose()
    finally:
        server.stop()


def test_the_batch_path_runs_on_uvloop(redis_server: str, key_prefix: str) -> None:
    """The proxy serves on uvloop, whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def write() -> dict[str, Any] | None:
        client = connect(redis_server)
        store = RedisStore(client, Keys(key_prefix), retention_days=30)
        await store.write_batch([span_record("on-uvloop")])
        trace = await store.get_trace("on-uvloop")
        await store.close()
        await client.aclose()
        return trace

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(write()) is not None


def test_which_clients_get_a_pipe() -> None:
    """Single servers over TCP or a unix socket do; a cluster client and TLS keep redis-py's
    pipeline. AUTH and SELECT are taken from the URL."""
    tcp = endpoint_of(connect("redis://u:p@10.0.0.1:6380/2"))
    assert tcp is not None
    assert (tcp.host, tcp.port, tcp.path) == ("10.0.0.1", 6380, None)
    assert tcp.setup == (("AUTH", "u", "p"), ("SELECT", 2))
    unix = endpoint_of(connect("unix:///run/redis.sock"))
    assert unix is not None
    assert (unix.path, unix.setup) == ("/run/redis.sock", ())
    password_only = endpoint_of(connect("redis://:secret@h"))
    assert password_only is not None
    assert (password_only.port, password_only.setup) == (6379, (("AUTH", "secret"),))
    assert endpoint_of(connect("rediss://h:6380")) is None
    assert pipe_for(connect_cluster("redis://127.0.0.1:7000")) is None
