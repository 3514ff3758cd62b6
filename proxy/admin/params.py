"""Query parameters of the admin API, strict, shared by every front end (API, web page, CLI).

Every parameter is checked before Redis is asked: unknown names, repeats of a single-valued
parameter and bad values answer 400 ``invalid_parameter`` with ``"<param>: <rule>"``. The
parsing functions are pure (``parse_trace_list`` takes any ``name -> [values]`` mapping), so a
dataset ``filter`` object can reuse them. ``since``/``until`` take ISO 8601 with a zone
(``Z``, ``+01:00``; a ``+`` that arrived as a space in a query string is read back as ``+``),
epoch milliseconds, or a bare date (UTC; ``since`` from its first, ``until`` to its last
millisecond). Both bounds are inclusive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from multidict import MultiMapping

from proxy.core.errors import BadRequest
from proxy.core.tags import TAG_RULE, is_tag, unique_tags
from proxy.feedback.scores import NAME_PATTERN as SCORE_NAME
from proxy.feedback.scores import NAME_RULE as SCORE_NAME_RULE
from proxy.store.query_plan import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Position,
    TraceFilter,
    decode_cursor,
)

# Every tag filter is one more check on every candidate, and a trace rarely has many tags:
# 20 bounds a query's cost well above any real use (a trace itself may have up to 64).
MAX_TAG_FILTERS = 20
VERDICTS = frozenset({"positive", "negative"})
ANNOTATION_STATUSES = frozenset({"empty", "filled"})
_BOOLEANS = {"true": True, "false": False}
_RATING = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_COST = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,12})?")  # USD, up to a pico-dollar
_EPOCH_MS = re.compile(r"[0-9]{1,15}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SPACED_OFFSET = re.compile(r" ([0-9]{2}(?::?[0-9]{2})?)$")
_TIME_RULE = "must be ISO 8601 with a time zone (2026-11-01T12:00:00Z), a date, or epoch ms"
_DAY_MS = 86_400_000
T = TypeVar("T")


class InvalidParameter(BadRequest):
    """A query parameter that breaks a rule: 400 naming the parameter."""

    kind = "invalid_parameter"

    def __init__(self, param: str, rule: str) -> None:
        super().__init__(f"{param}: {rule}", code="invalid_parameter", param=param)


@dataclass(frozen=True, slots=True)
class TraceListRequest:
    filters: TraceFilter
    limit: int = DEFAULT_LIMIT
    cursor: Position | None = None


def parse_trace_list(params: Mapping[str, Sequence[str]]) -> TraceListRequest:
    """Filters, limit and cursor from query parameters; raises InvalidParameter."""
    fields: dict[str, Any] = {}
    for name, values in params.items():
        if name == "tag":
            fields["tags"] = _tags(values)
            continue
        if name not in _PARSERS:
            raise InvalidParameter(name, "unknown parameter")
        if len(values) != 1:
            raise InvalidParameter(name, "must appear once")
        field, parse = _PARSERS[name]
        fields[field] = parse(values[0])
    limit, cursor = fields.pop("limit", DEFAULT_LIMIT), fields.pop("cursor", None)
    return TraceListRequest(_checked(TraceFilter(**fields), params), limit, cursor)


def _checked(filters: TraceFilter, params: Mapping[str, Sequence[str]]) -> TraceFilter:
    """Rules across parameters."""
    low, high = filters.rating_min, filters.rating_max
    if low is not None and high is not None and low > high:
        raise InvalidParameter("rating_max", "must not be below rating_min")
    since, until = filters.since_ms, filters.until_ms
    if since is not None and until is not None and since > until:
        raise InvalidParameter("until", "must not be before since")
    cheap, dear = filters.cost_min, filters.cost_max
    if cheap is not None and dear is not None and cheap > dear:
        raise InvalidParameter("cost_max", "must not be below cost_min")
    return filters


def _choice(param: str, allowed: frozenset[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        token = value.strip().lower()
        if token not in allowed:
            raise InvalidParameter(param, "must be one of " + ", ".join(sorted(allowed)))
        return token

    return parse


def _text(param: str, max_chars: int, lower: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip().lower() if lower else value
        if not 0 < len(text.strip()) <= max_chars or "\x00" in text:
            raise InvalidParameter(param, f"must be 1-{max_chars} characters")
        return text

    return parse


def _rating(param: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        text = value.strip()
        if _RATING.fullmatch(text) is None or not 1 <= Decimal(text) <= 5:
            raise InvalidParameter(param, "must be a number from 1 to 5")
        return float(Decimal(text))

    return parse


def _cost(param: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        if _COST.fullmatch(value.strip()) is None:
            raise InvalidParameter(param, "must be a number of USD, 0 or more (e.g. 0.05)")
        return float(Decimal(value.strip()))

    return parse


def _boolean(value: str) -> bool:
    token = value.strip().lower()
    if token not in _BOOLEANS:
        raise InvalidParameter("has_feedback", "must be true or false")
    return _BOOLEANS[token]


def moment(param: str) -> Callable[[str], float]:
    """Parser of a time parameter, to epoch ms (see the module docstring for the forms)."""

    def parse(value: str) -> float:
        text = _SPACED_OFFSET.sub(r"+\1", value.strip())
        if _EPOCH_MS.fullmatch(text):
            return float(int(text))
        parsed = _iso(text)
        if parsed is None:
            raise InvalidParameter(param, _TIME_RULE)
        return parsed.timestamp() * 1000

    return parse


def until_moment(value: str) -> float:
    """``until`` is inclusive: a bare date runs to the last millisecond of its day."""
    parsed = moment("until")(value)
    return parsed + _DAY_MS - 1 if _DATE.fullmatch(value.strip()) else parsed


def _iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if _DATE.fullmatch(text):
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else None


def parse_limit(value: str) -> int:
    """A page size, 1 to ``MAX_LIMIT``: the one ``limit`` rule of every listing."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidParameter("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def parse_cursor(value: str, decode: Callable[[str], T]) -> T:
    """A ``next_cursor`` of an earlier answer, read by ``decode`` (which raises ValueError)."""
    try:
        return decode(value.strip())
    except ValueError:
        raise InvalidParameter("cursor", "must be a next_cursor from an earlier answer") from None


def _cursor(value: str) -> Position:
    return parse_cursor(value, decode_cursor)


def query_params(query: MultiMapping[str]) -> dict[str, list[str]]:
    """A request's query as ``name -> [values]``, the form every parser here takes."""
    return {name: query.getall(name) for name in query}


def _tags(values: Sequence[str]) -> tuple[str, ...]:
    """Tag filters: each follows the one tag rule (a filter for a tag no trace can carry
    would only ever match nothing)."""
    if len(values) > MAX_TAG_FILTERS:
        raise InvalidParameter("tag", f"at most {MAX_TAG_FILTERS}")
    for value in values:
        if not is_tag(value):
            raise InvalidParameter("tag", TAG_RULE)
    return unique_tags(values)


# Score names and labels follow the rule of POST /api/traces/{id}/scores.
IMPLICIT_SIGNALS = frozenset({"regenerated", "stopped"})


def _score_name(value: str) -> str:
    if SCORE_NAME.fullmatch(value.strip()) is None:
        raise InvalidParameter("score", SCORE_NAME_RULE)
    return value.strip()


def _score_label(value: str) -> tuple[str, str]:
    name, _, label = value.strip().partition(":")
    label = label.lower()
    if SCORE_NAME.fullmatch(name) is None or SCORE_NAME.fullmatch(label) is None:
        raise InvalidParameter("score_label", f"must be <name>:<label>, each {SCORE_NAME_RULE}")
    return name, label


# Single-valued parameter -> (TraceFilter field or limit/cursor) parser.
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "feedback": ("feedback", _choice("feedback", VERDICTS)),
    "rating_min": ("rating_min", _rating("rating_min")),
    "rating_max": ("rating_max", _rating("rating_max")),
    "category": ("category", _text("category", 128, lower=True)),
    "reason": ("reason", _text("reason", 128, lower=True)),
    "annotation_status": ("annotation_status", _choice("annotation_status", ANNOTATION_STATUSES)),
    "has_feedback": ("has_feedback", _boolean),
    "model": ("model", _text("model", 256)),
    "upstream": ("upstream", _text("upstream", 128)),
    "session_id": ("session_id", _text("session_id", 128)),
    "user_id": ("user_id", _text("user_id", 128)),
    "since": ("since_ms", moment("since")),
    "until": ("until_ms", until_moment),
    "limit": ("limit", parse_limit),
    "cursor": ("cursor", _cursor),
    "score": ("score", _score_name),
    "score_label": ("score_label", _score_label),
    "implicit": ("implicit", _choice("implicit", IMPLICIT_SIGNALS)),
    "cost_min": ("cost_min", _cost("cost_min")),
    "cost_max": ("cost_max", _cost("cost_max")),
}
