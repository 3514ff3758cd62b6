"""Trace lists (``GET /api/traces``): pick one index, walk it newest first, check every hit.

The plan is pure and lives in ``query_plan``: which index drives, the cursor, the checks.

The walk reads the driver with ``ZREVRANGEBYSCORE`` in pages bounded by ``since``/``until`` and
the cursor, fetches each candidate's record in one pipeline and checks EVERY filter against the
record, never against the index: an entry left behind by a changed vote, a deleted tag or an
expired trace is skipped. It stops at ``limit`` matches or when the scan budget
(``20 * limit`` candidates, at least 200) is spent; then the page may hold fewer than ``limit``
traces (even none) and ``next_cursor`` continues the walk. ``next_cursor`` is ``None`` only when
the driver has nothing left in range.

Order is (score desc, trace_id desc), the order Redis keeps a sorted set in. The cursor is the
position just after the last candidate examined: its score, its trace_id and an offset hint
(how far into the members with that score and below the next one sits). A page resumes with
``LIMIT offset-1`` and checks that the member just before the offset is still at or before the
cursor; if not (a member went away), it re-reads that score from its first member and skips
what sorts before the cursor. So a huge group of traces sharing one millisecond costs one page,
not a rescan, and every match is returned once: new traces have newer scores and sort before
the cursor, and a trace that joins the cursor's own millisecond ahead of it is skipped.

Order and the ``since``/``until`` walk bounds use the driver's scores; ``since``/``until`` are
checked again on the record's ``created_ms``. The two agree: every index scores a trace by its
creation time (the store re-scores all of a trace's indexes when a span moves it back; see
docs/storage.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.store.errors import REDIS_FAILURES, unavailable
from proxy.store.keys import Keys
from proxy.store.query_plan import (
    DEFAULT_LIMIT,
    MAX_PAGE,
    RECORD_FIELDS,
    Candidate,
    Position,
    TraceFilter,
    TracePage,
    candidate,
    driver_indexes,
    encode_cursor,
    guard_holds,
    matches,
    next_page_size,
    positions_after,
    scan_budget,
    score_arg,
    smallest,
    sorts_after,
    start_position,
)


class TraceQuery:
    """Runs trace lists on Redis; every round trip is one pipeline."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def run(
        self, query: TraceFilter, limit: int = DEFAULT_LIMIT, cursor: Position | None = None
    ) -> TracePage:
        """One page of matching trace summaries, newest first; raises StoreUnavailable."""
        try:
            driver = await self._driver(query)
            walk = _Walk(self, query, driver, limit, self._upstream_index(query, driver))
            walk.implicit_index = self._implicit_index(query, driver)
            return await walk.run(start_position(query, cursor))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    def _upstream_index(self, query: TraceFilter, driver: str) -> str | None:
        """Upstreams live only in span JSON, so the upstream filter is checked by membership of
        its index (entries are added with the span and only go stale when the trace expires,
        which the record check catches); not needed when that index drives."""
        if query.upstream is None:
            return None
        index = self._keys.index("upstream", query.upstream)
        return None if index == driver else index

    def _implicit_index(self, query: TraceFilter, driver: str) -> str | None:
        """Implicit signals are checked like upstreams: by membership of their index (a signal
        is never taken back, so an entry only goes stale when its trace expires)."""
        if query.implicit is None:
            return None
        index = self._keys.index("implicit", query.implicit)
        return None if index == driver else index

    async def _driver(self, query: TraceFilter) -> str:
        indexes = driver_indexes(query, self._keys)
        if len(indexes) == 1:
            return indexes[0]
        pipe = self._client.pipeline(transaction=False)
        for index in indexes:
            pipe.zcard(index)
        return smallest(indexes, await pipe.execute())

    async def read_index(
        self, index: str, position: Position, floor: float, count: int
    ) -> tuple[list[tuple[str, float]], int]:
        """(members and scores from ``position`` on, the offset they start at)."""
        start = position.offset
        if start > 0:
            items = await self._range(index, position.score, floor, start - 1, count + 1)
            if guard_holds(position, items[0] if items else None):
                return items[1:], start
        return await self._range(index, position.score, floor, 0, count), 0

    async def _range(
        self, index: str, top: float, floor: float, offset: int, count: int
    ) -> list[tuple[str, float]]:
        raw: Any = await self._client.zrevrangebyscore(
            index, score_arg(top), score_arg(floor), start=offset, num=count, withscores=True
        )
        return [(member.decode(), float(score)) for member, score in raw]

    async def read_records(
        self,
        members: Sequence[str],
        upstream_index: str | None,
        implicit_index: str | None = None,
        with_scores: bool = False,
    ) -> list[Candidate | None]:
        """Each member's record (None when gone), in one pipeline."""
        if not members:
            return []
        records = await self._read_records(members, upstream_index)
        signals = await self._read_signals(members, implicit_index, with_scores)
        return [
            replace(hit, **extra) if hit is not None and extra else hit
            for hit, extra in zip(records, signals, strict=True)
        ]

    async def _read_signals(
        self, members: Sequence[str], implicit_index: str | None, with_scores: bool
    ) -> list[dict[str, Any]]:
        """What the score and implicit filters check, per member; no round trip without them."""
        extras: list[dict[str, Any]] = [{} for _ in members]
        if implicit_index is None and not with_scores:
            return extras
        pipe = self._client.pipeline(transaction=False)
        if implicit_index is not None:
            pipe.zmscore(implicit_index, list(members))
        for member in members if with_scores else ():
            pipe.hvals(self._keys.trace(member).scores)
        raw = await pipe.execute()
        if implicit_index is not None:
            for extra, score in zip(extras, raw.pop(0), strict=True):
                extra["in_implicit"] = score is not None
        for extra, values in zip(extras, raw, strict=True):
            scores = [orjson.loads(value) for value in values]
            extra["scores"] = frozenset((s["name"], s.get("label")) for s in scores)
        return extras

    async def _read_records(
        self, members: Sequence[str], upstream_index: str | None
    ) -> list[Candidate | None]:
        pipe = self._client.pipeline(transaction=False)
        for member in members:
            keys = self._keys.trace(member)
            pipe.hmget(keys.trace, list(RECORD_FIELDS))
            pipe.hgetall(keys.attributes)
            pipe.smembers(keys.tags)
            pipe.smembers(keys.models)
        if upstream_index is not None:
            pipe.zmscore(upstream_index, list(members))
        raw = await pipe.execute()
        in_upstream = raw.pop() if upstream_index is not None else [0] * len(members)
        records = [raw[i : i + 4] for i in range(0, len(raw), 4)]
        return [
            candidate(fields, attrs, tags, models, in_upstream=score is not None)
            for (fields, attrs, tags, models), score in zip(records, in_upstream, strict=True)
        ]


class _Walk:
    """One request's walk of the driver: pages until ``limit`` matches or the budget ends."""

    def __init__(
        self,
        store: TraceQuery,
        query: TraceFilter,
        driver: str,
        limit: int,
        upstream_index: str | None,
    ) -> None:
        self.store, self.query, self.driver, self.limit = store, query, driver, limit
        self.upstream_index = upstream_index
        self.implicit_index: str | None = None
        self.floor = -math.inf if query.since_ms is None else query.since_ms
        self.found: list[dict[str, Any]] = []

    async def run(self, position: Position) -> TracePage:
        budget = total = scan_budget(self.limit)
        count = self.limit + 1
        while budget > 0:
            asked = min(count, budget, MAX_PAGE)
            items, start = await self.store.read_index(self.driver, position, self.floor, asked)
            budget -= max(len(items), 1)
            position, rest = await self._examine(position, items, start)
            exhausted = len(items) < asked
            if rest >= 0 or exhausted:
                return self._page(None if exhausted and rest <= 0 else position)
            count = next_page_size(self.limit, len(self.found), total - budget, asked)
        return self._page(position)

    def _page(self, position: Position | None) -> TracePage:
        return TracePage(self.found, None if position is None else encode_cursor(position))

    async def _examine(
        self, position: Position, items: list[tuple[str, float]], start: int
    ) -> tuple[Position, int]:
        """Check the page's fresh hits in order: (the position reached, items left after it
        when the limit was reached, else -1)."""
        after = positions_after(position, items, start)
        fresh = [
            i for i, (member, score) in enumerate(items) if sorts_after(position, member, score)
        ]
        records = await self.store.read_records(
            [items[i][0] for i in fresh],
            self.upstream_index,
            self.implicit_index,
            self.query.needs_scores,
        )
        by_index = dict(zip(fresh, records, strict=True))
        for index, reached in enumerate(after):
            hit = by_index.get(index)
            if hit is not None and matches(self.query, hit):
                self.found.append(hit.summary)
                if len(self.found) >= self.limit:
                    return reached, len(after) - index - 1
        return (after[-1] if after else position), -1
