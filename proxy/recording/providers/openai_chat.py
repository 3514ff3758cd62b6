"""OpenAI chat completions, ``POST .../chat/completions`` (pure).

Request: ``messages`` (and ``tools``) are the input. JSON response: ``choices[0].message``;
``content`` is a string or a list of parts (the ``text`` parts are joined); ``tool_calls`` are
kept as sent. Stream: ``delta.content`` pieces are concatenated; ``delta.tool_calls`` are
fragments keyed by ``index`` whose ``function.arguments`` are concatenated, with id, type and
name taken from the first fragment that has them. Tool-call arguments are capped like the text,
and overflowing either sets ``text_truncated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.recording.providers.base import EndpointParser, ParsedRequest, ResponseParser
from proxy.recording.providers.fields import (
    JSON,
    TextBuffer,
    as_dict,
    get_dict,
    get_int,
    get_list,
    get_str,
    request_fields,
)
from proxy.recording.providers.openai_choices import ChoicesResponseParser


@dataclass(slots=True)
class ToolCallDraft:
    """One streamed tool call being assembled from its fragments."""

    arguments: TextBuffer
    id: str | None = None
    type: str | None = None
    name: str | None = None

    def add(self, fragment: JSON) -> None:
        function = get_dict(fragment, "function")
        self.id = self.id or get_str(fragment, "id")
        self.type = self.type or get_str(fragment, "type")
        self.name = self.name or get_str(function, "name")
        self.arguments.append(function.get("arguments") if function else None)

    def as_json(self) -> JSON:
        function = {"name": self.name, "arguments": self.arguments.value() or ""}
        return {"id": self.id, "type": self.type or "function", "function": function}


class ChatResponseParser(ChoicesResponseParser):
    def __init__(self, max_text_bytes: int) -> None:
        super().__init__(max_text_bytes)
        self._sent_tool_calls: list[JSON] = []
        self._drafts: dict[int, ToolCallDraft] = {}

    def _choice(self, choice: JSON, *, streamed: bool) -> None:
        if streamed:
            self._delta(get_dict(choice, "delta"))
        else:
            self._message(get_dict(choice, "message"))

    def _message(self, message: JSON | None) -> None:
        append_content(self._text, message.get("content") if message else None)
        self._sent_tool_calls = [c for c in get_list(message, "tool_calls") if as_dict(c)]

    def _delta(self, delta: JSON | None) -> None:
        append_content(self._text, delta.get("content") if delta else None)
        for item in get_list(delta, "tool_calls"):
            fragment = as_dict(item)
            if fragment is None:
                continue
            index = get_int(fragment, "index") or 0
            draft = self._drafts.get(index)
            if draft is None:
                draft = self._drafts[index] = ToolCallDraft(TextBuffer(self._max_text_bytes))
            draft.add(fragment)

    def _tool_calls(self) -> list[JSON]:
        drafts = [self._drafts[index].as_json() for index in sorted(self._drafts)]
        return self._sent_tool_calls + drafts

    def _truncated(self) -> bool:
        drafts = self._drafts.values()
        return self._text.truncated or any(d.arguments.truncated for d in drafts)


def append_content(text: TextBuffer, content: Any) -> None:
    """Append message content: a string, or a list of parts whose ``text`` parts count."""
    if isinstance(content, str):
        text.append(content)
        return
    if isinstance(content, list):
        for part in content:
            part_dict = as_dict(part)
            if part_dict is not None and get_str(part_dict, "type") in ("text", "output_text"):
                text.append(part_dict.get("text"))


class OpenAIChat:
    name = "openai_chat"

    def parse_request(self, body: bytes) -> ParsedRequest:
        return request_fields(body, ("messages", "tools"))

    def response_parser(self, max_text_bytes: int) -> ResponseParser:
        return ChatResponseParser(max_text_bytes)


PARSER: EndpointParser = OpenAIChat()
