"""Trace routes of the admin API: the filtered list, and one trace with all its spans."""

from __future__ import annotations

from aiohttp import web

from proxy.admin.params import parse_trace_list, query_params
from proxy.admin.responses import json_response
from proxy.admin.services import ADMIN
from proxy.core.errors import BadRequest, NotFound
from proxy.core.ids import ID_PATTERN, ID_RULE


async def list_traces(request: web.Request) -> web.Response:
    """``GET /api/traces``: matching trace summaries, newest first, and ``next_cursor``."""
    parsed = parse_trace_list(query_params(request.query))
    page = await request.app[ADMIN].traces.run(parsed.filters, parsed.limit, parsed.cursor)
    return json_response({"traces": page.traces, "next_cursor": page.next_cursor})


async def get_trace(request: web.Request) -> web.Response:
    """``GET /api/traces/{trace_id}``: the trace with all its spans (docs/reference.md §5)."""
    trace_id = request.match_info["trace_id"]
    if not ID_PATTERN.fullmatch(trace_id):
        raise BadRequest(f"trace_id: {ID_RULE}", code="invalid_trace_id")
    trace = await request.app[ADMIN].store.get_trace(trace_id)
    if trace is None:
        raise NotFound(f"No trace {trace_id}.", code="trace_not_found")
    return json_response(trace)
