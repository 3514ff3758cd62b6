"""Stream entries to export requests: a span entry becomes a GenAI client span (``spans``), a
feedback, score or implicit entry one ``gen_ai.evaluation.result`` log record per evaluation
it carries (``evaluations``); ``values`` has the conversions both use.

Pure: imports neither aiohttp nor redis; the entries come as plain data from
``proxy.store.event_stream``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    InstrumentationScope,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from proxy.core.stream import StreamEntry as Entry
from proxy.core.stream import TraceFacts
from proxy.exporters.otlp.evaluations import EVALUATION_EVENT, evaluation_records
from proxy.exporters.otlp.spans import ShapeCache, Target, span_bytes, span_message
from proxy.exporters.otlp.values import SCOPE_NAME, length_delimited, resource, unix_nanos

__all__ = [
    "EVALUATION_EVENT",
    "Encoder",
    "Target",
    "evaluation_records",
    "span_message",
    "unix_nanos",
]


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
        # ResourceSpans.resource (field 1) and ScopeSpans.scope (field 1), serialised once.
        self._resource_bytes = length_delimited(1, self._resource.SerializeToString())
        self._scope_bytes = length_delimited(1, self._scope.SerializeToString())

    def spans(
        self, entries: Iterable[Entry], facts: Mapping[str, TraceFacts]
    ) -> ExportTraceServiceRequest:
        """One request with the span of every ``span`` entry, in stream order."""
        spans: list[bytes] = []
        self.add_spans(spans, entries, facts)
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
            self.traces_payload(spans)
        )
        return request

    def add_spans(
        self, spans: list[bytes], entries: Iterable[Entry], facts: Mapping[str, TraceFacts]
    ) -> int:
        """Append the serialised spans of ``entries`` (the exporter adds a batch in slices,
        giving the event loop back in between); how many spans ``spans`` holds now."""
        for entry in entries:
            if entry.type == "span":
                known = entry.trace or facts.get(entry.trace_id) or TraceFacts()
                spans.append(span_bytes(entry, known, self._targets, self._content, self._cache))
        return len(spans)

    def traces_payload(self, spans: list[bytes]) -> bytes:
        """The serialised ExportTraceServiceRequest of ``spans``, under this exporter's
        resource and scope.

        Built from serialised messages: a repeated message field is each element's bytes
        behind its field tag and length, which is all ``length_delimited`` writes. Parsing
        this with opentelemetry-proto gives the request that adding every span to the message
        would, without building (and then serialising) a message per span."""
        scope_spans = self._scope_bytes + b"".join(length_delimited(2, span) for span in spans)
        resource_spans = self._resource_bytes + length_delimited(2, scope_spans)
        return length_delimited(1, resource_spans)  # ExportTraceServiceRequest.resource_spans

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
