"""``/ui/trends``: satisfaction over time, from the counters of ``GET /api/stats/feedback``
(same parameters, parsed by that route's ``parse_stats_query``), charted on the server; and
the agreement of an evaluator score with user votes (``GET /api/stats/agreement``)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from proxy.admin.api.scores import parse_agreement_query
from proxy.admin.api.stats import parse_stats_query
from proxy.admin.params import InvalidParameter
from proxy.admin.services import ADMIN, AdminServices
from proxy.admin.ui.charts import trend_charts
from proxy.admin.ui.forms import filled
from proxy.admin.ui.render import page
from proxy.store.stats import GROUP_DIMENSIONS, StatsQuery

_AGREEMENT_PARAMS = ("score", "threshold")
_OPTIONAL_COLUMNS = ("calls", "cost_usd", "regenerated", "stopped")


async def trends_page(request: web.Request) -> web.Response:
    services = request.app[ADMIN]
    params = filled(request.query.items(), drop=_AGREEMENT_PARAMS)
    context: dict[str, Any] = {
        "params": {name: values[0] for name, values in params.items()},
        "group_options": group_options(services),
        "score": request.query.get("score", "").strip(),
        "threshold": request.query.get("threshold", "").strip(),
        "charts": [],
        "buckets": [],
        "columns": [],
        "error": None,
        "agreement": None,
        "agreement_error": None,
    }
    try:
        now_ms = int(time.time() * 1000)
        query = parse_stats_query(params, now_ms, services.settings.stats.dimensions)
    except InvalidParameter as refused:
        context["error"] = refused.message
        return page("trends.html", request, context, status=400)
    buckets = await services.stats.query(query)
    context.update(
        query=query,
        buckets=buckets,
        charts=trend_charts(buckets, query.group_by),
        columns=[c for c in _OPTIONAL_COLUMNS if any(c in row for row in buckets)],
    )
    try:
        context["agreement"] = await read_agreement(
            services, query, context["score"], context["threshold"]
        )
    except InvalidParameter as refused:
        context["agreement_error"] = refused.message
        return page("trends.html", request, context, status=400)
    return page("trends.html", request, context)


def group_options(services: AdminServices) -> list[str]:
    """``group_by`` values the stats route takes: model, upstream, and ``attributes.<key>``
    for the configured dimensions."""
    return [*GROUP_DIMENSIONS, *(f"attributes.{k}" for k in services.settings.stats.dimensions)]


async def read_agreement(
    services: AdminServices, query: StatsQuery, score: str, threshold: str
) -> dict[str, Any] | None:
    """``GET /api/stats/agreement``'s answer for ``score`` over the page's time range (parsed
    and checked by that route's own parser), or None when no score is asked for. A refused
    parameter raises InvalidParameter."""
    if not score:
        return None
    params = {"score": [score], "since": [str(query.since_ms)], "until": [str(query.until_ms)]}
    if threshold:
        params["threshold"] = [threshold]
    answer: dict[str, Any] = await services.agreement.query(
        parse_agreement_query(params, now_ms=query.until_ms)
    )
    return answer
