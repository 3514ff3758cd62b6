"""Export shapes of one dataset row: JSONL in the OpenAI chat fine-tuning format, and CSV cells.

Pure functions of a row, so the admin API, the CLI and the web page export the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from proxy.datasets.columns import FIXED_COLUMNS, ROW_TAIL_COLUMNS


def chat_messages(row_input: Any) -> list[Any]:
    """The input as chat messages: OpenAI ``messages``, Anthropic ``system`` + ``messages``,
    Responses ``instructions`` + ``input``, or a bare completion ``prompt``."""
    if not isinstance(row_input, dict):
        return []
    messages: list[Any] = []
    system = row_input.get("system", row_input.get("instructions"))
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    for field in ("messages", "input", "prompt"):
        value = row_input.get(field)
        if isinstance(value, list):
            return messages + value
        if isinstance(value, str):
            return [*messages, {"role": "user", "content": value}]
    return messages


def output_text(row: dict[str, Any]) -> str:
    output = row.get("output")
    text = output.get("text") if isinstance(output, dict) else None
    return text if isinstance(text, str) else ""


def jsonl_line(row: dict[str, Any]) -> bytes:
    """One line of the OpenAI chat fine-tuning format, feedback and annotation as metadata."""
    metadata = {
        "trace_id": row.get("trace_id"),
        **(row.get("feedback") or {}),
        "annotation_status": row.get("annotation_status"),
        "annotation": row.get("annotation"),
    }
    messages = [
        *chat_messages(row.get("input")),
        {"role": "assistant", "content": output_text(row)},
    ]
    return orjson.dumps({"messages": messages, "metadata": metadata}) + b"\n"


def csv_record(row: dict[str, Any], header: Sequence[str]) -> list[str]:
    """The row's CSV cells under ``header`` (csv_header()); JSON text for input, annotation
    and structured column values, an empty cell for a missing one (never the text null)."""
    feedback = row.get("feedback") or {}
    mapped = header[len(FIXED_COLUMNS) : len(header) - len(ROW_TAIL_COLUMNS)]
    return [
        str(row.get("row_id") or ""),
        str(row.get("trace_id") or ""),
        _json_cell(row.get("input")),
        output_text(row),
        *(_cell(feedback.get(column)) for column in mapped),
        str(row.get("annotation_status") or ""),
        _json_cell(row.get("annotation")),
        str(row.get("added_at") or ""),
    ]


def _json_cell(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
