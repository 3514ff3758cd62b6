"""``GET /openapi.json``: the admin API described as OpenAPI 3.1, built as plain data.

``openapi_document()`` returns a fresh dict every call. Limits and enums are taken from the
handlers' own constants, so the document states what the handlers enforce; a test checks that
the document's paths and methods are exactly the routes of ``create_admin_app``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy import __version__
from proxy.admin import params
from proxy.admin.api import datasets, patch
from proxy.admin.responses import json_response
from proxy.core.ids import DATASET_NAME
from proxy.core.tags import MAX_TAGS
from proxy.datasets.columns import COLUMN_NAME, MAX_COLUMNS
from proxy.store.query_plan import DEFAULT_LIMIT, MAX_LIMIT
from proxy.store.stats import GROUP_DIMENSIONS

_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
_DATASET_PATTERN = "^" + DATASET_NAME.pattern + "$"
_ANNOTATION_STATUSES = sorted(params.ANNOTATION_STATUSES)
_VERDICTS = sorted(params.VERDICTS)
_FORMATS = list(datasets.FORMATS)
_ERROR_RESPONSES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "404": "NotFound",
    "413": "PayloadTooLarge",
    "503": "Unavailable",
}
_TIME_DESCRIPTION = (
    "ISO 8601 with a time zone (2026-11-01T12:00:00Z), a bare date (UTC), or epoch "
    "milliseconds. Inclusive."
)


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /openapi.json``: this document (needs the admin token when one is set)."""
    return json_response(openapi_document())


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{description}"}


def _path_param(name: str, description: str, pattern: str = _ID_PATTERN) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


def _rating() -> dict[str, Any]:
    return {"type": "number", "minimum": 1, "maximum": 5}


def _trace_filter_params() -> list[dict[str, Any]]:
    """The filters of ``GET /api/traces`` as the parser in proxy.admin.params reads them."""
    return [
        _query("feedback", {"type": "string", "enum": _VERDICTS}, "user_feedback verdict."),
        _query("rating_min", _rating(), "Lowest user_feedback_rating (inclusive)."),
        _query("rating_max", _rating(), "Highest user_feedback_rating (inclusive)."),
        _query("category", _text(128), "user_feedback_category (case-insensitive)."),
        _query("reason", _text(128), "feedback_reason (case-insensitive)."),
        {
            **_query(
                "tag",
                {"type": "array", "items": _text(128), "maxItems": params.MAX_TAG_FILTERS},
                "Tag; repeatable, every one must match.",
            ),
            "style": "form",
            "explode": True,
        },
        _query(
            "annotation_status",
            {"type": "string", "enum": _ANNOTATION_STATUSES},
            "Annotation status of the trace.",
        ),
        _query("has_feedback", {"type": "boolean"}, "Only traces with (or without) feedback."),
        _query("model", _text(256), "A model used by one of the trace's spans."),
        _query("upstream", _text(128), "A configured upstream name used by the trace."),
        _query("session_id", _text(128), "Session ID."),
        _query("user_id", _text(128), "User ID."),
        _query("since", {"type": "string"}, "Created at or after. " + _TIME_DESCRIPTION),
        _query("until", {"type": "string"}, "Created at or before. " + _TIME_DESCRIPTION),
    ]


def _paging_params(default: int) -> list[dict[str, Any]]:
    return [
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default},
            "Page size.",
        ),
        _query("cursor", {"type": "string"}, "next_cursor from an earlier answer."),
    ]


def _schemas() -> dict[str, Any]:
    string_or_null = {"type": ["string", "null"]}
    attributes = {"type": "object", "additionalProperties": True}
    tags = {"type": "array", "items": {"type": "string"}}
    summary = {  # a trace in a list; the full trace adds its feedback history and spans
        "trace_id": {"type": "string"},
        "name": string_or_null,
        "session_id": string_or_null,
        "user_id": string_or_null,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "attributes": attributes,
        "tags": tags,
        "annotation_status": {
            "type": ["string", "null"],
            "enum": [*_ANNOTATION_STATUSES, None],
        },
        "span_count": {"type": "integer", "minimum": 0},
        "models": {"type": "array", "items": {"type": "string"}},
    }
    operation_attr = {
        "type": "object",
        "required": ["operation", "key"],
        "properties": {
            "operation": {"type": "string", "enum": ["create", "delete"]},
            "key": {"type": "string", "minLength": 1},
            "value": {"description": "Required for create."},
        },
    }
    operation_tag = {
        "type": "object",
        "required": ["operation", "tag"],
        "properties": {
            "operation": {"type": "string", "enum": ["create", "delete"]},
            "tag": {"type": "string", "minLength": 1, "maxLength": 128},
        },
    }
    feedback_id = {"type": "string", "pattern": _ID_PATTERN}
    feedback_columns = {
        "type": "object",
        "description": "The mapped columns (see ColumnMapping); by default these four.",
        "properties": {
            "user_feedback": {"type": ["string", "null"]},
            "user_feedback_category": {"type": ["string", "null"]},
            "feedback_reason": {"type": ["string", "null"]},
            "user_feedback_rating": {"type": ["number", "null"]},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "code": {"type": "string"},
                    },
                }
            },
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string"}},
        },
        "AnnotationStatus": {"type": "string", "enum": _ANNOTATION_STATUSES},
        "Usage": {
            "type": ["object", "null"],
            "properties": {
                "input_tokens": {"type": ["integer", "null"]},
                "output_tokens": {"type": ["integer", "null"]},
                "total_tokens": {"type": ["integer", "null"]},
            },
        },
        "Span": {
            "type": "object",
            "required": ["span_id", "upstream", "method", "path", "started_at"],
            "properties": {
                "span_id": {"type": "string"},
                "parent_span_id": string_or_null,
                "upstream": {"type": "string", "description": "Configured upstream name."},
                "method": {"type": "string"},
                "path": {"type": "string", "description": "Path sent upstream."},
                "status": {"type": ["integer", "null"]},
                "started_at": {"type": "string", "format": "date-time"},
                "duration_ms": {"type": ["number", "null"]},
                "ttft_ms": {"type": ["number", "null"]},
                "stream": {"type": "boolean"},
                "model": string_or_null,
                "finish_reason": string_or_null,
                "usage": _ref("Usage"),
                "input": {"description": "Captured request input (may be off or capped)."},
                "output": {"description": "Captured output: text and tool_calls."},
                "error": {"description": "Upstream or transport error, else null."},
                "attributes": attributes,
                "tags": tags,
            },
        },
        "FeedbackEvent": {
            "type": "object",
            "required": ["received_at", "source"],
            "properties": {
                "received_at": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "enum": ["header", "route", "api"]},
                "span_id": string_or_null,
                "attributes": attributes,
                "tags": tags,
            },
        },
        "TraceSummary": {
            "type": "object",
            "required": ["trace_id", "created_at", "updated_at", "span_count", "models"],
            "properties": summary,
        },
        "Trace": {
            "type": "object",
            "description": "A trace with all its spans and feedback history.",
            "required": ["trace_id", "created_at", "updated_at", "spans", "feedback"],
            "properties": {
                **summary,
                "feedback": {"type": "array", "items": _ref("FeedbackEvent")},
                "spans": {"type": "array", "items": _ref("Span")},
            },
        },
        "TraceList": {
            "type": "object",
            "required": ["traces", "next_cursor"],
            "properties": {
                "traces": {"type": "array", "items": _ref("TraceSummary")},
                "next_cursor": string_or_null,
            },
        },
        "PatchFlat": {
            "type": "object",
            "additionalProperties": False,
            "description": "Attributes to merge and tags to add (same rules as headers).",
            "properties": {
                "attributes": attributes,
                "tags": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 128},
                    "maxItems": MAX_TAGS,
                },
                "feedback_id": feedback_id,
            },
        },
        "PatchOperations": {
            "type": "object",
            "additionalProperties": False,
            "description": "Adaline operation form: create or delete attributes and tags.",
            "properties": {
                "attributes": {
                    "type": "array",
                    "items": operation_attr,
                    "maxItems": patch.MAX_ATTRIBUTES,
                },
                "tags": {"type": "array", "items": operation_tag, "maxItems": MAX_TAGS},
                "feedback_id": feedback_id,
            },
        },
        "PatchResult": {
            "type": "object",
            "required": ["trace_id", "applied", "status"],
            "properties": {
                "trace_id": {"type": "string"},
                "applied": {"type": "boolean"},
                "status": {"type": "string", "enum": ["applied", "queued"]},
            },
        },
        "DatasetList": {
            "type": "object",
            "required": ["datasets"],
            "properties": {
                "datasets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rows"],
                        "properties": {
                            "name": {"type": "string"},
                            "rows": {"type": "integer", "minimum": 0},
                        },
                    },
                }
            },
        },
        "AddRowsByIds": {
            "type": "object",
            "required": ["trace_ids"],
            "additionalProperties": False,
            "properties": {
                "trace_ids": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _ID_PATTERN},
                    "minItems": 1,
                    "maxItems": datasets.MAX_TRACES,
                },
                "columns": _ref("ColumnMapping"),
            },
        },
        "ColumnMapping": {
            "type": "object",
            "description": (
                "Column name -> source: attributes.<key>, trace.<field> or "
                "span.<field>[.<field>] (the last span). Default: the four feedback attributes."
            ),
            "minProperties": 1,
            "maxProperties": MAX_COLUMNS,
            "propertyNames": {"pattern": "^" + COLUMN_NAME.pattern + "$"},
            "additionalProperties": {"type": "string"},
        },
        "AddRowsByFilter": {
            "type": "object",
            "required": ["filter"],
            "additionalProperties": False,
            "properties": {"filter": _ref("TraceFilter"), "columns": _ref("ColumnMapping")},
        },
        "TraceFilter": {
            "type": "object",
            "description": "The filters of GET /api/traces as JSON values (no limit/cursor).",
            "additionalProperties": False,
            "properties": {param["name"]: param["schema"] for param in _trace_filter_params()},
        },
        "AddRowsResult": {
            "type": "object",
            "required": ["dataset", "added", "existing", "missing", "truncated"],
            "properties": {
                "dataset": {"type": "string"},
                "added": {"type": "integer", "minimum": 0},
                "existing": {"type": "integer", "minimum": 0},
                "missing": {"type": "array", "items": {"type": "string"}},
                "truncated": {
                    "type": "boolean",
                    "description": f"More than {datasets.MAX_TRACES} traces matched.",
                },
            },
        },
        "DatasetRow": {
            "type": "object",
            "required": ["row_id", "trace_id", "annotation_status", "added_at"],
            "properties": {
                "row_id": {"type": "string"},
                "trace_id": {"type": "string"},
                "input": {"description": "The trace's last span input."},
                "output": {"description": "The trace's last span output."},
                "feedback": feedback_columns,
                "annotation_status": _ref("AnnotationStatus"),
                "annotation": {"type": ["object", "null"]},
                "added_at": {"type": "string", "format": "date-time"},
            },
        },
        "RowPage": {
            "type": "object",
            "required": ["rows", "next_cursor"],
            "properties": {
                "rows": {"type": "array", "items": _ref("DatasetRow")},
                "next_cursor": string_or_null,
            },
        },
        "RowPatch": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "annotation": {"type": ["object", "null"]},
                "annotation_status": _ref("AnnotationStatus"),
            },
        },
        "FeedbackStats": {
            "type": "object",
            "required": ["bucket", "group_by", "since", "until", "buckets"],
            "properties": {
                "bucket": {"type": "string", "enum": ["hour", "day"]},
                "group_by": {"type": ["string", "null"], "enum": [*GROUP_DIMENSIONS, None]},
                "since": {"type": "string", "format": "date-time"},
                "until": {"type": "string", "format": "date-time"},
                "buckets": {"type": "array", "items": _ref("StatsBucket")},
            },
        },
        "StatsBucket": {
            "type": "object",
            "description": "Ungrouped: every bucket of the range; grouped: the groups with "
            "traces or feedback in it (and a model or upstream property naming the group).",
            "required": [
                "bucket_start",
                "traces",
                "positive",
                "negative",
                "rating_count",
                "rating_average",
            ],
            "properties": {
                "bucket_start": {"type": "string", "format": "date-time"},
                "model": {"type": "string"},
                "upstream": {"type": "string"},
                "traces": {"type": "integer", "description": "Traces created in the bucket."},
                "positive": {"type": "integer", "description": "Of those, voted positive now."},
                "negative": {"type": "integer", "description": "Of those, voted negative now."},
                "rating_count": {"type": "integer"},
                "rating_average": {"type": ["number", "null"]},
            },
        },
        "RowDeleted": {
            "type": "object",
            "required": ["dataset", "row_id", "deleted"],
            "properties": {
                "dataset": {"type": "string"},
                "row_id": {"type": "string"},
                "deleted": {"type": "boolean", "const": True},
            },
        },
        "DatasetDeleted": {
            "type": "object",
            "required": ["dataset", "deleted"],
            "properties": {
                "dataset": {"type": "string"},
                "deleted": {"type": "boolean", "const": True},
            },
        },
    }


def _responses() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return _json(_ref("Error"), description)

    return {
        "BadRequest": error("Invalid parameter or body; the message names it."),
        "Unauthorized": error("Missing or wrong admin bearer token."),
        "NotFound": error("No such resource."),
        "PayloadTooLarge": error("The trace's feedback history is full; nothing changed."),
        "Unavailable": error("Redis is unreachable; try again shortly."),
    }


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: tuple[str, ...],
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    tag: str = "traces",
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for code, name in _ERROR_RESPONSES.items():
        if code in errors:
            responses[code] = _error(name)
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    return operation


def _paths() -> dict[str, Any]:
    trace_id = _path_param("trace_id", "Trace ID.")
    span_id = _path_param("span_id", "Span ID within the trace.")
    name = _path_param("name", "Dataset name.", _DATASET_PATTERN)
    row_id = _path_param("row_id", "Row ID (the trace ID it was copied from).")
    patch_body = {"schema": {"oneOf": [_ref("PatchFlat"), _ref("PatchOperations")]}}
    patch_errors = ("400", "401", "404", "413", "503")
    rows_content = {
        "application/json": {"schema": _ref("RowPage")},
        "application/x-ndjson": {
            "schema": {
                "type": "string",
                "description": "Whole dataset, one OpenAI chat fine-tuning object a line.",
            }
        },
        "text/csv": {
            "schema": {"type": "string", "description": "Whole dataset, RFC 4180, header row."}
        },
    }
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness.",
                "tags": ["health"],
                "security": [],
                "responses": {"200": _json(_ref("Status"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis reachable and not draining.",
                "tags": ["health"],
                "responses": {
                    "200": _json(_ref("Status"), "Ready."),
                    "401": _error("Unauthorized"),
                    "503": _json(_ref("Status"), "Redis unreachable or draining."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics, summed over every worker process.",
                "tags": ["health"],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _error("Unauthorized"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "tags": ["meta"],
                "responses": {
                    "200": _json({"type": "object"}, "OpenAPI 3.1 document."),
                    "401": _error("Unauthorized"),
                },
            }
        },
        "/api/traces": {
            "get": _op(
                "List trace summaries matching every filter, newest first.",
                _json(_ref("TraceList"), "One page of summaries."),
                ("400", "401", "503"),
                _trace_filter_params() + _paging_params(DEFAULT_LIMIT),
            )
        },
        "/api/traces/{trace_id}": {
            "parameters": [trace_id],
            "get": _op(
                "A trace with its spans and feedback.",
                _json(_ref("Trace"), "The trace."),
                ("400", "401", "404", "503"),
            ),
            "patch": _op(
                "Merge attributes and tags into the trace (as feedback headers do).",
                _json(_ref("PatchResult"), "Applied or queued."),
                patch_errors,
                body=patch_body,
            ),
        },
        "/api/traces/{trace_id}/spans/{span_id}": {
            "parameters": [trace_id, span_id],
            "patch": _op(
                "Merge attributes and tags into one span of the trace.",
                _json(_ref("PatchResult"), "Applied or queued."),
                patch_errors,
                body=patch_body,
            ),
        },
        "/api/datasets": {
            "get": _op(
                "Every dataset with its row count.",
                _json(_ref("DatasetList"), "Datasets."),
                ("401", "503"),
                tag="datasets",
            )
        },
        "/api/datasets/{name}": {
            "parameters": [name],
            "delete": _op(
                "Delete the dataset and all its rows.",
                _json(_ref("DatasetDeleted"), "Deleted."),
                ("400", "401", "404", "503"),
                tag="datasets",
            ),
        },
        "/api/datasets/{name}/rows": {
            "parameters": [name],
            "get": _op(
                "Rows in the order added: one JSON page, or the whole dataset as JSONL/CSV.",
                {"description": "Rows.", "content": rows_content},
                ("400", "401", "404", "503"),
                [
                    _query(
                        "annotation_status",
                        _ref("AnnotationStatus"),
                        "Only rows with this status.",
                    ),
                    _query(
                        "format",
                        {"type": "string", "enum": _FORMATS, "default": "json"},
                        "json: one page; jsonl/csv: the whole dataset, streamed.",
                    ),
                    *_paging_params(datasets.DEFAULT_LIMIT),
                ],
                tag="datasets",
            ),
            "post": _op(
                "Add one row per trace (by ID or by filter); idempotent per trace.",
                _json(_ref("AddRowsResult"), "Counts of rows added and already present."),
                ("400", "401", "503"),
                body={"schema": {"oneOf": [_ref("AddRowsByIds"), _ref("AddRowsByFilter")]}},
                tag="datasets",
            ),
        },
        "/api/datasets/{name}/rows/{row_id}": {
            "parameters": [name, row_id],
            "patch": _op(
                "Set the row's annotation and/or annotation_status.",
                _json(_ref("DatasetRow"), "The updated row."),
                ("400", "401", "404", "503"),
                body={"schema": _ref("RowPatch")},
                tag="datasets",
            ),
            "delete": _op(
                "Delete one row.",
                _json(_ref("RowDeleted"), "Deleted."),
                ("400", "401", "404", "503"),
                tag="datasets",
            ),
        },
        "/api/stats/feedback": {
            "get": _op(
                "Traces, votes and ratings per UTC hour or day, overall or per model/upstream.",
                _json(_ref("FeedbackStats"), "One row per bucket (and group)."),
                ("400", "401", "503"),
                _stats_params(),
                tag="stats",
            )
        },
    }


def _stats_params() -> list[dict[str, Any]]:
    return [
        _query("bucket", {"type": "string", "enum": ["hour", "day"], "default": "day"}, "UTC."),
        _query("since", {"type": "string"}, "Default: 24 h (hour) or 30 days (day) before "
               "until. " + _TIME_DESCRIPTION),
        _query("until", {"type": "string"}, "Default: now. " + _TIME_DESCRIPTION),
        _query("group_by", {"type": "string", "enum": list(GROUP_DIMENSIONS)},
               "One row per value of the dimension; a trace counts under each it used."),
    ]  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The admin API as an OpenAPI 3.1 document; a fresh dict on every call."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "feedback-proxy admin API",
            "version": __version__,
            "description": (
                "Traces, feedback and datasets recorded by feedback-proxy. Once admin.token "
                "is set, every route but /healthz needs `Authorization: Bearer <token>`."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The configured admin.token.",
                }
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
