"""Record shapes: what a span record holds, and how a stored trace reads back (SPEC §5).

Pure: imports neither aiohttp nor redis. Redis hands back bytes; this module turns them into
the documented JSON shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def iso_from_ms(ms: float) -> str:
    """``2026-11-26T12:00:00.000Z`` from epoch milliseconds."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def assemble_trace(
    trace: dict[bytes, bytes],
    spans: dict[bytes, bytes],
    attributes: dict[bytes, bytes],
    tags: set[bytes],
    models: set[bytes],
) -> dict[str, Any]:
    """One trace as ``GET /api/traces/{id}`` returns it, spans in the order they started."""
    span_list = sorted((orjson.loads(s) for s in spans.values()), key=lambda s: s["started_at"])
    return {
        "trace_id": _text(trace.get(b"trace_id")),
        "name": _text(trace.get(b"name")),
        "session_id": _text(trace.get(b"session_id")),
        "user_id": _text(trace.get(b"user_id")),
        "created_at": iso_from_ms(int(trace[b"created_ms"])),
        "updated_at": iso_from_ms(int(trace[b"updated_ms"])),
        "attributes": {k.decode(): orjson.loads(v) for k, v in sorted(attributes.items())},
        "tags": sorted(t.decode() for t in tags),
        "annotation_status": _text(trace.get(b"annotation_status")),
        "feedback": [],
        "models": sorted(m.decode() for m in models),
        "span_count": int(trace.get(b"span_count", 0)),
        "spans": span_list,
    }
