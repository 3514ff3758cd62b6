"""OpenAI Responses API, ``POST .../responses`` (pure).

Request: ``input``, ``instructions`` and ``tools`` are the input. JSON response: the text is the
``output_text`` parts of ``message`` output items; ``function_call`` items are the tool calls, as
sent; ``finish_reason`` is ``incomplete_details.reason`` when present, else ``status``; usage is
``input_tokens``/``output_tokens``/``total_tokens``.

Stream: typed events. Text comes from ``response.output_text.delta``; tool calls from the
complete items of ``response.output_item.done``; model, status, usage and error from the full
``response`` object that ``response.created``, ``response.in_progress``, ``response.completed``,
``response.incomplete`` and ``response.failed`` carry; an ``error`` event sets the error.
"""

from __future__ import annotations

from proxy.recording.providers.base import (
    EndpointParser,
    ParsedRequest,
    ParsedResponse,
    ResponseParser,
)
from proxy.recording.providers.fields import (
    JSON,
    TextBuffer,
    as_dict,
    error_text,
    get_dict,
    get_list,
    get_str,
    loads_object,
    request_fields,
    usage_from,
)
from proxy.recording.sse import SSEEvent

_RESPONSE_EVENTS = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)


class ResponsesResponseParser:
    def __init__(self, max_text_bytes: int) -> None:
        self._text = TextBuffer(max_text_bytes)
        self._model: str | None = None
        self._finish_reason: str | None = None
        self._raw_usage: JSON | None = None
        self._error: str | None = None
        self._tool_calls: list[JSON] = []

    def feed_json(self, body: bytes) -> None:
        response = loads_object(body)
        if response is None:
            return
        self._response(response)
        for item in get_list(response, "output"):
            self._output_item(as_dict(item), with_text=True)

    def feed_event(self, event: SSEEvent) -> None:
        data = loads_object(event.data)
        if data is None:
            return
        kind = get_str(data, "type") or event.event
        if kind == "response.output_text.delta":
            self._text.append(data.get("delta"))
        elif kind == "response.output_item.done":
            self._output_item(get_dict(data, "item"), with_text=False)
        elif kind in _RESPONSE_EVENTS:
            self._response(get_dict(data, "response"))
        elif kind == "error":
            self._error = error_text(data.get("error", data)) or self._error

    def result(self) -> ParsedResponse:
        return ParsedResponse(
            model=self._model,
            finish_reason=self._finish_reason,
            usage=usage_from(self._raw_usage, "input_tokens", "output_tokens"),
            raw_usage=self._raw_usage,
            text=self._text.value(),
            tool_calls=list(self._tool_calls),
            text_truncated=self._text.truncated,
            error=self._error,
        )

    def _response(self, response: JSON | None) -> None:
        """Model, status, usage and error from a whole response object."""
        if response is None:
            return
        self._model = get_str(response, "model") or self._model
        self._raw_usage = get_dict(response, "usage") or self._raw_usage
        self._error = error_text(response.get("error")) or self._error
        reason = get_str(get_dict(response, "incomplete_details"), "reason")
        self._finish_reason = reason or get_str(response, "status") or self._finish_reason

    def _output_item(self, item: JSON | None, *, with_text: bool) -> None:
        kind = get_str(item, "type")
        if item is not None and kind == "function_call":
            self._tool_calls.append(item)
        elif kind == "message" and with_text:
            for part in get_list(item, "content"):
                part_dict = as_dict(part)
                if get_str(part_dict, "type") == "output_text" and part_dict is not None:
                    self._text.append(part_dict.get("text"))


class OpenAIResponses:
    name = "openai_responses"

    def parse_request(self, body: bytes) -> ParsedRequest:
        return request_fields(body, ("input", "instructions", "tools"))

    def response_parser(self, max_text_bytes: int) -> ResponseParser:
        return ResponsesResponseParser(max_text_bytes)


PARSER: EndpointParser = OpenAIResponses()
