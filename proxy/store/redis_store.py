"""The trace store on Redis: span writes in pipelined batches, trace reads in one round trip.

Cluster-ready by construction: the Lua script only touches keys of one trace (one hash slot),
and the indexes and the event stream are separate idempotent commands in the same pipeline.
A failed batch raises ``StoreUnavailable`` and can be re-sent as a whole: span writes are
idempotent (a span is stored once), index entries are sorted-set members, and only the event
stream may then carry a duplicate entry (consumers dedupe on ``span_id``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from proxy.config import ReviewRule
from proxy.core.bounded import BoundedSet
from proxy.core.records import (
    FeedbackRecord,
    Record,
    ScoreRecord,
    Span,
    SpanRecord,
    SpanTrace,
    Trace,
    iso_from_ms,
)
from proxy.datasets.columns import DEFAULT_COLUMNS, review_row
from proxy.recording.pricing import SpanPricer
from proxy.store.cost_index import cost_indexes, to_pico
from proxy.store.dataset_writes import queue_rows
from proxy.store.errors import REDIS_FAILURES, unavailable
from proxy.store.feedback_merge import (
    MergeResult,
    matching_rules,
    merge_args,
    parse_result,
)
from proxy.store.implicit import (
    Signal,
    queue_count,
    regenerated_signal,
    session_command,
    session_signal_json,
    span_args,
    stopped_signal,
    stream_entry,
)
from proxy.store.keys import SPAN_INDEXES, Keys
from proxy.store.resp_pipe import pipe_for
from proxy.store.scores import (
    ScoreResult,
    parse_score_result,
    queue_pairs,
    score_args,
    score_entry,
)
from proxy.store.scripting import SCRIPTS, queue_script
from proxy.store.span_stats import SpanCounts
from proxy.store.stats import GROUP_DIMENSIONS, queue_stats
from proxy.store.trace_read import assemble_trace

EVENTS_MAXLEN = 100_000
# Per-process caches (proxy/core/bounded.py): how many index names this process remembers having
# put in the registry, and how many (dataset, trace) review rows it remembers having written.
# ~150 bytes an entry, so under 1 MiB each; a forgotten entry costs one idempotent command.
# 1,024 each (under 0.3 MiB): an entry only has to outlive a session's or a trace's burst of
# calls; a smaller cache is also full sooner, so memory is flat after the first minutes.
REGISTRY_CACHE = 1024
REVIEWED_CACHE = 1024


# Error replies that mean Redis cannot take writes now (full, busy, loading, failing over),
# even when they come from inside a script: the records wait in the spool, never dropped.
# redis-py turns the codes it knows into classes; from inside a script (and in a pipeline's
# wrapped message) the code stays in the text, after "-" or at the start.
_TRANSIENT_CLASSES = (
    OutOfMemoryError, BusyLoadingError, ReadOnlyError, TryAgainError, ClusterDownError,
)  # fmt: skip
_TRANSIENT_CODE = re.compile(
    r"(?:^|-)(?:OOM|BUSY|LOADING|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN) "
)


_SCRIPT_ERROR_MARKS = ("Error running script", "user_script:")


def _refused_by_script(exc: ResponseError) -> bool:
    """A script's own error (bad records: retrying cannot help), not a Redis condition. Only
    the server's own words count ("Error running script", or "user_script:" on Redis 7): a
    pipeline error quotes the command, whose trace id may well say "script"."""
    if isinstance(exc, _TRANSIENT_CLASSES) or _TRANSIENT_CODE.search(str(exc)):
        return False
    return any(mark in str(exc) for mark in _SCRIPT_ERROR_MARKS)


def _trace_key_template(keys: Keys) -> tuple[str, tuple[str, ...]]:
    """``keys.trace(t).all()`` as one head and a tail per key (each key is head + t + tail), so
    a span's nine key names are nine concatenations; the names themselves stay in keys.py."""
    mark = "\x00"
    parts = [name.split(mark) for name in keys.trace(mark).all()]
    head = parts[0][0]
    if any(len(part) != 2 or part[0] != head for part in parts):
        raise ValueError("a trace's key names must all be <head><trace_id><tail>")
    return head, tuple(tail for _, tail in parts)


def _score_pairs(mapping: dict[str, int]) -> list[Any]:
    """ZADD's score and member arguments for a mapping, as redis-py's ``zadd`` sends them."""
    return [item for member, score in mapping.items() for item in (score, member)]


def _feedback_entry(record: FeedbackRecord) -> dict[Any, Any]:
    event = record["event"]
    return {
        "type": "feedback",
        "trace_id": record["trace_id"],
        "span_id": event.get("span_id") or "",
        "data": orjson.dumps(event),
    }


class RedisStore:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        retention_days: int,
        max_feedback_events: int = 1000,
        review_rules: tuple[ReviewRule, ...] = (),
        on_replayed: Callable[[FeedbackRecord, MergeResult], None] | None = None,
        regenerate_window_s: int = 600,
        pricer: SpanPricer | None = None,
        on_cost: Callable[[str, str | None, float], None] | None = None,
        dimensions: tuple[str, ...] = (),
    ) -> None:
        """``on_replayed`` hears of each queued feedback event the writer's replay merged
        (for the feedback metrics, which count live merges themselves). ``pricer`` prices
        each span as it is written (here, in the writer's task, off the response path;
        None leaves ``cost_usd`` null); ``on_cost`` hears (upstream, model, USD) of each
        priced span stored for the first time (the cost metric). ``dimensions`` are the
        [stats] dimension keys the counters follow."""
        self._client = client
        self._dims = dimensions
        self._pricer = pricer
        self._on_cost = on_cost
        self._on_replayed = on_replayed
        self._regenerate_window_s = regenerate_window_s
        self._stopped_index = keys.index("implicit", "stopped")
        self._implicit_prefix = keys.index("implicit", "")
        self._window_ms = regenerate_window_s * 1000
        self._keys = keys
        self._retention_s = retention_days * 86400
        self._max_events = max_feedback_events
        self._rules = review_rules
        self._shas: dict[str, str] = {}
        self._upstream_prefix = keys.index("upstream", "")
        # Index keys this process has put in the registry, so each is sent once, not with every
        # span; the oldest are forgotten past REGISTRY_CACHE (sessions and users are many).
        self._registered: BoundedSet[str] = BoundedSet(REGISTRY_CACHE)
        # (dataset, trace) review rows known to exist; the oldest forgotten past REVIEWED_CACHE
        self._reviewed: BoundedSet[tuple[str, str]] = BoundedSet(REVIEWED_CACHE)
        # Span batches skip redis-py's per-reply machinery on a single server (resp_pipe.py).
        self._resp = pipe_for(client)
        self._time_index = keys.index_by_time
        self._index_prefix = {dimension: keys.index(dimension, "") for dimension in SPAN_INDEXES}
        self._trace_key_head, self._trace_key_tails = _trace_key_template(keys)
        self._xadd_span = ("XADD", keys.events, b"MAXLEN", b"~", str(EVENTS_MAXLEN), "*",
                           "type", "span", "trace_id")  # fmt: skip

    async def close(self) -> None:
        """Close the span batch connection (the client is closed by whoever made it)."""
        if self._resp is not None:
            await self._resp.aclose()

    def _batch(self) -> Any:
        """A pipeline for the span batch path: the fast one where there is one."""
        if self._resp is not None:
            return self._resp.batch()
        return self._client.pipeline(transaction=False)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except REDIS_FAILURES:
            return False

    async def write_batch(self, records: Sequence[Record]) -> None:
        """Write span and feedback records; idempotent per record, so a failed batch may be
        re-sent whole (a replayed feedback event replaces itself)."""
        spans: list[SpanRecord] = []
        feedback: list[FeedbackRecord] = []
        scores: list[ScoreRecord] = []
        for record in records:
            if record["kind"] == "span":
                spans.append(record)
            elif record["kind"] == "score":
                scores.append(record)
            else:
                feedback.append(record)
        await self._with_scripts(self._write_spans, spans)
        if feedback:
            await self._with_scripts(self._replay_all, feedback)
        if scores:
            await self._with_scripts(self._replay_scores, scores)

    async def merge_score(self, record: ScoreRecord) -> ScoreResult:
        """Merge one evaluator score now (the live path: an unknown trace is ``no_trace``);
        raises StoreUnavailable."""

        async def live(records: Sequence[ScoreRecord]) -> list[ScoreResult]:
            return await self._merge_scores(records, live=True)

        results: list[ScoreResult] = await self._with_scripts(live, [record])
        return results[0]

    async def _replay_scores(self, records: Sequence[ScoreRecord]) -> list[ScoreResult]:
        return await self._merge_scores(records, live=False)

    async def _merge_scores(self, records: Sequence[ScoreRecord], live: bool) -> list[ScoreResult]:
        """merge_score.lua per record, then (idempotent, other slots) the score indexes, the
        (hour, name) pairs of the agreement stats and the event stream."""
        sha = await self._sha("merge_score")
        now_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            args = score_args(record, now_ms, self._retention_s, live, self._keys)
            queue_script(pipe, sha, self._keys.trace(record["trace_id"]).all(), *args)
        results = [parse_score_result(raw) for raw in await pipe.execute()]
        after = self._client.pipeline(transaction=False)
        pair_sha = await self._sha("score_pair_apply")
        scored: list[tuple[str, int, list[str]]] = []
        for record, result in zip(records, results, strict=True):
            if not result.created_ms:
                continue
            queue_pairs(after, pair_sha, self._keys, record["trace_id"], result, self._retention_s)
            scored.append((record["trace_id"], result.created_ms, list(result.indexes)))
            if not result.stale:  # a duplicate too: this step may be what failed before
                after.xadd(self._keys.events, score_entry(record),
                           maxlen=EVENTS_MAXLEN, approximate=True)  # fmt: skip
        await self._score_indexes(scored, after)
        return results

    async def merge_feedback(self, record: FeedbackRecord) -> MergeResult:
        """Merge one feedback event now (the live path); raises StoreUnavailable."""
        results: list[MergeResult] = await self._with_scripts(self._merge_all, [record])
        return results[0]

    async def _with_scripts(self, operation: Any, records: Sequence[Record]) -> Any:
        """Run ``operation``, loading scripts Redis lost (a restart) once; translate errors."""
        try:
            try:
                return await operation(records)
            except NoScriptError:  # Redis restarted empty: scripts and registry are gone
                self._shas.clear()
                self._registered.clear()
                return await operation(records)
        except ResponseError as exc:
            if _refused_by_script(exc):
                raise  # the script refused these records: a retry would fail the same way
            raise unavailable(exc) from exc
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def _sha(self, name: str) -> str:
        if name not in self._shas:
            self._shas[name] = await self._client.script_load(SCRIPTS[name])
        return self._shas[name]

    async def _write_spans(self, records: Sequence[SpanRecord]) -> None:
        if not records:
            return
        sha = await self._sha("record_span")
        pipe = self._batch()
        now = int(time.time() * 1000)
        now_ms = str(now)
        for record in records:
            self._queue_span(pipe, sha, record, now_ms)
        sessions = await self._queue_sessions(pipe, records)
        replies = await pipe.execute()
        scored, states, signals, counts = [], [], [], SpanCounts()
        for record, reply in zip(records, replies[: 2 * len(records) : 2], strict=True):
            trace_id, created = record["trace"]["trace_id"], int(reply[1])
            names = [n.decode() for n in reply[7:]]
            new = int(reply[0]) == 1
            if new:
                self._count_span(record, counts, reply)
                if reply[3]:
                    names += cost_indexes(self._keys, int(reply[3]))
            scored.append((trace_id, created, names))
            if reply[2]:
                states.append((trace_id, reply[2]))
            if reply[6]:
                signals.append(regenerated_signal(trace_id, created, reply[6]))
            stop = stopped_signal(record, created)
            if stop is not None and created:
                signals.append(stop)
        pipe = await self._stats_pipe(states, self._batch())
        if counts:
            counts.queue(pipe, await self._sha("stats_calls"), self._keys, self._retention_s)
        await self._queue_signals(pipe, signals)
        await self._score_indexes(scored, pipe)
        found = zip(sessions, replies[2 * len(records) :], strict=True)
        await self._mark_session_repeats([(r, hit) for r, hit in found if hit], now)

    def _count_span(self, record: SpanRecord, counts: SpanCounts, reply: list[Any]) -> None:
        """A span stored for the first time: its call and cost in the stats and the metric
        (``reply``: record_span.lua's, with the trace's dimension values and first-span flag)."""
        span = record["span"]
        cost = span.get("cost_usd")
        dims = orjson.loads(reply[4]) if reply[4] else {}
        pico = None if cost is None else to_pico(cost)
        counts.add(span, record["started_ms"], pico, dims, first=int(reply[5]) == 1)
        if cost is not None and self._on_cost is not None:
            self._on_cost(span["upstream"], span.get("model"), cost)

    async def _queue_sessions(self, pipe: Any, records: Sequence[SpanRecord]) -> list[SpanRecord]:
        """implicit_session.lua for each call with a session and an input (regeneration across
        the session's traces), after the batch's span commands; the records it was queued for."""
        commands = [(r, session_command(r, self._regenerate_window_s, self._keys)) for r in records]
        queued = [(record, command) for record, command in commands if command is not None]
        if queued:
            sha = await self._sha("implicit_session")
            for _, (keys, args) in queued:
                queue_script(pipe, sha, keys, *args)
        return [record for record, _ in queued]

    async def _queue_signals(self, pipe: Any, signals: list[Signal]) -> None:
        """Count each signal once in its trace's hour; publish the ones recorded by this span
        (also on a replay: the step that failed may have been this one; consumers dedupe)."""
        if not signals:
            return
        sha = await self._sha("implicit_count")
        for signal in signals:
            queue_count(pipe, sha, self._keys, signal, self._retention_s)
            if signal.new:
                entry = [item for pair in stream_entry(signal).items() for item in pair]
                pipe.execute_command("XADD", self._keys.events, b"MAXLEN", b"~",
                                     str(EVENTS_MAXLEN), "*", *entry)  # fmt: skip

    async def _mark_session_repeats(
        self, found: list[tuple[SpanRecord, list[Any]]], now_ms: int
    ) -> None:
        """Record ``regenerated`` on the earlier span of another trace of the session (its
        own slot), then index, count and publish it: only when a repeat was found."""
        sha = await self._sha("mark_implicit")
        index = self._keys.index("implicit", "regenerated")
        pipe = self._client.pipeline(transaction=False)
        for record, (trace_id, span_id, _, _) in found:
            keys = self._keys.trace(trace_id.decode())
            data = session_signal_json(record, now_ms)
            queue_script(pipe, sha, (keys.trace, keys.span_feedback, keys.indexes),
                         span_id.decode(), "regenerated", data, index)  # fmt: skip
        signals, scored = [], []
        for (record, hit), marked in zip(found, await pipe.execute(), strict=True):
            if not marked:
                continue  # the earlier trace expired meanwhile
            trace_id, span_id, model, upstream = (part.decode() for part in hit)
            created, data = int(marked[0]), session_signal_json(record, now_ms)
            signals.append(Signal(trace_id, created, span_id, "regenerated", model, upstream,
                                  data, new=int(marked[1]) == 1))  # fmt: skip
            scored.append((trace_id, created, [index]))
        after = self._client.pipeline(transaction=False)
        await self._queue_signals(after, signals)
        await self._score_indexes(scored, after)

    async def _score_indexes(
        self, scored: list[tuple[str, int, list[str]]], pipe: Any = None
    ) -> None:
        """Second step of every write: list each trace in its indexes at its creation time.

        One ``ZADD LT`` per index key for the whole batch (spans of a batch share the time,
        upstream and model indexes), idempotent and keeping the earliest time, so concurrent
        writers and replays converge on the trace's creation time in any order. ``pipe`` may
        already hold other commands of the same step."""
        members: dict[str, dict[str, int]] = {}
        for trace_id, created_ms, names in scored:
            for name in names:
                index = members.get(name)
                if index is None:
                    members[name] = {trace_id: created_ms}
                elif created_ms < index.get(trace_id, created_ms + 1):
                    index[trace_id] = created_ms
        pipe = pipe if pipe is not None else self._client.pipeline(transaction=False)
        for name, mapping in members.items():  # = pipe.zadd(name, mapping, lt=True), on any pipe
            pipe.execute_command("ZADD", name, b"LT", *_score_pairs(mapping))
        new = [name for name in members if name not in self._registered]
        if new:
            pipe.sadd(self._keys.index_registry, *new)
            self._note_dimension_values(pipe, new)
        if len(pipe):
            await pipe.execute()
        self._registered.update(new)

    def _note_dimension_values(self, pipe: Any, names: list[str]) -> None:
        """Model and upstream values get a set each: the groups the stats report."""
        for dimension in GROUP_DIMENSIONS:
            prefix = self._keys.index(dimension, "")
            values = [name[len(prefix) :] for name in names if name.startswith(prefix)]
            if values:
                pipe.sadd(self._keys.dimension_values(dimension), *values)

    async def _stats_pipe(self, states: list[tuple[str, bytes]], pipe: Any = None) -> Any:
        """A pipeline (``pipe`` or a new one) holding the stats moves of these (trace_id,
        stats state) pairs."""
        pipe = pipe if pipe is not None else self._client.pipeline(transaction=False)
        if states:
            sha = await self._sha("stats_apply")
            for trace_id, state in states:
                queue_stats(pipe, sha, self._keys, trace_id, state, self._retention_s)
        return pipe

    async def _replay_all(self, records: Sequence[FeedbackRecord]) -> list[MergeResult]:
        """Feedback that waited in the queue or spool: its client was told "queued", so it is
        applied whatever the history cap says (the cap guards live requests)."""
        results = await self._merge_all(records, cap=0)
        if self._on_replayed is not None:
            for record, result in zip(records, results, strict=True):
                self._on_replayed(record, result)
        return results

    async def _merge_all(
        self, records: Sequence[FeedbackRecord], cap: int | None = None
    ) -> list[MergeResult]:
        sha = await self._sha("merge_feedback")
        now_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        max_events = self._max_events if cap is None else cap
        for record in records:
            keys = self._keys.trace(record["trace_id"]).all()
            args = merge_args(record, now_ms, self._retention_s, max_events, self._keys, self._dims)
            queue_script(pipe, sha, keys, *args)
        results = [parse_result(raw) for raw in await pipe.execute()]
        await self._after_merge(records, results)
        return results

    async def _after_merge(
        self, records: Sequence[FeedbackRecord], results: list[MergeResult]
    ) -> None:
        """Index upkeep, stats, the event stream and review-queue rows (all idempotent)."""
        pairs = zip(records, results, strict=True)
        states = [(record["trace_id"], merged.stats) for record, merged in pairs if merged.stats]
        pipe = await self._stats_pipe(states)
        reviews: list[tuple[str, str]] = []
        scored: list[tuple[str, int, list[str]]] = []
        dropped: list[tuple[str, int, str]] = []
        for record, result in zip(records, results, strict=True):
            if result.status == "full" or not result.created_ms:
                continue  # a replay ("duplicate") redoes this step: it may be what failed
            scored.append((record["trace_id"], result.created_ms, list(result.indexes)))
            dropped += [(record["trace_id"], result.created_ms, t) for t in result.removed_tags]
            pipe.xadd(self._keys.events, _feedback_entry(record),
                      maxlen=EVENTS_MAXLEN, approximate=True)  # fmt: skip
            reviews += [(d, record["trace_id"]) for d in matching_rules(self._rules, record)]
        await self._score_indexes(scored, pipe)
        await self._drop_tag_entries(dropped)
        for dataset, trace_id in reviews:
            await self._add_review_row(dataset, trace_id)

    async def _drop_tag_entries(self, dropped: list[tuple[str, int, str]]) -> None:
        """Take traces out of the indexes of tags they lost (trace_id, created_ms, tag).

        The index is in another slot than the trace, so this follows the script: ZREM, then a
        look at the trace's tags, and ZADD again for a tag a concurrent event put back in
        between (its own ZADD may have come before our ZREM). A missed removal only leaves a
        stale entry, which queries skip; a wrong one would hide the trace, hence the check."""
        if not dropped:
            return
        removals = self._client.pipeline(transaction=False)
        for trace_id, _, tag in dropped:
            removals.zrem(self._keys.index("tag", tag), trace_id)
        await removals.execute()  # all done before the look (a cluster runs nodes in parallel)
        checks = self._client.pipeline(transaction=False)
        for trace_id, _, tag in dropped:
            checks.sismember(self._keys.trace(trace_id).tags, tag)
        back = [d for d, member in zip(dropped, await checks.execute(), strict=True) if member]
        await self._score_indexes(
            [(t, created, [self._keys.index("tag", tag)]) for t, created, tag in back]
        )

    async def set_annotation_status(self, trace_id: str, status: str) -> bool:
        """Set the trace's annotation_status and index it; False when the trace is gone."""
        index = self._keys.index("annotation", status)
        keys = self._keys.trace(trace_id)

        async def run(_: object) -> Any:
            sha = await self._sha("set_annotation")
            return await self._client.evalsha(sha, 2, keys.trace, keys.indexes, status, index)

        created = await self._with_scripts(run, [])
        if created is None:
            return False
        await self._score_indexes([(trace_id, int(created), [index])])
        return True

    async def _add_review_row(self, dataset: str, trace_id: str) -> None:
        if (dataset, trace_id) in self._reviewed:
            return  # added by this process already: a trace is in a dataset once
        if not await self._client.hexists(self._keys.dataset_rows(dataset), trace_id):
            await self._write_review_row(dataset, trace_id)
        self._reviewed.add((dataset, trace_id))

    async def _write_review_row(self, dataset: str, trace_id: str) -> None:
        now = time.time()
        row = review_row(await self.get_trace(trace_id), trace_id, iso_from_ms(now * 1000))
        pipe = self._client.pipeline(transaction=False)
        queue_rows(pipe, self._keys, dataset, [row], DEFAULT_COLUMNS, now)
        await pipe.execute()

    async def dataset_rows(self, dataset: str) -> list[dict[str, Any]]:
        """Rows of a dataset in the order they were added (the full dataset API comes later)."""
        order: Any = await self._client.zrange(self._keys.dataset_order(dataset), 0, -1)
        if not order:
            return []
        rows = await self._client.hmget(self._keys.dataset_rows(dataset), order)
        return [orjson.loads(r) for r in rows if r is not None]

    def _queue_span(self, pipe: Any, sha: str, record: SpanRecord, now_ms: str) -> None:
        """Two commands per span: the script, then the stream entry (replies[::2] = scripts).

        ``pipe`` is a redis-py pipeline or a ``RespBatch``. The commands are the raw EVALSHA
        that ``queue_script`` queues and the XADD that redis-py's ``xadd`` builds (the same
        bytes on the wire), with each argument list built once."""
        trace, span = record["trace"], record["span"]
        trace_id, span_id = trace["trace_id"], span["span_id"]
        if "cost_usd" not in span:  # a replayed record may carry its price already
            pricer = self._pricer
            span["cost_usd"] = None if pricer is None else pricer.cost(span, record["started_ms"])
        span_json = orjson.dumps(span)
        attrs = trace.get("attributes") or {}
        tags = trace.get("tags") or []
        indexes = self._index_keys(trace, span)
        base = self._trace_key_head + trace_id
        args: list[Any] = ["EVALSHA", sha, len(self._trace_key_tails)]
        args += [base + tail for tail in self._trace_key_tails]
        args += (
            trace_id, span_id, span_json, record["started_ms"], now_ms, self._retention_s,
            trace.get("name") or "", trace.get("session_id") or "", trace.get("user_id") or "",
            span.get("model") or "", len(attrs), len(tags), len(indexes), self._upstream_prefix,
        )  # fmt: skip
        for key, value in attrs.items():
            args += (key, orjson.dumps(value))
        args += tags
        args += indexes
        cost, usage = span["cost_usd"], span.get("usage")
        tokens = usage.get("total_tokens") if usage else None
        args += ("" if cost is None else to_pico(cost), "" if tokens is None else tokens)
        args += (len(self._dims), *self._dims)
        args += span_args(record, self._window_ms, self._implicit_prefix, int(now_ms))
        pipe.execute_command(*args)
        # The trace fields this call sent, for stream consumers (the OTLP exporter's span
        # attributes) that would otherwise read the trace back per span.
        facts = orjson.dumps(
            {"name": trace.get("name"), "session_id": trace.get("session_id"),
             "user_id": trace.get("user_id"), "tags": tags}
        )  # fmt: skip
        pipe.execute_command(
            *self._xadd_span, trace_id, "span_id", span_id, "data", span_json, "trace", facts
        )

    def _index_keys(self, trace: SpanTrace, span: Span) -> list[str]:
        """The indexes a span lists its trace in, in the order record_span.lua gets them: time,
        then session, user, model and upstream when set, then one per tag."""
        prefix = self._index_prefix
        keys = [self._time_index]
        for dimension, value in (
            ("session", trace.get("session_id")), ("user", trace.get("user_id")),
            ("model", span.get("model")), ("upstream", span.get("upstream")),
        ):  # fmt: skip
            if value:
                keys.append(f"{prefix[dimension]}{value}")
        tag = prefix["tag"]
        keys += [f"{tag}{value}" for value in trace.get("tags") or () if value]
        if any(signal["signal"] == "stopped" for signal in span.get("implicit") or ()):
            keys.append(self._stopped_index)
        return keys

    async def models_of(self, trace_id: str) -> set[str]:
        """The models the trace's spans used (empty before its first span)."""
        try:
            raw: Any = await self._client.smembers(self._keys.trace(trace_id).models)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return {model.decode() for model in raw}

    async def get_trace(self, trace_id: str) -> Trace | None:
        """The trace as docs/reference.md §5 shows it; None when it does not exist (or expired)."""
        keys = self._keys.trace(trace_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys.trace)
        pipe.hgetall(keys.spans)
        pipe.hgetall(keys.attributes)
        pipe.smembers(keys.tags)
        pipe.smembers(keys.models)
        pipe.hgetall(keys.feedback)
        pipe.zrange(keys.feedback_order, 0, -1)
        pipe.hgetall(keys.span_feedback)
        pipe.hvals(keys.scores)
        try:
            raw_reply = await pipe.execute()
            trace, spans, attrs, tags, models, events, order, span_fb, scores = raw_reply
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        if not trace:
            return None
        raw = {
            "trace": trace, "spans": spans, "attributes": attrs, "tags": tags, "models": models,
            "feedback": [events.get(key) for key in order], "span_feedback": span_fb,
            "scores": scores,
        }  # fmt: skip
        return assemble_trace(raw)

    async def prune_indexes(self, now: float | None = None) -> int:
        """Drop index entries of traces past retention (a background task, never a request)."""
        cutoff_ms = int(((now or time.time()) - self._retention_s) * 1000)
        removed, cursor = 0, 0
        while True:  # the registry in chunks, each chunk's trims in one round trip
            cursor, chunk = await self._client.sscan(self._keys.index_registry, cursor, count=500)
            if chunk:
                pipe = self._client.pipeline(transaction=False)
                for index in chunk:
                    pipe.zremrangebyscore(index, "-inf", cutoff_ms)
                removed += sum(await pipe.execute())
            if cursor == 0:
                return removed
