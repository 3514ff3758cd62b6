"""Dataset rows: which values of a trace a row carries as columns, and the row itself.

A row copies the trace's last input and output and a set of named columns. Which columns, and
where each comes from, is chosen per ``POST /api/datasets/{name}/rows`` (``columns``); the
default is the four feedback attributes under their own names. A source is
``attributes.<key>`` (a trace attribute, feedback or not), ``trace.<field>`` (a top-level
field of the trace record, e.g. ``trace.session_id``) or ``span.<field>[.<field>]`` (of the
trace's last span, e.g. ``span.model``, ``span.usage.output_tokens``). A missing value is
``null``. The dataset keeps the names of every column its rows were given
(``ds:{name}:columns``, in first-use order): the CSV header. No I/O here: the writes are
``proxy.store.dataset_writes``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from proxy.core.records import INDEXED_ATTRIBUTES, DatasetRow, Trace

DEFAULT_COLUMNS: dict[str, str] = {key: f"attributes.{key}" for _, key in INDEXED_ATTRIBUTES}
MAX_COLUMNS = 32
ORDER_STEP = 1e-6  # rows (and columns) added by one call keep the order they were given in
# Columns a row has anyway: a mapped column may not take their names.
FIXED_COLUMNS = ("row_id", "trace_id", "input", "output")
ROW_TAIL_COLUMNS = ("annotation_status", "annotation", "added_at")
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_SOURCE = re.compile(r"(attributes)\.(.{1,128})|(trace|span)\.([A-Za-z_]+(?:\.[A-Za-z_]+)?)")
_NOT_FROM_TRACE = frozenset({"spans", "feedback", "attributes"})
_NOT_FROM_SPAN = frozenset({"input", "output"})
_SOURCE_RULE = (
    "must be attributes.<key>, trace.<field> or span.<field>[.<field>] "
    "(not trace.spans/feedback/attributes, not span.input/output: those are columns already)"
)


class InvalidColumns(ValueError):
    """A column mapping that breaks a rule; the message starts with ``columns.<name>``."""


def parse_columns(value: Any) -> dict[str, str]:
    """A ``{column name: source}`` mapping, checked; raises InvalidColumns."""
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_COLUMNS:
        raise InvalidColumns(f"columns: must be an object of 1-{MAX_COLUMNS} column: source")
    for name, source in value.items():
        if not COLUMN_NAME.fullmatch(name) or name in FIXED_COLUMNS + ROW_TAIL_COLUMNS:
            raise InvalidColumns(
                f"columns.{name[:64]}: a column name is 1-64 of A-Z a-z 0-9 _ . - (starting "
                "with a letter or _) and not one of " + " ".join(FIXED_COLUMNS + ROW_TAIL_COLUMNS)
            )
        if not isinstance(source, str) or not _valid_source(source):
            raise InvalidColumns(f"columns.{name}: {_SOURCE_RULE}")
    return dict(value)


def _valid_source(source: str) -> bool:
    match = _SOURCE.fullmatch(source)
    if match is None:
        return False
    scope, field = match.group(3), (match.group(4) or "").split(".")[0]
    if scope == "trace":
        return field not in _NOT_FROM_TRACE and "." not in match.group(4)
    return scope != "span" or field not in _NOT_FROM_SPAN


def column_value(trace: Mapping[str, Any], last_span: Mapping[str, Any], source: str) -> Any:
    """The value ``source`` names in the trace record (None when absent)."""
    scope, _, path = source.partition(".")
    if scope == "attributes":
        return (trace.get("attributes") or {}).get(path)
    value: Any = trace if scope == "trace" else last_span
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def review_row(
    trace: Trace | None,
    trace_id: str,
    now_iso: str,
    columns: Mapping[str, str] = DEFAULT_COLUMNS,
) -> DatasetRow:
    """A dataset row: the trace's latest answer and its mapped columns (under ``feedback``)."""
    spans = trace["spans"] if trace is not None else []
    last: Mapping[str, Any] = spans[-1] if spans else {}
    source: Mapping[str, Any] = trace if trace is not None else {}
    return {
        "row_id": trace_id,
        "trace_id": trace_id,
        "input": last.get("input"),
        "output": last.get("output"),
        "feedback": {name: column_value(source, last, src) for name, src in columns.items()},
        "annotation_status": "empty",
        "annotation": None,
        "added_at": now_iso,
    }


def lacks_content(row: Mapping[str, Any]) -> bool:
    """A row with neither input nor output: written before its trace's first span landed."""
    return row.get("input") is None and row.get("output") is None


def with_trace_content(
    row: dict[str, Any], trace: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The row with its trace's latest input and output, or None when the trace has none
    (not recorded yet, expired, or captured without bodies). Feedback columns stay as copied."""
    spans = (trace or {}).get("spans") or []
    last = spans[-1] if spans else {}
    if last.get("input") is None and last.get("output") is None:
        return None
    return {**row, "input": last.get("input"), "output": last.get("output")}


def csv_header(columns: list[str]) -> list[str]:
    """The CSV header for a dataset with these mapped columns (the default ones when none)."""
    return [*FIXED_COLUMNS, *(columns or DEFAULT_COLUMNS), *ROW_TAIL_COLUMNS]
