"""Feedback stats: counters kept at merge time, read per hour or day without scanning traces.

Each trace with a vote or a rating contributes to the counters of the UTC hour it was created
in (``stats:{h<hour>}:counts``), once overall and once per model and upstream it used. The
trace's slot computes its current contribution (``stats_state.lua``, versioned); a second
script in the hour's slot (``stats_apply.lua``) subtracts what it counted last for the trace
and adds the new state, unless it has seen that version already. So a vote changed through
``X-Feedback-Id`` moves its count, and replays or out-of-order applies never count twice.

Trace totals need no counter: every index scores a trace by its creation time, so
``ZCOUNT`` of ``idx:time`` (or ``idx:model:<m>``, ``idx:upstream:<u>``) over a bucket is the
number of traces created in it. Counters expire with the traces they count (retention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.core.records import iso_from_ms
from proxy.store.errors import REDIS_FAILURES, unavailable
from proxy.store.keys import Keys
from proxy.store.scripting import queue_script

HOUR_MS = 3_600_000
BUCKET_MS = {"hour": HOUR_MS, "day": 24 * HOUR_MS}
MAX_HOURS = 10_000  # a query reads at most this many hourly counters (416 days)
GROUP_DIMENSIONS = ("model", "upstream")
ATTRIBUTE_GROUP = "attributes."  # group_by=attributes.<key>, for the keys of [stats] dimensions
DIMENSION_LIMIT = 100  # distinct values per dimension key and hour; the rest under "(other)"
OTHER = "(other)"
_METRICS = ("positive", "negative", "rating_count", "rating_milli", "calls", "cost_pusd")
IMPLICIT_METRICS = ("regenerated", "stopped")


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def queue_stats(
    pipe: Any, sha: str, keys: Keys, trace_id: str, state: bytes, retention_s: int
) -> None:
    """Queue stats_apply.lua for a trace's new stats state (and its removal from the hour it
    was counted in before, when a span moved its creation time to another hour)."""
    decoded = orjson.loads(state)
    hour = hour_of(int(decoded["c"]))
    moves: list[tuple[int, bytes]] = [(hour, state)]
    if decoded.get("from") and hour_of(int(decoded["from"])) != hour:
        removal = {"v": decoded["v"], "vote": False, "rating": False, "models": [],
                   "upstreams": [], "dims": {}}  # fmt: skip
        moves.append((hour_of(int(decoded["from"])), orjson.dumps(removal)))
    for bucket, payload in moves:
        expire_at = (bucket + HOUR_MS) // 1000 + retention_s
        hour_keys = (
            keys.stats_counts(bucket),
            keys.stats_contributions(bucket),
            keys.stats_dimension_values(bucket),
        )
        queue_script(pipe, sha, hour_keys, trace_id, payload, expire_at, DIMENSION_LIMIT)


@dataclass(frozen=True, slots=True)
class StatsQuery:
    bucket: str  # "hour" or "day" (UTC)
    since_ms: int  # the first bucket is the one holding since
    until_ms: int  # inclusive
    group_by: str | None = None  # "model", "upstream", "attributes.<key>" or None

    def starts(self) -> list[int]:
        step = BUCKET_MS[self.bucket]
        first = self.since_ms - self.since_ms % step
        return list(range(first, self.until_ms + 1, step))


class FeedbackStats:
    """Reads the counters and the indexes into per-bucket rows."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def query(self, query: StatsQuery) -> list[dict[str, Any]]:
        """One row per bucket (per group with ``group_by``): traces, positive, negative,
        rating_count, rating_average, calls, cost_usd. Ungrouped, every bucket is listed
        (zeros included); grouped, only groups with traces, feedback or calls in it."""
        try:
            counts = await self._counts(query)
            groups = await self._groups(query, counts)
            traces = await self._traces(query, groups, counts)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        rows = []
        for start in query.starts():
            for group in groups:
                row = _row(start, query.group_by, group, traces[start, group], counts[start])
                if query.group_by is None or _has_data(row):
                    rows.append(row)
        return rows

    async def _counts(self, query: StatsQuery) -> dict[int, dict[str, int]]:
        """Counter totals per bucket start (hour hashes summed into days)."""
        step, starts = BUCKET_MS[query.bucket], query.starts()
        hours = range(starts[0], starts[-1] + step, HOUR_MS)  # every bucket whole, like ZCOUNT
        pipe = self._client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self._keys.stats_counts(hour))
        totals: dict[int, dict[str, int]] = {start: {} for start in starts}
        for hour, fields in zip(hours, await pipe.execute(), strict=True):
            bucket = totals[hour - hour % step]
            for field, value in fields.items():
                name = field.decode("utf-8", "replace")
                bucket[name] = bucket.get(name, 0) + int(value)
        return totals

    async def _groups(self, query: StatsQuery, counts: dict[int, dict[str, int]]) -> list[str]:
        """The group values to report: ``""`` ungrouped, else every value the dimension's
        indexes have plus any the counters name (an attribute dimension: only these)."""
        if query.group_by is None:
            return [""]
        groups: set[str] = set()
        if not query.group_by.startswith(ATTRIBUTE_GROUP):
            values: Any = await self._client.smembers(self._keys.dimension_values(query.group_by))
            groups = {value.decode("utf-8", "replace") for value in values}
        prefix = f"{query.group_by}\x1f"
        for fields in counts.values():
            groups.update(field.split("\x1f")[1] for field in fields if field.startswith(prefix))
        return sorted(groups)

    async def _traces(
        self, query: StatsQuery, groups: Sequence[str], counts: dict[int, dict[str, int]]
    ) -> dict[tuple[int, str], int]:
        """Traces created per bucket (and group): ``ZCOUNT`` of the matching index; for an
        attribute dimension, the ``traces`` counter its first spans kept (span_stats)."""
        step = BUCKET_MS[query.bucket]
        if query.group_by is not None and query.group_by.startswith(ATTRIBUTE_GROUP):
            return {
                (start, group): counts[start].get(f"{query.group_by}\x1f{group}\x1ftraces", 0)
                for start in query.starts()
                for group in groups
            }
        pipe = self._client.pipeline(transaction=False)
        cells = [(start, group) for start in query.starts() for group in groups]
        for start, group in cells:
            index = self._keys.index(query.group_by, group) if query.group_by else None
            pipe.zcount(index or self._keys.index_by_time, start, start + step - 1)
        return dict(zip(cells, map(int, await pipe.execute()), strict=True))


def _row(
    start: int, group_by: str | None, group: str, traces: int, counts: dict[str, int]
) -> dict[str, Any]:
    dimension = f"{group_by}\x1f{group}" if group_by else "all\x1f"
    positive, negative, rating_count, rating_milli, calls, cost_pusd = (
        counts.get(f"{dimension}\x1f{metric}", 0) for metric in _METRICS
    )
    row: dict[str, Any] = {"bucket_start": iso_from_ms(start)}
    if group_by:
        row[group_by] = group
    row.update(
        traces=traces,
        positive=positive,
        negative=negative,
        rating_count=rating_count,
        rating_average=round(rating_milli / 1000 / rating_count, 4) if rating_count else None,
        calls=calls,
        cost_usd=round(cost_pusd / 1e12, 12),
    )
    # Implicit signals (docs/reference.md §12), counted by implicit_count.lua.
    row.update({signal: counts.get(f"{dimension}\x1f{signal}", 0) for signal in IMPLICIT_METRICS})
    return row


def _has_data(row: dict[str, Any]) -> bool:
    return bool(row["traces"] or row["positive"] or row["negative"] or row["rating_count"]
                or row["calls"]) or any(row[signal] for signal in IMPLICIT_METRICS)  # fmt: skip
