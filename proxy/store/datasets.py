"""Datasets on Redis: rows copied from traces, an annotation queue, and their export shapes.

A dataset is two keys in the slot of ``{<name>}`` (docs/storage.md): the hash ``ds:{name}:rows``
(trace_id -> row JSON; a trace is in a dataset once, ``HSETNX``) and the sorted set
``ds:{name}:order`` (trace_id scored by when it was added, ``ZADD NX``), plus the global set
of names. Rows are copies: they never expire with their trace. A row update is a
compare-and-set Lua script on the row, retried when another writer got there first.

A row is written when its trace is added or its feedback matches a review rule. Feedback sent
on a call is merged while the call runs, before its span exists, so such a row starts without
input and output. Reads fill it (``_with_content``): a row without content takes its trace's
latest span and is written back (compare-and-set), so it keeps the content after the trace
expires. Done on read, not in the span write, because rows live in the dataset's slot and
spans in the trace's (one script cannot reach both on a cluster), and because it keeps the hot
span path free of a per-span lookup.

Row reads walk ``order`` in chunks from a position ``(score, trace_id)``, the order Redis keeps,
so a cursor stays valid while rows are added or deleted. The export shapes are
``proxy.datasets.formats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from proxy.core.records import Trace, iso_from_ms
from proxy.datasets.columns import (
    DEFAULT_COLUMNS,
    csv_header,
    lacks_content,
    review_row,
    with_trace_content,
)
from proxy.store.dataset_writes import queue_rows
from proxy.store.errors import REDIS_FAILURES, StoreUnavailable, unavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore

# KEYS[1] rows hash; ARGV row_id, the row JSON read, the new row JSON.
# -> -1 no such row, 0 changed meanwhile (read again), 1 written.
COMPARE_AND_SET_ROW = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
READ_CHUNK = 500
FETCH_CONCURRENCY = 50
UPDATE_ATTEMPTS = 10

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowPosition:
    """Just after ``row_id`` at ``score`` in a dataset's order."""

    score: float
    row_id: str


@dataclass(frozen=True, slots=True)
class AddResult:
    added: list[str]
    existing: list[str]
    missing: list[str]


class InvalidRowCursor(ValueError):
    """A cursor that no answer of ours produced."""


def encode_row_cursor(position: RowPosition) -> str:
    raw = orjson.dumps([position.score, position.row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_row_cursor(text: str) -> RowPosition:
    try:
        score, row_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise InvalidRowCursor(str(exc)) from None
    if type(score) not in (int, float) or not isinstance(row_id, str):
        raise InvalidRowCursor("score or row_id")
    return RowPosition(float(score), row_id)


async def _translated(operation: Awaitable[T]) -> T:
    """redis-py's exceptions become StoreUnavailable here, in one place."""
    try:
        return await operation
    except REDIS_FAILURES as exc:
        raise unavailable(exc) from exc


class DatasetStore:
    """Datasets of one key prefix; every method raises StoreUnavailable when Redis fails."""

    def __init__(self, client: aioredis.Redis, keys: Keys, traces: RedisStore) -> None:
        self._client = client
        self._keys = keys
        self._traces = traces

    async def add_traces(
        self, name: str, trace_ids: Sequence[str], columns: Mapping[str, str] = DEFAULT_COLUMNS
    ) -> AddResult:
        """One row per trace not yet in the dataset; unknown (or expired) traces are missing."""
        return await _translated(self._add(name, list(dict.fromkeys(trace_ids)), columns))

    async def _add(self, name: str, trace_ids: list[str], columns: Mapping[str, str]) -> AddResult:
        present: list[Any] = (
            await self._client.hmget(self._keys.dataset_rows(name), trace_ids) if trace_ids else []
        )
        fresh = [t for t, row in zip(trace_ids, present, strict=True) if row is None]
        traces = await self._fetch(fresh)
        rows = [(t, trace) for t, trace in zip(fresh, traces, strict=True) if trace is not None]
        written = await self._write_rows(name, rows, columns)
        added = [t for (t, _), ok in zip(rows, written, strict=True) if ok]
        existing = [t for t, row in zip(trace_ids, present, strict=True) if row is not None]
        existing += [t for (t, _), ok in zip(rows, written, strict=True) if not ok]  # a race
        missing = [t for t, trace in zip(fresh, traces, strict=True) if trace is None]
        return AddResult(added, existing, missing)

    async def _fetch(self, trace_ids: list[str]) -> list[Trace | None]:
        found: list[Trace | None] = []
        for i in range(0, len(trace_ids), FETCH_CONCURRENCY):
            chunk = trace_ids[i : i + FETCH_CONCURRENCY]
            found += await asyncio.gather(*(self._traces.get_trace(t) for t in chunk))
        return found

    async def _write_rows(
        self, name: str, traces: list[tuple[str, Trace]], columns: Mapping[str, str]
    ) -> list[bool]:
        """Write the rows that are new: (was each row new)."""
        if not traces:
            return []
        now = time.time()
        rows = [review_row(trace, t, iso_from_ms(now * 1000), columns) for t, trace in traces]
        pipe = self._client.pipeline(transaction=False)
        queue_rows(pipe, self._keys, name, rows, columns, now)
        replies = await pipe.execute()
        return [bool(reply) for reply in replies[: len(rows)]]

    async def csv_header(self, name: str) -> list[str]:
        """The dataset's CSV header: fixed columns, its mapped columns, the annotation."""
        raw: Any = await _translated(self._client.zrange(self._keys.dataset_columns(name), 0, -1))
        return csv_header([column.decode() for column in raw])

    async def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset name (sorted) with its row count."""
        return await _translated(self._list())

    async def _list(self) -> list[dict[str, Any]]:
        raw: Any = await self._client.smembers(self._keys.datasets)
        names = sorted(n.decode() for n in raw)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hlen(self._keys.dataset_rows(name))
        counts = await pipe.execute() if names else []
        return [{"name": n, "rows": c} for n, c in zip(names, counts, strict=True)]

    async def exists(self, name: str) -> bool:
        return bool(await _translated(self._client.sismember(self._keys.datasets, name)))

    async def rows_page(
        self, name: str, status: str | None, limit: int, after: RowPosition | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` rows after ``after`` in the order added, and the next cursor."""
        found: list[tuple[RowPosition, dict[str, Any]]] = []
        async for position, row in self.walk(name, status, after, min(limit + 1, READ_CHUNK)):
            found.append((position, row))
            if len(found) > limit:
                return [row for _, row in found[:limit]], encode_row_cursor(found[limit - 1][0])
        return [row for _, row in found], None

    async def walk(
        self,
        name: str,
        status: str | None = None,
        after: RowPosition | None = None,
        chunk: int = READ_CHUNK,
    ) -> AsyncIterator[tuple[RowPosition, dict[str, Any]]]:
        """Rows (with ``annotation_status == status`` when given) after ``after``, in order."""
        while True:
            items, exhausted = await _translated(self._order_after(name, after, chunk))
            rows = await _translated(self._rows(name, [member for member, _ in items]))
            for (member, score), row in zip(items, rows, strict=True):
                after = RowPosition(score, member)
                if row is not None and status in (None, row.get("annotation_status")):
                    yield after, row
            if exhausted:
                return

    async def _order_after(
        self, name: str, after: RowPosition | None, count: int
    ) -> tuple[list[tuple[str, float]], bool]:
        """(up to ``count`` members after the position, whether the order ended there).

        Members sharing the position's score sort by their bytes, as Redis keeps them."""
        key, offset = self._keys.dataset_order(name), 0
        low = "-inf" if after is None else repr(after.score)
        while True:
            raw: Any = await self._client.zrangebyscore(
                key, low, "+inf", start=offset, num=count, withscores=True
            )
            items = [(m.decode(), float(s)) for m, s in raw]
            fresh = [item for item in items if _sorts_after(after, *item)]
            if fresh or len(items) < count:
                return fresh, len(items) < count
            offset += count  # a whole chunk of ties at or before the position: read on

    async def _rows(self, name: str, row_ids: list[str]) -> list[dict[str, Any] | None]:
        if not row_ids:
            return []
        raw: Any = await self._client.hmget(self._keys.dataset_rows(name), row_ids)
        rows = [None if r is None else orjson.loads(r) for r in raw]
        return await self._with_content(name, raw, rows)

    async def _with_content(
        self, name: str, raw: list[bytes | None], rows: list[dict[str, Any] | None]
    ) -> list[dict[str, Any] | None]:
        """Rows without content take their trace's, written back unless the row changed."""
        empty = [
            (i, stored, row)
            for i, (stored, row) in enumerate(zip(raw, rows, strict=True))
            if stored is not None and row is not None and lacks_content(row)
        ]
        if not empty:
            return rows
        traces = await self._fetch([str(row["trace_id"]) for _, _, row in empty])
        pipe = self._client.pipeline(transaction=False)
        key = self._keys.dataset_rows(name)
        for (i, stored, row), trace in zip(empty, traces, strict=True):
            filled = with_trace_content(row, trace)
            if filled is not None:
                rows[i] = filled
                pipe.eval(COMPARE_AND_SET_ROW, 1, key, row["row_id"], stored, orjson.dumps(filled))
        if len(pipe):
            await pipe.execute()
        return rows

    async def update_row(
        self, name: str, row_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Apply ``change`` to the row atomically (compare-and-set); None when there is none."""
        return await _translated(self._update(name, row_id, change))

    async def _update(
        self, name: str, row_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        key = self._keys.dataset_rows(name)
        for _ in range(UPDATE_ATTEMPTS):
            current: Any = await self._client.hget(key, row_id)
            if current is None:
                return None
            row = change(await self._filled(orjson.loads(current)))
            script: Any = self._client.eval(
                COMPARE_AND_SET_ROW, 1, key, row_id, current, orjson.dumps(row)
            )
            outcome = int(await script)
            if outcome != 0:
                return row if outcome == 1 else None
        raise StoreUnavailable(f"row {row_id} kept changing; try again")

    async def _filled(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row, with its trace's content when it has none yet (see ``_with_content``)."""
        if not lacks_content(row):
            return row
        return with_trace_content(row, await self._traces.get_trace(row["trace_id"])) or row

    async def delete_row(self, name: str, row_id: str) -> bool:
        """Remove one row (both keys in one MULTI: they share the dataset's slot)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hdel(self._keys.dataset_rows(name), row_id)
        pipe.zrem(self._keys.dataset_order(name), row_id)
        removed, _ = await _translated(pipe.execute())
        return bool(removed)

    async def delete_dataset(self, name: str) -> bool:
        """Remove every row and the name; False when there was no such dataset."""
        pipe = self._client.pipeline(transaction=False)
        pipe.srem(self._keys.datasets, name)
        pipe.delete(
            self._keys.dataset_rows(name),
            self._keys.dataset_order(name),
            self._keys.dataset_columns(name),
        )
        named, deleted = await _translated(pipe.execute())
        return bool(named or deleted)


def _sorts_after(position: RowPosition | None, member: str, score: float) -> bool:
    if position is None or score > position.score:
        return True
    return score == position.score and member.encode() > position.row_id.encode()


# -- export shapes (pure) ------------------------------------------------------------------------
