"""Dataset routes of the admin API: add traces as rows, the annotation queue, exports.

``POST /api/datasets/{name}/rows`` takes ``{"trace_ids": [...]}`` or ``{"filter": {...}}`` (the
filters of ``GET /api/traces``, as JSON values) and adds at most ``MAX_TRACES`` traces per call.
``GET /api/datasets/{name}/rows`` answers one JSON page, or streams the whole (filtered) dataset
as JSONL (OpenAI chat fine-tuning format) or CSV (RFC 4180, a header row). Bad input answers
400 naming the field; every check runs before Redis is asked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from proxy.admin.api.body import json_body
from proxy.admin.params import InvalidParameter, parse_cursor, parse_limit, parse_trace_list
from proxy.admin.responses import json_response
from proxy.admin.services import ADMIN, AdminServices
from proxy.core.errors import BadRequest, NotFound
from proxy.core.ids import DATASET_NAME, DATASET_NAME_RULE, ID_PATTERN, ID_RULE
from proxy.datasets.columns import DEFAULT_COLUMNS, InvalidColumns, parse_columns
from proxy.datasets.formats import csv_record, jsonl_line
from proxy.store.datasets import (
    DatasetStore,
    RowPosition,
    decode_row_cursor,
)
from proxy.store.query_plan import MAX_LIMIT, TraceFilter, decode_cursor

MAX_TRACES = 1000
MAX_BODY_BYTES = 256 * 1024
DEFAULT_LIMIT = 50
FLUSH_BYTES = 64 * 1024
_STATUSES = frozenset({"empty", "filled"})
FORMATS = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
_ROW_QUERY = frozenset({"annotation_status", "limit", "cursor", "format"})


def _store(request: web.Request) -> DatasetStore:
    return request.app[ADMIN].datasets


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not DATASET_NAME.fullmatch(name):
        raise BadRequest(f"name: {DATASET_NAME_RULE}", code="invalid_name")
    return name


def _row_id(request: web.Request) -> str:
    row_id = request.match_info["row_id"]
    if not ID_PATTERN.fullmatch(row_id):
        raise BadRequest(f"row_id: {ID_RULE}")
    return row_id


async def _json_body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request, MAX_BODY_BYTES)
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object", code="invalid_body")
    return body


# -- POST /api/datasets/{name}/rows ----------------------------------------------------------


async def add_rows(request: web.Request) -> web.Response:
    """Add one row per trace (by id or by filter); a trace already in the dataset is kept."""
    name = _name(request)
    body = await _json_body(request)
    columns = _columns(body.pop("columns", None))
    if set(body) == {"trace_ids"}:
        trace_ids, truncated = parse_trace_ids(body["trace_ids"]), False
    elif set(body) == {"filter"}:
        trace_ids, truncated = await _matching(request, parse_filter(body["filter"]))
    else:
        raise BadRequest(
            "body: must be {trace_ids: [...]} or {filter: {...}}, and optionally columns",
            code="invalid_body",
        )
    result = await _store(request).add_traces(name, trace_ids, columns)
    return json_response(
        {
            "dataset": name,
            "added": len(result.added),
            "existing": len(result.existing),
            "missing": result.missing,
            "truncated": truncated,
        }
    )


def _columns(value: Any) -> Mapping[str, str]:
    if value is None:
        return DEFAULT_COLUMNS
    try:
        return parse_columns(value)
    except InvalidColumns as error:
        raise BadRequest(str(error), code="invalid_body") from None


def parse_trace_ids(value: Any) -> list[str]:
    """1..MAX_TRACES trace IDs, first occurrence kept; raises BadRequest naming the item."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_TRACES:
        raise BadRequest(f"trace_ids: must be a list of 1-{MAX_TRACES} ids", code="invalid_body")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not ID_PATTERN.fullmatch(item):
            raise BadRequest(
                f"trace_ids[{i}]: {ID_RULE}",
                code="invalid_body",
            )
    return list(dict.fromkeys(value))


def parse_filter(value: Any) -> TraceFilter:
    """The filters of ``GET /api/traces`` from a JSON object; BadRequest names ``filter.<x>``."""
    if not isinstance(value, dict):
        raise BadRequest("filter: must be an object", code="invalid_body")
    params = {name: _as_params(name, item) for name, item in value.items()}
    for name in ("limit", "cursor"):
        if name in params:
            raise BadRequest(f"filter.{name}: unknown filter", code="invalid_body")
    try:
        return parse_trace_list(params).filters
    except InvalidParameter as error:
        raise BadRequest(f"filter.{error.message}", code="invalid_body") from None


def _as_params(name: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    params = []
    for item in items:
        if isinstance(item, bool):
            params.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            params.append(str(item))
        else:
            raise BadRequest(
                f"filter.{name}: must be a string, number or boolean", code="invalid_body"
            )
    return params


async def _matching(request: web.Request, filters: TraceFilter) -> tuple[list[str], bool]:
    """Matching trace IDs, newest first, walking query pages up to MAX_TRACES: (ids, capped)."""
    query = request.app[ADMIN].traces
    found: list[str] = []
    cursor = None
    while len(found) < MAX_TRACES:
        page = await query.run(filters, min(MAX_LIMIT, MAX_TRACES - len(found)), cursor)
        found += [summary["trace_id"] for summary in page.traces]
        if page.next_cursor is None:
            return found, False
        cursor = decode_cursor(page.next_cursor)
    return found, True


# -- GET /api/datasets, GET /api/datasets/{name}/rows ------------------------------------------


async def list_datasets(request: web.Request) -> web.Response:
    """Every dataset with its row count."""
    return json_response({"datasets": await _store(request).list_datasets()})


async def list_rows(request: web.Request) -> web.StreamResponse:
    """One JSON page of rows in the order added, or the whole dataset streamed as JSONL/CSV."""
    name = _name(request)
    status, limit, cursor, form = parse_row_query(request.query)
    store = _store(request)
    if not await store.exists(name):
        raise NotFound(f"No dataset {name}.", code="dataset_not_found")
    if form == "json":
        rows, next_cursor = await store.rows_page(name, status, limit, cursor)
        return json_response({"rows": rows, "next_cursor": next_cursor})
    return await _export(request, store, name, status, form)


def parse_row_query(
    query: Mapping[str, str],
) -> tuple[str | None, int, RowPosition | None, str]:
    """(annotation_status, limit, cursor, format) from the query; raises BadRequest."""
    for param in query:
        if param not in _ROW_QUERY:
            raise BadRequest(f"{param}: unknown parameter", code="invalid_parameter")
    status = query.get("annotation_status")
    if status is not None and status not in _STATUSES:
        raise BadRequest("annotation_status: must be empty or filled", code="invalid_parameter")
    form = query.get("format", "json")
    if form not in FORMATS:
        raise BadRequest("format: must be json, jsonl or csv", code="invalid_parameter")
    return status, _limit(query.get("limit")), _cursor(query.get("cursor")), form


def _limit(text: str | None) -> int:
    return DEFAULT_LIMIT if text is None else parse_limit(text)


def _cursor(text: str | None) -> RowPosition | None:
    return None if text is None else parse_cursor(text, decode_row_cursor)


async def _export(
    request: web.Request, store: DatasetStore, name: str, status: str | None, form: str
) -> web.StreamResponse:
    """Stream every (matching) row in chunks of about FLUSH_BYTES."""
    header = await store.csv_header(name) if form == "csv" else []
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{FORMATS[form]}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}.{form}"',
        }
    )
    await response.prepare(request)
    text = io.StringIO()
    writer = csv.writer(text)  # RFC 4180: quotes only where needed, CRLF line ends
    if form == "csv":
        writer.writerow(header)
    buffer = bytearray()
    async for _, row in store.walk(name, status):
        if form == "csv":
            writer.writerow(csv_record(row, header))
        else:
            buffer += jsonl_line(row)
        buffer += _drain(text)
        if len(buffer) >= FLUSH_BYTES:
            await response.write(bytes(buffer))
            buffer.clear()
    await response.write(bytes(buffer) + _drain(text))
    await response.write_eof()
    return response


def _drain(text: io.StringIO) -> bytes:
    data = text.getvalue().encode()
    text.seek(0)
    text.truncate()
    return data


# -- PATCH / DELETE ----------------------------------------------------------------------------


async def patch_row(request: web.Request) -> web.Response:
    """Set the row's annotation and/or annotation_status; 404 when there is no such row.
    A new annotation_status is also set on the trace, so ``GET /api/traces?annotation_status=``
    shows the review's progress."""
    name, row_id = _name(request), _row_id(request)
    change = parse_row_patch(await _json_body(request))
    return json_response(await apply_row_patch(request.app[ADMIN], name, row_id, change))


async def apply_row_patch(
    services: AdminServices, name: str, row_id: str, change: dict[str, Any]
) -> dict[str, Any]:
    """Apply a checked row change (``parse_row_patch``); the row as written. 404 when there is
    no such row. Shared with the Monitor page's annotation editor."""
    row = await services.datasets.update_row(name, row_id, lambda row: {**row, **change})
    if row is None:
        raise NotFound(f"No row {row_id} in dataset {name}.", code="row_not_found")
    if "annotation_status" in change:  # the trace follows its row (while it is kept)
        await services.store.set_annotation_status(row["trace_id"], change["annotation_status"])
    return row


def parse_row_patch(body: dict[str, Any]) -> dict[str, Any]:
    """The fields a reviewer may set; raises BadRequest naming the field."""
    unknown = sorted(set(body) - {"annotation", "annotation_status"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field", code="invalid_body")
    if not body:
        raise BadRequest("body: nothing to change", code="invalid_body")
    if "annotation" in body and not isinstance(body["annotation"], dict | None):
        raise BadRequest("annotation: must be an object or null", code="invalid_body")
    if "annotation_status" in body and not (
        isinstance(body["annotation_status"], str) and body["annotation_status"] in _STATUSES
    ):
        raise BadRequest("annotation_status: must be empty or filled", code="invalid_body")
    return body


async def delete_row(request: web.Request) -> web.Response:
    """Remove one row; 404 when there is no such row."""
    name, row_id = _name(request), _row_id(request)
    if not await _store(request).delete_row(name, row_id):
        raise NotFound(f"No row {row_id} in dataset {name}.", code="row_not_found")
    return json_response({"dataset": name, "row_id": row_id, "deleted": True})


async def delete_dataset(request: web.Request) -> web.Response:
    """Remove the dataset and all its rows; 404 when there is no such dataset."""
    name = _name(request)
    if not await _store(request).delete_dataset(name):
        raise NotFound(f"No dataset {name}.", code="dataset_not_found")
    return json_response({"dataset": name, "deleted": True})
