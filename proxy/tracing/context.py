"""Trace context from request headers: our ``X-Trace-*`` headers, W3C ``traceparent`` and the
drop-in dialects of Adaline, Portkey and Helicone (docs/reference.md §3).

Runs on every proxied request, so it reads the headers in one pass, uses only precompiled
patterns and returns at once when a request carries no trace header at all. Malformed values
raise :class:`~proxy.core.errors.BadRequest` naming the header and the rule; an invalid
``traceparent`` is treated as absent instead (W3C Trace Context). Error messages never echo a
client value. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from proxy.core.errors import BadRequest
from proxy.core.ids import ID_PATTERN, ID_RULE, is_valid_utf8, new_span_id, new_trace_id
from proxy.core.tags import MAX_TAGS, TAG_RULE, is_tag, unique_tags

__all__ = [
    "CONSUMED_HEADERS",
    "CONSUMED_PREFIXES",
    "TraceContext",
    "parse_trace_context",
    "w3c_span_id_for",
    "w3c_trace_id_for",
]

MAX_NAME_CHARS = 256
MAX_KEY_CHARS = 128  # session and user IDs
MAX_JSON_BYTES = 8192
MAX_JSON_DEPTH = 5  # the top-level object is depth 1
MAX_PROPERTY_CHARS = 1024
MAX_PROPERTIES = 64
ERROR_CODE = "invalid_trace_header"

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACEPARENT_LEN = 55
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DEPTH_RULE = f"must nest at most {MAX_JSON_DEPTH} levels deep"
_TAGS_JSON_RULE = "must be a comma-separated list or a JSON array of strings"

# Lowercase name -> the spelling used in error messages, for every header read here.
_DISPLAY: dict[str, str] = {
    "x-trace-id": "X-Trace-Id",
    "x-parent-span-id": "X-Parent-Span-Id",
    "x-trace-name": "X-Trace-Name",
    "x-session-id": "X-Session-Id",
    "x-user-id": "X-User-Id",
    "x-trace-tags": "X-Trace-Tags",
    "x-trace-attributes": "X-Trace-Attributes",
    "adaline-trace-reference-id": "adaline-trace-reference-id",
    "adaline-trace-name": "adaline-trace-name",
    "adaline-trace-session-id": "adaline-trace-session-id",
    "adaline-trace-tags": "adaline-trace-tags",
    "adaline-trace-attributes": "adaline-trace-attributes",
    "x-portkey-trace-id": "x-portkey-trace-id",
    "x-portkey-span-id": "x-portkey-span-id",
    "x-portkey-parent-span-id": "x-portkey-parent-span-id",
    "x-portkey-metadata": "x-portkey-metadata",
    "helicone-session-id": "Helicone-Session-Id",
    "helicone-user-id": "Helicone-User-Id",
    "traceparent": "traceparent",
}
_HELICONE_PROPERTY = "helicone-property-"

CONSUMED_HEADERS: frozenset[str] = frozenset(_DISPLAY) - {"traceparent"}
"""Lowercase names of the headers read here that must not be forwarded upstream.
``traceparent`` is read but forwarded (replaced by ours); ``tracestate`` is not touched."""
CONSUMED_PREFIXES: tuple[str, ...] = (_HELICONE_PROPERTY,)
_READ = frozenset(_DISPLAY)
_JOINABLE = frozenset({"x-trace-tags"})  # a comma list may be split over several fields

# Precedence, highest first (docs/reference.md §3: our own header wins over every dialect).
_TRACE_ID_HEADERS = ("x-trace-id", "adaline-trace-reference-id", "x-portkey-trace-id")
_PARENT_HEADERS = ("x-parent-span-id", "x-portkey-parent-span-id")
_NAME_HEADERS = ("x-trace-name", "adaline-trace-name")
_SESSION_HEADERS = ("x-session-id", "adaline-trace-session-id", "helicone-session-id")
_USER_HEADERS = ("x-user-id", "helicone-user-id")
# Lowest first: each later source overrides the keys of the earlier ones.
_ATTRIBUTE_HEADERS = ("x-portkey-metadata", "adaline-trace-attributes", "x-trace-attributes")
_PORTKEY_USER_KEY = "_user"  # Portkey's documented user key inside x-portkey-metadata


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The trace identity of one proxied call, resolved from its request headers."""

    trace_id: str
    span_id: str
    w3c_trace_id: str
    parent_span_id: str | None
    trace_flags: str
    name: str | None
    session_id: str | None
    user_id: str | None
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    generated: bool
    # Portkey clients name their own spans (x-portkey-span-id) and point children at them with
    # x-portkey-parent-span-id. Our span ID stays ours, so the client's name is kept here, per
    # span, to let a reader resolve such parent links. It is not a trace attribute: attributes
    # merge into the trace, where each new span would overwrite the previous one's value.
    client_span_id: str | None = None
    # Which header each attribute came from (its display name), for error messages that name
    # the header a client actually sent.
    attribute_sources: dict[str, str] = field(default_factory=dict)

    def traceparent(self) -> str:
        """The W3C ``traceparent`` sent upstream: this call's span under the trace."""
        return f"00-{self.w3c_trace_id}-{self.span_id}-{self.trace_flags}"


class _Parent(NamedTuple):
    trace_id: str
    parent_id: str
    flags: str


def w3c_trace_id_for(trace_id: str) -> str:
    """The W3C trace-id for ``trace_id``: itself when already valid, else derived from its hash.

    Deterministic, so the same custom ID always maps to the same W3C ID.
    """
    if trace_id != _ZERO_TRACE_ID and _HEX32.fullmatch(trace_id):
        return trace_id
    derived = hashlib.sha256(trace_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return derived if derived != _ZERO_TRACE_ID else "0" * 31 + "1"


def w3c_span_id_for(span_id: str) -> str:
    """The W3C span-id for ``span_id``: itself when already 16 hex, else derived from its hash.

    The proxy's own span IDs are valid as they are; a client's custom parent ID
    (``X-Parent-Span-Id: step-3``) gets the same deterministic treatment as a custom trace ID.
    """
    if span_id != _ZERO_SPAN_ID and _HEX16.fullmatch(span_id):
        return span_id
    derived = hashlib.sha256(span_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return derived if derived != _ZERO_SPAN_ID else "0" * 15 + "1"


def parse_trace_context(headers: Mapping[str, str]) -> TraceContext:
    """Resolve the trace context of a request from its (case-insensitive) headers."""
    raw, properties = _collect(headers.items())
    if not raw and not properties:
        trace_id = new_trace_id()
        return TraceContext(
            trace_id, new_span_id(), trace_id, None, "01", None, None, None, (), {}, True
        )
    incoming = _parse_traceparent(raw.get("traceparent", ""))
    trace_id, generated = _resolve_trace_id(raw, incoming)
    w3c_trace_id = w3c_trace_id_for(trace_id)
    same_trace = incoming if incoming is not None and incoming.trace_id == w3c_trace_id else None
    portkey = _json_object(raw, "x-portkey-metadata")
    attributes, sources = _resolve_attributes(raw, portkey, properties)
    return TraceContext(
        trace_id=trace_id,
        span_id=new_span_id(),
        w3c_trace_id=w3c_trace_id,
        parent_span_id=_resolve_parent(raw, same_trace),
        trace_flags=same_trace.flags if same_trace is not None else "01",
        name=_first_text(raw, _NAME_HEADERS, MAX_NAME_CHARS),
        session_id=_first_text(raw, _SESSION_HEADERS, MAX_KEY_CHARS),
        user_id=_resolve_user(raw, portkey),
        tags=_resolve_tags(raw),
        attributes=attributes,
        generated=generated,
        client_span_id=_first_id(raw, ("x-portkey-span-id",)),
        attribute_sources=sources,
    )


# -- collecting ------------------------------------------------------------------------------


def _collect(items: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """One pass over the headers: the ones read here by lowercase name, and Helicone properties."""
    raw: dict[str, str] = {}
    properties: dict[str, str] = {}
    for name, value in items:
        lname = name.lower()
        if lname in _READ:
            _add_header(raw, lname, value)
        elif lname.startswith(_HELICONE_PROPERTY):
            _add_property(properties, name, lname, value)
    return raw, properties


def _add_header(raw: dict[str, str], lname: str, value: str) -> None:
    if lname not in raw:
        raw[lname] = value
    elif lname == "traceparent":
        raw[lname] = ""  # a repeated traceparent is ambiguous: treat it as invalid, i.e. absent
    elif lname in _JOINABLE:
        raw[lname] = f"{raw[lname]},{value}"
    else:
        raise _bad(_DISPLAY[lname], "must appear at most once")


def _add_property(properties: dict[str, str], name: str, lname: str, value: str) -> None:
    display = name[:64] if name.isascii() else "Helicone-Property-*"
    key = lname[len(_HELICONE_PROPERTY) :]
    if not key or not name.isascii():
        raise _bad(display, "property name must be non-empty ASCII")
    if key in properties:
        raise _bad(display, "must appear at most once")
    if len(properties) >= MAX_PROPERTIES:
        raise _bad("Helicone-Property-*", f"at most {MAX_PROPERTIES} properties")
    _require_utf8(display, value)
    if len(value) > MAX_PROPERTY_CHARS:
        raise _bad(display, f"must be at most {MAX_PROPERTY_CHARS} characters")
    properties[key] = value


# -- field resolution ------------------------------------------------------------------------


def _parse_traceparent(value: str) -> _Parent | None:
    """W3C Trace Context: version 00 exactly; a later version by its first four fields."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    if len(value) != _TRACEPARENT_LEN and (version == "00" or value[_TRACEPARENT_LEN] != "-"):
        return None
    return _Parent(trace_id, parent_id, flags)


def _resolve_trace_id(raw: dict[str, str], incoming: _Parent | None) -> tuple[str, bool]:
    """Explicit IDs beat ``traceparent``: OTel-instrumented apps inject a fresh one per request."""
    explicit = _first_id(raw, _TRACE_ID_HEADERS)
    if explicit is not None:
        return explicit, False
    if incoming is not None:
        return incoming.trace_id, False
    return new_trace_id(), True


def _resolve_parent(raw: dict[str, str], same_trace: _Parent | None) -> str | None:
    explicit = _first_id(raw, _PARENT_HEADERS)
    if explicit is not None:
        return explicit
    return same_trace.parent_id if same_trace is not None else None


def _resolve_user(raw: dict[str, str], portkey: dict[str, Any] | None) -> str | None:
    user = _first_text(raw, _USER_HEADERS, MAX_KEY_CHARS)
    portkey_user = None if portkey is None else portkey.get(_PORTKEY_USER_KEY)
    if portkey_user is None:
        return user
    label = f"x-portkey-metadata: {_PORTKEY_USER_KEY}"
    if not isinstance(portkey_user, str):
        raise BadRequest(f"{label} must be a string", code=ERROR_CODE)
    _check_text(label, portkey_user, MAX_KEY_CHARS)
    return user if user is not None else portkey_user


def _resolve_tags(raw: dict[str, str]) -> tuple[str, ...]:
    ours = _tags(raw, "x-trace-tags", json_allowed=False)
    theirs = _tags(raw, "adaline-trace-tags", json_allowed=True)
    if not theirs:
        return ours
    merged = tuple(dict.fromkeys(ours + theirs))
    if len(merged) > MAX_TAGS:
        raise _bad("X-Trace-Tags and adaline-trace-tags", f"at most {MAX_TAGS} tags in all")
    return merged


def _resolve_attributes(
    raw: dict[str, str], portkey: dict[str, Any] | None, properties: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge lowest precedence first: Helicone < Portkey < Adaline < ours; note each source."""
    merged: dict[str, Any] = dict(properties)
    sources = {key: f"Helicone-Property-{key}" for key in properties}
    for lname in _ATTRIBUTE_HEADERS:
        source = portkey if lname == "x-portkey-metadata" else _json_object(raw, lname)
        if source:
            merged.update(source)
            sources.update(dict.fromkeys(source, _DISPLAY.get(lname, lname)))
    return merged, sources


# -- value rules -----------------------------------------------------------------------------


def _first_id(raw: dict[str, str], names: tuple[str, ...]) -> str | None:
    """Every present header is validated; the first in precedence order wins."""
    found = [_check_id(name, raw[name]) for name in names if name in raw]
    return found[0] if found else None


def _first_text(raw: dict[str, str], names: tuple[str, ...], cap: int) -> str | None:
    found = [_check_text(_DISPLAY[name], raw[name], cap) for name in names if name in raw]
    return found[0] if found else None


def _check_id(lname: str, value: str) -> str:
    if ID_PATTERN.fullmatch(value) is None:
        display = _DISPLAY[lname]
        _require_utf8(display, value)
        raise _bad(display, ID_RULE)
    return value


def _check_text(label: str, value: str, cap: int) -> str:
    _require_utf8(label, value)
    if not value or len(value) > cap:
        raise _bad(label, f"must be 1-{cap} characters")
    if _CONTROL.search(value) is not None:
        raise _bad(label, "must not contain control characters")
    return value


def _tags(raw: dict[str, str], lname: str, *, json_allowed: bool) -> tuple[str, ...]:
    """A comma list (or, for Adaline, a JSON array of strings): trimmed, empties dropped, unique."""
    value = raw.get(lname)
    if value is None:
        return ()
    display = _DISPLAY[lname]
    _require_utf8(display, value)
    is_json = json_allowed and value.startswith("[")
    items = _json_tags(display, value) if is_json else value.split(",")
    tags = unique_tags(item for item in items if item.strip())  # "a,,b": no empty tag
    if len(tags) > MAX_TAGS:
        raise _bad(display, f"at most {MAX_TAGS} tags")
    if not all(is_tag(tag) for tag in tags):
        raise _bad(display, TAG_RULE)
    return tags


def _json_tags(display: str, value: str) -> list[str]:
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad(display, _TAGS_JSON_RULE) from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise _bad(display, _TAGS_JSON_RULE)
    return items


def _json_object(raw: dict[str, str], lname: str) -> dict[str, Any] | None:
    """A JSON object of at most 8 KiB and 5 levels of nesting, or None when the header is absent."""
    value = raw.get(lname)
    if value is None:
        return None
    display = _DISPLAY[lname]
    data = _encode_utf8(display, value)
    if len(data) > MAX_JSON_BYTES:
        raise _bad(display, f"must be at most {MAX_JSON_BYTES} bytes")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        too_deep = "depth" in str(exc)
        raise _bad(display, _DEPTH_RULE if too_deep else "must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise _bad(display, "must be a JSON object")
    if _nests_deeper(parsed, MAX_JSON_DEPTH):
        raise _bad(display, _DEPTH_RULE)
    return parsed


def _nests_deeper(value: dict[str, Any], limit: int) -> bool:
    """True when objects and arrays nest more than ``limit`` levels (``value`` is level 1)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _require_utf8(label: str, value: str) -> None:
    if not is_valid_utf8(value):
        raise _bad(label, "not valid UTF-8")


def _encode_utf8(label: str, value: str) -> bytes:
    _require_utf8(label, value)
    return value.encode()


def _bad(label: str, rule: str) -> BadRequest:
    return BadRequest(f"{label}: {rule}", code=ERROR_CODE)
