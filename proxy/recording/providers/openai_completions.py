"""OpenAI legacy completions, ``POST .../completions`` (pure).

Request: ``prompt`` is the input. Response: ``choices[0].text`` in JSON and in each chunk.
"""

from __future__ import annotations

from proxy.recording.providers.base import EndpointParser, ParsedRequest, ResponseParser
from proxy.recording.providers.fields import JSON, request_fields
from proxy.recording.providers.openai_choices import ChoicesResponseParser


class CompletionsResponseParser(ChoicesResponseParser):
    def _choice(self, choice: JSON, *, streamed: bool) -> None:
        self._text.append(choice.get("text"))


class OpenAICompletions:
    name = "openai_completions"

    def parse_request(self, body: bytes) -> ParsedRequest:
        return request_fields(body, ("prompt",))

    def response_parser(self, max_text_bytes: int) -> ResponseParser:
        return CompletionsResponseParser(max_text_bytes)


PARSER: EndpointParser = OpenAICompletions()
