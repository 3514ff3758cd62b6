"""The export loop: read a batch from the event stream, send it, acknowledge it; repeat.

Delivery, in one sentence: what was not acknowledged stays pending in Redis, so a collector
outage, a crash or a restart loses nothing and nothing waits in process memory; one process at
a time (the lease holder, see ``proxy.store.event_stream``) sends, oldest first, so delivery is
in stream order and, in normal operation, once.

Each round: renew the lease (or wait for it), take over pending entries (a dead holder's, or
ours from a round that gave up), else read new ones; map them; POST the spans, then the log
records (a vote never reaches the back end before the span it rates in the same batch); ack.
A failed POST is retried with exponential backoff up to ``max_attempts``; after that the batch
stays pending and the next round tries it again after ``max_backoff``. A payload the collector
refuses for good (a 4xx but 408/429) is dropped, counted and logged: retrying cannot help,
and it would stop the export for everything behind it.

Never on the request path: proxied calls only ever append to the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Sequence
from importlib import metadata

import structlog
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from proxy.config.model import OtlpExportSettings
from proxy.core.stream import StreamEntry, TraceFacts
from proxy.exporters.otlp.client import LOGS_PATH, TRACES_PATH, OtlpClient, SendFailed
from proxy.exporters.otlp.mapping import Encoder, Target
from proxy.metrics.export import ExportCounts
from proxy.store.errors import REDIS_FAILURES
from proxy.store.event_stream import EventStream

log = structlog.get_logger("proxy.exporters.otlp")

GROUP = "otlp"
BLOCK_MS = 500  # one blocking read; also how soon a stop is noticed
BACKLOG_EVERY_S = 5.0  # the backlog is read with XINFO (and, on Redis 6.2, a bounded XRANGE)
ENCODE_SLICE = 32  # spans encoded between two returns to the event loop (~0.5 ms)
LINGER_S = 1.0  # after a partial read: how long to let a batch fill up (the SDK waits 5 s)
FIRST_BACKOFF_S = 0.2


def consumer_name() -> str:
    """This process's consumer in the group: host, pid and a random part (a restarted process
    with a reused pid is a new consumer; idle ones are forgotten on takeover)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _version() -> str:
    try:
        return metadata.version("feedback-proxy")
    except metadata.PackageNotFoundError:
        return "0"


class _LeaseLost(Exception):
    """Another process holds the lease now: stop this batch without acknowledging it."""


class OtlpExporter:
    def __init__(
        self,
        stream: EventStream,
        client: OtlpClient,
        settings: OtlpExportSettings,
        targets: dict[str, Target],
        counts: ExportCounts,
    ) -> None:
        self._stream = stream
        self._client = client
        self._settings = settings
        self.counts = counts
        self.consumer = consumer_name()
        self._encoder = Encoder(targets, settings.content, settings.service_name, _version())
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._holding = False
        self._maybe_pending = True
        self._renewed_at = 0.0
        self._group_lost = False
        self._backlog_at = 0.0
        self._overrun_at: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="otlp-exporter")

    async def stop(self, deadline: float) -> None:
        """Let the round in flight finish (up to ``deadline`` s), then hand the lease back so
        another process takes over at once; an unfinished batch stays pending in Redis."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), deadline)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_FAILURES):
            await self._stream.release_lease(self.consumer)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._round()
            except REDIS_FAILURES as exc:
                log.warning("otlp export: Redis failed", error=f"{type(exc).__name__}: {exc}")
                if "NOGROUP" in str(exc) or "no such key" in str(exc):
                    self._holding = False  # the stream was deleted: make the group again
                    self._group_lost = True
                await self._pause(1.0)
            except Exception as exc:  # a bug must not end export for good: log, wait, go on
                log.error("otlp export round failed", error=f"{type(exc).__name__}: {exc}")
                await self._pause(self._settings.max_backoff)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- one round ---------------------------------------------------------------------------

    async def _round(self) -> None:
        settings = self._settings
        if not await self._renew():
            self._holding = False
            self.counts.pending = 0  # the holder reports the backlog
            await self._pause(1.0)
            return
        if not self._holding:
            await self._take_over()
        await self._measure_backlog()
        entries = await self._claimed() if self._maybe_pending else []
        if not entries:
            entries = await self._read_batch()
        if entries and not await self._deliver(entries):
            self._maybe_pending = True
            await self._pause(settings.max_backoff)  # stays pending: tried again next round

    async def _renew(self) -> bool:
        """Hold the lease: renewed once a quarter of it has passed. A round and every send
        attempt start with this, so the longest time between renewals is a quarter lease plus
        one attempt and one backoff, which ``config.checks`` keeps under the lease."""
        now = time.monotonic()
        if self._holding and now - self._renewed_at < self._settings.lease_seconds / 4:
            return True
        held = await self._stream.hold_lease(self.consumer, self._settings.lease_seconds)
        self._renewed_at = now if held else 0.0
        return held

    async def _claimed(self) -> list[StreamEntry]:
        """Pending entries (a dead holder's, or a batch of ours that gave up), oldest first;
        only looked for after a takeover or a failed round, not every round."""
        claimed = await self._stream.claim_pending(self.consumer, self._settings.batch_size)
        if claimed.trimmed:
            self.counts.trimmed += len(claimed.trimmed)
            log.warning("otlp export: pending entries trimmed", count=len(claimed.trimmed))
            await self._stream.ack(claimed.trimmed)
        if not claimed.entries and not claimed.trimmed:
            self._maybe_pending = False
        return claimed.entries

    async def _read_batch(self) -> list[StreamEntry]:
        """New entries: wait up to BLOCK_MS for the first, then LINGER_S for more, so
        a steady trickle goes out in full batches (as the Collector's batch processor does)."""
        size = self._settings.batch_size
        entries = await self._stream.read_new(self.consumer, size, BLOCK_MS)
        if 0 < len(entries) < size:
            await self._pause(LINGER_S)
            entries += await self._stream.read_new(self.consumer, size - len(entries), None)
        return entries

    async def _take_over(self) -> None:
        self._holding = True
        self._maybe_pending = True
        await self._stream.ensure_group(from_start=self._group_lost)
        self._group_lost = False
        await self._stream.forget_idle_consumers(self.consumer, self._settings.lease_seconds)
        log.info("otlp export: this process exports now", consumer=self.consumer)

    async def _measure_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at < BACKLOG_EVERY_S:
            return
        self._backlog_at = now
        backlog = await self._stream.backlog()
        self.counts.pending = backlog.pending + backlog.undelivered
        if backlog.overrun and backlog.last_delivered != self._overrun_at:
            self._overrun_at = backlog.last_delivered
            self.counts.overruns += 1
            log.warning(
                "otlp export fell behind the event stream's cap: entries were trimmed unread",
                last_delivered=backlog.last_delivered,
            )

    async def _deliver(self, entries: Sequence[StreamEntry]) -> bool:
        """Send one batch; True when all of it is done with (sent, or refused for good).

        Consecutive entries of one signal go out as one request and are acknowledged when it
        succeeds, so a logs request that fails never makes the spans before it go out again."""
        needs_latest = {e.trace_id for e in entries if e.type != "span" and not e.span_id}
        facts = await self._stream.trace_facts(entries, needs_latest)
        observed = time.time_ns()
        for run in _runs(entries):
            try:
                if not await self._send_run(run, facts, observed):
                    return False
            except _LeaseLost:
                self._holding = False
                self._maybe_pending = True
                return False
            await self._stream.ack([entry.entry_id for entry in run])
        return True

    async def _send_run(
        self, run: Sequence[StreamEntry], facts: dict[str, TraceFacts], observed: int
    ) -> bool:
        if run[0].type == "span":
            spans: list[bytes] = []
            count = 0
            for at in range(0, len(run), ENCODE_SLICE):
                count = self._encoder.add_spans(spans, run[at : at + ENCODE_SLICE], facts)
                await asyncio.sleep(0)  # proxied calls run between slices
            payload = self._encoder.traces_payload(spans)
            return await self._send("spans", TRACES_PATH, payload, count)
        logs = self._encoder.logs(run, facts, observed)
        count = len(logs.resource_logs[0].scope_logs[0].log_records)
        if not count:
            return True  # entries of a type this exporter does not know: nothing to send
        return await self._send("logs", LOGS_PATH, logs.SerializeToString(), count)

    async def _send(self, signal: str, path: str, payload: bytes, items: int) -> bool:
        """Up to ``max_attempts`` tries with exponential backoff; the lease is renewed before
        each. True when the collector took the payload or refused it for good."""
        counts = self.counts.signals[signal]
        settings = self._settings
        backoff = FIRST_BACKOFF_S
        for attempt in range(1, settings.max_attempts + 1):
            if attempt > 1 and self._stopping.is_set():
                return False  # stopping: the batch waits in Redis for the next process
            if not await self._renew():
                raise _LeaseLost
            try:
                answer = await self._client.send(path, payload)
            except SendFailed as exc:
                counts.failed_requests += 1
                if not exc.retryable:
                    counts.dropped += items
                    log.error(
                        "otlp export refused, dropped", signal=signal, items=items, error=str(exc)
                    )
                    return True
                log.warning("otlp export failed", signal=signal, attempt=attempt, error=str(exc))
                if attempt < settings.max_attempts:
                    await self._pause(min(backoff, settings.max_backoff))
                    backoff *= 2
                continue
            rejected = _rejected(signal, answer)
            counts.exported += items - rejected
            counts.dropped += rejected
            return True
        return False


def _runs(entries: Sequence[StreamEntry]) -> list[list[StreamEntry]]:
    """The entries cut where the signal changes (span entries vs evaluation entries)."""
    runs: list[list[StreamEntry]] = []
    for entry in entries:
        if runs and (runs[-1][0].type == "span") == (entry.type == "span"):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


def _rejected(signal: str, answer: bytes) -> int:
    """Items a partial-success answer says the collector rejected (0 for an empty answer)."""
    if not answer:
        return 0
    try:
        if signal == "spans":
            traces = ExportTraceServiceResponse.FromString(answer)
            return int(traces.partial_success.rejected_spans)
        logs = ExportLogsServiceResponse.FromString(answer)
        return int(logs.partial_success.rejected_log_records)
    except Exception:  # not protobuf (e.g. a JSON body from a proxy in between): none rejected
        return 0
