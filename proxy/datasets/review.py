"""Review rules: which traces a feedback event puts on a review dataset (``[[review.rules]]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def rule_matches(when: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """A review rule's ``when``: every key must match; a value, or ``{lte, gte, in}``."""
    return all(_condition(cond, attributes.get(key)) for key, cond in when.items())


def _condition(cond: Any, value: Any) -> bool:
    if not isinstance(cond, Mapping):
        return bool(value == cond)
    return all(_check(op, arg, value) for op, arg in cond.items())


def _check(op: str, arg: Any, value: Any) -> bool:
    number = _number(value)
    if op == "lte":
        return number is not None and number <= arg
    if op == "gte":
        return number is not None and number >= arg
    if op == "in":
        return value is not None and value in arg
    return False


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
