"""Trace context from request headers (docs/reference.md §3): ours, traceparent, dialects."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest
from multidict import CIMultiDict

from proxy.core.errors import BadRequest
from proxy.core.ids import new_span_id, new_trace_id
from proxy.tracing.context import (
    CONSUMED_HEADERS,
    CONSUMED_PREFIXES,
    TraceContext,
    parse_trace_context,
    w3c_trace_id_for,
)

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
W3C = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
BAD_BYTES = "abc\udcff"  # how aiohttp hands over a header value with an invalid UTF-8 byte


def parse(*pairs: tuple[str, str]) -> TraceContext:
    return parse_trace_context(CIMultiDict(pairs))


def rejected(*pairs: tuple[str, str]) -> str:
    with pytest.raises(BadRequest) as info:
        parse(*pairs)
    assert info.value.status == 400
    assert info.value.code == "invalid_trace_header"
    return info.value.message


def valid_w3c(traceparent: str) -> bool:
    if W3C.fullmatch(traceparent) is None:
        return False
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id != "0" * 32 and span_id != "0" * 16


# -- generated IDs ---------------------------------------------------------------------------


def test_new_ids_are_lowercase_hex_of_w3c_length() -> None:
    """new_trace_id gives 32 and new_span_id 16 lowercase hex, different on every call."""
    assert HEX32.fullmatch(new_trace_id())
    assert HEX16.fullmatch(new_span_id())
    assert len({new_trace_id() for _ in range(100)}) == 100
    assert len({new_span_id() for _ in range(100)}) == 100


def test_no_headers_generates_a_fresh_trace() -> None:
    """Without any trace header the proxy makes a W3C-compatible trace ID and marks it generated."""
    context = parse(("Authorization", "Bearer sk-x"), ("Content-Type", "application/json"))
    assert context.generated
    assert HEX32.fullmatch(context.trace_id)
    assert context.w3c_trace_id == context.trace_id
    assert HEX16.fullmatch(context.span_id)
    assert context.parent_span_id is None
    assert context.trace_flags == "01"
    assert (context.name, context.session_id, context.user_id) == (None, None, None)
    assert context.tags == ()
    assert context.attributes == {}
    assert context.client_span_id is None


def test_every_call_gets_a_new_span_even_in_the_same_trace() -> None:
    """The span ID is always the proxy's own and new, whatever the client sends."""
    first = parse(("X-Trace-Id", "t-1"), ("x-portkey-span-id", "abc"))
    second = parse(("X-Trace-Id", "t-1"), ("traceparent", TRACEPARENT))
    assert first.span_id != second.span_id
    assert HEX16.fullmatch(first.span_id)
    assert HEX16.fullmatch(second.span_id)
    assert second.span_id != PARENT


# -- X-Trace-Id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["a", "order-12345:checkout.v2_x", "A" * 128, TRACE, "0" * 32, "x" * 127 + "-"]
)
def test_x_trace_id_accepts_the_allowed_charset(value: str) -> None:
    """X-Trace-Id of 1-128 chars of A-Z a-z 0-9 . _ : - is the trace ID, as the client named it."""
    context = parse(("x-trace-id", value))
    assert context.trace_id == value
    assert not context.generated


@pytest.mark.parametrize(
    "value", ["", "a" * 129, "has space", "slash/no", "ünïcode", "١٢٣", "tab\there", "a\n"]
)
def test_x_trace_id_rejects_anything_else(value: str) -> None:
    """A malformed X-Trace-Id is a 400 that names the header and the rule."""
    message = rejected(("X-Trace-Id", value))
    assert message == "X-Trace-Id: must be 1-128 characters of A-Z a-z 0-9 . _ : -"


def test_x_trace_id_with_invalid_utf8_says_so_without_echoing_it() -> None:
    """Lone surrogates (undecodable bytes) give 'not valid UTF-8' and never the raw value."""
    message = rejected(("X-Trace-Id", BAD_BYTES))
    assert message == "X-Trace-Id: not valid UTF-8"


@pytest.mark.parametrize("header", ["adaline-trace-reference-id", "x-portkey-trace-id"])
def test_dialect_trace_ids_follow_the_same_rule(header: str) -> None:
    """Dialect trace IDs are validated like X-Trace-Id, and the 400 names the dialect header."""
    assert parse((header, "order-12345-checkout")).trace_id == "order-12345-checkout"
    assert rejected((header, "no spaces")).startswith(f"{header}: must be 1-128 characters")


def test_error_messages_never_echo_client_values() -> None:
    """Whatever a client sends, an error message holds at most the header name and the rule."""
    secret = "s3cr3t-" + "z" * 300
    for header in ["X-Trace-Id", "X-Trace-Name", "X-Trace-Attributes", "X-Trace-Tags"]:
        message = rejected((header, secret + "\x01 {"))
        assert "s3cr3t" not in message
        assert len(message) < 120


def test_a_repeated_single_value_header_is_rejected() -> None:
    """Two X-Trace-Id fields are ambiguous: 400 instead of silently picking one."""
    message = rejected(("X-Trace-Id", "a"), ("x-trace-id", "b"))
    assert message == "X-Trace-Id: must appear at most once"


# -- traceparent -----------------------------------------------------------------------------


def test_valid_traceparent_gives_trace_and_parent() -> None:
    """A valid traceparent supplies the trace ID, the parent span and the flags."""
    context = parse(("traceparent", f"00-{TRACE}-{PARENT}-00"))
    assert context.trace_id == TRACE
    assert context.w3c_trace_id == TRACE
    assert context.parent_span_id == PARENT
    assert context.trace_flags == "00"
    assert not context.generated
    assert context.traceparent() == f"00-{TRACE}-{context.span_id}-00"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace-id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent-id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase
        f"00-{TRACE}-{PARENT.upper()}-01",
        f"00-{TRACE}-{PARENT}-0A",
        f"0A-{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short
        f"00-{TRACE}-{PARENT[:-1]}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 must end after the flags
        f"00-{TRACE}-{PARENT}-011",
        f"01-{TRACE}-{PARENT}-01x",  # a later version still needs '-' after the flags
        f"00_{TRACE}_{PARENT}_01",
        "garbage",
        "",
        f"00-{TRACE}-{PARENT}-0\udcff",
    ],
)
def test_invalid_traceparent_counts_as_absent(value: str) -> None:
    """An invalid traceparent never raises; the trace is generated and has no parent."""
    context = parse(("traceparent", value))
    assert context.generated
    assert context.trace_id != TRACE
    assert context.parent_span_id is None
    assert context.trace_flags == "01"


@pytest.mark.parametrize("value", [f"01-{TRACE}-{PARENT}-03", f"cc-{TRACE}-{PARENT}-03-what-ever"])
def test_later_traceparent_versions_are_read_by_their_first_fields(value: str) -> None:
    """Forward compatibility: a higher version is parsed by its first four fields; we send 00."""
    context = parse(("traceparent", value))
    assert (context.trace_id, context.parent_span_id, context.trace_flags) == (TRACE, PARENT, "03")
    assert context.traceparent().startswith(f"00-{TRACE}-")


def test_repeated_traceparent_counts_as_absent() -> None:
    """Two traceparent fields are ambiguous, so neither is used (and no 400)."""
    context = parse(("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT))
    assert context.generated
    assert context.parent_span_id is None


# -- the traceparent we send -----------------------------------------------------------------


@pytest.mark.parametrize(
    "trace_id", ["order-12345", "a", "Z" * 128, "0" * 32, TRACE.upper(), "x:y.z_1-2"]
)
def test_traceparent_is_always_valid_w3c_for_custom_ids(trace_id: str) -> None:
    """Custom trace IDs get a derived W3C trace-id, so the traceparent sent upstream is valid."""
    context = parse(("X-Trace-Id", trace_id))
    assert valid_w3c(context.traceparent())
    assert context.traceparent() == f"00-{context.w3c_trace_id}-{context.span_id}-01"
    assert context.w3c_trace_id != trace_id


def test_w3c_id_derivation_is_deterministic_and_distinct() -> None:
    """The same custom ID always maps to the same W3C ID; different IDs map to different ones."""
    assert w3c_trace_id_for("order-1") == w3c_trace_id_for("order-1")
    assert w3c_trace_id_for("order-1") != w3c_trace_id_for("order-2")
    assert w3c_trace_id_for("ORDER-1") != w3c_trace_id_for("order-1")
    assert parse(("X-Trace-Id", "t")).w3c_trace_id == parse(("X-Trace-Id", "t")).w3c_trace_id


def test_w3c_id_of_a_valid_w3c_trace_id_is_itself() -> None:
    """A 32 lowercase hex, non-zero trace ID is already W3C and is used unchanged."""
    assert w3c_trace_id_for(TRACE) == TRACE
    assert HEX32.fullmatch(w3c_trace_id_for("0" * 32))
    assert w3c_trace_id_for("0" * 32) != "0" * 32


# -- precedence ------------------------------------------------------------------------------


def test_trace_id_precedence_across_dialects() -> None:
    """X-Trace-Id > adaline-trace-reference-id > x-portkey-trace-id > traceparent > generated."""
    sources = [
        ("X-Trace-Id", "ours"),
        ("adaline-trace-reference-id", "adaline"),
        ("x-portkey-trace-id", "portkey"),
        ("traceparent", TRACEPARENT),
    ]
    expected = ["ours", "adaline", "portkey", TRACE]
    for index, want in enumerate(expected):
        assert parse(*sources[index:]).trace_id == want


def test_explicit_trace_id_beats_traceparent_and_drops_its_parent() -> None:
    """With X-Trace-Id naming another trace, traceparent's parent and flags are not used."""
    context = parse(("X-Trace-Id", "ours"), ("traceparent", f"00-{TRACE}-{PARENT}-00"))
    assert context.trace_id == "ours"
    assert context.parent_span_id is None
    assert context.trace_flags == "01"


def test_traceparent_parent_applies_when_it_names_the_same_trace() -> None:
    """A traceparent carrying our derived W3C ID (we sent it earlier) still gives the parent."""
    derived = w3c_trace_id_for("order-7")
    context = parse(("X-Trace-Id", "order-7"), ("traceparent", f"00-{derived}-{PARENT}-00"))
    assert context.parent_span_id == PARENT
    assert context.trace_flags == "00"
    assert context.traceparent() == f"00-{derived}-{context.span_id}-00"


def test_parent_span_precedence() -> None:
    """X-Parent-Span-Id > x-portkey-parent-span-id > traceparent's parent-id > None."""
    sources = [
        ("X-Parent-Span-Id", "ours"),
        ("x-portkey-parent-span-id", "portkey"),
        ("traceparent", TRACEPARENT),
    ]
    for index, want in enumerate(["ours", "portkey", PARENT]):
        assert parse(*sources[index:]).parent_span_id == want


@pytest.mark.parametrize("header", ["X-Parent-Span-Id", "x-portkey-parent-span-id"])
def test_parent_span_ids_follow_the_id_rule(header: str) -> None:
    """A malformed parent span header is a 400 naming it."""
    assert rejected((header, "a b")).startswith(f"{header}: must be 1-128 characters")
    assert rejected((header, "")).startswith(f"{header}: must be 1-128 characters")


def test_portkey_span_id_is_kept_as_the_client_span_id() -> None:
    """x-portkey-span-id never replaces our span ID; it is kept as client_span_id."""
    context = parse(("x-portkey-trace-id", "t"), ("x-portkey-span-id", "step-1"))
    assert context.client_span_id == "step-1"
    assert context.span_id != "step-1"
    assert "portkey" not in repr(context.attributes)
    assert rejected(("x-portkey-span-id", "a/b")).startswith("x-portkey-span-id: must be 1-128")


def test_name_precedence() -> None:
    """X-Trace-Name > adaline-trace-name."""
    assert parse(("X-Trace-Name", "ours"), ("adaline-trace-name", "a")).name == "ours"
    assert parse(("adaline-trace-name", "user-onboarding-flow")).name == "user-onboarding-flow"


def test_session_precedence() -> None:
    """X-Session-Id > adaline-trace-session-id > Helicone-Session-Id."""
    sources = [
        ("X-Session-Id", "ours"),
        ("adaline-trace-session-id", "adaline"),
        ("Helicone-Session-Id", "helicone"),
    ]
    for index, want in enumerate(["ours", "adaline", "helicone"]):
        assert parse(*sources[index:]).session_id == want


def test_user_precedence() -> None:
    """X-User-Id > Helicone-User-Id > x-portkey-metadata's _user."""
    sources = [
        ("X-User-Id", "ours"),
        ("Helicone-User-Id", "helicone"),
        ("x-portkey-metadata", '{"_user": "portkey"}'),
    ]
    for index, want in enumerate(["ours", "helicone", "portkey"]):
        assert parse(*sources[index:]).user_id == want


def test_portkey_user_must_be_a_valid_user_id() -> None:
    """A non-string or over-long _user in x-portkey-metadata is a 400 naming the header."""
    message = rejected(("x-portkey-metadata", '{"_user": 42}'))
    assert message == "x-portkey-metadata: _user must be a string"
    long_user = orjson.dumps({"_user": "u" * 129}).decode()
    assert rejected(("x-portkey-metadata", long_user)).startswith("x-portkey-metadata: _user")


def test_a_bad_losing_header_is_still_rejected() -> None:
    """Every header read is validated, even one that a higher-precedence header overrides."""
    message = rejected(("X-Trace-Id", "ok"), ("x-portkey-trace-id", "not ok"))
    assert message.startswith("x-portkey-trace-id:")


# -- name, session and user rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cap"),
    [
        ("X-Trace-Name", 256),
        ("adaline-trace-name", 256),
        ("X-Session-Id", 128),
        ("adaline-trace-session-id", 128),
        ("Helicone-Session-Id", 128),
        ("X-User-Id", 128),
        ("Helicone-User-Id", 128),
    ],
)
def test_text_fields_have_caps_and_no_control_characters(header: str, cap: int) -> None:
    """Names, sessions and users: 1..cap characters, any UTF-8 but no control characters."""
    assert parse((header, "x" * cap)) is not None
    assert parse((header, "Łódź café ✓")) is not None
    assert rejected((header, "x" * (cap + 1))) == f"{header}: must be 1-{cap} characters"
    assert rejected((header, "")) == f"{header}: must be 1-{cap} characters"
    assert rejected((header, "a\x00b")) == f"{header}: must not contain control characters"
    assert rejected((header, "a\x7fb")) == f"{header}: must not contain control characters"
    assert rejected((header, BAD_BYTES)) == f"{header}: not valid UTF-8"


# -- tags ------------------------------------------------------------------------------------


def test_tags_are_trimmed_deduplicated_and_ordered() -> None:
    """X-Trace-Tags: comma-separated, trimmed, empties dropped, first occurrence order kept."""
    context = parse(("X-Trace-Tags", " b, a ,,b, c ,"))
    assert context.tags == ("b", "a", "c")


def test_tags_union_with_adaline_comma_list() -> None:
    """Our tags come first, then adaline-trace-tags (comma form), without duplicates."""
    context = parse(("X-Trace-Tags", "a,b"), ("adaline-trace-tags", "b, c"))
    assert context.tags == ("a", "b", "c")


def test_adaline_tags_accept_a_json_array() -> None:
    """adaline-trace-tags may be a JSON array of strings."""
    context = parse(("adaline-trace-tags", '["thumbs-down", " x ", "", "thumbs-down"]'))
    assert context.tags == ("thumbs-down", "x")


@pytest.mark.parametrize("value", ["[1, 2]", '["a",', "[]x", '["a", null]', '[["a"]]'])
def test_adaline_tags_reject_a_bad_json_array(value: str) -> None:
    """A JSON-looking adaline-trace-tags that is not an array of strings is a 400."""
    assert rejected(("adaline-trace-tags", value)).startswith("adaline-trace-tags: must be")


def test_our_tags_are_never_json() -> None:
    """X-Trace-Tags is always a comma list, so a bracketed tag stays a tag."""
    assert parse(("X-Trace-Tags", "[draft],x")).tags == ("[draft]", "x")


def test_repeated_tag_headers_combine() -> None:
    """Several X-Trace-Tags fields are one comma list, as HTTP allows."""
    assert parse(("X-Trace-Tags", "a"), ("x-trace-tags", "b,a")).tags == ("a", "b")


def test_tag_limits() -> None:
    """Each tag is at most 128 characters without control characters; at most 64 tags."""
    assert parse(("X-Trace-Tags", "t" * 128)).tags == ("t" * 128,)
    assert rejected(("X-Trace-Tags", "t" * 129)).startswith("X-Trace-Tags: each tag")
    assert rejected(("X-Trace-Tags", "a\x01b")).startswith("X-Trace-Tags: each tag")
    assert len(parse(("X-Trace-Tags", ",".join(f"t{i}" for i in range(64)))).tags) == 64
    assert rejected(("X-Trace-Tags", ",".join(f"t{i}" for i in range(65)))) == (
        "X-Trace-Tags: at most 64 tags"
    )
    ours = ",".join(f"o{i}" for i in range(40))
    theirs = ",".join(f"a{i}" for i in range(40))
    message = rejected(("X-Trace-Tags", ours), ("adaline-trace-tags", theirs))
    assert message.endswith("at most 64 tags in all")
    assert rejected(("X-Trace-Tags", BAD_BYTES)) == "X-Trace-Tags: not valid UTF-8"


# -- attributes ------------------------------------------------------------------------------


def nested(depth: int) -> str:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return orjson.dumps(value).decode()


def test_attributes_are_a_json_object() -> None:
    """X-Trace-Attributes is parsed as a JSON object and becomes the attributes."""
    context = parse(("X-Trace-Attributes", '{"user_feedback": "negative", "n": 2, "l": [1]}'))
    assert context.attributes == {"user_feedback": "negative", "n": 2, "l": [1]}


@pytest.mark.parametrize("header", ["X-Trace-Attributes", "adaline-trace-attributes"])
@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "must be a JSON object"),
        ("not json", "must be a JSON object"),
        ('{"a": 1', "must be a JSON object"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        (BAD_BYTES, "not valid UTF-8"),
        ('{"a": "' + "x" * 8192 + '"}', "must be at most 8192 bytes"),
        ('{"a": "' + "é" * 4094 + '"}', "must be at most 8192 bytes"),
        (nested(6), "must nest at most 5 levels deep"),
        ('{"a": [[[[[1]]]]]}', "must nest at most 5 levels deep"),
        ("[" * 3000 + "]" * 3000, "must nest at most 5 levels deep"),
    ],
)
def test_attribute_errors(header: str, value: str, rule: str) -> None:
    """Attribute headers: not JSON, not an object, bad UTF-8, over 8 KiB, too deep -> 400."""
    assert rejected((header, value)) == f"{header}: {rule}"


def test_attribute_caps_are_inclusive() -> None:
    """Exactly 8192 bytes and exactly 5 levels of nesting are accepted."""
    exact = '{"a": "' + "x" * (8192 - 9) + '"}'
    assert len(exact.encode()) == 8192
    assert parse(("X-Trace-Attributes", exact)).attributes["a"] == "x" * 8183
    assert parse(("X-Trace-Attributes", nested(5))).attributes == orjson.loads(nested(5))
    assert parse(("X-Trace-Attributes", '{"a": [[[{"b": 1}]]]}')).attributes


def test_portkey_metadata_is_a_json_object() -> None:
    """x-portkey-metadata follows the attribute rules and its keys become attributes."""
    context = parse(("x-portkey-metadata", '{"_user": "u1", "foo": "bar"}'))
    assert context.attributes == {"_user": "u1", "foo": "bar"}
    assert context.user_id == "u1"
    assert rejected(("x-portkey-metadata", "[]")) == "x-portkey-metadata: must be a JSON object"


def test_helicone_properties_become_lowercase_attributes() -> None:
    """Helicone-Property-<Name> becomes attribute <name>, whatever the header's case."""
    context = parse(("Helicone-Property-App", "mobile"), ("helicone-property-TIER", "Gold"))
    assert context.attributes == {"app": "mobile", "tier": "Gold"}


def test_helicone_property_rules() -> None:
    """Properties need a name, valid UTF-8, at most 1024 characters, once each, 64 in all."""
    assert rejected(("Helicone-Property-", "x")).startswith("Helicone-Property-: property name")
    assert rejected(("Helicone-Property-App", BAD_BYTES)) == (
        "Helicone-Property-App: not valid UTF-8"
    )
    assert rejected(("Helicone-Property-App", "x" * 1025)).endswith("at most 1024 characters")
    message = rejected(("Helicone-Property-App", "a"), ("helicone-property-app", "b"))
    assert message == "helicone-property-app: must appear at most once"
    many = [(f"Helicone-Property-P{i}", "v") for i in range(65)]
    assert rejected(*many) == "Helicone-Property-*: at most 64 properties"
    assert parse(("Helicone-Property-Note", "Łódź")).attributes == {"note": "Łódź"}


def test_attribute_precedence() -> None:
    """For the same key: ours > adaline > portkey > helicone; other keys all merge."""
    headers = [
        ("Helicone-Property-K", "helicone"),
        ("Helicone-Property-H", "h"),
        ("x-portkey-metadata", '{"k": "portkey", "p": "p"}'),
        ("adaline-trace-attributes", '{"k": "adaline", "a": "a"}'),
        ("X-Trace-Attributes", '{"k": "ours", "o": "o"}'),
    ]
    expected = ["ours", "adaline", "portkey", "helicone"]
    for index, want in enumerate(expected):
        attributes = parse(*headers[: len(headers) - index]).attributes
        assert attributes["k"] == want
    assert parse(*headers).attributes == {"k": "ours", "h": "h", "p": "p", "a": "a", "o": "o"}


# -- what is consumed ------------------------------------------------------------------------


def test_consumed_headers_cover_ours_and_every_dialect() -> None:
    """Our X-* trace headers and all dialect headers are consumed, in lowercase."""
    expected = {
        "x-trace-id",
        "x-parent-span-id",
        "x-trace-name",
        "x-session-id",
        "x-user-id",
        "x-trace-tags",
        "x-trace-attributes",
        "adaline-trace-reference-id",
        "adaline-trace-session-id",
        "adaline-trace-name",
        "adaline-trace-attributes",
        "adaline-trace-tags",
        "x-portkey-trace-id",
        "x-portkey-span-id",
        "x-portkey-parent-span-id",
        "x-portkey-metadata",
        "helicone-session-id",
        "helicone-user-id",
    }
    assert expected <= CONSUMED_HEADERS
    assert all(name == name.lower() for name in CONSUMED_HEADERS)
    assert CONSUMED_PREFIXES == ("helicone-property-",)


def test_forwarded_headers_are_not_consumed() -> None:
    """traceparent, tracestate and credentials are forwarded, so they are not consumed."""
    for name in ["traceparent", "tracestate", "authorization", "x-api-key", "api-key"]:
        assert name not in CONSUMED_HEADERS
        assert not name.startswith(CONSUMED_PREFIXES)


def test_module_is_pure() -> None:
    """Importing trace_context loads neither aiohttp nor redis."""
    code = (
        "import sys, proxy.tracing.context; "
        "print([m for m in ('aiohttp', 'redis') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_traceparent_header_case_does_not_matter() -> None:
    """Header names are matched case-insensitively, also with a plain CIMultiDict."""
    context = parse(("TraceParent", TRACEPARENT), ("X-TRACE-NAME", "n"))
    assert (context.trace_id, context.name) == (TRACE, "n")
