"""Record shapes: what the recorder and the feedback service hand the writer, and time stamps.

Pure: imports neither aiohttp nor redis. How a stored trace reads back is ``store.trace_read``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

# Trace-level feedback attributes that get an index of their own (dimension name, attribute
# key); also the default columns of a dataset row.
INDEXED_ATTRIBUTES = (
    ("feedback", "user_feedback"),
    ("category", "user_feedback_category"),
    ("reason", "feedback_reason"),
    ("rating", "user_feedback_rating"),
)


def iso_from_ms(ms: float) -> str:
    """``2026-11-26T12:00:00.000Z`` from epoch milliseconds (runs for every span)."""
    seconds, millis = divmod(int(ms), 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
