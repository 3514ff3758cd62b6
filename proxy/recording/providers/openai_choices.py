"""The part OpenAI chat completions and (legacy) completions share (pure).

Both answer with a JSON object carrying ``model``, ``choices[]`` and ``usage``, or stream the same
object shape as ``data: {...}`` chunks ending in ``data: [DONE]``. Only choice index 0 is
recorded. Streamed usage arrives only in a final chunk with ``choices: []`` when the request set
``stream_options.include_usage``; every other chunk carries ``"usage": null``, so without it the
usage stays ``None``. A later usage object replaces an earlier one.
"""

from __future__ import annotations

from proxy.recording.providers.base import ParsedResponse
from proxy.recording.providers.fields import (
    JSON,
    TextBuffer,
    as_dict,
    error_text,
    get_dict,
    get_int,
    get_list,
    get_str,
    loads_object,
    usage_from,
)
from proxy.recording.sse import SSEEvent

DONE = "[DONE]"


class ChoicesResponseParser:
    """Accumulates one response; subclasses read the text (and tool calls) from a choice."""

    def __init__(self, max_text_bytes: int) -> None:
        self._max_text_bytes = max_text_bytes
        self._text = TextBuffer(max_text_bytes)
        self._model: str | None = None
        self._finish_reason: str | None = None
        self._raw_usage: JSON | None = None
        self._error: str | None = None

    def feed_json(self, body: bytes) -> None:
        obj = loads_object(body)
        if obj is not None:
            self._object(obj, streamed=False)

    def feed_event(self, event: SSEEvent) -> None:
        if event.data.strip() == DONE:
            return
        obj = loads_object(event.data)
        if obj is None:
            return
        if event.event == "error":
            self._error = error_text(obj.get("error", obj)) or self._error
            return
        self._object(obj, streamed=True)

    def result(self) -> ParsedResponse:
        return ParsedResponse(
            model=self._model,
            finish_reason=self._finish_reason,
            usage=usage_from(self._raw_usage, "prompt_tokens", "completion_tokens"),
            raw_usage=self._raw_usage,
            text=self._text.value(),
            tool_calls=self._tool_calls(),
            text_truncated=self._truncated(),
            error=self._error,
        )

    def _object(self, obj: JSON, *, streamed: bool) -> None:
        self._model = get_str(obj, "model") or self._model
        self._raw_usage = get_dict(obj, "usage") or self._raw_usage
        self._error = error_text(obj.get("error")) or self._error
        choice = first_choice(obj)
        if choice is None:
            return
        self._finish_reason = get_str(choice, "finish_reason") or self._finish_reason
        self._choice(choice, streamed=streamed)

    def _choice(self, choice: JSON, *, streamed: bool) -> None:
        """Read text (and tool calls) from choice 0 of a JSON body or of one chunk."""

    def _tool_calls(self) -> list[JSON]:
        return []

    def _truncated(self) -> bool:
        return self._text.truncated


def first_choice(obj: JSON) -> JSON | None:
    """The choice with index 0 (or no index) in ``obj["choices"]``."""
    for item in get_list(obj, "choices"):
        choice = as_dict(item)
        if choice is not None and get_int(choice, "index") in (0, None):
            return choice
    return None
