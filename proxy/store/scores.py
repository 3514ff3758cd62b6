"""Evaluator scores on Redis: the atomic per-trace merge, its follow-up steps, and agreement.

``merge_score.lua`` changes only keys of one trace (one cluster slot). What lives elsewhere
follows in a second pipeline, every step idempotent so a replay from the spool can redo it:
``ZADD LT`` into the score indexes, the trace's latest score of each touched name into the
(hour, name) pairs hash beside that hour's stats (``score_pair_apply.lua``, versioned), and
an entry on the event stream. ``GET /api/stats/agreement`` then reads, per hour of the range,
those pairs joined with the feedback stats state of the same traces (``agreement_read.lua``,
one script per hour, all in one pipeline): the work grows with the traces that carry the
score, never with every trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from proxy.core.agreement import PASS_LABELS, agreement_figures
from proxy.core.records import ScoreRecord
from proxy.store.errors import REDIS_FAILURES, unavailable
from proxy.store.keys import Keys
from proxy.store.scripting import SCRIPTS, queue_script
from proxy.store.stats import HOUR_MS, hour_of

MAX_SCORES_PER_TRACE = 100
_STATUS = {
    1: "applied", 2: "replaced", 3: "duplicate", 4: "duplicate", -1: "full", -2: "no_trace"
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScoreResult:
    status: str  # applied, replaced, duplicate, full (cap reached), no_trace
    created_ms: int = 0
    states: tuple[dict[str, Any], ...] = ()  # {name, v, c, score JSON or False}
    indexes: tuple[str, ...] = ()
    stale: bool = False  # a duplicate older than the stored version: never published again


def score_args(
    record: ScoreRecord, now_ms: int, retention_s: int, live: bool, keys: Keys
) -> list[Any]:
    """ARGV of merge_score.lua (see its header). Live writes refuse an unknown trace and
    respect the cap; a replay (the client was told "queued") creates the trace and has none."""
    score = record["score"]
    return [
        record["trace_id"], score["score_id"], orjson.dumps(score), now_ms, retention_s,
        "0" if live else "1", MAX_SCORES_PER_TRACE if live else 0,
        keys.index("score", ""), keys.index("score_label", ""), keys.index_by_time,
    ]  # fmt: skip


def parse_score_result(raw: list[Any]) -> ScoreResult:
    status = _STATUS[int(raw[0])]
    if status in ("full", "no_trace"):
        return ScoreResult(status)
    return ScoreResult(
        status=status,
        created_ms=int(raw[1]),
        states=tuple(orjson.loads(raw[2])),
        indexes=tuple(name.decode() for name in raw[3:]),
        stale=int(raw[0]) == 4,
    )


def queue_pairs(
    pipe: Any, sha: str, keys: Keys, trace_id: str, result: ScoreResult, retention_s: int
) -> None:
    """Queue score_pair_apply.lua for every score name the merge touched."""
    for state in result.states:
        hour = hour_of(int(state["c"]))
        payload = pair_state(state)
        expire_at = (hour + HOUR_MS) // 1000 + retention_s
        key = keys.score_pairs(hour, state["name"])
        queue_script(pipe, sha, (key,), trace_id, payload, state["v"], expire_at)


def pair_state(state: dict[str, Any]) -> str:
    """What agreement_read.lua needs of a trace's latest score of one name, as a compact
    entry (no JSON to decode per trace there): version, the trace's creation time, and the
    label and value, or that no such score is left."""
    head = f"{state['v']}\x1f{state['c']}"
    if not state["score"]:
        return f"{head}\x1fx"
    score = orjson.loads(state["score"])
    label = score.get("label") or ""
    value = "" if score.get("value") is None else repr(float(score["value"]))
    return f"{head}\x1fs\x1f{label}\x1f{value}"


def score_entry(record: ScoreRecord) -> dict[Any, Any]:
    """The event-stream entry of a score: type, trace_id, span_id, data (the score JSON)."""
    score = record["score"]
    return {
        "type": "score",
        "trace_id": record["trace_id"],
        "span_id": score.get("span_id") or "",
        "data": orjson.dumps(score),
    }


@dataclass(frozen=True, slots=True)
class AgreementQuery:
    score: str
    since_ms: int
    until_ms: int
    threshold: float = 0.5

    def hours(self) -> range:
        first = hour_of(self.since_ms)
        return range(first, self.until_ms + 1, HOUR_MS)


class AgreementStats:
    """Reads the (hour, score) pairs with their traces' feedback into the agreement figures."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._sha: str | None = None

    async def query(self, query: AgreementQuery) -> dict[str, Any]:
        """The answer of ``GET /api/stats/agreement``; raises StoreUnavailable."""
        try:
            try:
                rows = await self._rows(query)
            except NoScriptError:  # Redis restarted empty: load the script again
                self._sha = None
                rows = await self._rows(query)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        cells, ratings, values = _totals(rows)
        return {"score": query.score, **agreement_figures(cells, ratings, values)}

    async def _rows(self, query: AgreementQuery) -> list[Any]:
        if self._sha is None:
            self._sha = await self._client.script_load(SCRIPTS["agreement_read"])
        pipe = self._client.pipeline(transaction=False)
        args = (query.since_ms, query.until_ms, repr(query.threshold), *sorted(PASS_LABELS))
        for hour in query.hours():
            keys = (self._keys.score_pairs(hour, query.score), self._keys.stats_contributions(hour))
            queue_script(pipe, self._sha, keys, *args)
        return list(await pipe.execute())


def _totals(rows: list[Any]) -> tuple[tuple[int, int, int, int], list[float], list[float]]:
    """The hours' matrix cells summed, and the (rating, value) pairs of all hours."""
    cells = [0, 0, 0, 0]
    ratings: list[float] = []
    values: list[float] = []
    for row in rows:
        for i in range(4):
            cells[i] += int(row[i])
        ratings += map(float, row[4::2])
        values += map(float, row[5::2])
    return (cells[0], cells[1], cells[2], cells[3]), ratings, values
