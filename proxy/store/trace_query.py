"""Trace lists (``GET /api/traces``): pick one index, walk it newest first, check every hit.

The plan is pure: of the equality indexes the filters name, the one with the fewest entries
(``ZCARD``, pipelined) drives; with no such filter (or only ``has_feedback=false``) it is
``idx:time``. A rating range drives from ``idx:has_feedback:1`` (ratings are indexed by exact
value, ``idx:rating:3.5``, so only ``rating_min == rating_max`` has an index of its own).

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

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.core.records import iso_from_ms
from proxy.store.errors import REDIS_FAILURES, unavailable
from proxy.store.keys import Keys

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
BUDGET_PER_RESULT = 20
MIN_BUDGET = 200
MAX_PAGE = 1000
# Trace hash fields a summary needs, in HMGET order.
RECORD_FIELDS = (
    "trace_id", "name", "session_id", "user_id", "created_ms", "updated_ms", "span_count",
    "annotation_status", "feedback_seq",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Filters of a trace list, all AND-combined; None (or empty) means "any"."""

    feedback: str | None = None
    rating_min: float | None = None
    rating_max: float | None = None
    category: str | None = None
    reason: str | None = None
    tags: tuple[str, ...] = ()
    annotation_status: str | None = None
    has_feedback: bool | None = None
    model: str | None = None
    upstream: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    since_ms: float | None = None
    until_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Just after ``trace_id`` at ``score`` (nothing to skip when ``trace_id`` is None).

    ``offset`` is a hint: where the next unseen member sits in ``ZREVRANGEBYSCORE key score -inf``.
    """

    score: float
    trace_id: str | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TracePage:
    traces: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One index hit as its record reads back: the summary plus what only filters need."""

    summary: dict[str, Any]
    created_ms: float
    has_feedback: bool
    in_upstream: bool


# -- cursor ----------------------------------------------------------------------------------


class InvalidCursor(ValueError):
    """A cursor that no answer of ours produced."""


def encode_cursor(position: Position) -> str:
    raw = orjson.dumps([position.score, position.trace_id, position.offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        score, trace_id, offset = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursor(str(exc)) from None
    if not _is_number(score) or not math.isfinite(score):
        raise InvalidCursor("score")
    if not (trace_id is None or isinstance(trace_id, str)) or type(offset) is not int:
        raise InvalidCursor("trace_id or offset")
    return Position(float(score), trace_id, max(offset, 0))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- plan ------------------------------------------------------------------------------------


def rating_key(value: float) -> str:
    """How the store spells a rating in an index key: ``2`` for 2.0, ``3.5`` for 3.5."""
    return str(int(value)) if value == int(value) else str(value)


def driver_indexes(query: TraceFilter, keys: Keys) -> list[str]:
    """The indexes that hold every trace the filters can match; the smallest will drive."""
    named = [
        ("feedback", query.feedback), ("category", query.category), ("reason", query.reason),
        ("annotation", query.annotation_status), ("model", query.model),
        ("upstream", query.upstream), ("session", query.session_id), ("user", query.user_id),
    ]  # fmt: skip
    named += [("tag", tag) for tag in query.tags]
    rated = query.rating_min is not None or query.rating_max is not None
    if rated and query.rating_min == query.rating_max and query.rating_min is not None:
        named.append(("rating", rating_key(query.rating_min)))
    elif rated or query.has_feedback:
        named.append(("has_feedback", "1"))
    indexes = [keys.index(dimension, value) for dimension, value in named if value is not None]
    return list(dict.fromkeys(indexes)) or [keys.index_by_time]


def smallest(indexes: Sequence[str], sizes: Sequence[int]) -> str:
    """The index with the fewest entries (the first one named on a tie)."""
    return min(zip(sizes, range(len(indexes)), indexes, strict=True))[2]


def start_position(query: TraceFilter, cursor: Position | None) -> Position:
    """Where the walk starts: the cursor, or the top of ``until`` (inclusive)."""
    top = math.inf if query.until_ms is None else query.until_ms
    if cursor is None or cursor.score > top:
        return Position(top)
    return cursor


def scan_budget(limit: int) -> int:
    return max(BUDGET_PER_RESULT * limit, MIN_BUDGET)


def next_page_size(limit: int, found: int, examined: int, previous: int) -> int:
    """Enough candidates for the matches still missing at the match rate seen so far (a
    quarter more, plus one to see the end), or twice the last page while nothing matched."""
    if found == 0:
        return previous * 2
    return math.ceil((limit - found) * examined / found * 1.25) + 1


# -- walk (pure steps) -----------------------------------------------------------------------


def sorts_after(position: Position, member: str, score: float) -> bool:
    """True when (score, member) comes strictly after ``position`` in (score, id) desc order."""
    if score != position.score or position.trace_id is None:
        return score <= position.score
    return member.encode() < position.trace_id.encode()


def guard_holds(position: Position, first: tuple[str, float] | None) -> bool:
    """The member just before the offset must still sort at or before the cursor."""
    if first is None or first[1] != position.score:
        return False
    return position.trace_id is None or first[0].encode() >= position.trace_id.encode()


def positions_after(
    position: Position, items: Sequence[tuple[str, float]], start: int
) -> list[Position]:
    """The position after each item of a page read from ``start`` at ``position.score``."""
    result: list[Position] = []
    run_start = 0
    for index, (member, score) in enumerate(items):
        if score == position.score:
            fresh = sorts_after(position, member, score)
            current = member if fresh else position.trace_id
            result.append(Position(score, current, start + index + 1))
            continue
        if index == 0 or items[index - 1][1] != score:
            run_start = index
        result.append(Position(score, member, index - run_start + 1))
    return result


# -- records ---------------------------------------------------------------------------------


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def candidate(
    fields: Sequence[bytes | None],
    attributes: dict[bytes, bytes],
    tags: set[bytes],
    models: set[bytes],
    in_upstream: bool,
) -> Candidate | None:
    """The record of one hit, or None when the trace is gone (expired, never written)."""
    record = dict(zip(RECORD_FIELDS, fields, strict=True))
    if record["created_ms"] is None or record["updated_ms"] is None:
        return None
    created = int(record["created_ms"])
    summary = {
        "trace_id": _text(record["trace_id"]),
        "name": _text(record["name"]),
        "session_id": _text(record["session_id"]),
        "user_id": _text(record["user_id"]),
        "created_at": iso_from_ms(created),
        "updated_at": iso_from_ms(int(record["updated_ms"])),
        "attributes": {k.decode(): orjson.loads(v) for k, v in sorted(attributes.items())},
        "tags": sorted(t.decode() for t in tags),
        "annotation_status": _text(record["annotation_status"]),
        "span_count": int(record["span_count"] or 0),
        "models": sorted(m.decode() for m in models),
    }
    has_feedback = int(record["feedback_seq"] or 0) > 0
    return Candidate(summary, created, has_feedback, in_upstream)


def matches(query: TraceFilter, hit: Candidate) -> bool:
    """Every filter, checked against the record (the truth; indexes may be stale)."""
    return all(check(query, hit) for check in _CHECKS)


def _attributes_match(query: TraceFilter, hit: Candidate) -> bool:
    attrs = hit.summary["attributes"]
    wanted = {
        "user_feedback": query.feedback,
        "user_feedback_category": query.category,
        "feedback_reason": query.reason,
    }
    return all(value is None or attrs.get(key) == value for key, value in wanted.items())


def _fields_match(query: TraceFilter, hit: Candidate) -> bool:
    wanted = {
        "session_id": query.session_id,
        "user_id": query.user_id,
        "annotation_status": query.annotation_status,
    }
    return all(value is None or hit.summary[key] == value for key, value in wanted.items())


def _rating_matches(query: TraceFilter, hit: Candidate) -> bool:
    if query.rating_min is None and query.rating_max is None:
        return True
    rating = hit.summary["attributes"].get("user_feedback_rating")
    if not _is_number(rating):
        return False
    low = -math.inf if query.rating_min is None else query.rating_min
    high = math.inf if query.rating_max is None else query.rating_max
    return bool(low <= rating <= high)


def _sets_match(query: TraceFilter, hit: Candidate) -> bool:
    model_ok = query.model is None or query.model in hit.summary["models"]
    return model_ok and set(query.tags) <= set(hit.summary["tags"])


def _presence_matches(query: TraceFilter, hit: Candidate) -> bool:
    feedback_ok = query.has_feedback is None or query.has_feedback == hit.has_feedback
    return feedback_ok and (query.upstream is None or hit.in_upstream)


def _time_matches(query: TraceFilter, hit: Candidate) -> bool:
    low = -math.inf if query.since_ms is None else query.since_ms
    high = math.inf if query.until_ms is None else query.until_ms
    return low <= hit.created_ms <= high


_CHECKS = (
    _attributes_match, _fields_match, _rating_matches, _sets_match, _presence_matches,
    _time_matches,
)  # fmt: skip


# -- the I/O shell ---------------------------------------------------------------------------


def _score_arg(score: float) -> str:
    if math.isinf(score):
        return "+inf" if score > 0 else "-inf"
    return repr(score)


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
            index, _score_arg(top), _score_arg(floor), start=offset, num=count, withscores=True
        )
        return [(member.decode(), float(score)) for member, score in raw]

    async def read_records(
        self, members: Sequence[str], upstream_index: str | None
    ) -> list[Candidate | None]:
        """Each member's record (None when gone), in one pipeline."""
        if not members:
            return []
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
        records = await self.store.read_records([items[i][0] for i in fresh], self.upstream_index)
        by_index = dict(zip(fresh, records, strict=True))
        for index, reached in enumerate(after):
            hit = by_index.get(index)
            if hit is not None and matches(self.query, hit):
                self.found.append(hit.summary)
                if len(self.found) >= self.limit:
                    return reached, len(after) - index - 1
        return (after[-1] if after else position), -1
