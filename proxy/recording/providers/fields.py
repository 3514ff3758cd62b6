"""Typed, never-raising access to decoded JSON, and the bounded text buffer (pure).

Provider bodies are untrusted: any value may be missing or of the wrong type. These helpers
answer ``None`` (or an empty container) instead of raising, so parsers stay short and total.
"""

from __future__ import annotations

from typing import Any

import orjson

from proxy.recording.providers.base import ParsedRequest, Usage

JSON = dict[str, Any]


def loads(body: bytes | str) -> Any:
    """Decode JSON; ``None`` if it is not valid JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def loads_object(body: bytes | str) -> JSON | None:
    """Decode a JSON object; ``None`` if it is not valid JSON or not an object."""
    value = loads(body)
    return value if isinstance(value, dict) else None


def as_dict(value: Any) -> JSON | None:
    return value if isinstance(value, dict) else None


def get_dict(obj: JSON | None, key: str) -> JSON | None:
    return as_dict(obj.get(key)) if obj is not None else None


def get_list(obj: JSON | None, key: str) -> list[Any]:
    value = obj.get(key) if obj is not None else None
    return value if isinstance(value, list) else []


def get_str(obj: JSON | None, key: str) -> str | None:
    value = obj.get(key) if obj is not None else None
    return value if isinstance(value, str) else None


def get_int(obj: JSON | None, key: str) -> int | None:
    """An integer count; booleans and non-integers are ``None``."""
    value = obj.get(key) if obj is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def first_dict(items: list[Any]) -> JSON | None:
    return as_dict(items[0]) if items else None


def dumps_text(value: Any) -> str:
    """Render a decoded JSON value as compact JSON text, falling back to ``repr``."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def error_text(value: Any) -> str | None:
    """A provider error object as one line: ``"type: message"``; ``None`` if there is none."""
    if isinstance(value, str):
        return value or None
    error = as_dict(value)
    if not error:
        return None
    message = get_str(error, "message")
    kind = get_str(error, "type")
    if kind in (None, "", "error"):  # a Responses ``error`` event says its type is "error"
        kind = get_str(error, "code")
    if message is None:
        return dumps_text(error)
    return f"{kind}: {message}" if kind else message


def usage_from(raw: JSON | None, input_key: str, output_key: str) -> Usage | None:
    """Counts as reported, ``total_tokens`` included; ``None`` when there is no usage object.

    OpenAI's cached prompt tokens are ``<input_key>_details.cached_tokens`` (chat and
    completions: ``prompt_tokens_details``; Responses: ``input_tokens_details``)."""
    if raw is None:
        return None
    return Usage(
        input_tokens=get_int(raw, input_key),
        output_tokens=get_int(raw, output_key),
        total_tokens=get_int(raw, "total_tokens"),
        cache_read_tokens=get_int(get_dict(raw, f"{input_key}_details"), "cached_tokens"),
    )


def request_fields(body: bytes, input_keys: tuple[str, ...]) -> ParsedRequest:
    """Model, stream flag, and the listed input keys (those present) of a JSON request body."""
    request = loads_object(body)
    if request is None:
        return ParsedRequest()
    captured = {key: request[key] for key in input_keys if key in request}
    return ParsedRequest(
        model=get_str(request, "model"),
        stream=request.get("stream") is True,
        input=captured or None,
    )


class TextBuffer:
    """Accumulates text up to ``max_bytes`` UTF-8 bytes, then only records that it overflowed.

    The piece that crosses the cap is cut at a character boundary. ``value()`` is ``None`` while
    nothing non-empty was appended, so a response without text reads the same in JSON and SSE.
    """

    __slots__ = ("_max", "_parts", "_size", "truncated")

    def __init__(self, max_bytes: int) -> None:
        self._max = max(max_bytes, 0)
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def append(self, piece: Any) -> None:
        if not isinstance(piece, str) or not piece or self.truncated:
            return
        size = len(piece) if piece.isascii() else len(piece.encode("utf-8", "replace"))
        room = self._max - self._size
        if size <= room:
            self._parts.append(piece)
            self._size += size
            return
        self.truncated = True
        head = piece.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
        if head:
            self._parts.append(head)
        self._size = self._max

    def value(self) -> str | None:
        return "".join(self._parts) or None
