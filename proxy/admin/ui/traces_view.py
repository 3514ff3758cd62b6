"""``/ui/traces``: the trace list, filtered by a GET form whose fields are the API's filters."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from proxy.admin.params import InvalidParameter, parse_trace_list, trace_list_names
from proxy.admin.services import ADMIN
from proxy.admin.ui.forms import as_pairs, filled
from proxy.admin.ui.render import page
from proxy.store.query_plan import TracePage

PAGE_SIZES = (50, 100, 200, 500)


async def traces_page(request: web.Request) -> web.Response:
    """The API's ``GET /api/traces`` as a table: same parameters, same rules, same cursor."""
    params = filled(request.query.items())
    found, error = TracePage([], None), None
    try:
        parsed = parse_trace_list(params)
        found = await request.app[ADMIN].traces.run(parsed.filters, parsed.limit, parsed.cursor)
    except InvalidParameter as refused:
        error = refused.message
    context: dict[str, Any] = {
        "params": {name: values[0] for name, values in params.items()},
        "tags": [*params.get("tag", []), ""],
        "names": trace_list_names(),
        "page_sizes": PAGE_SIZES,
        "traces": found.traces,
        "error": error,
        "next_url": _page_url(params, found.next_cursor),
        "first_url": "/ui/traces?" + urlencode(as_pairs(_without(params, "cursor")))
        if "cursor" in params
        else None,
        "filtered": bool(_without(params, "cursor", "limit")),
    }
    return page("traces.html", request, context, status=400 if error else 200)


def _without(params: dict[str, list[str]], *names: str) -> dict[str, list[str]]:
    return {name: values for name, values in params.items() if name not in names}


def _page_url(params: dict[str, list[str]], cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return "/ui/traces?" + urlencode([*as_pairs(_without(params, "cursor")), ("cursor", cursor)])
