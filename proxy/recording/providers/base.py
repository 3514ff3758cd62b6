"""The one small protocol every provider endpoint parser implements.

A parser sees a call from the side: the request body once, then either the whole JSON response
body or the response's SSE events one by one. It must never raise (the recorder relies on it):
malformed input leaves fields ``None``. Usage semantics: a count the provider did not send is
``None``, never 0; cumulative counts (Anthropic's ``message_delta``, OpenAI's final usage chunk)
replace earlier values, they are never summed. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.recording.sse import SSEEvent


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them; ``None`` where it said nothing."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    # Prompt tokens served from (or written to) the provider's prompt cache, as it reported
    # them: OpenAI counts cached tokens inside ``input_tokens``, Anthropic beside them.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(slots=True)
class ParsedRequest:
    """What the record keeps of a request body."""

    model: str | None = None
    stream: bool = False
    input: dict[str, Any] | None = None  # e.g. {"messages": [...]} or {"prompt": ...}


@dataclass(slots=True)
class ParsedResponse:
    """What the record keeps of a response (JSON or streamed)."""

    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    raw_usage: dict[str, Any] | None = None
    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    text_truncated: bool = False
    error: str | None = None  # an error the provider reported inside a 200 stream


class ResponseParser(Protocol):
    """Accumulates one response. Never raises."""

    def feed_json(self, body: bytes) -> None: ...

    def feed_event(self, event: SSEEvent) -> None: ...

    def result(self) -> ParsedResponse: ...


class EndpointParser(Protocol):
    """One provider endpoint: parses its request and makes a response parser."""

    name: str

    def parse_request(self, body: bytes) -> ParsedRequest: ...

    def response_parser(self, max_text_bytes: int) -> ResponseParser: ...
