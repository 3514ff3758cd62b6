"""The plan of a trace list (``GET /api/traces``), pure: filters, cursors, which index drives,
and the check of every candidate against its record.

Of the equality indexes the filters name, the one with the fewest entries (``ZCARD``,
pipelined) drives; with no such filter (or only ``has_feedback=false``) it is ``idx:time``. A
rating range drives from ``idx:has_feedback:1`` (ratings are indexed by exact value,
``idx:rating:3.5``, so only ``rating_min == rating_max`` has an index of its own). A cost
range adds the cost-step index that bounds it (``store.cost_index``) to the candidates. The walk
over Redis is ``trace_query``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.core.records import iso_from_ms
from proxy.store.cost_index import cost_drivers
from proxy.store.keys import Keys
from proxy.store.trace_read import cost_usd, count

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
BUDGET_PER_RESULT = 20
MIN_BUDGET = 200
MAX_PAGE = 1000
# Trace hash fields a summary needs, in HMGET order.
RECORD_FIELDS = (
    "trace_id", "name", "session_id", "user_id", "created_ms", "updated_ms", "span_count",
    "annotation_status", "feedback_seq", "cost_pusd", "total_tokens",
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
    cost_min: float | None = None  # USD; only traces with a known cost match either bound
    cost_max: float | None = None
    # Quality signals beside user feedback (docs/reference.md §12).
    score: str | None = None  # has a score of this name
    score_label: tuple[str, str] | None = None  # (name, label): has such a score
    implicit: str | None = None  # "regenerated" or "stopped": a span has that signal

    @property
    def needs_scores(self) -> bool:
        """The score filters are checked against the trace's scores, read with the record."""
        return self.score is not None or self.score_label is not None


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
    scores: frozenset[tuple[str, str | None]] = frozenset()  # (name, label) of its scores
    in_implicit: bool = True  # listed in the implicit filter's index


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
    named += [("score", query.score), ("implicit", query.implicit)]
    if query.score_label is not None:
        named.append(("score_label", ":".join(query.score_label)))
    rated = query.rating_min is not None or query.rating_max is not None
    if rated and query.rating_min == query.rating_max and query.rating_min is not None:
        named.append(("rating", rating_key(query.rating_min)))
    elif rated or query.has_feedback:
        named.append(("has_feedback", "1"))
    indexes = [keys.index(dimension, value) for dimension, value in named if value is not None]
    indexes += cost_drivers(keys, query.cost_min, query.cost_max)
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
        "cost_usd": cost_usd(record["cost_pusd"]),
        "total_tokens": count(record["total_tokens"]),
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


def _cost_matches(query: TraceFilter, hit: Candidate) -> bool:
    if query.cost_min is None and query.cost_max is None:
        return True
    cost = hit.summary["cost_usd"]
    if cost is None:
        return False
    low = -math.inf if query.cost_min is None else query.cost_min
    high = math.inf if query.cost_max is None else query.cost_max
    return bool(low <= cost <= high)


def _time_matches(query: TraceFilter, hit: Candidate) -> bool:
    low = -math.inf if query.since_ms is None else query.since_ms
    high = math.inf if query.until_ms is None else query.until_ms
    return low <= hit.created_ms <= high


def _signals_match(query: TraceFilter, hit: Candidate) -> bool:
    """Scores (names and labels read with the record) and the implicit signal's index."""
    if query.score is not None and query.score not in {name for name, _ in hit.scores}:
        return False
    if query.score_label is not None and query.score_label not in hit.scores:
        return False
    return query.implicit is None or hit.in_implicit


_CHECKS = (
    _attributes_match, _fields_match, _rating_matches, _sets_match, _presence_matches,
    _time_matches, _cost_matches, _signals_match,
)  # fmt: skip


# -- the I/O shell ---------------------------------------------------------------------------


def score_arg(score: float) -> str:
    if math.isinf(score):
        return "+inf" if score > 0 else "-inf"
    return repr(score)
