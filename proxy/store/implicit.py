"""Implicit signals on Redis: what the span batch adds for them, and what follows it.

Detection rides on the span write, off the response path. A call without a session adds four
arguments to its own ``record_span.lua`` (the trace's latest span per input hash lives in the
trace hash): no command, no round trip. A call with a session also queues
``implicit_session.lua`` on the session's inputs hash in the same pipeline (one more command,
still no more round trips); only when that finds a repeat in another trace does a third round
trip mark the earlier trace (``mark_implicit.lua``). Every signal is then counted once in its
trace's hour (``implicit_count.lua``, deduplicated) and put on the event stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.core.records import SpanRecord, iso_from_ms
from proxy.store.keys import Keys
from proxy.store.scripting import queue_script
from proxy.store.stats import HOUR_MS, hour_of

SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Signal:
    """One implicit signal to count and publish: recorded on ``span_id`` of ``trace_id``."""

    trace_id: str
    created_ms: int  # the trace's creation time: the stats hour it counts in
    span_id: str
    signal: str
    model: str
    upstream: str
    data: bytes  # the signal JSON ({signal, at, by_span_id})
    new: bool  # recorded by this span, also on its replay (False: another span's, not published)


def span_args(record: SpanRecord, window_ms: int, prefix: str, now_ms: int) -> tuple[Any, ...]:
    """The arguments record_span.lua takes after its index names (see its header); ``prefix``
    is the implicit index name prefix."""
    return (
        record.get("input_hash", ""), window_ms, iso_from_ms(now_ms), prefix,
        record["span"].get("upstream") or "",
    )  # fmt: skip


def session_command(
    record: SpanRecord, window_s: int, keys: Keys
) -> tuple[tuple[str, ...], tuple[Any, ...]] | None:
    """(KEYS, ARGV) of implicit_session.lua for a call with a session and an input, else None."""
    session, digest = record["trace"].get("session_id"), record.get("input_hash")
    if not session or not digest:
        return None
    span = record["span"]
    value = SEP.join((record["trace"]["trace_id"], span["span_id"], str(record["started_ms"]),
                      span.get("model") or "", span.get("upstream") or ""))  # fmt: skip
    args = (digest, value, record["trace"]["trace_id"], record["started_ms"], window_s * 1000,
            window_s)  # fmt: skip
    return (keys.session_inputs(session),), args


def stopped_signal(record: SpanRecord, created_ms: int) -> Signal | None:
    """The span's own ``stopped`` signal (set by the recorder), if it has one; published on a
    replay too (counted idempotently)."""
    span = record["span"]
    for signal in span.get("implicit") or ():
        if signal["signal"] == "stopped":
            return Signal(record["trace"]["trace_id"], created_ms, span["span_id"], "stopped",
                          span.get("model") or "", span.get("upstream") or "",
                          orjson.dumps(signal), True)  # fmt: skip
    return None


def regenerated_signal(trace_id: str, created_ms: int, reply: list[Any]) -> Signal:
    """A same-trace regeneration as record_span.lua returns it (earlier span, model,
    upstream, signal JSON), for a new span or the replay of the span that recorded it."""
    span_id, model, upstream, data = (part.decode() for part in reply)
    return Signal(trace_id, created_ms, span_id, "regenerated", model, upstream,
                  data.encode(), True)  # fmt: skip


def session_signal_json(record: SpanRecord, now_ms: int) -> bytes:
    return orjson.dumps(
        {
            "signal": "regenerated",
            "at": iso_from_ms(now_ms),
            "by_span_id": record["span"]["span_id"],
        }
    )


def queue_count(pipe: Any, sha: str, keys: Keys, signal: Signal, retention_s: int) -> None:
    """Queue implicit_count.lua: the signal counts once in its trace's creation hour."""
    hour = hour_of(signal.created_ms)
    member = SEP.join((signal.trace_id, signal.span_id, signal.signal))
    expire_at = (hour + HOUR_MS) // 1000 + retention_s
    queue_script(pipe, sha, (keys.stats_counts(hour), keys.implicit_seen(hour)), member,
                 signal.signal, signal.model, signal.upstream, expire_at)  # fmt: skip


def stream_entry(signal: Signal) -> dict[Any, Any]:
    """The event-stream entry: type implicit, the trace, the span it concerns, the signal."""
    return {"type": "implicit", "trace_id": signal.trace_id, "span_id": signal.span_id,
            "data": signal.data}  # fmt: skip
