"""The event stream as its readers see it: one decoded entry, and the trace facts beside it.

The store writes the stream (``type`` span, feedback, score or implicit, with ``trace_id``,
``span_id`` and JSON ``data``) and ``proxy.store.event_stream`` reads it back into these
shapes; exporters map them. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """What a span entry does not carry: the trace's own fields, as Redis holds them now."""

    name: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    latest_span_id: str | None = None  # the target of trace-level feedback


@dataclass(slots=True)  # not frozen: built per entry read, and a frozen __init__ costs more
class StreamEntry:
    """One event-stream entry. ``raw`` is its ``data`` JSON, decoded by ``data()`` only when
    the entry is mapped: a batch waits up to a second for more entries, and thousands of
    decoded objects held that long would live on into the garbage collector's old
    generations, which are expensive to collect."""

    entry_id: str
    type: str
    trace_id: str
    span_id: str | None
    raw: bytes = b"{}"
    trace: TraceFacts | None = None  # span entries carry the trace fields their call sent

    def data(self) -> Mapping[str, Any]:
        """The decoded data (empty when it is not a JSON object); decoded on every call."""
        try:
            found = orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            return {}
        return found if isinstance(found, dict) else {}


def entry_id_order(entry_id: str) -> tuple[int, int]:
    """A stream ID (``<ms>-<seq>``) as a sortable pair; (0, 0) for anything else."""
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0
