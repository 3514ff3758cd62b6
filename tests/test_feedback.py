"""Feedback from headers and JSON attributes (docs/reference.md §4): strict, all-or-nothing."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from proxy.config import FeedbackSettings
from proxy.core.errors import BadRequest
from proxy.feedback.parse import (
    FEEDBACK_HEADERS,
    FEEDBACK_KEYS,
    Feedback,
    FeedbackRules,
    InvalidFeedback,
    feedback_tags,
    format_timestamp,
    parse_feedback_headers,
    validate_attributes,
    validate_id,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-26T12:00:00.000Z"
RULES = FeedbackRules.from_settings(FeedbackSettings())
SECRETISH = "SeCrEt-VaLuE"  # a distinctive bad value that no error message may echo
CATEGORIES = ("incorrect", "incomplete", "off-topic", "unsafe", "other")
REASONS = ("wrong_policy", "hallucination", "missing_context", "formatting", "too_verbose", "other")


def parse(*pairs: tuple[str, str], rules: FeedbackRules = RULES) -> Feedback | None:
    return parse_feedback_headers(CIMultiDict(pairs), rules, NOW)


def parsed(*pairs: tuple[str, str], rules: FeedbackRules = RULES) -> Feedback:
    feedback = parse(*pairs, rules=rules)
    assert feedback is not None
    return feedback


def attrs(*pairs: tuple[str, str]) -> dict[str, Any]:
    """The attributes of a request that carries the pairs plus a thumbs vote."""
    return parsed(("X-Feedback", "positive"), *pairs).attributes


def rejected(*pairs: tuple[str, str], rules: FeedbackRules = RULES) -> InvalidFeedback:
    with pytest.raises(InvalidFeedback) as info:
        parse(*pairs, rules=rules)
    error = info.value
    assert (error.status, error.code) == (400, "invalid_feedback")
    assert error.message == f"{error.source}: {error.rule}"
    return error


def json_rejected(values: dict[str, Any], source: str = "attributes") -> InvalidFeedback:
    with pytest.raises(InvalidFeedback) as info:
        validate_attributes(values, RULES, NOW, source)
    assert (info.value.status, info.value.code) == (400, "invalid_feedback")
    return info.value


# -- presence --------------------------------------------------------------------------------


def test_no_feedback_header_gives_none() -> None:
    """A request without any of the eight feedback headers has no feedback (the fast path)."""
    assert parse() is None
    assert parse(("Authorization", "Bearer sk"), ("X-Trace-Id", "t1")) is None


def test_other_x_feedback_headers_are_not_feedback() -> None:
    """X-Feedback-Token (browser auth) and unknown X-Feedback-* names carry no feedback."""
    assert parse(("X-Feedback-Token", "v1.abc"), ("X-Feedback-Whatever", "1")) is None


def test_header_sets() -> None:
    """The header and attribute names are exactly those of docs/reference.md §4, lowercase."""
    assert {
        "x-feedback",
        "x-feedback-rating",
        "x-feedback-comment",
        "x-feedback-category",
        "x-feedback-reason",
        "x-feedback-timestamp",
        "x-feedback-span-id",
        "x-feedback-id",
    } == FEEDBACK_HEADERS
    assert {
        "user_feedback",
        "user_feedback_rating",
        "user_feedback_comment",
        "user_feedback_category",
        "feedback_reason",
        "user_feedback_timestamp",
    } == FEEDBACK_KEYS


def test_every_header_accepted_and_normalised() -> None:
    """All eight headers at once become one event with normalised values."""
    feedback = parsed(
        ("X-Feedback", " Negative "),
        ("X-Feedback-Rating", "2"),
        ("X-Feedback-Comment", "wrong+answer%20%E2%80%94%20sorry"),
        ("X-Feedback-Category", "Incorrect"),
        ("X-Feedback-Reason", "HALLUCINATION"),
        ("X-Feedback-Timestamp", "2026-11-26T13:01:02.345+01:00"),
        ("X-Feedback-Span-Id", "00f067aa0ba902b7"),
        ("X-Feedback-Id", "vote:42"),
    )
    assert feedback == Feedback(
        attributes={
            "user_feedback": "negative",
            "user_feedback_rating": 2,
            "user_feedback_comment": "wrong+answer — sorry",
            "user_feedback_category": "incorrect",
            "feedback_reason": "hallucination",
            "user_feedback_timestamp": "2026-11-26T12:01:02.345Z",
        },
        tags=("thumbs-down",),
        span_id="00f067aa0ba902b7",
        feedback_id="vote:42",
    )


def test_header_names_are_case_insensitive() -> None:
    """Header names match in any case."""
    feedback = parsed(("x-FEEDBACK", "positive"), ("X-FEEDBACK-RATING", "5"))
    assert feedback.attributes["user_feedback_rating"] == 5


def test_plain_mapping_in_any_case_works() -> None:
    """A plain dict (no getall) is read in one pass with names in any case."""
    headers = {"X-Feedback": "positive", "x-feedback-id": "f1", "Host": "h"}
    feedback = parse_feedback_headers(headers, RULES, NOW)
    assert feedback is not None
    assert (feedback.attributes["user_feedback"], feedback.feedback_id) == ("positive", "f1")
    assert parse_feedback_headers({"Host": "h"}, RULES, NOW) is None


# -- X-Feedback ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored", "tag"),
    [
        ("positive", "positive", "thumbs-up"),
        ("negative", "negative", "thumbs-down"),
        ("POSITIVE", "positive", "thumbs-up"),
        ("  Negative\t", "negative", "thumbs-down"),
    ],
)
def test_thumbs_value_is_stored_lowercase_with_its_tag(value: str, stored: str, tag: str) -> None:
    """X-Feedback is trimmed, case-insensitive, stored lowercase, and adds its thumbs tag."""
    feedback = parsed(("X-Feedback", value))
    assert feedback.attributes == {"user_feedback": stored, "user_feedback_timestamp": NOW_TEXT}
    assert feedback.tags == (tag,)
    assert (feedback.span_id, feedback.feedback_id) == (None, None)


@pytest.mark.parametrize("value", ["yes", "thumbs-up", "1", "positiv", "pos itive", SECRETISH])
def test_thumbs_value_other_than_positive_or_negative_is_rejected(value: str) -> None:
    """Anything but positive/negative is a 400 that states the rule, not the value."""
    error = rejected(("X-Feedback", value))
    assert error.message == "X-Feedback: must be positive or negative"
    assert error.source == "X-Feedback"


def test_unicode_lookalike_token_is_rejected() -> None:
    """Tokens are ASCII: a Kelvin sign, which lowercases to 'k', never matches 'kind'."""
    rules = FeedbackRules(categories=frozenset({"kind"}), reasons=frozenset())
    assert parsed(("X-Feedback-Category", "KIND"), rules=rules).attributes[
        "user_feedback_category"
    ] == ("kind")
    rejected(("X-Feedback-Category", "\u212aind"), rules=rules)


def test_no_thumbs_tag_without_thumbs_value() -> None:
    """Feedback without X-Feedback adds no tag."""
    assert parsed(("X-Feedback-Rating", "4")).tags == ()


# -- X-Feedback-Rating -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1", 1),
        ("4", 4),
        ("5", 5),
        ("4.0", 4),
        ("5.000", 5),
        ("1.0", 1),
        ("3.5", 3.5),
        ("1.25", 1.25),
        (" 2 ", 2),
        ("04", 4),
    ],
)
def test_rating_accepted_and_normalised(value: str, stored: float) -> None:
    """ASCII decimals in [1, 5]: an int when integral, else a float."""
    rating = attrs(("X-Feedback-Rating", value))["user_feedback_rating"]
    assert rating == stored
    assert type(rating) is type(stored)


@pytest.mark.parametrize(
    "value",
    [
        "nan",
        "NaN",
        "inf",
        "Infinity",
        "-inf",
        "1e0",
        "4e0",
        "1_0",
        "+4",
        "-1",
        "\u0663",  # Arabic-Indic digit three
        "\uff14",  # full-width digit four
        "0",
        "0.99",
        "5.01",
        "6",
        "10",
        "5.00000000000000001",  # a float would round it to 5.0
        "4.",
        ".5",
        "3,5",
        "4 5",
        "0x4",
        "4/5",
        "four",
        SECRETISH,
    ],
)
def test_bad_rating_is_rejected(value: str) -> None:
    """Anything but an ASCII decimal number from 1 to 5 is a 400 naming the rule."""
    error = rejected(("X-Feedback", "positive"), ("X-Feedback-Rating", value))
    assert error.message == "X-Feedback-Rating: must be a number from 1 to 5"
    assert error.source == "X-Feedback-Rating"


def test_rating_alone_is_feedback() -> None:
    """A rating without a thumbs value is a complete feedback event."""
    feedback = parsed(("X-Feedback-Rating", "3"))
    assert feedback.attributes == {"user_feedback_rating": 3, "user_feedback_timestamp": NOW_TEXT}


# -- X-Feedback-Comment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("too long", "too long"),
        ("caf%C3%A9", "café"),
        ("caf%c3%a9", "café"),
        ("%E2%9C%93 ok", "✓ ok"),
        ("a+b", "a+b"),
        ("a%2Bb", "a+b"),
        ("100%25", "100%"),
        ("line%0Aline", "line\nline"),
        ("café", "café"),  # raw UTF-8 (aiohttp decodes valid UTF-8 headers) is kept as it is
        ("%F0%9F%91%8D", "\U0001f44d"),
    ],
)
def test_comment_is_percent_decoded_utf8(value: str, stored: str) -> None:
    """Comments are percent-decoded to bytes and read as UTF-8; '+' stays '+'."""
    assert attrs(("X-Feedback-Comment", value))["user_feedback_comment"] == stored


@pytest.mark.parametrize("value", ["%zz", "%4", "%", "50%", "a%2", "%%41", "%G1"])
def test_bad_percent_encoding_is_rejected(value: str) -> None:
    """A '%' not followed by two hex digits is an error, never passed through."""
    error = rejected(("X-Feedback", "negative"), ("X-Feedback-Comment", value))
    assert error.source == "X-Feedback-Comment"
    assert "percent-encoding" in error.rule


@pytest.mark.parametrize(
    "value",
    [
        "%ff%fe",
        "%C3",  # a truncated two-byte sequence
        "%C3%28",
        "%ED%A0%80",  # an encoded surrogate
        "%C0%AF",  # an overlong encoding
        "%F4%90%80%80",  # beyond U+10FFFF
    ],
)
def test_comment_that_decodes_to_invalid_utf8_is_rejected(value: str) -> None:
    """Decoded bytes must be valid UTF-8: an error, never a replacement character."""
    error = rejected(("X-Feedback-Comment", value))
    assert error.message == "X-Feedback-Comment: must decode to valid UTF-8"


@pytest.mark.parametrize("value", ["bad\udcff", "\udcc3\udca9", "ok%20\udcff"])
def test_comment_with_raw_invalid_utf8_is_rejected(value: str) -> None:
    """Raw non-UTF-8 bytes (aiohttp hands them over as lone surrogates) are an error."""
    error = rejected(("X-Feedback-Comment", value))
    assert error.message == "X-Feedback-Comment: not valid UTF-8"


def test_comment_with_nul_is_rejected() -> None:
    """A NUL character, even percent-encoded, is refused."""
    assert rejected(("X-Feedback-Comment", "a%00b")).rule == "must not contain NUL"


def test_comment_of_only_whitespace_is_empty() -> None:
    """A comment that decodes to whitespace only counts as empty."""
    assert rejected(("X-Feedback-Comment", "%20%20")).rule == "must not be empty"


def test_comment_length_limit_counts_decoded_characters() -> None:
    """2000 characters pass, 2001 fail; a multi-byte character counts once."""
    assert len(attrs(("X-Feedback-Comment", "a" * 2000))["user_feedback_comment"]) == 2000
    error = rejected(("X-Feedback-Comment", "a" * 2001))
    assert error.message == "X-Feedback-Comment: must be at most 2000 characters"
    encoded = "%C3%A9" * 2000  # 6000 characters on the wire, 2000 after decoding
    assert attrs(("X-Feedback-Comment", encoded))["user_feedback_comment"] == "é" * 2000
    rejected(("X-Feedback-Comment", encoded + "%C3%A9"))
    assert (
        len(attrs(("X-Feedback-Comment", "%F0%9F%91%8D" * 2000))["user_feedback_comment"]) == 2000
    )


def test_comment_limit_is_configurable() -> None:
    """FeedbackRules.max_comment_chars sets the limit."""
    rules = FeedbackRules(frozenset(), frozenset(), max_comment_chars=3)
    assert parsed(("X-Feedback-Comment", "abc"), rules=rules).attributes["user_feedback_comment"]
    assert rejected(("X-Feedback-Comment", "abcd"), rules=rules).rule == (
        "must be at most 3 characters"
    )


# -- category and reason ---------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_default_category_is_accepted(category: str) -> None:
    """The default category taxonomy of docs/reference.md §4, in any case, stored lowercase."""
    stored = attrs(("X-Feedback-Category", f" {category.upper()} "))["user_feedback_category"]
    assert stored == category


@pytest.mark.parametrize("reason", REASONS)
def test_every_default_reason_is_accepted(reason: str) -> None:
    """The default reason taxonomy of docs/reference.md §4, in any case, stored lowercase."""
    assert attrs(("X-Feedback-Reason", reason.title()))["feedback_reason"] == reason


def test_unknown_category_names_header_and_allowed_tokens() -> None:
    """An unknown category lists the allowed tokens and does not echo the value."""
    error = rejected(("X-Feedback-Category", SECRETISH))
    assert error.message == (
        "X-Feedback-Category: must be one of incomplete, incorrect, off-topic, other, unsafe"
    )
    assert SECRETISH not in error.message


def test_unknown_reason_names_header_and_allowed_tokens() -> None:
    """An unknown reason lists the allowed tokens."""
    error = rejected(("X-Feedback-Reason", "hallucinations"))
    assert error.message == (
        "X-Feedback-Reason: must be one of formatting, hallucination, missing_context, other, "
        "too_verbose, wrong_policy"
    )


def test_a_category_is_not_a_reason() -> None:
    """Each header checks against its own taxonomy."""
    rejected(("X-Feedback-Reason", "off-topic"))
    rejected(("X-Feedback-Category", "hallucination"))


def test_configured_taxonomies_replace_the_defaults() -> None:
    """Rules from settings use the configured tokens, lowercased and trimmed."""
    settings = FeedbackSettings(categories=("Billing", " legal "), reasons=("Slow",))
    rules = FeedbackRules.from_settings(settings)
    assert (rules.categories, rules.reasons) == (
        frozenset({"billing", "legal"}),
        frozenset({"slow"}),
    )
    feedback = parsed(("X-Feedback-Category", "LEGAL"), ("X-Feedback-Reason", "slow"), rules=rules)
    assert feedback.attributes["user_feedback_category"] == "legal"
    rejected(("X-Feedback-Category", "incorrect"), rules=rules)


# -- X-Feedback-Timestamp --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2026-11-26T12:00:00Z", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T12:00:00z", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T11:59Z", "2026-11-26T11:59:00.000Z"),
        ("2026-11-26 11:00:00Z", "2026-11-26T11:00:00.000Z"),
        ("2026-11-26T13:00:00+01:00", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T13:00:00+0100", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T13:00:00+01", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T06:30:00-05:30", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T12:00:00-00:00", "2026-11-26T12:00:00.000Z"),
        ("2026-11-26T11:00:00.123456789Z", "2026-11-26T11:00:00.123Z"),
        ("2026-11-26T11:00:00.9999Z", "2026-11-26T11:00:00.999Z"),
        ("2026-11-26T11:00:00,5Z", "2026-11-26T11:00:00.500Z"),
        ("2020-02-29T00:00:00Z", "2020-02-29T00:00:00.000Z"),
        (" 2026-11-26T12:00:00Z ", "2026-11-26T12:00:00.000Z"),
    ],
)
def test_timestamp_is_normalised_to_utc_milliseconds(value: str, stored: str) -> None:
    """ISO 8601 with a zone becomes UTC with milliseconds (truncated, never rounded up)."""
    assert attrs(("X-Feedback-Timestamp", value))["user_feedback_timestamp"] == stored


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T12:00:00",  # naive
        "2026-11-26T12:00:00.000",  # naive
        "2026-11-26",
        "2026-11-26T12Z",
        "20261126T120000Z",
        "2026-11-26T12:00:00 Z",
        "2026-02-30T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T12:60:00Z",
        "2026-11-26T12:00:60Z",
        "2026-11-26T12:00:00+24:00",
        "2026-11-26T12:00:00+01:60",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before the first representable instant in UTC
        "\u0662\u0660\u0662\u0666-11-26T12:00:00Z",  # Arabic-Indic year
        "1764158400",
        "yesterday",
        SECRETISH,
    ],
)
def test_bad_timestamp_is_rejected(value: str) -> None:
    """Naive, partial, impossible or non-ISO timestamps are a 400 naming the rule."""
    error = rejected(("X-Feedback", "positive"), ("X-Feedback-Timestamp", value))
    assert error.message == (
        "X-Feedback-Timestamp: must be an ISO 8601 date and time with a time zone (Z or +hh:mm)"
    )


def test_timestamp_may_lie_at_most_five_minutes_ahead() -> None:
    """4 and exactly 5 minutes ahead pass; 6 minutes (or 5 min 1 ms) ahead fail."""
    assert attrs(("X-Feedback-Timestamp", "2026-11-26T12:04:00Z"))
    assert attrs(("X-Feedback-Timestamp", "2026-11-26T12:05:00Z"))
    error = rejected(("X-Feedback", "positive"), ("X-Feedback-Timestamp", "2026-11-26T12:06:00Z"))
    assert error.message == "X-Feedback-Timestamp: must not be more than 5 minutes in the future"
    rejected(("X-Feedback", "positive"), ("X-Feedback-Timestamp", "2026-11-26T12:05:00.001Z"))
    rejected(("X-Feedback", "positive"), ("X-Feedback-Timestamp", "2026-11-26T13:06:00+01:00"))


def test_old_timestamps_are_accepted() -> None:
    """There is no limit into the past (feedback may come days later)."""
    assert attrs(("X-Feedback-Timestamp", "1999-01-01T00:00:00Z"))


def test_future_limit_is_configurable() -> None:
    """FeedbackRules.max_future sets the allowed clock skew."""
    rules = FeedbackRules(frozenset(), frozenset(), max_future=timedelta(seconds=30))
    headers = (("X-Feedback", "positive"), ("X-Feedback-Timestamp", "2026-11-26T12:00:31Z"))
    assert rejected(*headers, rules=rules).rule == "must not be more than 30 seconds in the future"


def test_timestamp_defaults_to_now() -> None:
    """Without X-Feedback-Timestamp the event is stamped with `now`, in the stored format."""
    assert attrs()["user_feedback_timestamp"] == NOW_TEXT
    other_now = datetime(2026, 1, 2, 4, 5, 6, 789999, tzinfo=timezone(timedelta(hours=2)))
    feedback = parse_feedback_headers(CIMultiDict({"X-Feedback": "negative"}), RULES, other_now)
    assert feedback is not None
    assert feedback.attributes["user_feedback_timestamp"] == "2026-01-02T02:05:06.789Z"


# -- span and feedback IDs -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["00f067aa0ba902b7", "retry:1.a_b-c", "A" * 128, "x"])
def test_good_span_and_feedback_ids_are_kept(value: str) -> None:
    """IDs of 1-128 characters of A-Z a-z 0-9 . _ : - are kept as they are."""
    feedback = parsed(
        ("X-Feedback", "positive"), ("X-Feedback-Span-Id", value), ("X-Feedback-Id", value)
    )
    assert (feedback.span_id, feedback.feedback_id) == (value, value)
    assert "x-feedback-id" not in feedback.attributes


@pytest.mark.parametrize("header", ["X-Feedback-Span-Id", "X-Feedback-Id"])
@pytest.mark.parametrize("value", ["A" * 129, "a b", "a,b", "a/b", "é", "a\udcff", SECRETISH + "!"])
def test_bad_span_and_feedback_ids_are_rejected(header: str, value: str) -> None:
    """Other IDs are a 400 naming the header and the rule."""
    error = rejected(("X-Feedback", "positive"), (header, value))
    assert error.message == f"{header}: must be 1-128 characters of A-Z a-z 0-9 . _ : -"


def test_ids_alone_carry_no_feedback() -> None:
    """IDs (or a timestamp) without a value header: an error naming the value headers."""
    error = rejected(("X-Feedback-Span-Id", "s1"))
    assert error.source == "X-Feedback-Span-Id"
    assert error.rule == (
        "carries no feedback value; send one of X-Feedback, X-Feedback-Rating, "
        "X-Feedback-Comment, X-Feedback-Category, X-Feedback-Reason"
    )
    assert rejected(("X-Feedback-Id", "f1")).source == "X-Feedback-Id"
    both = rejected(("X-Feedback-Id", "f1"), ("X-Feedback-Span-Id", "s1"))
    assert both.rule.startswith("carries no feedback value")
    timestamp_only = rejected(("X-Feedback-Timestamp", "2026-11-26T12:00:00Z"))
    assert timestamp_only.rule.startswith("carries no feedback value")


# -- empty, duplicate, all-or-nothing --------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "X-Feedback",
        "X-Feedback-Rating",
        "X-Feedback-Comment",
        "X-Feedback-Category",
        "X-Feedback-Reason",
        "X-Feedback-Timestamp",
        "X-Feedback-Span-Id",
        "X-Feedback-Id",
    ],
)
@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_header_value_is_rejected(header: str, empty: str) -> None:
    """A feedback header present with an empty value is an error, whatever the header."""
    good = (
        ("X-Feedback-Rating", "4") if header != "X-Feedback-Rating" else ("X-Feedback", "positive")
    )
    error = rejected(good, (header, empty))
    assert (error.source, error.rule) == (header, "must not be empty")


@pytest.mark.parametrize(
    "pairs",
    [
        (("X-Feedback", "positive"), ("X-Feedback", "positive")),
        (("X-Feedback", "positive"), ("x-feedback", "negative")),
        (("X-Feedback", "positive"), ("X-Feedback-Id", "a"), ("X-Feedback-Id", "b")),
    ],
)
def test_duplicate_header_is_rejected(pairs: tuple[tuple[str, str], ...]) -> None:
    """A feedback header sent twice (in any case) is ambiguous: a 400."""
    assert rejected(*pairs).rule == "must appear at most once"


def test_duplicate_in_plain_mapping_is_rejected() -> None:
    """Two spellings of one name in a plain dict count as a duplicate too."""
    with pytest.raises(InvalidFeedback) as info:
        parse_feedback_headers({"X-Feedback": "positive", "x-feedback": "negative"}, RULES, NOW)
    assert info.value.message == "X-Feedback: must appear at most once"


def test_one_bad_header_rejects_all() -> None:
    """All-or-nothing: good headers around one bad one still give an error naming the bad one."""
    error = rejected(
        ("X-Feedback", "negative"),
        ("X-Feedback-Category", "incorrect"),
        ("X-Feedback-Comment", "fine"),
        ("X-Feedback-Reason", "not-a-reason"),
        ("X-Feedback-Id", "f1"),
    )
    assert error.source == "X-Feedback-Reason"


def test_first_bad_header_in_table_order_is_named() -> None:
    """With several bad headers the error names the first, in docs/reference.md §4 order."""
    error = rejected(("X-Feedback-Id", "a b"), ("X-Feedback-Rating", "9"), ("X-Feedback", "meh"))
    assert error.source == "X-Feedback"


def test_no_error_message_echoes_the_value() -> None:
    """Whatever the header, the message names the header and rule, never the client's value."""
    for lname in sorted(FEEDBACK_HEADERS):
        with pytest.raises(InvalidFeedback) as info:
            parse(("X-Feedback-Rating", "4"), (lname, SECRETISH + "%zz a"))
        assert SECRETISH not in info.value.message
        assert SECRETISH.encode() not in info.value.body()


def test_error_is_a_bad_request_with_an_openai_body() -> None:
    """InvalidFeedback is a 400 BadRequest whose body names the header as `param`."""
    error = rejected(("X-Feedback-Rating", "9"))
    assert isinstance(error, BadRequest)
    assert error.kind == "invalid_feedback"
    assert orjson.loads(error.body()) == {
        "error": {
            "message": "X-Feedback-Rating: must be a number from 1 to 5",
            "type": "invalid_request_error",
            "code": "invalid_feedback",
            "param": "X-Feedback-Rating",
        }
    }


# -- JSON attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [(4, 4), (3.5, 3.5), (4.0, 4), (1, 1), (5, 5), ("4", 4), (" 4.5 ", 4.5), ("5.0", 5)],
)
def test_json_rating_accepts_numbers_and_decimal_text(value: Any, stored: float) -> None:
    """A JSON rating may be a number in [1, 5] or text by the header rule."""
    result = validate_attributes({"user_feedback_rating": value}, RULES, NOW, "attributes")
    assert result == {"user_feedback_rating": stored}
    assert type(result["user_feedback_rating"]) is type(stored)


@pytest.mark.parametrize(
    "value",
    [True, False, None, 0, 6, 0.5, 5.5, float("nan"), float("inf"), "nan", "1e0", "", [4], {}],
)
def test_json_rating_rejects_booleans_and_out_of_range(value: Any) -> None:
    """Booleans are never numbers; nan, inf, null and out-of-range values are refused."""
    error = json_rejected({"user_feedback_rating": value}, "X-Trace-Attributes")
    assert error.source == "X-Trace-Attributes.user_feedback_rating"
    assert error.message.startswith("X-Trace-Attributes.user_feedback_rating: must ")


def test_json_attributes_are_normalised_and_unknown_keys_pass() -> None:
    """Feedback keys are normalised like headers; other keys (any JSON) pass unchanged."""
    given = {
        "user_feedback": " NEGATIVE ",
        "user_feedback_category": "Off-Topic",
        "feedback_reason": "too_verbose",
        "user_feedback_timestamp": "2026-11-26T13:00:00+01:00",
        "user_feedback_comment": "100% wrong: caf%C3%A9 ☹",
        "team": {"name": "search", "ids": [1, 2]},
        "User_Feedback": "whatever",
        "n": None,
    }
    result = validate_attributes(given, RULES, NOW, "attributes")
    assert result == {
        "user_feedback": "negative",
        "user_feedback_category": "off-topic",
        "feedback_reason": "too_verbose",
        "user_feedback_timestamp": "2026-11-26T12:00:00.000Z",
        "user_feedback_comment": "100% wrong: caf%C3%A9 ☹",  # JSON text is never percent-decoded
        "team": {"name": "search", "ids": [1, 2]},
        "User_Feedback": "whatever",
        "n": None,
    }
    assert given["user_feedback"] == " NEGATIVE "  # the input is not changed


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("user_feedback", "meh", "must be positive or negative"),
        ("user_feedback", 1, "must be positive or negative"),
        ("user_feedback", None, "must be positive or negative"),
        ("user_feedback", "", "must not be empty"),
        ("user_feedback_category", "nope", "must be one of"),
        ("user_feedback_category", ["incorrect"], "must be one of"),
        ("feedback_reason", True, "must be one of"),
        ("user_feedback_comment", "a" * 2001, "must be at most 2000 characters"),
        ("user_feedback_comment", 5, "must be a string"),
        ("user_feedback_comment", "bad\ud800", "not valid UTF-8"),
        ("user_feedback_comment", "a\x00", "must not contain NUL"),
        ("user_feedback_timestamp", "2026-11-26T12:00:00", "must be an ISO 8601"),
        ("user_feedback_timestamp", 1764158400, "must be an ISO 8601"),
        ("user_feedback_timestamp", "2026-11-26T12:06:00Z", "must not be more than 5 minutes"),
    ],
)
def test_json_feedback_values_follow_the_header_rules(key: str, value: Any, rule: str) -> None:
    """Each feedback key is checked by its header's rule and the error names source.key."""
    error = json_rejected({"ok": 1, key: value}, "POST /feedback attributes")
    assert error.source == f"POST /feedback attributes.{key}"
    assert error.rule.startswith(rule)


def test_json_without_feedback_keys_is_unchanged() -> None:
    """Attributes without feedback keys come back equal (a copy) and get no timestamp."""
    given = {"env": "prod", "n": 3}
    result = validate_attributes(given, RULES, NOW, "X-Trace-Attributes", default_timestamp=True)
    assert result == given
    assert result is not given


def test_json_timestamp_default_is_opt_in() -> None:
    """default_timestamp=True stamps feedback values with `now`; off by default (PATCH edits)."""
    values = {"user_feedback": "positive"}
    assert validate_attributes(values, RULES, NOW, "a") == {"user_feedback": "positive"}
    stamped = validate_attributes(values, RULES, NOW, "a", default_timestamp=True)
    assert stamped == {"user_feedback": "positive", "user_feedback_timestamp": NOW_TEXT}
    given = {"user_feedback": "positive", "user_feedback_timestamp": "2026-11-26T11:00:00Z"}
    kept = validate_attributes(given, RULES, NOW, "a", default_timestamp=True)
    assert kept["user_feedback_timestamp"] == "2026-11-26T11:00:00.000Z"


def test_feedback_tags_for_thumbs_values() -> None:
    """feedback_tags gives the thumbs tag of a user_feedback value, nothing otherwise."""
    assert feedback_tags({"user_feedback": "positive"}) == ("thumbs-up",)
    assert feedback_tags({"user_feedback": "negative", "x": 1}) == ("thumbs-down",)
    assert feedback_tags({"user_feedback": " Negative "}) == ("thumbs-down",)
    assert feedback_tags({}) == ()
    assert feedback_tags({"user_feedback": "meh"}) == ()
    assert feedback_tags({"user_feedback": True}) == ()


def test_validate_id_for_body_fields() -> None:
    """validate_id checks a span or feedback ID from a JSON body by the header rule."""
    assert validate_id("s:1", "span_id") == "s:1"
    for bad in ("", "a b", "A" * 129, 7, None):
        with pytest.raises(InvalidFeedback) as info:
            validate_id(bad, "span_id")
        assert info.value.message == "span_id: must be 1-128 characters of A-Z a-z 0-9 . _ : -"


def test_format_timestamp() -> None:
    """format_timestamp renders UTC with milliseconds and a Z, truncating microseconds."""
    moment = datetime(2026, 11, 26, 13, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(moment) == "2026-11-26T12:00:00.999Z"
    assert format_timestamp(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000Z"


def test_module_is_pure() -> None:
    """Importing feedback loads neither aiohttp nor redis."""
    code = (
        "import sys, proxy.feedback.parse; "
        "print([m for m in ('aiohttp', 'redis') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
