"""Reading the event stream as a consumer group: what an exporter needs from Redis.

The stream (``keys.events``) is the one the store already writes, one entry per finished span
and per feedback event (and the score and implicit entries of §12). An exporter reads it
through a consumer group, so what it has not acknowledged stays in Redis: a collector outage or
a restart loses nothing, and nothing waits in process memory.

One exporter at a time holds a lease (``keys.export_lease``, ``SET NX PX``, renewed before
every send attempt). The holder alone reads and acknowledges, which keeps delivery in stream
order (so in order per trace) across replicas and workers, and makes a duplicate impossible in
normal operation. When a holder dies its lease lapses; the next holder takes every pending entry
over with ``XAUTOCLAIM`` (idle time 0: under the lease, pending entries belong to nobody alive)
and sends them first, oldest first. Every command touches one key, so it runs on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from proxy.core.stream import StreamEntry, TraceFacts, entry_id_order
from proxy.store.keys import Keys

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Decoded trace fields by their JSON: the spans of one trace in one export batch (up to 512
# entries) share them. Keyed by session and tags too, so it fills with traffic: 1,024 entries
# (a few hundred KiB) cover a batch and are full within the first minutes.
FACTS_CACHE = 1024
UNDELIVERED_SCAN = 1000  # Redis 6.2 has no group lag: count at most this many entries


@dataclass(frozen=True, slots=True)
class Claimed:
    """Pending entries taken over: those still in the stream, and the IDs trimmed meanwhile."""

    entries: list[StreamEntry]
    trimmed: list[str]


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far the group is behind: ``pending`` delivered but not acknowledged, ``undelivered``
    not read yet (at most UNDELIVERED_SCAN on Redis 6.2, which has no group lag), and
    ``overrun``: the stream's cap trimmed entries the group had not read yet. Redis 7 says so
    exactly; on 6.2 it is inferred from the oldest entry being newer than the last one read,
    which is also true, harmlessly, if the trim ended exactly at that entry."""

    pending: int
    undelivered: int
    overrun: bool
    last_delivered: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: Any, fields: Any, facts: dict[bytes, TraceFacts | None]) -> StreamEntry:
    """One entry from redis-py's reply (bytes keys); ``facts`` caches decoded trace fields,
    which many span entries share byte for byte."""
    raw_facts = fields.get(b"trace")
    carried = None
    if raw_facts:
        if raw_facts not in facts:
            if len(facts) > FACTS_CACHE:
                facts.clear()
            facts[raw_facts] = _carried_facts(raw_facts)
        carried = facts[raw_facts]
    return StreamEntry(
        entry_id=_text(entry_id),
        type=_text(fields.get(b"type") or b""),
        trace_id=_text(fields.get(b"trace_id") or b""),
        span_id=_text(fields.get(b"span_id") or b"") or None,
        raw=fields.get(b"data") or b"{}",
        trace=carried,
    )


def _carried_facts(raw: bytes) -> TraceFacts | None:
    """The trace fields a span entry carries (entries written before they did: None)."""
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(found, dict):
        return None
    tags = found.get("tags")
    return TraceFacts(
        name=found.get("name"),
        session_id=found.get("session_id"),
        user_id=found.get("user_id"),
        tags=tuple(tags) if isinstance(tags, list) else (),
    )


class EventStream:
    """One consumer group on the event stream, and the lease that says who reads it."""

    def __init__(self, client: aioredis.Redis, keys: Keys, group: str) -> None:
        self._client = client
        self._keys = keys
        self._stream = keys.events
        self._group = group
        self._lease = keys.export_lease(group)
        self._facts: dict[bytes, TraceFacts | None] = {}

    async def ensure_group(self, from_start: bool = False) -> None:
        """Create the group at the stream's end (export starts when first enabled), or at its
        start (a stream made again after it was deleted: all of it is new); keep an existing
        group and its position."""
        start = "0" if from_start else "$"
        try:
            await self._client.xgroup_create(self._stream, self._group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def hold_lease(self, owner: str, ttl_s: float) -> bool:
        """Take or renew the lease; False when another process holds it."""
        ttl_ms = max(1, int(ttl_s * 1000))
        return bool(await self._client.eval(_ACQUIRE, 1, self._lease, owner, ttl_ms))

    async def release_lease(self, owner: str) -> None:
        await self._client.eval(_RELEASE, 1, self._lease, owner)

    async def claim_pending(self, consumer: str, count: int) -> Claimed:
        """Up to ``count`` pending entries of the group (any consumer's), oldest first."""
        entries: list[StreamEntry] = []
        trimmed: list[str] = []
        cursor = "0-0"
        while len(entries) + len(trimmed) < count:
            start = cursor
            reply: Any = await self._client.xautoclaim(
                self._stream, self._group, consumer, 0, start, count=count
            )
            cursor = _text(reply[0])
            found = [
                _entry(entry_id, fields, self._facts) for entry_id, fields in reply[1] if fields
            ]
            entries += found
            if len(found) < len(reply[1]):  # Redis 6.2: a trimmed entry comes back as nil
                trimmed += await self._missing(start, len(reply[1]), {e.entry_id for e in found})
            if len(reply) > 2:  # Redis 7 lists them apart (and drops them from the PEL)
                trimmed += [_text(entry_id) for entry_id in reply[2]]
            if cursor == "0-0":
                break
        return Claimed(entries, trimmed)

    async def _missing(self, start: str, scanned: int, found: set[str]) -> list[str]:
        """IDs of the pending entries an XAUTOCLAIM from ``start`` scanned but could not
        return (Redis 6.2 keeps them pending and answers nil, without the ID)."""
        rows: Any = await self._client.xpending_range(
            self._stream, self._group, min=start, max="+", count=scanned
        )
        ids = [_text(row["message_id"]) for row in rows]
        return [entry_id for entry_id in ids if entry_id not in found]

    async def read_new(self, consumer: str, count: int, block_ms: int | None) -> list[StreamEntry]:
        """Up to ``count`` entries never delivered to the group; waits ``block_ms`` for one
        (None: answers at once)."""
        reply: Any = await self._client.xreadgroup(
            self._group, consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        if not reply:
            return []
        _, rows = reply[0] if isinstance(reply, list) else next(iter(reply.items()))
        if isinstance(rows, list) and rows and isinstance(rows[0], list):
            rows = rows[0]
        return [_entry(entry_id, fields, self._facts) for entry_id, fields in rows if fields]

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self._client.xack(self._stream, self._group, *entry_ids)

    async def forget_idle_consumers(self, keep: str, idle_s: float) -> None:
        """Drop consumers without pending entries that stayed idle past ``idle_s`` (each start
        of a process joins under a new name; the group would grow without this)."""
        rows: Any = await self._client.xinfo_consumers(self._stream, self._group)
        for row in rows:
            name = _text(row["name"])
            if name != keep and not row["pending"] and row["idle"] > idle_s * 1000:
                await self._client.xgroup_delconsumer(self._stream, self._group, name)

    async def backlog(self) -> Backlog:
        """The group's position against the stream (XINFO: O(1) but for the 6.2 count)."""
        stream: Any = await self._client.xinfo_stream(self._stream)
        groups: Any = await self._client.xinfo_groups(self._stream)
        group = next(g for g in groups if _text(g["name"]) == self._group)
        last = _text(group["last-delivered-id"])
        first = stream.get("first-entry")
        first_id = _text(first[0]) if first else None
        gap = first_id is not None and entry_id_order(first_id) > entry_id_order(last)
        lost = _lost_on_redis7(stream, group)
        undelivered = group.get("lag")
        if undelivered is None:
            undelivered = await self._count_after(last, _text(stream["last-generated-id"]))
        return Backlog(
            pending=int(group["pending"]),
            undelivered=int(undelivered),
            overrun=gap and (lost is None or lost > 0),
            last_delivered=last,
        )

    async def _count_after(self, last: str, newest: str) -> int:
        if entry_id_order(newest) <= entry_id_order(last):
            return 0
        rows: Any = await self._client.xrange(self._stream, f"({last}", "+", count=UNDELIVERED_SCAN)
        return len(rows)

    async def trace_facts(
        self, entries: Iterable[StreamEntry], latest_for: set[str]
    ) -> dict[str, TraceFacts]:
        """Name, session, user and tags of the traces in ``entries`` whose entries do not carry
        them; for the traces in ``latest_for`` also the latest span (trace-level feedback
        targets it). One round trip; a trace that expired reads as empty facts."""
        trace_ids = list(
            dict.fromkeys(
                entry.trace_id
                for entry in entries
                if entry.trace_id and (entry.trace is None or entry.trace_id in latest_for)
            )
        )
        if not trace_ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for trace_id in trace_ids:
            keys = self._keys.trace(trace_id)
            pipe.hmget(keys.trace, ["name", "session_id", "user_id"])
            pipe.smembers(keys.tags)
            if trace_id in latest_for:
                pipe.hvals(keys.spans)
        replies = iter(await pipe.execute())
        facts = {}
        for trace_id in trace_ids:
            name, session, user = (None if v is None else _text(v) for v in next(replies))
            tags = tuple(sorted(_text(tag) for tag in next(replies)))
            latest = _latest_span(next(replies)) if trace_id in latest_for else None
            facts[trace_id] = TraceFacts(name, session, user, tags, latest)
        return facts


def _latest_span(spans: Iterable[Any]) -> str | None:
    best: tuple[str, str] | None = None
    for raw in spans:
        try:
            span = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        key = (str(span.get("started_at") or ""), str(span.get("span_id") or ""))
        if best is None or key > best:
            best = key
    return best[1] if best else None


def _lost_on_redis7(stream: Any, group: Any) -> int | None:
    """Entries trimmed before the group read them: Redis 7 counts them, 6.2 cannot (None)."""
    added, read = stream.get("entries-added"), group.get("entries-read")
    if added is None or read is None:
        return None
    trimmed = int(added) - int(stream["length"])
    return max(0, trimmed - int(read))
