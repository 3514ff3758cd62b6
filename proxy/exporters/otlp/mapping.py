"""Stream entries to OTLP messages: a span entry becomes a GenAI client span, a feedback, score
or implicit entry one ``gen_ai.evaluation.result`` log record per evaluation it carries.

Names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.provider.name``,
``gen_ai.operation.name``, ``gen_ai.usage.*``, the evaluation event). A value the proxy does not
know is left out, never sent as 0 or "". IDs are the ones the proxy sent upstream in
``traceparent``, so the span joins the application's own trace. Pure: imports neither aiohttp
nor redis; the records come as plain data from ``proxy.store.event_stream``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.core.stream import StreamEntry as Entry
from proxy.core.stream import TraceFacts
from proxy.recording.providers.registry import parser_for
from proxy.tracing.context import w3c_span_id_for, w3c_trace_id_for

EVALUATION_EVENT = "gen_ai.evaluation.result"
SCOPE_NAME = "feedback-proxy"
_SEVERITY_INFO = 9  # SeverityNumber.SEVERITY_NUMBER_INFO

# Endpoint parser name -> (gen_ai.operation.name, gen_ai.provider.name).
_OPERATIONS = {
    "openai_chat": ("chat", "openai"),
    "openai_completions": ("text_completion", "openai"),
    "openai_responses": ("chat", "openai"),
    "openai_embeddings": ("embeddings", "openai"),
    "anthropic_messages": ("chat", "anthropic"),
}
# Feedback attribute -> the evaluation it is (gen_ai.evaluation.name), in record order.
_VOTE, _RATING = "user_feedback", "user_feedback_rating"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a span is sent from: its upstream's host and port (server.address/port)."""

    address: str
    port: int | None = None


# -- attribute values ------------------------------------------------------------------------


def _value(value: Any) -> AnyValue | None:
    """An OTLP AnyValue; None for None (absent, never a made-up zero)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list | tuple):
        items = [v for v in (_value(item) for item in value) if v is not None]
        return AnyValue(array_value=ArrayValue(values=items))
    return AnyValue(string_value=orjson.dumps(value).decode())


def _known(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, list | tuple) and not raw)


def _set_value(target: AnyValue, raw: Any) -> None:
    """Fill ``target`` in place (cheaper than building an AnyValue and copying it in)."""
    if isinstance(raw, bool):
        target.bool_value = raw
    elif isinstance(raw, int):
        target.int_value = raw
    elif isinstance(raw, float):
        target.double_value = raw
    elif isinstance(raw, str):
        target.string_value = raw
    else:
        target.CopyFrom(_value(raw) or AnyValue())


@dataclass(frozen=True, slots=True)
class _Shape:
    """What spans of one shape share: a span holding their attributes, name and status, which
    each span of the shape starts as a copy of."""

    template: Span


class ShapeCache:
    """Span shapes by the values they derive from. Calls repeat their operation, provider,
    model, server, status, token counts, session and tags from call to call; merging the
    library's copy of a span made once with those attributes is several times cheaper than
    building ~20 KeyValue messages per span. Bounded: past ``limit`` shapes it starts over."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

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


def attributes(pairs: Iterable[tuple[str, Any]]) -> list[KeyValue]:
    """KeyValues for the pairs whose value is known (None and empty lists left out)."""
    out = []
    for key, raw in pairs:
        if raw is None or (isinstance(raw, list | tuple) and not raw):
            continue
        value = _value(raw)
        if value is not None:
            out.append(KeyValue(key=key, value=value))
    return out


def resource(service_name: str, version: str) -> Resource:
    return Resource(
        attributes=attributes(
            [
                ("service.name", service_name),
                ("service.version", version),
                ("telemetry.sdk.name", SCOPE_NAME),
                ("telemetry.sdk.language", "python"),
            ]
        )
    )


# -- IDs and times ---------------------------------------------------------------------------


def trace_id_bytes(trace_id: str) -> bytes:
    """The 16 bytes of the W3C trace-id the proxy sent upstream for this trace."""
    return bytes.fromhex(w3c_trace_id_for(trace_id))


def span_id_bytes(span_id: str | None) -> bytes:
    """8 bytes for a span ID (a custom parent ID hashed the way trace IDs are); b"" for None."""
    return b"" if not span_id else bytes.fromhex(w3c_span_id_for(span_id))


def unix_nanos(iso: str | None) -> int:
    """Epoch nanoseconds of an ISO time stamp (``...Z``); 0 (unknown) when unreadable."""
    if not iso:
        return 0
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return 0
    return int(moment.timestamp() * 1_000_000) * 1000


# -- spans -----------------------------------------------------------------------------------


def operation_of(method: str, path: str) -> tuple[str | None, str | None]:
    """(gen_ai.operation.name, gen_ai.provider.name) of a call, from the endpoint it reached."""
    parser = parser_for(method, path.partition("?")[0])
    return _OPERATIONS.get(parser.name, (None, None)) if parser is not None else (None, None)


def fill_span(
    message: Span,
    entry: Entry,
    facts: TraceFacts,
    targets: Mapping[str, Target],
    content: bool,
    cache: ShapeCache,
) -> None:
    """Fill ``message`` with the OTLP span of one recorded call (docs/opentelemetry.md)."""
    span = entry.data
    usage = span.get("usage") or {}
    key = (
        span.get("method"), span.get("path"), span.get("upstream"), span.get("status"),
        span.get("stream"), span.get("model"), span.get("response_model"),
        span.get("finish_reason"), span.get("error"), usage.get("input_tokens"),
        usage.get("output_tokens"), facts,
    )  # fmt: skip
    shape = cache.shape(key, lambda: _make_shape(span, facts, targets))
    message.CopyFrom(shape.template)  # first: a copy replaces everything set before
    start = unix_nanos(span.get("started_at"))
    duration = span.get("duration_ms")
    message.trace_id = trace_id_bytes(entry.trace_id)
    message.span_id = span_id_bytes(str(span.get("span_id") or entry.span_id))
    message.parent_span_id = span_id_bytes(span.get("parent_span_id"))
    message.start_time_unix_nano = start
    dur_ns = int(duration * 1_000_000) if isinstance(duration, int | float) else 0
    message.end_time_unix_nano = start + dur_ns
    own = [
        ("feedback_proxy.trace_id", entry.trace_id),
        ("gen_ai.response.id", span.get("response_id")),
        ("feedback_proxy.ttft_ms", span.get("ttft_ms")),
        ("feedback_proxy.cost_usd", span.get("cost_usd")),
    ]
    if content:
        own += _content_pairs(span)
    for name, raw in own:
        if _known(raw):
            kv = message.attributes.add()
            kv.key = name
            _set_value(kv.value, raw)


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
    return _Shape(template)


def span_message(
    entry: Entry, facts: TraceFacts, targets: Mapping[str, Target], content: bool
) -> Span:
    """One span on its own (``Encoder`` fills them straight into a request)."""
    message = Span()
    fill_span(message, entry, facts, targets, content, ShapeCache())
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


def _error_type(span: Mapping[str, Any]) -> str | None:
    if not _failed(span):
        return None
    error = span.get("error")
    return str(error) if error else str(span.get("status") or "no_response")


# -- evaluation events -----------------------------------------------------------------------


def evaluation_records(entry: Entry, facts: TraceFacts, observed_ns: int) -> list[LogRecord]:
    """The ``gen_ai.evaluation.result`` records of a feedback, score or implicit entry."""
    target = entry.span_id or facts.latest_span_id
    if entry.type == "feedback":
        found = _feedback_evaluations(entry.data)
        when = entry.data.get("received_at")
    elif entry.type == "score":
        found = [_score_evaluation(entry.data)]
        when = entry.data.get("created_at")
    elif entry.type == "implicit":
        found = [_implicit_evaluation(entry.data)]
        when = entry.data.get("at")
    else:
        return []
    time_ns = unix_nanos(when) or observed_ns
    return [
        LogRecord(
            time_unix_nano=time_ns,
            observed_time_unix_nano=observed_ns,
            severity_number=_SEVERITY_INFO,  # type: ignore[arg-type]
            severity_text="INFO",
            event_name=EVALUATION_EVENT,
            trace_id=trace_id_bytes(entry.trace_id),
            span_id=span_id_bytes(target),
            attributes=attributes(
                [
                    ("event.name", EVALUATION_EVENT),
                    *pairs,
                    ("feedback_proxy.trace_id", entry.trace_id),
                    ("feedback_proxy.span_id", target),
                ]
            ),
        )
        for pairs in found
    ]


Pairs = list[tuple[str, Any]]


def _feedback_evaluations(event: Mapping[str, Any]) -> list[Pairs]:
    """A vote and a rating are two evaluations; an event with neither (a comment, a category)
    still is one, named ``user_feedback`` without a label, so nothing the user said is lost."""
    attrs = event.get("attributes") or {}
    common: Pairs = [
        ("gen_ai.evaluation.explanation", _text(attrs.get("user_feedback_comment"))),
        ("feedback_proxy.category", _text(attrs.get("user_feedback_category"))),
        ("feedback_proxy.reason", _text(attrs.get("feedback_reason"))),
        ("feedback_proxy.source", event.get("source")),
        ("feedback_proxy.feedback_id", event.get("feedback_id")),
        ("feedback_proxy.event_id", event.get("event_id")),
    ]
    found: list[Pairs] = []
    vote, rating = attrs.get(_VOTE), attrs.get(_RATING)
    if isinstance(vote, str):
        found.append([("gen_ai.evaluation.name", _VOTE), ("gen_ai.evaluation.score.label", vote)])
    if isinstance(rating, int | float) and not isinstance(rating, bool):
        found.append(
            [("gen_ai.evaluation.name", _RATING), ("gen_ai.evaluation.score.value", rating)]
        )
    if not found:
        found.append([("gen_ai.evaluation.name", _VOTE)])
    return [pairs + common for pairs in found]


def _score_evaluation(score: Mapping[str, Any]) -> Pairs:
    value = score.get("value")
    return [
        ("gen_ai.evaluation.name", score.get("name")),
        ("gen_ai.evaluation.score.value", float(value) if isinstance(value, int | float) else None),
        ("gen_ai.evaluation.score.label", _text(score.get("label"))),
        ("gen_ai.evaluation.explanation", _text(score.get("explanation"))),
        ("feedback_proxy.score_id", score.get("score_id")),
        ("feedback_proxy.source", score.get("source")),
    ]


def _implicit_evaluation(signal: Mapping[str, Any]) -> Pairs:
    return [
        ("gen_ai.evaluation.name", "implicit_feedback"),
        ("gen_ai.evaluation.score.label", _text(signal.get("signal"))),
        ("feedback_proxy.by_span_id", signal.get("by_span_id")),
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- requests --------------------------------------------------------------------------------


class Encoder:
    """Entries to export requests, with one attribute cache for the exporter's life."""

    def __init__(
        self, targets: Mapping[str, Target], content: bool, service_name: str, version: str
    ) -> None:
        self._targets = targets
        self._content = content
        self._resource = resource(service_name, version)
        self._scope = InstrumentationScope(name=SCOPE_NAME, version=version)
        self._cache = ShapeCache()

    def spans(
        self, entries: Iterable[Entry], facts: Mapping[str, TraceFacts]
    ) -> ExportTraceServiceRequest:
        """One request with the span of every ``span`` entry, in stream order."""
        request = self.new_traces()
        self.add_spans(request, entries, facts)
        return request

    def new_traces(self) -> ExportTraceServiceRequest:
        """An empty request under this exporter's resource and scope."""
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.CopyFrom(self._resource)
        resource_spans.scope_spans.add().scope.CopyFrom(self._scope)
        return request

    def add_spans(
        self,
        request: ExportTraceServiceRequest,
        entries: Iterable[Entry],
        facts: Mapping[str, TraceFacts],
    ) -> int:
        """Append the spans of ``entries`` (the exporter adds a batch in slices, giving the
        event loop back in between); how many spans the request holds now."""
        spans = request.resource_spans[0].scope_spans[0].spans
        for entry in entries:
            if entry.type == "span":
                known = entry.trace or facts.get(entry.trace_id) or TraceFacts()
                fill_span(spans.add(), entry, known, self._targets, self._content, self._cache)
        return len(spans)

    def logs(
        self, entries: Iterable[Entry], facts: Mapping[str, TraceFacts], observed_ns: int
    ) -> ExportLogsServiceRequest:
        """One request with the evaluation records of the other entries (unknown types: none)."""
        records: list[LogRecord] = []
        for entry in entries:
            if entry.type != "span":
                known = facts.get(entry.trace_id) or TraceFacts()
                records += evaluation_records(entry, known, observed_ns)
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.CopyFrom(self._resource)
        scope = resource_logs.scope_logs.add()
        scope.scope.CopyFrom(self._scope)
        scope.log_records.extend(records)
        return request
