"""One user's feedback on an answer, as the JSON body of ``POST /feedback`` or as headers.

The proxy holds the rules (vote, rating 1-5, comment of at most 2000 characters, category
and reason from its taxonomies, timestamp with a zone) and answers a broken value with a 400
naming the field; :class:`~feedback_proxy.errors.ProxyRefused` carries that name. Nothing is
validated twice here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

Vote = Literal["positive", "negative"]

_ATTRIBUTE_HEADERS = (
    ("user_feedback", "X-Feedback"),
    ("user_feedback_rating", "X-Feedback-Rating"),
    ("user_feedback_comment", "X-Feedback-Comment"),
    ("user_feedback_category", "X-Feedback-Category"),
    ("feedback_reason", "X-Feedback-Reason"),
    ("user_feedback_timestamp", "X-Feedback-Timestamp"),
)


@dataclass(frozen=True, slots=True)
class Feedback:
    """Any of a vote, a rating, a comment, a category and a reason (at least one)."""

    vote: Vote | None = None
    rating: float | None = None
    comment: str | None = None
    category: str | None = None
    reason: str | None = None
    timestamp: datetime | None = None  # default: when the proxy receives it

    def attributes(self) -> dict[str, Any]:
        """The feedback attributes the proxy stores, as the JSON body carries them."""
        values: dict[str, Any] = {
            "user_feedback": self.vote,
            "user_feedback_rating": self.rating,
            "user_feedback_comment": self.comment,
            "user_feedback_category": self.category,
            "feedback_reason": self.reason,
            "user_feedback_timestamp": self.timestamp.isoformat() if self.timestamp else None,
        }
        attributes = {key: value for key, value in values.items() if value is not None}
        if not attributes:
            raise ValueError("feedback: give a vote, rating, comment, category or reason")
        return attributes


def feedback_headers(
    feedback: Feedback, *, feedback_id: str | None = None, span_id: str | None = None
) -> dict[str, str]:
    """The ``X-Feedback-*`` headers for a later model call of the trace (``extra_headers``).

    The comment is percent-encoded (any text travels as ASCII); ``feedback_id`` makes a later
    send with the same ID replace this event; ``span_id`` aims it at one span.
    """
    attributes = feedback.attributes()
    headers = {}
    for key, header in _ATTRIBUTE_HEADERS:
        if key in attributes:
            value = str(attributes[key])
            headers[header] = quote(value, safe="") if key == "user_feedback_comment" else value
    if feedback_id is not None:
        headers["X-Feedback-Id"] = feedback_id
    if span_id is not None:
        headers["X-Feedback-Span-Id"] = span_id
    return headers
