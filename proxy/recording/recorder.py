"""Watches one call from the side and turns it into a span record. Never raises.

The forwarding loop hands every chunk to the client first and to the recorder second. The
recorder keeps only what the record needs, bounded: the request body up to ``PARSE_CAP`` (to
read the model and the messages), the response through the endpoint's parser (SSE events as
they complete, or the JSON body up to ``PARSE_CAP``), captured text up to
``capture.max_bytes``. Compressed answers are inflated here, on the side, with a bound; the
client still gets the bytes as sent.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, NotRequired, TypedDict

import orjson

from proxy.config import CaptureSettings
from proxy.core.records import Output, Span, SpanRecord, iso_from_ms
from proxy.core.records import Usage as UsageRecord
from proxy.recording.providers.base import (
    EndpointParser,
    ParsedRequest,
    ParsedResponse,
    ResponseParser,
    Usage,
)
from proxy.recording.providers.registry import parser_for
from proxy.recording.sse import SSEDecoder
from proxy.tracing.context import TraceContext

# Largest body (request, or non-streamed response) kept whole for parsing; past it the record
# has sizes and timing but no model, usage or content.
PARSE_CAP = 8 * 1024 * 1024


class Recorder:
    __slots__ = (
        "_body",
        "_body_size",
        "_capture",
        "_decoder",
        "_inflater",
        "_parsed",
        "_parser",
        "_request",
        "_request_size",
        "_response",
        "context",
        "first_byte_at",
        "method",
        "path",
        "started_at",
        "started_wall",
        "stream",
        "upstream",
    )

    def __init__(
        self,
        capture: CaptureSettings,
        context: TraceContext,
        upstream: str,
        method: str,
        path: str,
        started_at: float,
    ) -> None:
        self._capture = capture
        self.context = context
        self.upstream, self.method, self.path = upstream, method, path
        self.started_at = started_at
        self.started_wall = time.time() - (time.perf_counter() - started_at)
        # With recording off there is nothing to parse: only sizes and timing are kept.
        self._parser: EndpointParser | None = parser_for(method, path) if capture.record else None
        self._request = bytearray()
        self._request_size = 0
        self._parsed: ParsedRequest | None = None
        self._response: ResponseParser | None = None
        self._decoder: SSEDecoder | None = None
        self._inflater: Any = None
        self._body = bytearray()
        self._body_size = 0
        self.stream = False
        self.first_byte_at: float | None = None

    def request_body(self, chunk: bytes) -> None:
        self._request_size += len(chunk)
        if self._capture.record and len(self._request) + len(chunk) <= PARSE_CAP:
            self._request += chunk

    def response_started(self, content_type: str, content_encoding: str) -> None:
        self.stream = content_type.startswith("text/event-stream")
        if self._parser is not None:
            self._response = self._parser.response_parser(self._capture.max_bytes)
            self._decoder = SSEDecoder() if self.stream else None
        encoding = content_encoding.strip().lower()
        if encoding in {"gzip", "deflate"}:
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding and encoding != "identity":
            self._response = None  # br, zstd…: sizes and timing only

    def response_chunk(self, chunk: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        self._body_size += len(chunk)
        if self._response is None:
            return
        data = self._inflate(chunk)
        if self._decoder is not None:
            for event in self._decoder.feed(data):
                self._response.feed_event(event)
        elif len(self._body) + len(data) <= PARSE_CAP:
            self._body += data
        else:
            self._response = None

    def _inflate(self, chunk: bytes) -> bytes:
        if self._inflater is None:
            return chunk
        try:
            return bytes(self._inflater.decompress(chunk, PARSE_CAP))
        except zlib.error:
            self._response = None
            return b""

    def record(
        self, attributes: dict[str, Any], status: int | None, error: str | None
    ) -> SpanRecord:
        """The span record for the writer (plain data; serialised in the writer's batch)."""
        context = self.context
        return {
            "id": f"span:{context.trace_id}:{context.span_id}",
            "kind": "span",
            "started_ms": int(self.started_wall * 1000),
            "trace": {
                "trace_id": context.trace_id,
                "name": context.name,
                "session_id": context.session_id,
                "user_id": context.user_id,
                "attributes": attributes,
                "tags": list(context.tags),
            },
            "span": self._span(status, error),
        }

    def _span(self, status: int | None, error: str | None) -> Span:
        context = self.context
        now = time.perf_counter()
        request = self._parse_request()
        response = self._finish_response()
        content = self._content(request, response)
        span: Span = {
            "span_id": context.span_id,
            "parent_span_id": context.parent_span_id,
            "upstream": self.upstream,
            "method": self.method,
            "path": self.path,
            "status": status,
            "started_at": iso_from_ms(self.started_wall * 1000),
            "duration_ms": round((now - self.started_at) * 1000, 3),
            "ttft_ms": self._ttft_ms(),
            "stream": self.stream,
            "model": request.model or response.model,
            "response_model": response.model,
            "finish_reason": response.finish_reason,
            "usage": _usage(response.usage),
            "raw_usage": response.raw_usage,
            "input": content["input"],
            "output": content["output"],
            "request_bytes": self._request_size,
            "response_bytes": self._body_size,
            "error": error or self._provider_error(response.error),
            "attributes": {},
            "tags": [],
        }
        if "input_truncated" in content:  # only when bodies are captured
            span["input_truncated"] = content["input_truncated"]
            span["output_truncated"] = content["output_truncated"]
        if context.client_span_id:
            span["client_span_id"] = context.client_span_id
        return span

    @property
    def response_bytes(self) -> int:
        return self._body_size

    def _ttft_ms(self) -> float | None:
        if not self.stream or self.first_byte_at is None:
            return None
        return round((self.first_byte_at - self.started_at) * 1000, 3)

    def request_input(self) -> dict[str, Any] | None:
        """The request's input as the endpoint parser read it (also with bodies not captured):
        what regeneration compares."""
        return self._parse_request().input

    @property
    def streaming(self) -> bool:
        """The answer was an event stream, or the request asked for one."""
        return self.stream or self._parse_request().stream

    def request_model(self) -> str | None:
        """The model the request body names (once the body is read); parsed once per call."""
        return self._parse_request().model

    def _parse_request(self) -> ParsedRequest:
        if self._parsed is None:
            if self._parser is None or self._request_size > len(self._request):
                self._parsed = ParsedRequest()
            else:
                self._parsed = self._parser.parse_request(bytes(self._request))
        return self._parsed

    def _finish_response(self) -> ParsedResponse:
        if self._response is None:
            return ParsedResponse()
        if self._decoder is None and self._body:
            self._response.feed_json(bytes(self._body))
        return self._response.result()

    def _provider_error(self, text: str | None) -> str | None:
        """The provider's ``"type: message"``; without bodies (``X-Capture: metadata``) only
        its type, since the message may quote the input. A message with no type: ``error``."""
        if text is None or self._capture.bodies:
            return text
        kind, sep, _ = text.partition(": ")
        return kind if sep and kind else "error"

    def _content(self, request: ParsedRequest, response: ParsedResponse) -> _Content:
        if not self._capture.bodies:
            return {"input": None, "output": None}
        input_, input_truncated = self._input(request)
        output: Output | None = None
        if self._response is not None:
            output = {"text": response.text, "tool_calls": response.tool_calls}
        return {
            "input": input_,
            "output": output,
            "input_truncated": input_truncated,
            "output_truncated": response.text_truncated,
        }

    def _input(self, request: ParsedRequest) -> tuple[dict[str, Any] | None, bool]:
        limit = self._capture.max_bytes
        if request.input is not None and self._request_size <= limit:
            return request.input, False
        if self._request_size == 0:
            return None, False
        text = bytes(self._request[:limit]).decode("utf-8", "replace")
        truncated = self._request_size > limit
        if not truncated:
            return {"body": _json_or_text(text)}, False
        return {"body": text}, True


class _Content(TypedDict):
    input: Any
    output: Output | None
    input_truncated: NotRequired[bool]
    output_truncated: NotRequired[bool]


def _usage(usage: Usage | None) -> UsageRecord | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def _json_or_text(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
