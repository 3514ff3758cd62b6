"""Feedback counts for ``/metrics``: merged events by value, rating, category, reason, model."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from proxy.core.records import FeedbackEvent
from proxy.metrics.calls import ModelLabels

# Feedback attributes counted for metrics: (label, attribute key).
COUNTED = (
    ("value", "user_feedback"),
    ("rating", "user_feedback_rating"),
    ("category", "user_feedback_category"),
    ("reason", "feedback_reason"),
)


class FeedbackCounts:
    """Feedback events by value, rating, category, reason and model, as merged by this process.

    A replaced event (same X-Feedback-Id) moves its count instead of adding one, so a changed
    vote is one vote (the old value is taken off under the new event's model). Events that
    were queued (Redis away) and merged later by the writer's replay are not counted here.
    Label values are bounded: values, categories and reasons are validated against their
    taxonomies, ratings are rounded to the nearest half point, models go through
    ``ModelLabels``. Kept for the metrics endpoint.
    """

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._model_label = ModelLabels()

    def add(
        self, event: FeedbackEvent, previous: FeedbackEvent | None, model: str | None = None
    ) -> None:
        label = self._model_label(model)
        if previous is not None:
            self._count(previous, label, -1)
        self._count(event, label, +1)

    def snapshot(self) -> list[list[Any]]:
        """Rows of ``[[label, value, model], [count]]`` for the metrics snapshot."""
        return [[list(key), [count]] for key, count in self.counts.items()]

    def _count(self, event: FeedbackEvent, model: str, step: int) -> None:
        attrs = event.get("attributes") or {}
        for label, key in COUNTED:
            value = attrs.get(key)
            if value is not None:
                text = _rating_label(value) if label == "rating" else str(value)
                if text is not None:
                    self.counts[(label, text, model)] += step


def _rating_label(rating: Any) -> str | None:
    """``"4"``, ``"3.5"``: to the nearest half point, so ratings have at most nine labels."""
    if isinstance(rating, bool) or not isinstance(rating, int | float | str):
        return None
    try:
        halves = math.floor(float(rating) * 2 + 0.5)
    except (ValueError, OverflowError):  # stored by an older version: not a number
        return None
    return str(halves // 2) if halves % 2 == 0 else str(halves / 2)
