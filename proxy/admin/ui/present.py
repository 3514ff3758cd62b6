"""How the Monitor page shows record values: times, durations, money, JSON, messages, tool
calls and the span timeline. Pure (no aiohttp, no redis); the templates call these as filters.

Everything here returns plain text or numbers: the templates escape it (autoescape), so a
prompt holding ``<script>`` is shown as those characters, never run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

LONG_CHARS = 600
LONG_LINES = 12
PREVIEW_CHARS = 160
TIMELINE_WIDTH = 1000.0  # viewBox width of the timeline
TIMELINE_LABELS = 170.0  # the left part of it, where each span's number and model go
_BARS = TIMELINE_WIDTH - TIMELINE_LABELS - 10


def fmt_time(iso: Any) -> str:
    """``2026-11-26 12:00:03Z`` from a record's ISO time (milliseconds dropped)."""
    if not isinstance(iso, str) or len(iso) < 19:
        return "—" if iso is None else str(iso)
    return f"{iso[:10]} {iso[11:19]}Z"


def fmt_ms(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def fmt_cost(value: Any) -> str:
    """US dollars with the precision small calls need; ``—`` when unknown (never $0)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if value == 0:
        return "$0"
    if value < 0.0001:  # a short call of a cheap model: keep two significant digits
        return f"${value:.{1 - math.floor(math.log10(value))}f}"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def fmt_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def fmt_stat(value: Any) -> str:
    """A statistic (agreement, kappa, a correlation) to two decimals; ``—`` when it could not
    be computed (the API says null, never 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:.2f}"


def pretty_json(value: Any) -> str:
    """Indented JSON; a string that holds JSON (tool arguments often do) is decoded first."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return str(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return repr(value)


def is_long(text: Any) -> bool:
    """Whether a text should start folded."""
    return isinstance(text, str) and (len(text) > LONG_CHARS or text.count("\n") >= LONG_LINES)


def preview(text: Any, limit: int = PREVIEW_CHARS) -> str:
    """The start of a text on one line, for a folded block's summary or a table cell."""
    if not isinstance(text, str):
        return "" if text is None else preview(pretty_json(text), limit)
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Part:
    kind: str  # "text" or "json"
    text: str


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    parts: list[Part]


def messages(span_input: Any) -> list[Message]:
    """A span's input as messages: the provider's ``system``/``instructions`` first, then
    ``messages`` (or the Responses API's ``input``, or a completion's ``prompt``)."""
    if not isinstance(span_input, Mapping):
        return [] if span_input is None else [Message("input", [_part(span_input)])]
    found: list[Message] = []
    for key in ("system", "instructions"):
        if span_input.get(key) is not None:
            found.append(Message(key, _parts(span_input[key])))
    listed = span_input.get("messages", span_input.get("input"))
    if isinstance(listed, list):
        found += [_message(item) for item in listed]
    elif listed is not None:
        found.append(Message("user", _parts(listed)))
    if span_input.get("prompt") is not None:
        found.append(Message("prompt", _parts(span_input["prompt"])))
    return found


def _message(item: Any) -> Message:
    if not isinstance(item, Mapping):
        return Message("message", [_part(item)])
    role = str(item.get("role") or item.get("type") or "message")
    parts = _parts(item.get("content")) if "content" in item else []
    extra = {k: v for k, v in item.items() if k not in ("role", "content")}
    if extra and (not parts or set(extra) - {"name"}):
        parts.append(Part("json", pretty_json(extra)))
    return Message(role, parts)


def _parts(content: Any) -> list[Part]:
    if isinstance(content, list):
        return [_part(item) for item in content]
    return [] if content is None else [_part(content)]


def _part(item: Any) -> Part:
    if isinstance(item, str):
        return Part("text", item)
    if isinstance(item, Mapping) and isinstance(item.get("text"), str) and len(item) <= 3:
        return Part("text", item["text"])
    return Part("json", pretty_json(item))


@dataclass(frozen=True, slots=True)
class Repeat:
    """Messages shown in full in an earlier span (a chat resends its history every call)."""

    count: int
    span_index: int  # 1-based: the span where the first of them was shown
    span_id: str


def span_inputs(spans: Sequence[Mapping[str, Any]]) -> list[list[Message | Repeat]]:
    """Each span's input messages, where a message an earlier span showed (in its input, or
    as its answer) becomes part of one ``Repeat`` line: a 50-call conversation shows each
    message once, not 50 times."""
    shown: dict[bytes, tuple[int, str]] = {}
    result = []
    for index, span in enumerate(spans, start=1):
        items: list[Message | Repeat] = []
        for message in messages(span.get("input")):
            key = _fingerprint(message)
            if key not in shown:
                shown[key] = (index, str(span.get("span_id")))
                items.append(message)
            elif items and isinstance(items[-1], Repeat):
                items[-1] = Repeat(items[-1].count + 1, items[-1].span_index, items[-1].span_id)
            else:
                items.append(Repeat(1, *shown[key]))
        result.append(items)
        answer = (span.get("output") or {}).get("text")
        if isinstance(answer, str):
            answered = Message("assistant", [Part("text", answer)])
            shown.setdefault(_fingerprint(answered), (index, str(span.get("span_id"))))
    return result


def _fingerprint(message: Message) -> bytes:
    return orjson.dumps([message.role, [(p.kind, p.text) for p in message.parts]])


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # pretty JSON (or the raw text when it is not JSON)


def tool_calls(calls: Any) -> list[ToolCall]:
    """OpenAI (``function.name/arguments``), Responses (``name/arguments``) and Anthropic
    (``name/input``) tool calls, arguments pretty-printed."""
    found = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, Mapping):
            found.append(ToolCall("?", pretty_json(call)))
            continue
        nested = call.get("function")
        function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else call
        arguments = function.get("arguments", function.get("input", call.get("input")))
        found.append(ToolCall(str(function.get("name") or "?"), pretty_json(arguments)))
    return found


@dataclass(frozen=True, slots=True)
class TimelineRow:
    span_id: str
    label: str
    offset_ms: float
    duration_ms: float | None
    ttft_ms: float | None
    x: float  # bar geometry in viewBox units (TIMELINE_LABELS..TIMELINE_WIDTH)
    width: float
    ttft_x: float | None
    failed: bool


def timeline(spans: Sequence[Mapping[str, Any]]) -> list[TimelineRow]:
    """Each span's start offset from the first, duration and time to first token, scaled to
    one shared axis."""
    starts = [_epoch_ms(span.get("started_at")) for span in spans]
    first = min((s for s in starts if s is not None), default=0.0)
    ends = [
        (start or first) - first + _number(span.get("duration_ms"))
        for start, span in zip(starts, spans, strict=True)
    ]
    scale = _BARS / max([*ends, 1.0])
    return [
        _row(span, (start or first) - first, scale)
        for start, span in zip(starts, spans, strict=True)
    ]


def _row(span: Mapping[str, Any], offset: float, scale: float) -> TimelineRow:
    duration, ttft = _maybe(span.get("duration_ms")), _maybe(span.get("ttft_ms"))
    status = span.get("status")
    return TimelineRow(
        span_id=str(span.get("span_id")),
        label=str(span.get("model") or span.get("path") or span.get("span_id")),
        offset_ms=offset,
        duration_ms=duration,
        ttft_ms=ttft,
        x=TIMELINE_LABELS + offset * scale,
        width=max((duration or 0) * scale, 2.0),
        ttft_x=None if ttft is None else TIMELINE_LABELS + (offset + ttft) * scale,
        failed=bool(span.get("error")) or not isinstance(status, int) or status >= 400,
    )


def timeline_span_ms(rows: Sequence[TimelineRow]) -> float:
    """From the first span's start to the last span's end: the timeline's axis."""
    return max((row.offset_ms + (row.duration_ms or 0) for row in rows), default=0.0)


def _epoch_ms(iso: Any) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _maybe(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: Any) -> float:
    return _maybe(value) or 0.0


FILTERS = {
    "fmt_time": fmt_time,
    "fmt_ms": fmt_ms,
    "fmt_cost": fmt_cost,
    "fmt_number": fmt_number,
    "fmt_stat": fmt_stat,
    "pretty_json": pretty_json,
    "is_long": is_long,
    "preview": preview,
    "messages": messages,
    "tool_calls": tool_calls,
    "timeline_span_ms": timeline_span_ms,
}
