"""``/ui/trends``: satisfaction over time, from the counters of ``GET /api/stats/feedback``
(same parameters, parsed by that route's ``parse_stats_query``), charted on the server; and
the agreement of an evaluator score with user votes when the services offer it."""

from __future__ import annotations

import importlib
import time
from typing import Any

from aiohttp import web

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
        "agreement_offered": agreement_source(services) is not None,
        "charts": [],
        "buckets": [],
        "columns": [],
        "error": None,
        "agreement": None,
        "agreement_error": None,
    }
    try:
        query = _parse(params, int(time.time() * 1000), configured_dimensions(services))
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


def configured_dimensions(services: AdminServices) -> tuple[str, ...]:
    """The ``[stats] dimensions`` keys, when this build has them (else none)."""
    stats_settings = getattr(services.settings, "stats", None)
    return tuple(getattr(stats_settings, "dimensions", ()) or ())


def group_options(services: AdminServices) -> list[str]:
    """``group_by`` values the stats route takes: model, upstream, and ``attributes.<key>``
    for the configured dimensions."""
    return [*GROUP_DIMENSIONS, *(f"attributes.{k}" for k in configured_dimensions(services))]


def _parse(params: dict[str, list[str]], now_ms: int, dimensions: tuple[str, ...]) -> StatsQuery:
    """The stats route's own parser; the dimensions go with it only where they exist (a
    build without them has a parser without that argument)."""
    if dimensions:
        return parse_stats_query(params, now_ms, dimensions)  # type: ignore[call-arg,unused-ignore]
    return parse_stats_query(params, now_ms=now_ms)


def agreement_source(services: AdminServices) -> tuple[Any, Any] | None:
    """(the agreement service, the route's query parser) when this build has both: the
    services' ``agreement`` (``query(AgreementQuery)``) and ``parse_agreement_query`` of
    ``proxy.admin.api.scores``. Looked up at run time, so the page works without them."""
    service = getattr(services, "agreement", None)
    try:
        module = importlib.import_module("proxy.admin.api.scores")
    except ImportError:
        return None
    parse = getattr(module, "parse_agreement_query", None)
    return None if service is None or parse is None else (service, parse)


async def read_agreement(
    services: AdminServices, query: StatsQuery, score: str, threshold: str
) -> dict[str, Any] | None:
    """``GET /api/stats/agreement``'s answer for ``score`` over the page's time range (parsed
    and checked by that route's own parser), or None when no score is asked for or the build
    has no agreement service. A refused parameter raises InvalidParameter."""
    found = agreement_source(services)
    if found is None or not score:
        return None
    service, parse = found
    params = {"score": [score], "since": [str(query.since_ms)], "until": [str(query.until_ms)]}
    if threshold:
        params["threshold"] = [threshold]
    answer: dict[str, Any] = await service.query(parse(params, now_ms=query.until_ms))
    return answer
