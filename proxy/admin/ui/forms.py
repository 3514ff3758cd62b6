"""The Monitor page's forms as the admin API's inputs. Pure: no aiohttp, no redis.

The page adds nothing of its own to what the API accepts: a filter form's fields are the
API's query parameters (empty fields left out), the reviewer form becomes a ``PATCH`` body,
the column rows become ``columns`` and the annotation editor becomes a row patch. The API's
own checks (``admin.params``, ``parse_patch``, ``parse_columns``, ``parse_row_patch``) then
judge them, so the page cannot accept what the API refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from proxy.datasets.columns import DEFAULT_COLUMNS

FEEDBACK_FIELDS = (
    "user_feedback",
    "user_feedback_rating",
    "user_feedback_category",
    "feedback_reason",
    "user_feedback_comment",
)
COLUMN_ROWS = 3  # empty mapping rows offered beside the dataset's default columns


def filled(pairs: Iterable[tuple[str, str]], drop: Sequence[str] = ()) -> dict[str, list[str]]:
    """Query pairs as ``name -> [values]``, without empty values and without ``drop``."""
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in drop and value.strip():
            params.setdefault(name, []).append(value)
    return params


def as_pairs(params: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in params.items() for value in values]


def feedback_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The reviewer form as a ``PATCH /api/traces/{id}`` body (values as typed: the PATCH
    rules read text the way they read headers)."""
    attributes = {
        key: form[key].strip() if key != "user_feedback_comment" else form[key]
        for key in FEEDBACK_FIELDS
        if form.get(key, "").strip()
    }
    tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    body: dict[str, Any] = {}
    if attributes:
        body["attributes"] = attributes
    if tags:
        body["tags"] = tags
    return body


def columns_from_form(names: Sequence[str], sources: Sequence[str]) -> dict[str, Any] | None:
    """The ``columns`` of ``POST /api/datasets/{name}/rows`` from paired name/source fields
    (rows with both empty skipped); None when every row is empty (the default columns). A
    half-filled row is passed on as it is, for ``parse_columns`` to name."""
    mapping: dict[str, Any] = {}
    for name, source in zip(names, sources, strict=False):
        if name.strip() or source.strip():
            mapping[name.strip()] = source.strip()
    return mapping or None


def default_column_rows() -> list[tuple[str, str]]:
    """The mapping rows the form starts with: the default columns, then empty rows."""
    return [*DEFAULT_COLUMNS.items(), *[("", "")] * COLUMN_ROWS]


def annotation_from_text(text: str) -> dict[str, Any] | None:
    """The editor's text as a row annotation: a JSON object is kept as it is, other text is
    stored as ``{"text": ...}``, and an empty editor clears the annotation."""
    if not text.strip():
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def annotation_text(annotation: Any) -> str:
    """What the editor shows for a stored annotation (the inverse of ``annotation_from_text``)."""
    if annotation is None:
        return ""
    if isinstance(annotation, dict) and set(annotation) == {"text"}:
        return str(annotation["text"])
    return orjson.dumps(annotation, option=orjson.OPT_INDENT_2).decode()


def column_sources(trace: Mapping[str, Any]) -> list[str]:
    """Sources worth suggesting for this trace's columns (``columns`` accepts any valid one)."""
    attributes = [f"attributes.{key}" for key in sorted(trace.get("attributes") or {})]
    return [
        *dict.fromkeys([*DEFAULT_COLUMNS.values(), *attributes]),
        "trace.name", "trace.session_id", "trace.user_id", "trace.created_at", "trace.tags",
        "trace.annotation_status", "span.model", "span.upstream", "span.finish_reason",
        "span.duration_ms", "span.ttft_ms", "span.status", "span.usage.input_tokens",
        "span.usage.output_tokens", "span.usage.total_tokens", "span.cost_usd",
    ]  # fmt: skip
