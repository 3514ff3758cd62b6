"""The writer's durability contract, one test per clause, against a real redis-server.

"Every submitted record reaches Redis exactly once in effect: ``submit()`` never blocks or
raises; records are flushed in pipelined batches; while Redis is down or slow they go to an
append-only spool file on local disk, replayed in order when Redis answers again (also after a
crash, even one in the middle of a replay); only a failing disk drops records, and ``dropped``
counts them; ``close()`` drains the queue and the spool within a deadline."

Redis "down" is a closed port; Redis "slow" is a loopback server that accepts and never answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.writer import spool as spool_module
from proxy.writer.spool import Spool
from proxy.writer.writer import StoreUnavailable, Writer
from tests import crashing_replay

REPO_ROOT = Path(__file__).resolve().parents[1]
CRASHING_REPLAY = Path(crashing_replay.__file__)  # the child program of the crash test
FAST = {"flush_interval": 0.01, "write_timeout": 0.2, "retry_interval": 0.05}


class RedisHashStore:
    """The smallest real store: one pipeline of ``HSET <key> <id> <json>`` per batch.

    Idempotent by construction. ``point_at`` switches it to another address (a closed port,
    a silent server) and back, without touching the shared redis-server. Its socket timeout is
    long on purpose: only the writer's ``write_timeout`` may cut a hanging write short.
    """

    def __init__(self, url: str, key: str) -> None:
        self.real_url = url
        self.key = key
        self.attempted = asyncio.Event()
        self.batches: list[list[str]] = []  # ids of every batch Redis acknowledged, in order
        self._clients: dict[str, aioredis.Redis] = {}
        self._client = self.point_at(url)

    def point_at(self, url: str) -> aioredis.Redis:
        if url not in self._clients:
            self._clients[url] = aioredis.Redis.from_url(
                url, socket_timeout=10, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
            )
        self._client = self._clients[url]
        return self._client

    async def write_batch(self, records: Sequence[dict[str, Any]]) -> None:
        self.attempted.set()
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            pipe.hset(self.key, record["id"], orjson.dumps(record))
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.batches.append([record["id"] for record in records])

    async def stored(self) -> dict[str, dict[str, Any]]:
        raw = await self._clients[self.real_url].hgetall(self.key)
        values = [orjson.loads(value) for value in raw.values()]
        return {value["id"]: value for value in values}

    def acknowledged(self) -> list[str]:
        return [record_id for batch in self.batches for record_id in batch]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


MakeStore = Callable[..., RedisHashStore]
MakeWriter = Callable[..., Writer]


@pytest.fixture
async def make_store(redis_server: str) -> AsyncIterator[MakeStore]:
    """Factory: stores sharing this test's own hash key, closed after the test."""
    key = f"test:records:{uuid.uuid4().hex}"
    stores: list[RedisHashStore] = []

    def make(kind: type[RedisHashStore] = RedisHashStore) -> RedisHashStore:
        stores.append(kind(redis_server, key))
        return stores[-1]

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture
async def make_writer(tmp_path: Path) -> AsyncIterator[MakeWriter]:
    """Factory: writers on this test's spool directory (fast timings), closed after the test."""
    writers: list[Writer] = []

    def make(store: RedisHashStore, spool_dir: Path | None = None, **options: Any) -> Writer:
        writers.append(Writer(store, spool_dir or tmp_path / "spool", **{**FAST, **options}))
        return writers[-1]

    yield make
    for writer in writers:
        await writer.close(deadline=0.5)


@pytest.fixture
def refused_url() -> str:
    """A Redis that is down: a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A Redis that hangs: accepts connections, reads every command, never answers."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    server.close()
    await server.wait_closed()


def records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "n": i} for i in range(start, start + count)]


def record_ids(count: int, start: int = 0) -> list[str]:
    return [f"r{i}" for i in range(start, start + count)]


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spool-*.jsonl"))


async def test_submit_never_blocks_or_raises_while_redis_hangs(
    make_store: MakeStore, make_writer: MakeWriter, silent_url: str
) -> None:
    """With a write hanging on a silent Redis, thousands of submits return; none is lost."""
    store = make_store()
    store.point_at(silent_url)
    writer = make_writer(store, max_queue=100)
    await writer.start()
    writer.submit(records(1)[0])
    await asyncio.wait_for(store.attempted.wait(), 5)  # the flush task is now stuck on Redis
    for record in records(5000, start=1):
        writer.submit(record)
    assert writer.queue_depth <= 100  # bounded: the overflow went to disk
    assert writer.dropped == 0
    store.point_at(store.real_url)
    await writer.wait_idle(5)
    assert set(await store.stored()) == set(record_ids(5001))
    assert writer.dropped == 0


async def test_records_are_flushed_in_batches(
    make_store: MakeStore, make_writer: MakeWriter
) -> None:
    """Many records submitted at once reach the store in a few batches of at most batch_size."""
    store = make_store()
    writer = make_writer(store, batch_size=64)
    await writer.start()
    for record in records(1000):
        writer.submit(record)
    await writer.wait_idle(5)
    sizes = [len(batch) for batch in store.batches]
    assert sum(sizes) == 1000
    assert max(sizes) > 1
    assert max(sizes) <= 64
    assert len(sizes) < 100
    assert writer.written == 1000
    assert writer.spooled == 0


async def test_redis_down_spools_then_replays_in_order_exactly_once(
    make_store: MakeStore, make_writer: MakeWriter, refused_url: str, tmp_path: Path
) -> None:
    """Down: records land in the spool file. Back: all in Redis once, in order, files gone."""
    store = make_store()
    store.point_at(refused_url)
    writer = make_writer(store, batch_size=16)
    await writer.start()
    for record in records(50):
        writer.submit(record)
    await writer.wait_until(lambda: writer.spooled == 50, 5)
    assert not writer.redis_ok
    files = spool_files(tmp_path / "spool")
    assert len(files) == 1
    assert files[0].read_bytes().count(b"\n") == 50
    store.point_at(store.real_url)
    await writer.wait_idle(5)
    assert writer.redis_ok
    assert store.acknowledged() == record_ids(50)  # replayed in submission order, each once
    assert len(await store.stored()) == 50
    assert spool_files(tmp_path / "spool") == []
    assert writer.spool_bytes == 0


async def test_after_recovery_the_writer_is_back_in_queue_mode(
    make_store: MakeStore, make_writer: MakeWriter, refused_url: str
) -> None:
    """Once the spool is replayed, new records go straight to Redis again, not to disk."""
    store = make_store()
    store.point_at(refused_url)
    writer = make_writer(store)
    await writer.start()
    writer.submit(records(1)[0])
    await writer.wait_until(lambda: writer.spooled == 1, 5)
    store.point_at(store.real_url)
    await writer.wait_idle(5)
    for record in records(5, start=1):
        writer.submit(record)
    await writer.wait_idle(5)
    assert writer.spooled == 1
    assert set(await store.stored()) == set(record_ids(6))


async def test_slow_redis_counts_as_down(
    make_store: MakeStore, make_writer: MakeWriter, silent_url: str
) -> None:
    """A Redis that does not answer within write_timeout is treated as down: records spool."""
    store = make_store()
    store.point_at(silent_url)
    writer = make_writer(store)
    await writer.start()
    for record in records(10):
        writer.submit(record)
    await writer.wait_until(lambda: not writer.redis_ok and writer.spooled == 10, 2)
    store.point_at(store.real_url)
    await writer.wait_idle(5)
    assert set(await store.stored()) == set(record_ids(10))


async def test_full_queue_spills_to_the_spool_and_drops_nothing(
    make_store: MakeStore, make_writer: MakeWriter
) -> None:
    """Past max_queue, submit() moves the queue to disk in order; every record still lands."""
    store = make_store()
    writer = make_writer(store, max_queue=10)  # not started: nothing drains the queue yet
    for record in records(100):
        writer.submit(record)
    assert writer.queue_depth <= 10
    assert writer.spooled == 100 - writer.queue_depth
    assert writer.dropped == 0
    await writer.start()
    await writer.wait_idle(5)
    assert store.acknowledged() == record_ids(100)


async def test_crash_in_the_middle_of_a_replay_resumes_from_the_checkpoint(
    make_store: MakeStore, make_writer: MakeWriter, tmp_path: Path, redis_server: str
) -> None:
    """A process killed mid-replay (one batch checkpointed, half of the next written) loses
    nothing: the next writer claims its file, resumes at the checkpoint, and the re-sent
    records are still single copies."""
    spool_dir = tmp_path / "spool"
    orphan = Spool(spool_dir)
    orphan.append(records(10))
    orphan.close()
    store = make_store()
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CRASHING_REPLAY), redis_server, store.key, str(spool_dir),
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert await asyncio.wait_for(child.wait(), 20) == crashing_replay.EXIT_STATUS
    assert set(await store.stored()) == set(record_ids(6))  # 4 checkpointed + 2 of the next
    assert len(list(spool_dir.glob("*.offset"))) == 1
    writer = make_writer(store, batch_size=4)
    await writer.start()
    await writer.wait_idle(5)
    assert store.batches == [record_ids(4, start=4), record_ids(2, start=8)]
    stored = await store.stored()
    assert sorted(stored) == sorted(record_ids(10))
    assert stored["r5"] == {"id": "r5", "n": 5}
    assert list(spool_dir.iterdir()) == []


async def test_file_locked_by_a_live_writer_is_not_claimed(
    make_store: MakeStore, make_writer: MakeWriter, refused_url: str, tmp_path: Path
) -> None:
    """Two writers on one spool directory: the second never replays the first one's file."""
    down = make_store()
    down.point_at(refused_url)
    first = make_writer(down)
    await first.start()
    for record in records(10):
        first.submit(record)
    await first.wait_until(lambda: first.spooled == 10, 5)
    healthy = make_store()
    second = make_writer(healthy)
    await second.start()
    await second.wait_idle(1)
    assert second.spool_bytes == 0
    assert await healthy.stored() == {}
    assert len(spool_files(tmp_path / "spool")) == 1


async def test_partial_last_line_is_skipped(
    make_store: MakeStore, make_writer: MakeWriter, tmp_path: Path
) -> None:
    """An orphan ending in half a line (crash mid-append) replays its full lines, counts one
    record dropped, and is deleted."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    lines = b"".join(orjson.dumps(record) + b"\n" for record in records(3))
    (spool_dir / "spool-1-dead.jsonl").write_bytes(lines + b'{"id": "r3", "n')
    store = make_store()
    writer = make_writer(store)
    await writer.start()
    await writer.wait_idle(5)
    assert set(await store.stored()) == set(record_ids(3))
    assert writer.dropped == 1
    assert list(spool_dir.iterdir()) == []


async def test_full_disk_counts_dropped_records_and_never_raises(
    make_store: MakeStore, make_writer: MakeWriter, refused_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Redis down and every spool write failing with ENOSPC (/dev/full): records are dropped,
    counted, and neither submit() nor the flush task raises."""
    dev_full = os.open("/dev/full", os.O_WRONLY)
    try:
        monkeypatch.setattr(spool_module, "_write_all", lambda fd, data: os.write(dev_full, data))
        store = make_store()
        store.point_at(refused_url)
        writer = make_writer(store, max_queue=5)
        for record in records(20):  # queue full: spills fail right inside submit()
            writer.submit(record)
        await writer.start()
        await writer.wait_until(lambda: writer.dropped == 20, 5)
        assert writer.dropped == 20
        assert writer.spooled == 0
        for record in records(3, start=20):  # the flush task survived and keeps counting
            writer.submit(record)
        await writer.wait_until(lambda: writer.dropped == 23, 5)
        assert writer.dropped == 23
        assert writer.spooled == 0
    finally:
        os.close(dev_full)


async def test_unusable_spool_directory_counts_dropped_records(
    make_store: MakeStore, make_writer: MakeWriter, refused_url: str
) -> None:
    """A spool directory the kernel refuses (under /dev/full) does not stop start() or
    submit(); lost records are counted."""
    store = make_store()
    store.point_at(refused_url)
    writer = make_writer(store, spool_dir=Path("/dev/full/spool"), max_queue=5)
    await writer.start()
    for record in records(20):
        writer.submit(record)
    await writer.wait_until(lambda: writer.dropped == 20, 5)
    assert writer.dropped == 20
    assert writer.spooled == 0


async def test_close_drains_queue_and_spool_within_the_deadline(
    make_store: MakeStore, make_writer: MakeWriter, tmp_path: Path
) -> None:
    """close() writes out both what is queued and what is spooled, and leaves no file.

    The write timeout is long: close() rightly stops at the first write that times out (the
    rest is safe on disk), so the fast test timeout turned one slow write on a busy machine
    into a failure of this test."""
    store = make_store()
    writer = make_writer(store, max_queue=50, write_timeout=4)
    for record in records(120):
        writer.submit(record)
    assert writer.spooled > 0
    assert writer.queue_depth > 0
    await writer.start()
    began = time.monotonic()
    await writer.close(deadline=5)
    assert time.monotonic() - began < 5
    assert store.acknowledged() == record_ids(120)
    assert spool_files(tmp_path / "spool") == []


@pytest.mark.parametrize("redis_state", ["refused", "silent"])
async def test_close_with_redis_down_keeps_records_for_the_next_writer(
    make_store: MakeStore, make_writer: MakeWriter, tmp_path: Path,
    refused_url: str, silent_url: str, redis_state: str,
) -> None:  # fmt: skip
    """close() gives up at its deadline with the records on disk, even a batch still in flight
    to a hanging Redis; a later writer replays them all."""
    down = make_store()
    down.point_at(refused_url if redis_state == "refused" else silent_url)
    writer = make_writer(down, write_timeout=5)
    await writer.start()
    for record in records(30):
        writer.submit(record)
    await asyncio.wait_for(down.attempted.wait(), 5)
    began = time.monotonic()
    await writer.close(deadline=0.3)
    assert time.monotonic() - began < 1.3  # bounded by the deadline, not by Redis
    assert writer.dropped == 0
    assert len(spool_files(tmp_path / "spool")) == 1
    store = make_store()
    later = make_writer(store)
    await later.start()
    await later.wait_idle(5)
    assert store.acknowledged() == record_ids(30)
    assert spool_files(tmp_path / "spool") == []


class PickyStore(RedisHashStore):
    """A store that rejects one malformed record (not an availability problem)."""

    async def write_batch(self, records: Sequence[dict[str, Any]]) -> None:
        if any(record["id"] == "poison" for record in records):
            raise ValueError("malformed record")
        await super().write_batch(records)


async def test_a_record_the_store_rejects_does_not_stall_the_others(
    make_store: MakeStore, make_writer: MakeWriter
) -> None:
    """A record the store refuses as malformed is dropped and counted; its batch-mates land."""
    store = make_store(PickyStore)
    writer = make_writer(store)
    await writer.start()
    for record in [*records(3), {"id": "poison"}, *records(3, start=3)]:
        writer.submit(record)
    await writer.wait_idle(5)
    assert set(await store.stored()) == set(record_ids(6))
    assert writer.dropped == 1
    assert writer.redis_ok


async def test_while_redis_is_away_memory_holds_one_batch_at_most(
    make_store: MakeStore, make_writer: MakeWriter, silent_url: str
) -> None:
    """Once a write has failed, records are headed for the spool: the queue keeps one batch at
    most (not the 10,000 of a healthy Redis's bound), while a retry hangs on the silent
    server; all of them are written once Redis answers again."""
    store = make_store()
    store.point_at(silent_url)
    writer = make_writer(store, max_queue=10_000, batch_size=32)
    await writer.start()
    writer.submit(records(1)[0])
    await writer.wait_until(lambda: not writer.redis_ok, 5)  # the first write timed out
    store.attempted.clear()
    await asyncio.wait_for(store.attempted.wait(), 5)  # a retry hangs on the silent server
    depths = []
    for record in records(3000, start=1):
        writer.submit(record)
        depths.append(writer.queue_depth)
    assert max(depths) <= 32
    assert writer.dropped == 0
    store.point_at(store.real_url)
    await writer.wait_idle(10)
    assert set(await store.stored()) == set(record_ids(3001))
