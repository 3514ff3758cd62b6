"""``GET /api/stats/feedback``: satisfaction per hour or day, overall or per model/upstream, or
per value of a trace attribute listed in ``[stats] dimensions`` (``group_by=attributes.<key>``).

Parameters are strict like ``GET /api/traces`` (400 ``invalid_parameter`` naming the
parameter). ``until`` defaults to now, ``since`` to 24 hours (``bucket=hour``) or 30 days
(``bucket=day``) before it; buckets are UTC and every bucket that overlaps the range is
reported whole.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from proxy.admin.params import InvalidParameter, moment, query_params, until_moment
from proxy.admin.responses import json_response
from proxy.admin.services import ADMIN
from proxy.core.records import iso_from_ms
from proxy.store.stats import (
    ATTRIBUTE_GROUP,
    BUCKET_MS,
    GROUP_DIMENSIONS,
    HOUR_MS,
    MAX_HOURS,
    StatsQuery,
)

_DEFAULT_SPAN_MS = {"hour": 24 * HOUR_MS, "day": 30 * 24 * HOUR_MS}
_PARAMS = frozenset({"bucket", "since", "until", "group_by"})


async def feedback_stats(request: web.Request) -> web.Response:
    """Counts per bucket (and per group), read from counters kept at merge time."""
    services = request.app[ADMIN]
    query = parse_stats_query(
        query_params(request.query),
        now_ms=int(time.time() * 1000),
        dimensions=services.settings.stats.dimensions,
    )
    rows = await services.stats.query(query)
    return json_response(
        {
            "bucket": query.bucket,
            "group_by": query.group_by,
            "since": iso_from_ms(query.since_ms),
            "until": iso_from_ms(query.until_ms),
            "buckets": rows,
        }
    )


def parse_stats_query(
    params: Mapping[str, Sequence[str]], now_ms: int, dimensions: Sequence[str] = ()
) -> StatsQuery:
    """The query from its parameters; raises InvalidParameter. ``dimensions`` are the
    attribute keys ``group_by=attributes.<key>`` may name ([stats] dimensions)."""
    for name, values in params.items():
        if name not in _PARAMS:
            raise InvalidParameter(name, "unknown parameter")
        if len(values) != 1:
            raise InvalidParameter(name, "must appear once")
    single = {name: values[0].strip() for name, values in params.items()}
    bucket = single.get("bucket", "day")
    if bucket not in BUCKET_MS:
        raise InvalidParameter("bucket", "must be hour or day")
    group_by = _group_by(single.get("group_by") or None, dimensions)
    until = int(until_moment(single["until"])) if "until" in single else now_ms
    since = int(moment("since")(single["since"])) if "since" in single else None
    since = until - _DEFAULT_SPAN_MS[bucket] + 1 if since is None else since
    if since > until:
        raise InvalidParameter("until", "must not be before since")
    if (until - since) // HOUR_MS >= MAX_HOURS:
        raise InvalidParameter("since", f"the range may span at most {MAX_HOURS} hours")
    return StatsQuery(bucket=bucket, since_ms=since, until_ms=until, group_by=group_by)


def _group_by(value: str | None, dimensions: Sequence[str]) -> str | None:
    if value is None or value in GROUP_DIMENSIONS:
        return value
    if value.startswith(ATTRIBUTE_GROUP):
        key = value[len(ATTRIBUTE_GROUP) :]
        if key in dimensions:
            return value
        configured = ", ".join(dimensions) or "none"
        raise InvalidParameter(
            "group_by", f"{key!r} is not a [stats] dimensions key (configured: {configured})"
        )
    raise InvalidParameter("group_by", "must be model, upstream or attributes.<key>")
