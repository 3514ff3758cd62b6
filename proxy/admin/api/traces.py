"""Trace routes of the admin API."""

from __future__ import annotations

from aiohttp import web

from proxy.admin.responses import ADMIN_STATE, error_response, json_response
from proxy.core.ids import ID_PATTERN, ID_RULE


async def get_trace(request: web.Request) -> web.Response:
    """``GET /api/traces/{trace_id}``: the trace with all its spans (SPEC §5)."""
    trace_id = request.match_info["trace_id"]
    if not ID_PATTERN.fullmatch(trace_id):
        return error_response(400, "invalid_trace_id", f"trace_id: {ID_RULE}")
    trace = await request.app[ADMIN_STATE].store.get_trace(trace_id)
    if trace is None:
        return error_response(404, "trace_not_found", f"No trace {trace_id}.")
    return json_response(trace)
