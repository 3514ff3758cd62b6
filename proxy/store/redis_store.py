"""The trace store on Redis: span writes in pipelined batches, trace reads in one round trip.

Cluster-ready by construction: the Lua script only touches keys of one trace (one hash slot),
and the indexes and the event stream are separate idempotent commands in the same pipeline.
A failed batch raises ``StoreUnavailable`` and can be re-sent as a whole: span writes are
idempotent (a span is stored once), index entries are sorted-set members, and only the event
stream may then carry a duplicate entry (consumers dedupe on ``span_id``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from proxy.records import assemble_trace
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys

EVENTS_MAXLEN = 100_000
_RECORD_SPAN = resources.files("proxy.store").joinpath("lua/record_span.lua").read_text()


def connect(url: str, timeout: float = 2.0) -> aioredis.Redis:
    """A client that fails fast: no retries, short timeouts (the writer decides what to do)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


class RedisStore:
    def __init__(self, client: aioredis.Redis, keys: Keys, retention_days: int) -> None:
        self._client = client
        self._keys = keys
        self._retention_s = retention_days * 86400
        self._record_span_sha: str | None = None

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def write_batch(self, records: Sequence[dict[str, Any]]) -> None:
        """Write span records; idempotent per record, so a failed batch may be re-sent whole."""
        try:
            try:
                await self._write(records)
            except NoScriptError:  # Redis restarted empty: load the script and send again
                self._record_span_sha = None
                await self._write(records)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _write(self, records: Sequence[dict[str, Any]]) -> None:
        if self._record_span_sha is None:
            self._record_span_sha = await self._client.script_load(_RECORD_SPAN)
        pipe = self._client.pipeline(transaction=False)
        now_ms = str(int(time.time() * 1000))
        for record in records:
            self._queue_span(pipe, record, now_ms)
        await pipe.execute()

    def _queue_span(self, pipe: Any, record: dict[str, Any], now_ms: str) -> None:
        trace, span = record["trace"], record["span"]
        trace_id, keys = trace["trace_id"], self._keys.trace(trace["trace_id"])
        span_json = orjson.dumps(span)
        started_ms = record["started_ms"]
        attrs = trace.get("attributes") or {}
        args: list[Any] = [
            trace_id, span["span_id"], span_json, started_ms, now_ms, self._retention_s,
            trace.get("name") or "", trace.get("session_id") or "", trace.get("user_id") or "",
            span.get("model") or "", len(attrs),
        ]  # fmt: skip
        for key, value in attrs.items():
            args += [key, orjson.dumps(value)]
        args += trace.get("tags") or []
        trace_keys = keys.all()
        pipe.evalsha(self._record_span_sha, len(trace_keys), *trace_keys, *args)
        for index in self._index_keys(trace, span):
            pipe.zadd(index, {trace_id: started_ms}, lt=True)
        pipe.sadd(self._keys.index_registry, *self._index_keys(trace, span))
        pipe.xadd(
            self._keys.events,
            {"type": "span", "trace_id": trace_id, "span_id": span["span_id"], "data": span_json},
            maxlen=EVENTS_MAXLEN,
            approximate=True,
        )

    def _index_keys(self, trace: dict[str, Any], span: dict[str, Any]) -> list[str]:
        keys = [self._keys.index_by_time]
        values = {
            "session": [trace.get("session_id")],
            "user": [trace.get("user_id")],
            "model": [span.get("model")],
            "upstream": [span.get("upstream")],
            "tag": trace.get("tags") or [],
        }
        for dimension, items in values.items():
            keys += [self._keys.index(dimension, item) for item in items if item]
        return keys

    async def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace in the SPEC §5 shape, or None when it does not exist (or expired)."""
        keys = self._keys.trace(trace_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(keys.trace)
        pipe.hgetall(keys.spans)
        pipe.hgetall(keys.attributes)
        pipe.smembers(keys.tags)
        pipe.smembers(keys.models)
        try:
            trace, spans, attrs, tags, models = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not trace:
            return None
        return assemble_trace(trace, spans, attrs, tags, models)

    async def prune_indexes(self, now: float | None = None) -> int:
        """Drop index entries of traces past retention (a background task, never a request)."""
        cutoff_ms = int(((now or time.time()) - self._retention_s) * 1000)
        removed = 0
        for index in await self._client.smembers(self._keys.index_registry):
            removed += await self._client.zremrangebyscore(index, "-inf", cutoff_ms)
        return removed
