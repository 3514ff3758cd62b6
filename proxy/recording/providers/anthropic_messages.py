"""Anthropic messages, ``POST .../messages`` (pure).

Request: ``messages``, ``system`` and ``tools`` are the input. JSON response: ``text`` blocks are
the text, ``tool_use`` blocks the tool calls (``{id, name, input}``), ``stop_reason`` the finish
reason, usage ``input_tokens``/``output_tokens`` with ``total_tokens`` their sum only when both
are known (both count uncached tokens only); ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` are the cache counts. ``raw_usage`` is the provider's object.

Stream: ``message_start`` gives the model and the input tokens; its ``output_tokens`` is a
placeholder and is not used. ``content_block_start``/``content_block_delta`` build the blocks:
``text_delta`` pieces are the text, ``input_json_delta.partial_json`` pieces are concatenated per
block index and parsed as JSON at the end (kept as the string if they do not parse).
``message_delta`` carries the stop reason and CUMULATIVE usage: each count it has replaces the
earlier one, never adds to it. An ``error`` event sets the error. ``raw_usage`` is the
``message_start`` usage updated by each ``message_delta`` usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.recording.providers.base import (
    EndpointParser,
    ParsedRequest,
    ParsedResponse,
    ResponseParser,
    Usage,
)
from proxy.recording.providers.fields import (
    JSON,
    TextBuffer,
    as_dict,
    error_text,
    get_dict,
    get_int,
    get_list,
    get_str,
    loads,
    loads_object,
    request_fields,
)
from proxy.recording.sse import SSEEvent


@dataclass(slots=True)
class ToolUseDraft:
    """A streamed ``tool_use`` block: its input arrives as pieces of JSON text."""

    id: str | None
    name: str | None
    initial_input: Any
    partial_json: TextBuffer

    def as_json(self) -> JSON:
        text = self.partial_json.value()
        tool_input = self.initial_input if text is None else parse_or_keep(text)
        return {"id": self.id, "name": self.name, "input": tool_input}


def parse_or_keep(text: str) -> Any:
    """The JSON value of ``text``, or ``text`` itself if it is not valid JSON."""
    value = loads(text)
    return text if value is None and text.strip() != "null" else value


def replace(old: int | None, new: int | None) -> int | None:
    """A cumulative count: the new value when there is one (0 included), else the old."""
    return old if new is None else new


class MessagesResponseParser:
    def __init__(self, max_text_bytes: int) -> None:
        self._max_text_bytes = max_text_bytes
        self._text = TextBuffer(max_text_bytes)
        self._model: str | None = None
        self._finish_reason: str | None = None
        self._raw_usage: JSON | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._error: str | None = None
        self._tool_calls: list[JSON] = []
        self._tool_drafts: dict[int, ToolUseDraft] = {}

    def feed_json(self, body: bytes) -> None:
        message = loads_object(body)
        if message is None:
            return
        self._error = error_text(message.get("error")) or self._error
        self._model = get_str(message, "model") or self._model
        self._finish_reason = get_str(message, "stop_reason") or self._finish_reason
        self._usage(get_dict(message, "usage"), with_output=True)
        for item in get_list(message, "content"):
            self._block(as_dict(item))

    def feed_event(self, event: SSEEvent) -> None:
        data = loads_object(event.data)
        if data is None:
            return
        kind = get_str(data, "type") or event.event
        if kind == "content_block_delta":
            self._block_delta(get_int(data, "index"), get_dict(data, "delta"))
        elif kind == "content_block_start":
            self._block_start(get_int(data, "index"), get_dict(data, "content_block"))
        elif kind == "message_start":
            self._message_start(get_dict(data, "message"))
        elif kind == "message_delta":
            delta = get_dict(data, "delta")
            self._finish_reason = get_str(delta, "stop_reason") or self._finish_reason
            self._usage(get_dict(data, "usage"), with_output=True)
        elif kind == "error":
            self._error = error_text(data.get("error", data)) or self._error

    def result(self) -> ParsedResponse:
        usage = None
        if self._raw_usage is not None:
            usage = Usage(
                self._input_tokens,
                self._output_tokens,
                self._total_tokens(),
                cache_read_tokens=get_int(self._raw_usage, "cache_read_input_tokens"),
                cache_write_tokens=get_int(self._raw_usage, "cache_creation_input_tokens"),
            )
        drafts = [self._tool_drafts[index].as_json() for index in sorted(self._tool_drafts)]
        truncated = self._text.truncated or any(
            d.partial_json.truncated for d in self._tool_drafts.values()
        )
        return ParsedResponse(
            model=self._model,
            finish_reason=self._finish_reason,
            usage=usage,
            raw_usage=self._raw_usage,
            text=self._text.value(),
            tool_calls=self._tool_calls + drafts,
            text_truncated=truncated,
            error=self._error,
        )

    def _total_tokens(self) -> int | None:
        if self._input_tokens is None or self._output_tokens is None:
            return None
        return self._input_tokens + self._output_tokens

    def _usage(self, usage: JSON | None, *, with_output: bool) -> None:
        """Merge a usage object: each count present replaces the one before."""
        if usage is None:
            return
        present = {key: value for key, value in usage.items() if value is not None}
        self._raw_usage = {**(self._raw_usage or {}), **present}
        self._input_tokens = replace(self._input_tokens, get_int(usage, "input_tokens"))
        if with_output:
            self._output_tokens = replace(self._output_tokens, get_int(usage, "output_tokens"))

    def _message_start(self, message: JSON | None) -> None:
        self._model = get_str(message, "model") or self._model
        self._usage(get_dict(message, "usage"), with_output=False)

    def _block(self, block: JSON | None) -> None:
        kind = get_str(block, "type")
        if kind == "text" and block is not None:
            self._text.append(block.get("text"))
        elif kind == "tool_use" and block is not None:
            tool_call = {"id": get_str(block, "id"), "name": get_str(block, "name")}
            self._tool_calls.append({**tool_call, "input": block.get("input")})

    def _block_start(self, index: int | None, block: JSON | None) -> None:
        if get_str(block, "type") != "tool_use" or block is None or index is None:
            self._block(block)  # a text block may start with text already
            return
        self._tool_drafts[index] = ToolUseDraft(
            id=get_str(block, "id"),
            name=get_str(block, "name"),
            initial_input=block.get("input"),
            partial_json=TextBuffer(self._max_text_bytes),
        )

    def _block_delta(self, index: int | None, delta: JSON | None) -> None:
        kind = get_str(delta, "type")
        if kind == "text_delta" and delta is not None:
            self._text.append(delta.get("text"))
        elif kind == "input_json_delta" and delta is not None and index in self._tool_drafts:
            self._tool_drafts[index].partial_json.append(delta.get("partial_json"))


class AnthropicMessages:
    name = "anthropic_messages"

    def parse_request(self, body: bytes) -> ParsedRequest:
        return request_fields(body, ("messages", "system", "tools"))

    def response_parser(self, max_text_bytes: int) -> ResponseParser:
        return MessagesResponseParser(max_text_bytes)


PARSER: EndpointParser = AnthropicMessages()
