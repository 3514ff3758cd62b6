"""OpenAI embeddings, ``POST .../embeddings`` (pure).

Request: ``input`` is the input. Response: only ``model`` and usage are kept (``prompt_tokens``
as input tokens, ``total_tokens``; there are no output tokens); the vectors are never stored, so
``text`` stays ``None``. Embeddings do not stream: events are ignored.
"""

from __future__ import annotations

from proxy.recording.providers.base import (
    EndpointParser,
    ParsedRequest,
    ParsedResponse,
    ResponseParser,
    Usage,
)
from proxy.recording.providers.fields import (
    JSON,
    error_text,
    get_dict,
    get_int,
    get_str,
    loads_object,
    request_fields,
)
from proxy.recording.sse import SSEEvent


class EmbeddingsResponseParser:
    def __init__(self) -> None:
        self._model: str | None = None
        self._raw_usage: JSON | None = None
        self._error: str | None = None

    def feed_json(self, body: bytes) -> None:
        response = loads_object(body)
        self._model = get_str(response, "model")
        self._raw_usage = get_dict(response, "usage")
        self._error = error_text(response.get("error")) if response else None

    def feed_event(self, event: SSEEvent) -> None:
        """Embeddings never stream; nothing to read."""

    def result(self) -> ParsedResponse:
        usage = None
        if self._raw_usage is not None:
            usage = Usage(
                input_tokens=get_int(self._raw_usage, "prompt_tokens"),
                total_tokens=get_int(self._raw_usage, "total_tokens"),
            )
        return ParsedResponse(
            model=self._model, usage=usage, raw_usage=self._raw_usage, error=self._error
        )


class OpenAIEmbeddings:
    name = "openai_embeddings"

    def parse_request(self, body: bytes) -> ParsedRequest:
        return request_fields(body, ("input",))

    def response_parser(self, max_text_bytes: int) -> ResponseParser:
        return EmbeddingsResponseParser()


PARSER: EndpointParser = OpenAIEmbeddings()
