"""What the proxy says about one answer: its trace ID, span ID and feedback token.

They arrive as response headers. The SDKs expose those headers on their raw-response objects:
``client.chat.completions.with_raw_response.create(...)`` (``.headers``), a stream's
``.response.headers`` (``create(..., stream=True)``, Anthropic's ``messages.stream(...)``),
or an ``APIStatusError``'s ``.response``. :func:`answer_ids` takes any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AnswerIds:
    """The IDs of one answer; ``feedback_token`` lets anyone holding it (a browser) rate it."""

    trace_id: str
    span_id: str | None
    feedback_token: str | None
    feedback_status: str | None = None  # what became of feedback sent with the call


def answer_ids(response: Any) -> AnswerIds:
    """The IDs of a raw response, a stream, an SDK error or a header mapping.

    Raises ``ValueError`` when the response carries no ``X-Trace-Id`` (it did not come through
    feedback-proxy).
    """
    headers = _headers(response)
    trace_id = headers.get("x-trace-id")
    if not trace_id:
        raise ValueError("x-trace-id: the response has no trace ID (did it pass the proxy?)")
    return AnswerIds(
        trace_id=trace_id,
        span_id=headers.get("x-span-id"),
        feedback_token=headers.get("x-feedback-token"),
        feedback_status=headers.get("x-feedback-status"),
    )


def _headers(response: Any) -> Mapping[str, str]:
    """The header mapping of the object, looked for where the SDKs keep it."""
    for candidate in (response, getattr(response, "response", None)):
        headers = getattr(candidate, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            return _case_blind(headers)
    if isinstance(response, Mapping):
        return _case_blind(response)
    raise TypeError(f"{type(response).__name__}: has no response headers to read")


def _case_blind(headers: Any) -> Mapping[str, str]:
    """httpx headers are case-insensitive already; a plain dict may not be."""
    if isinstance(headers, dict):
        return {str(k).lower(): v for k, v in headers.items()}
    return headers  # type: ignore[no-any-return]
