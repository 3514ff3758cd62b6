"""User feedback from request headers and JSON attributes (docs/reference.md §4).

``parse_feedback_headers`` runs on every proxied request, so it first asks the (case-insensitive)
header mapping for its eight names and returns ``None`` at once when none is there. Parsing is
strict and all-or-nothing: the first bad header raises :class:`InvalidFeedback` and nothing of the
request's feedback is kept. JSON attribute objects (``X-Trace-Attributes``, the ``POST /feedback``
body, admin ``PATCH`` bodies) go through :func:`validate_attributes`, which applies the same value
rules to the feedback keys and passes every other key through. A timestamp without a feedback
value is refused everywhere (``require_feedback_value``), as in headers. Error messages name the
header (or attribute) and the rule, never the client's value. Pure: imports neither aiohttp nor
redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from proxy.core.errors import BadRequest
from proxy.core.ids import ID_RULE, is_id, is_valid_utf8
from proxy.core.tags import THUMBS, thumbs_tag

if TYPE_CHECKING:
    from proxy.config import FeedbackSettings

__all__ = [
    "FEEDBACK_HEADERS",
    "FEEDBACK_KEYS",
    "Feedback",
    "FeedbackRules",
    "InvalidFeedback",
    "feedback_tags",
    "format_timestamp",
    "parse_feedback_headers",
    "require_feedback_value",
    "validate_attributes",
    "validate_id",
]

ERROR_CODE = "invalid_feedback"
MIN_RATING, MAX_RATING = 1, 5

# Lowercase header name -> (display spelling, attribute key); table order is checking order.
_VALUE_HEADERS: dict[str, tuple[str, str]] = {
    "x-feedback": ("X-Feedback", "user_feedback"),
    "x-feedback-rating": ("X-Feedback-Rating", "user_feedback_rating"),
    "x-feedback-comment": ("X-Feedback-Comment", "user_feedback_comment"),
    "x-feedback-category": ("X-Feedback-Category", "user_feedback_category"),
    "x-feedback-reason": ("X-Feedback-Reason", "feedback_reason"),
}
_TIMESTAMP_HEADER = ("x-feedback-timestamp", ("X-Feedback-Timestamp", "user_feedback_timestamp"))
_ATTRIBUTE_HEADERS = {**_VALUE_HEADERS, _TIMESTAMP_HEADER[0]: _TIMESTAMP_HEADER[1]}
_ID_HEADERS = {"x-feedback-span-id": "X-Feedback-Span-Id", "x-feedback-id": "X-Feedback-Id"}
_DISPLAY = {lname: display for lname, (display, _) in _ATTRIBUTE_HEADERS.items()} | _ID_HEADERS
_ORDER = tuple(_DISPLAY)

FEEDBACK_HEADERS: frozenset[str] = frozenset(_DISPLAY)
"""Lowercase names of the request headers that carry feedback."""
FEEDBACK_KEYS: frozenset[str] = frozenset(key for _, key in _ATTRIBUTE_HEADERS.values())
"""The trace attributes that feedback sets, validated wherever they arrive."""
_VALUE_KEYS = frozenset(key for _, key in _VALUE_HEADERS.values())
_TIMESTAMP_KEY = _TIMESTAMP_HEADER[1][1]

_RATING = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)"
)
_MAX_OFFSET_HOURS, _MAX_MINUTE = 23, 59
_VERDICTS = frozenset(THUMBS)
_RATING_RULE = f"must be a number from {MIN_RATING} to {MAX_RATING}"
_VERDICT_RULE = "must be positive or negative"
_TIMESTAMP_RULE = "must be an ISO 8601 date and time with a time zone (Z or +hh:mm)"
_EMPTY_RULE = "must not be empty"
_NO_VALUE = "carries no feedback value; send one of "
_NO_VALUE_RULE = _NO_VALUE + ", ".join(display for display, _ in _VALUE_HEADERS.values())
_NO_VALUE_KEY_RULE = _NO_VALUE + ", ".join(key for _, key in _VALUE_HEADERS.values())


class InvalidFeedback(BadRequest):
    """Feedback that breaks a rule: 400 naming the header (or attribute) and the rule."""

    kind = "invalid_feedback"

    def __init__(self, source: str, rule: str) -> None:
        super().__init__(f"{source}: {rule}", code=ERROR_CODE, param=source)
        self.source = source
        self.rule = rule


class _Violation(Exception):
    """A broken rule, before the caller knows which header or key to name."""


@dataclass(frozen=True, slots=True)
class FeedbackRules:
    """The configurable parts of the feedback rules: taxonomies, comment length, clock skew."""

    categories: frozenset[str]
    reasons: frozenset[str]
    max_comment_chars: int = 2000
    max_future: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> FeedbackRules:
        return cls(
            categories=frozenset(token.strip().lower() for token in settings.categories),
            reasons=frozenset(token.strip().lower() for token in settings.reasons),
        )


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback event: normalised attributes, tags, and where it attaches."""

    attributes: dict[str, Any]
    tags: tuple[str, ...]
    span_id: str | None
    feedback_id: str | None


def parse_feedback_headers(
    headers: Mapping[str, str], rules: FeedbackRules, now: datetime
) -> Feedback | None:
    """The feedback a request carries in its headers, or None when it carries none."""
    raw = _collect(headers)
    if raw is None:
        return None
    attributes: dict[str, Any] = {}
    for lname, (display, key) in _ATTRIBUTE_HEADERS.items():
        if lname in raw:
            attributes[key] = _checked(display, raw[lname], _HEADER_CHECKS[key], rules, now)
    ids = {
        lname: _checked(display, raw[lname], _id, rules, now)
        for lname, display in _ID_HEADERS.items()
        if lname in raw
    }
    if not _VALUE_KEYS.intersection(attributes):
        raise InvalidFeedback(_DISPLAY[next(iter(raw))], _NO_VALUE_RULE)
    attributes.setdefault(_TIMESTAMP_KEY, format_timestamp(now))
    return Feedback(
        attributes=attributes,
        tags=feedback_tags(attributes),
        span_id=ids.get("x-feedback-span-id"),
        feedback_id=ids.get("x-feedback-id"),
    )


def validate_attributes(
    attrs: Mapping[str, Any],
    rules: FeedbackRules,
    now: datetime,
    source: str,
    *,
    default_timestamp: bool = False,
) -> dict[str, Any]:
    """``attrs`` with its feedback keys validated and normalised; other keys pass unchanged.

    Errors name ``f"{source}.{key}"``. ``default_timestamp`` says ``attrs`` are one whole
    feedback event (the ``POST /feedback`` body, a request's trace attributes), held to the
    header rules as a whole: a timestamp needs a value beside it (``require_feedback_value``),
    and a value without a timestamp gets ``now``. Off, single keys can be checked one by one.
    """
    result = dict(attrs)
    for key in FEEDBACK_KEYS.intersection(attrs):
        result[key] = _checked(f"{source}.{key}", attrs[key], _JSON_CHECKS[key], rules, now)
    if default_timestamp:
        require_feedback_value(result, source)
        if _VALUE_KEYS.intersection(result):
            result.setdefault(_TIMESTAMP_KEY, format_timestamp(now))
    return result


def require_feedback_value(attrs: Mapping[str, Any], source: str) -> None:
    """A ``user_feedback_timestamp`` alone is not feedback: it dates a value that is not there.

    The rule the headers follow (``X-Feedback-Timestamp`` alone is refused), for JSON
    attributes: raises naming ``f"{source}.user_feedback_timestamp"`` and the value keys."""
    if _TIMESTAMP_KEY in attrs and not _VALUE_KEYS.intersection(attrs):
        raise InvalidFeedback(f"{source}.{_TIMESTAMP_KEY}", _NO_VALUE_KEY_RULE)


def validate_id(value: Any, source: str) -> str:
    """A feedback span ID or feedback ID (1-128 of ``A-Z a-z 0-9 . _ : -``) from any source."""
    if not is_id(value):
        raise InvalidFeedback(source, ID_RULE)
    return value


def feedback_tags(attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """``("thumbs-up",)`` or ``("thumbs-down",)`` for a ``user_feedback`` value, else ``()``."""
    tag = thumbs_tag(attributes)
    return (tag,) if tag is not None else ()


def format_timestamp(moment: datetime) -> str:
    """``moment`` in UTC, to the millisecond: ``2026-11-26T12:00:00.000Z`` (naive means UTC)."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


# -- collecting ------------------------------------------------------------------------------


def _collect(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The feedback headers present, by lowercase name; None when there are none."""
    getall: Callable[[str], list[str]] | None = getattr(headers, "getall", None)
    if getall is None:
        return _collect_plain(headers.items())
    present = [lname for lname in _ORDER if lname in headers]
    if not present:
        return None
    raw: dict[str, str] = {}
    for lname in present:
        values = getall(lname)
        if len(values) > 1:
            raise InvalidFeedback(_DISPLAY[lname], "must appear at most once")
        raw[lname] = values[0]
    return raw


def _collect_plain(items: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The same for a mapping without ``getall`` (names in any case): one pass, table order."""
    found: dict[str, str] = {}
    for name, value in items:
        lname = name.lower()
        if lname in FEEDBACK_HEADERS:
            if lname in found:
                raise InvalidFeedback(_DISPLAY[lname], "must appear at most once")
            found[lname] = value
    return {lname: found[lname] for lname in _ORDER if lname in found} or None


# -- value rules -----------------------------------------------------------------------------

_Check = Callable[[Any, FeedbackRules, datetime], Any]


def _checked(source: str, value: Any, check: _Check, rules: FeedbackRules, now: datetime) -> Any:
    try:
        return check(value, rules, now)
    except _Violation as violation:
        raise InvalidFeedback(source, str(violation)) from None


def _text(value: Any, rule: str) -> str:
    """A non-empty string, or a violation of ``rule`` (never a number, bool or null)."""
    if not isinstance(value, str):
        raise _Violation(rule)
    if not value.strip():
        raise _Violation(_EMPTY_RULE)
    return value


def _token(value: Any, allowed: frozenset[str], rule: str) -> str:
    """Trimmed, ASCII, case-insensitive: stored lowercase."""
    token = _text(value, rule).strip()
    if not token.isascii() or token.lower() not in allowed:
        raise _Violation(rule)
    return token.lower()


def _one_of(allowed: frozenset[str]) -> str:
    return "must be one of " + (", ".join(sorted(allowed)) or "(none configured)")


def _verdict(value: Any, rules: FeedbackRules, now: datetime) -> str:
    return _token(value, _VERDICTS, _VERDICT_RULE)


def _category(value: Any, rules: FeedbackRules, now: datetime) -> str:
    return _token(value, rules.categories, _one_of(rules.categories))


def _reason(value: Any, rules: FeedbackRules, now: datetime) -> str:
    return _token(value, rules.reasons, _one_of(rules.reasons))


def _rating(value: Any, rules: FeedbackRules, now: datetime) -> int | float:
    """ASCII decimal text (``4``, `` 3.5 ``) in [1, 5]: an int when integral, else a float."""
    text = _text(value, _RATING_RULE).strip()
    if _RATING.fullmatch(text) is None:
        raise _Violation(_RATING_RULE)
    return _in_range(Decimal(text))


def _json_rating(value: Any, rules: FeedbackRules, now: datetime) -> int | float:
    """A JSON number in [1, 5] (booleans are not numbers), or text by the header rule."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Violation(_RATING_RULE)
    if isinstance(value, str):
        return _rating(value, rules, now)
    if isinstance(value, float) and value != value:  # NaN: Decimal would refuse to compare it
        raise _Violation(_RATING_RULE)
    return _in_range(Decimal(value))


def _in_range(number: Decimal) -> int | float:
    if not MIN_RATING <= number <= MAX_RATING:
        raise _Violation(_RATING_RULE)
    return int(number) if number == number.to_integral_value() else float(number)


def _comment(value: Any, rules: FeedbackRules, now: datetime) -> str:
    """Percent-decoded bytes, decoded as strict UTF-8 (``+`` stays ``+``)."""
    text = _text(value, "must be text")
    if text.isascii() and "%" not in text:
        return _comment_text(text, rules)
    data = _utf8(text)
    if _BAD_PERCENT.search(data) is not None:
        raise _Violation("bad percent-encoding: % must be followed by two hex digits")
    try:
        decoded = unquote_to_bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise _Violation("must decode to valid UTF-8") from None
    return _comment_text(decoded, rules)


def _json_comment(value: Any, rules: FeedbackRules, now: datetime) -> str:
    """JSON strings are already text: never percent-decoded, still valid Unicode."""
    text = _text(value, "must be a string")
    if not text.isascii():
        _utf8(text)
    return _comment_text(text, rules)


def _comment_text(text: str, rules: FeedbackRules) -> str:
    if not text.strip():
        raise _Violation(_EMPTY_RULE)
    if len(text) > rules.max_comment_chars:
        raise _Violation(f"must be at most {rules.max_comment_chars} characters")
    if "\x00" in text:
        raise _Violation("must not contain NUL")
    return text


def _utf8(text: str) -> bytes:
    if not is_valid_utf8(text):
        raise _Violation("not valid UTF-8")
    return text.encode("utf-8")


def _timestamp(value: Any, rules: FeedbackRules, now: datetime) -> str:
    """ISO 8601 with a zone, at most ``max_future`` ahead of ``now``: normalised to UTC ms."""
    match = _TIMESTAMP.fullmatch(_text(value, _TIMESTAMP_RULE).strip())
    if match is None:
        raise _Violation(_TIMESTAMP_RULE)
    moment = _moment(match.groups())
    ahead = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if moment - ahead > rules.max_future:
        raise _Violation(f"must not be more than {_span(rules.max_future)} in the future")
    return format_timestamp(moment)


def _moment(groups: tuple[str | None, ...]) -> datetime:
    """The matched date, time and offset as an aware UTC datetime; impossible ones are refused."""
    year, month, day, hour, minute, second = (int(group or 0) for group in groups[:6])
    fraction, sign, off_hours, off_minutes = groups[6:]
    micros = int((fraction or "").ljust(6, "0")[:6])
    hours, minutes = int(off_hours or 0), int(off_minutes or 0)
    if hours > _MAX_OFFSET_HOURS or minutes > _MAX_MINUTE:
        raise _Violation(_TIMESTAMP_RULE)
    offset = timedelta(hours=hours, minutes=minutes)
    zone = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, micros, zone).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Violation(_TIMESTAMP_RULE) from None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def _id(value: Any, rules: FeedbackRules, now: datetime) -> str:
    text = _text(value, ID_RULE)
    if not is_id(text):
        raise _Violation(ID_RULE)
    return text


_HEADER_CHECKS: dict[str, _Check] = {
    "user_feedback": _verdict,
    "user_feedback_rating": _rating,
    "user_feedback_comment": _comment,
    "user_feedback_category": _category,
    "feedback_reason": _reason,
    "user_feedback_timestamp": _timestamp,
}
_JSON_CHECKS: dict[str, _Check] = {
    **_HEADER_CHECKS,
    "user_feedback_rating": _json_rating,
    "user_feedback_comment": _json_comment,
}
