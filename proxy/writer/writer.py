"""The writer: the one component between the forwarding path and Redis.

Durability contract: every submitted record reaches Redis exactly once in effect: ``submit()``
never blocks or raises; records are flushed in pipelined batches; while Redis is down or slow
they go to an append-only spool file on local disk, replayed in order when Redis answers again
(also after a crash, even one in the middle of a replay); only a failing disk drops records,
and ``dropped`` counts them; ``close()`` drains the queue and the spool within a deadline.

"Exactly once in effect" is at-least-once delivery over idempotent writes: a batch is kept
(queued, in flight, or spooled) until the store acknowledged it, and the store writes each
record under its unique id, so a batch sent again after a timeout or a crash leaves one copy.

One task does all the I/O. In queue mode it writes batches from the bounded queue to the store
under ``write_timeout`` (a slow Redis counts as down). The first failure spools the batch and
switches to spool mode: queued records are appended to the spool behind it (order kept), and
the oldest spooled batch is re-tried every ``retry_interval``; once Redis takes it, replay runs
batch after batch until the spool is empty and queue mode resumes. A full queue spills into
the spool synchronously, so ``submit()`` never waits and never drops while the disk works.
Records the store rejects for a reason other than availability (a malformed record) are
re-tried one by one and only the rejected ones are dropped, so one bad record cannot stall it.

``prepare`` (redaction) runs on every record before it reaches the store or the spool, in this
task and never in ``submit()``, except when a full queue spills (then it runs there, on the
records it spools). It must mark what it did, so a spooled record is not prepared again.
The flush task yields to the event loop while it prepares a large batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import structlog

from proxy.core.errors import StoreUnavailable  # re-exported: the one class the store raises
from proxy.core.records import Record
from proxy.writer.spool import Spool

__all__ = ["Prepare", "RecordStore", "StoreUnavailable", "Writer"]

log = structlog.get_logger("proxy.writer")
Prepare = Callable[[Record], None]
_SLICE_S = 0.002  # the flush task hands the loop back after this long preparing a batch


class RecordStore(Protocol):
    async def write_batch(self, records: Sequence[Record]) -> None:
        """Write records idempotently (per ``id``); ``StoreUnavailable`` when Redis can't."""


class Writer:
    """Bounded queue, batched writes, spool while Redis is away, drain with a deadline."""

    def __init__(
        self,
        store: RecordStore,
        spool_dir: Path,
        *,
        max_queue: int = 10000,
        batch_size: int = 256,
        flush_interval: float = 0.05,
        write_timeout: float = 1.0,
        retry_interval: float = 1.0,
        prepare: Prepare | None = None,
    ) -> None:
        self._store = store
        self._prepare = prepare
        self._spool = Spool(spool_dir)
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._write_timeout = write_timeout
        self._retry_interval = retry_interval
        self._queue: deque[Record] = deque()
        self._in_flight: list[Record] = []
        self._wake = asyncio.Event()  # records arrived (or close() was called)
        self._progress = asyncio.Event()  # the flush task finished a step
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._redis_ok = True
        self._stop = False
        self._disk_failing = False
        self._next_retry = 0.0
        self.dropped = 0
        self.written = 0
        self.spooled = 0

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spool_bytes(self) -> int:
        return self._spool.size_bytes

    @property
    def redis_ok(self) -> bool:
        """The last write to the store succeeded."""
        return self._redis_ok

    async def start(self) -> None:
        """Claim spool files left by dead processes, then start the flush task."""
        try:
            claimed = self._spool.claim_orphans()
        except OSError as exc:
            log.error("spool directory unusable", path=str(self._spool.directory), error=str(exc))
        else:
            if claimed:
                log.info("replaying orphaned spool files", files=claimed, bytes=self.spool_bytes)
        self._task = asyncio.create_task(self._run(), name="proxy-writer")

    def submit(self, record: Record) -> None:
        """Hand a record over: O(1), never blocks, never raises (a full queue spills to disk).

        While Redis is away the queue holds one batch at most before it spills: the records
        are headed for the spool anyway, and a stall of seconds at hundreds of calls a second
        would otherwise keep thousands of span records in memory while each retry waits out
        ``write_timeout`` (RSS during a stall grew by the whole backlog)."""
        limit = self._max_queue if self._redis_ok else self._batch_size
        if len(self._queue) >= limit:
            self._spill(record)
            return
        self._queue.append(record)
        self._wake.set()

    async def wait_idle(self, deadline: float) -> None:
        """Until queue and spool are empty; ``TimeoutError`` past ``deadline`` s."""
        await self.wait_until(self._idle, deadline)

    async def wait_until(self, condition: Callable[[], bool], deadline: float) -> None:
        """Re-check ``condition`` after every step of the flush task (no polling)."""
        async with asyncio.timeout(deadline):
            while not condition():
                self._progress.clear()
                await self._progress.wait()

    async def close(self, deadline: float) -> None:
        """Flush for at most ``deadline`` seconds; what is left stays in the spool (never lost)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._drain(self._task, deadline)
        self._to_spool([*self._in_flight, *self._queue])
        self._in_flight, self._queue = [], deque()
        self._spool.close()

    async def _drain(self, task: asyncio.Task[None], deadline: float) -> None:
        try:
            if not task.done():
                # Done when everything is written, or as soon as Redis is down: then the rest
                # is safe on disk and waiting out the deadline would only delay the exit.
                await self.wait_until(lambda: self._idle() or not self._redis_ok, deadline)
        except TimeoutError:
            log.warning(
                "drain deadline passed", queued=self.queue_depth, spool_bytes=self.spool_bytes
            )
        # Python 3.11's wait_for can swallow a cancel that races with its inner wait
        # finishing; the stop flag ends the loop on its next turn even then.
        self._stop = True
        self._wake.set()
        task.cancel()
        for outcome in await asyncio.gather(task, return_exceptions=True):
            if not isinstance(outcome, asyncio.CancelledError | None):
                log.error("flush task failed", error=repr(outcome))

    def _idle(self) -> bool:
        return not self._queue and not self._in_flight and not self._spool.pending

    async def _run(self) -> None:
        while not self._stop:
            if self._spool.pending:
                await self._spool_step()
            else:
                await self._queue_step()
            self._progress.set()

    async def _queue_step(self) -> None:
        if not self._queue:
            self._wake.clear()
            await self._wake.wait()
            return
        if len(self._queue) < self._batch_size and not self._closing:
            await asyncio.sleep(self._flush_interval)  # linger: let a batch fill up
        count = min(len(self._queue), self._batch_size)
        self._in_flight = [self._queue.popleft() for _ in range(count)]
        if not await self._write(self._in_flight):
            self._to_spool(self._in_flight)
        self._in_flight = []

    async def _spool_step(self) -> None:
        self._to_spool(list(self._queue))  # behind what is spooled already: order is kept
        self._queue.clear()
        delay = self._next_retry - asyncio.get_running_loop().time()
        if delay <= 0:
            await self._replay_batch()
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _replay_batch(self) -> None:
        try:
            batch = self._spool.read_batch(self._batch_size)
        except OSError as exc:
            log.error("spool file unreadable; left for the next start", error=str(exc))
            self._spool.abandon_head()
            return
        if batch.bad_lines:
            self.dropped += batch.bad_lines
            log.error("skipped unreadable spool lines", lines=batch.bad_lines)
        if not batch.records or await self._write(batch.records):
            self._spool.commit(batch)

    async def _prepared(self, records: list[Record]) -> None:
        """Prepare (redact) each record, handing the loop back every ``_SLICE_S``."""
        if self._prepare is None:
            return
        slice_end = time.perf_counter() + _SLICE_S
        for record in records:
            self._prepare(record)
            if time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + _SLICE_S

    async def _write(self, records: list[Record]) -> bool:
        """True when the records need nothing more (written, or rejected as malformed)."""
        await self._prepared(records)
        try:
            await asyncio.wait_for(self._store.write_batch(records), self._write_timeout)
        except (StoreUnavailable, TimeoutError) as exc:
            self._mark_down(exc)
            return False
        except Exception as exc:  # not availability: find the records the store rejects
            log.error("store rejected a batch", error=f"{type(exc).__name__}: {exc}")
            return await self._write_one_by_one(records)
        self._mark_up(len(records))
        return True

    async def _write_one_by_one(self, records: list[Record]) -> bool:
        for record in records:
            try:
                await asyncio.wait_for(self._store.write_batch([record]), self._write_timeout)
            except (StoreUnavailable, TimeoutError) as exc:
                self._mark_down(exc)
                return False  # the whole batch is kept; re-sending the written ones is harmless
            except Exception as exc:
                self.dropped += 1
                log.error("store rejected a record", id=record.get("id"), error=repr(exc))
            else:
                self._mark_up(1)
        return True

    def _mark_down(self, exc: BaseException) -> None:
        if self._redis_ok:
            log.warning("redis unavailable; spooling", error=f"{type(exc).__name__}: {exc}")
        self._redis_ok = False
        self._next_retry = asyncio.get_running_loop().time() + self._retry_interval

    def _mark_up(self, count: int) -> None:
        if not self._redis_ok:
            log.info("redis available again", spool_bytes=self.spool_bytes)
        self._redis_ok = True
        self.written += count

    def _spill(self, record: Record) -> None:
        """Queue full: move it and the new record to the spool, in order."""
        self._to_spool([*self._queue, record])
        self._queue.clear()
        self._wake.set()

    def _to_spool(self, records: list[Record]) -> None:
        if not records:
            return
        if self._prepare is not None:
            for record in records:
                self._prepare(record)
        try:
            unencodable = self._spool.append(records)
        except OSError as exc:
            self._disk_failed(len(records), exc)
            return
        if unencodable:
            self.dropped += unencodable
            log.error("records not JSON-encodable; dropped", records=unencodable)
        self.spooled += len(records) - unencodable
        if self._disk_failing:
            self._disk_failing = False
            log.info("spool writable again", dropped=self.dropped)

    def _disk_failed(self, count: int, exc: OSError) -> None:
        self.dropped += count
        if not self._disk_failing:  # once per burst
            self._disk_failing = True
            log.error("spool write failed; records dropped", records=count, error=str(exc))
