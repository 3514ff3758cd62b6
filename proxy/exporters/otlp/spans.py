"""A span entry as an OTLP span: a GenAI client span per proxied call.

Names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.provider.name``,
``gen_ai.operation.name``, ``gen_ai.usage.*``); docs/opentelemetry.md has the table. IDs are the
ones the proxy sent upstream in ``traceparent``, so the span joins the application's own trace.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.core.stream import StreamEntry as Entry
from proxy.core.stream import TraceFacts
from proxy.exporters.otlp.values import (
    attributes,
    known,
    set_value,
    span_id_bytes,
    trace_id_bytes,
    unix_nanos,
)
from proxy.recording.providers.registry import parser_for

# Endpoint parser name -> (gen_ai.operation.name, gen_ai.provider.name).
_OPERATIONS = {
    "openai_chat": ("chat", "openai"),
    "openai_completions": ("text_completion", "openai"),
    "openai_responses": ("chat", "openai"),
    "openai_embeddings": ("embeddings", "openai"),
    "anthropic_messages": ("chat", "anthropic"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a span is sent from: its upstream's host and port (server.address/port)."""

    address: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class _Shape:
    """What spans of one shape share: their name, kind, status and shared attributes, as the
    serialised bytes of a span holding only those. A span of the shape is these bytes followed
    by a small span with its own IDs, times and attributes: protobuf defines two concatenated
    messages as one merged message (repeated fields appended), so no copy is ever made."""

    template: bytes


# A shape is a template Span of ~6 KiB (measured: 10,000 shapes took 61 MiB of RSS), and the
# key holds token counts and the session, so real traffic makes new shapes all the time. 256
# keep the repeats of the moment (about 1.5 MiB) without filling the heap over the hours.
SHAPES_CACHED = 256


class ShapeCache:
    """Span shapes by the values they derive from. Calls repeat their operation, provider,
    model, server, status, token counts, cost, session and tags from call to call; merging the
    bytes of a span made once with those attributes is several times cheaper than building
    ~20 KeyValue messages per span, or copying a template span. Bounded: past ``limit``
    shapes it starts over."""

    def __init__(self, limit: int = SHAPES_CACHED) -> None:
        self._limit = limit
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

    def __len__(self) -> int:
        return len(self._shapes)

    def shape(self, key: tuple[Any, ...], make: Callable[[], _Shape]) -> _Shape:
        try:
            found = self._shapes.get(key)
        except TypeError:  # a malformed record with a list where a scalar belongs
            return make()
        if found is None:
            if len(self._shapes) >= self._limit:
                self._shapes.clear()
            found = self._shapes[key] = make()
        return found


def operation_of(method: str, path: str) -> tuple[str | None, str | None]:
    """(gen_ai.operation.name, gen_ai.provider.name) of a call, from the endpoint it reached."""
    parser = parser_for(method, path.partition("?")[0])
    return _OPERATIONS.get(parser.name, (None, None)) if parser is not None else (None, None)


def span_bytes(
    entry: Entry,
    facts: TraceFacts,
    targets: Mapping[str, Target],
    content: bool,
    cache: ShapeCache,
) -> bytes:
    """The serialised OTLP span of one recorded call (docs/opentelemetry.md)."""
    span = entry.data()
    usage = span.get("usage") or {}
    key = (
        span.get("method"), span.get("path"), span.get("upstream"), span.get("status"),
        span.get("stream"), span.get("model"), span.get("response_model"),
        span.get("finish_reason"), span.get("error"), usage.get("input_tokens"),
        usage.get("output_tokens"), span.get("cost_usd"), facts,
    )  # fmt: skip
    shape = cache.shape(key, lambda: _make_shape(span, facts, targets))
    start = unix_nanos(span.get("started_at"))
    duration = span.get("duration_ms")
    dur_ns = int(duration * 1_000_000) if isinstance(duration, (int, float)) else 0
    own = Span(
        trace_id=trace_id_bytes(entry.trace_id),
        span_id=span_id_bytes(str(span.get("span_id") or entry.span_id)),
        parent_span_id=span_id_bytes(span.get("parent_span_id")),
        start_time_unix_nano=start,
        end_time_unix_nano=start + dur_ns,
    )
    pairs = [
        ("feedback_proxy.trace_id", entry.trace_id),
        ("gen_ai.response.id", span.get("response_id")),
        ("feedback_proxy.ttft_ms", span.get("ttft_ms")),
    ]
    if content:
        pairs += _content_pairs(span)
    for name, raw in pairs:
        if known(raw):
            kv = own.attributes.add()
            kv.key = name
            set_value(kv.value, raw)
    serialised: bytes = own.SerializeToString()
    return shape.template + serialised


def _make_shape(
    span: Mapping[str, Any], facts: TraceFacts, targets: Mapping[str, Target]
) -> _Shape:
    method, path = str(span.get("method") or ""), str(span.get("path") or "")
    operation, provider = operation_of(method, path)
    model = span.get("model") or span.get("response_model")
    template = Span(
        name=f"{operation} {model}" if operation and model else (operation or method or "call"),
        kind=Span.SPAN_KIND_CLIENT,
        attributes=attributes(
            _span_pairs(span, operation, provider, targets.get(str(span.get("upstream"))))
            + _trace_pairs(facts)
        ),
    )
    if _failed(span):
        template.status.code = Status.STATUS_CODE_ERROR
        template.status.message = _error_type(span) or ""
    return _Shape(template.SerializeToString())


def span_message(
    entry: Entry, facts: TraceFacts, targets: Mapping[str, Target], content: bool
) -> Span:
    """One span as a message (``Encoder`` puts the bytes straight into a request)."""
    message: Span = Span.FromString(span_bytes(entry, facts, targets, content, ShapeCache()))
    return message


def _span_pairs(
    span: Mapping[str, Any], operation: str | None, provider: str | None, target: Target | None
) -> list[tuple[str, Any]]:
    usage = span.get("usage") or {}
    finish = span.get("finish_reason")
    status = span.get("status")
    return [
        ("gen_ai.operation.name", operation),
        ("gen_ai.provider.name", provider),
        ("gen_ai.request.model", span.get("model")),
        ("gen_ai.response.model", span.get("response_model")),
        ("gen_ai.response.finish_reasons", [finish] if finish else None),
        ("gen_ai.usage.input_tokens", usage.get("input_tokens")),
        ("gen_ai.usage.output_tokens", usage.get("output_tokens")),
        ("server.address", target.address if target else None),
        ("server.port", target.port if target else None),
        ("http.request.method", span.get("method")),
        ("http.response.status_code", status),
        ("error.type", _error_type(span)),
        ("feedback_proxy.upstream", span.get("upstream")),
        ("feedback_proxy.stream", span.get("stream")),
        ("feedback_proxy.cost_usd", span.get("cost_usd")),  # follows model and usage
    ]


def _trace_pairs(facts: TraceFacts) -> list[tuple[str, Any]]:
    return [
        ("session.id", facts.session_id),
        ("user.id", facts.user_id),
        ("feedback_proxy.trace_name", facts.name),
        ("feedback_proxy.tags", list(facts.tags)),
    ]


def _content_pairs(span: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Input messages as recorded, output as one assistant message (opt-in: may be personal)."""
    recorded = span.get("input")
    messages = recorded.get("messages") if isinstance(recorded, dict) else None
    output = span.get("output") or {}
    text = output.get("text")
    out = None
    if text is not None or output.get("tool_calls"):
        parts = [{"type": "text", "content": text}] if text is not None else []
        parts += [{"type": "tool_call", **call} for call in output.get("tool_calls") or ()]
        message = {"role": "assistant", "parts": parts, "finish_reason": span.get("finish_reason")}
        out = orjson.dumps([message]).decode()
    source = messages if messages is not None else recorded
    return [
        ("gen_ai.input.messages", None if source is None else orjson.dumps(source).decode()),
        ("gen_ai.output.messages", out),
    ]


def _failed(span: Mapping[str, Any]) -> bool:
    status = span.get("status")
    return bool(span.get("error")) or not isinstance(status, int) or status >= 400


# The proxy's own failure kinds (gateway/call.py, core/errors.py): exported as they are. Any
# other error text is the provider's own message, which is content (and unbounded): the
# attribute gets the status code instead, or the conventions' fallback "_OTHER".
PROXY_ERRORS = frozenset(
    {"upstream_timeout", "upstream_broken", "upstream_unreachable", "client_disconnected"}
)


def _error_type(span: Mapping[str, Any]) -> str | None:
    """``error.type``, low-cardinality as the semantic conventions ask: a proxy failure kind,
    else the HTTP status code, else ``_OTHER``; None for a call that did not fail."""
    if not _failed(span):
        return None
    error, status = span.get("error"), span.get("status")
    if error in PROXY_ERRORS:
        return str(error)
    return str(status) if isinstance(status, int) and status >= 400 else "_OTHER"
