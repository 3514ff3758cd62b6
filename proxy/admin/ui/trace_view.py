"""``/ui/traces/{trace_id}``: one trace to read, and the reviewer's two actions on it.

The actions are forms: reviewer feedback goes through the same checks and the same merge as
``PATCH /api/traces/{id}`` (``api.patch``), **Add to dataset** through the store call of
``POST /api/datasets/{name}/rows`` with the same ``columns`` rule. A refused form shows the
API's message beside the form (400) and changes nothing; a done one redirects back (303).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from proxy.admin.api.patch import apply_patch, parse_patch
from proxy.admin.services import ADMIN
from proxy.admin.ui.forms import (
    FEEDBACK_FIELDS,
    column_sources,
    columns_from_form,
    default_column_rows,
    feedback_body,
)
from proxy.admin.ui.guard import checked_form
from proxy.admin.ui.present import span_inputs, timeline
from proxy.admin.ui.render import page
from proxy.core.errors import BadRequest, NotFound
from proxy.core.ids import DATASET_NAME, DATASET_NAME_RULE, ID_PATTERN
from proxy.core.records import Trace
from proxy.datasets.columns import DEFAULT_COLUMNS, InvalidColumns, parse_columns
from proxy.feedback.parse import validate_id

NOTICES = {
    "applied": "Feedback recorded.",
    "queued": "Feedback queued: Redis is catching up, it will show shortly.",
    "added": "Added to dataset",
    "existing": "Already in dataset",
}


async def _trace(request: web.Request) -> Trace:
    trace_id = request.match_info["trace_id"]
    trace = (
        await request.app[ADMIN].store.get_trace(trace_id)
        if ID_PATTERN.fullmatch(trace_id)
        else None
    )
    if trace is None:
        raise NotFound(f"No trace {trace_id}.", code="trace_not_found")
    return trace


async def trace_page(request: web.Request) -> web.Response:
    return await _render(request, await _trace(request))


async def _render(
    request: web.Request, trace: Trace, status: int = 200, **form: Any
) -> web.Response:
    notice = request.query.get("notice")
    dataset = request.query.get("dataset", "")
    datasets = await request.app[ADMIN].datasets.list_datasets()
    context = {
        "trace": trace,
        "timeline": timeline(trace["spans"]),
        "inputs": span_inputs(trace["spans"]),
        "notice": NOTICES.get(notice or ""),
        "notice_dataset": dataset if DATASET_NAME.fullmatch(dataset) else None,
        "datasets": [d["name"] for d in datasets],
        "sources": column_sources(trace),
        "categories": sorted(request.app[ADMIN].feedback_rules.categories),
        "reasons": sorted(request.app[ADMIN].feedback_rules.reasons),
        "column_rows": form.pop("column_rows", default_column_rows()),
        "feedback_form": form.pop("feedback_form", {}),
        "dataset_value": form.pop("dataset_value", ""),
        **form,
    }
    return page("trace.html", request, context, status=status)


async def post_feedback(request: web.Request) -> web.Response:
    """The reviewer form: PATCH's rules and merge, on the trace or on one of its spans."""
    form = await checked_form(request)
    trace = await _trace(request)
    values = {key: form.get(key, "") for key in (*FEEDBACK_FIELDS, "tags", "span_id")}
    services = request.app[ADMIN]
    try:
        span_id = validate_id(values["span_id"], "span_id") if values["span_id"] else None
        patch = parse_patch(feedback_body(values), services.feedback_rules)
    except BadRequest as refused:
        return await _render(
            request, trace, 400, feedback_error=refused.message, feedback_form=values
        )
    answer = await apply_patch(services, str(trace["trace_id"]), span_id, patch)
    raise web.HTTPSeeOther(_back(trace, notice=answer["status"], anchor="feedback"))


async def post_dataset(request: web.Request) -> web.Response:
    """**Add to dataset**: one row for this trace, with the mapped columns."""
    form = await checked_form(request)
    trace = await _trace(request)
    name = form.get("dataset", "").strip()
    names, sources = form.getall("column_name", []), form.getall("column_source", [])
    rows = list(zip(names, sources, strict=False)) or default_column_rows()
    try:
        if not DATASET_NAME.fullmatch(name):
            raise BadRequest(f"Dataset: {DATASET_NAME_RULE}")
        mapping = columns_from_form(names, sources)
        columns = DEFAULT_COLUMNS if mapping is None else parse_columns(mapping)
    except (BadRequest, InvalidColumns) as refused:
        message = refused.message if isinstance(refused, BadRequest) else str(refused)
        return await _render(
            request, trace, 400, dataset_error=message, column_rows=rows, dataset_value=name
        )
    trace_id = str(trace["trace_id"])
    result = await request.app[ADMIN].datasets.add_traces(name, [trace_id], columns)
    notice = "added" if result.added else "existing"
    raise web.HTTPSeeOther(_back(trace, notice=notice, dataset=name, anchor="dataset"))


def _back(trace: Trace, anchor: str, **query: str) -> str:
    return f"/ui/traces/{quote(str(trace['trace_id']), safe='')}?{urlencode(query)}#{anchor}"
