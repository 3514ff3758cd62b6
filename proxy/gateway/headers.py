"""Which headers cross the proxy, in each direction.

Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and never cross. The proxy's own
headers (trace context, dialects, feedback, the proxy key) are consumed here and never reach the
upstream: a provider must not see them, and some reject unknown ``x-`` headers anyway.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from proxy.core.errors import BadRequest
from proxy.core.ids import is_valid_utf8
from proxy.gateway.auth import PROXY_KEY_HEADER
from proxy.gateway.capture import CAPTURE_HEADER
from proxy.tracing.context import CONSUMED_HEADERS, CONSUMED_PREFIXES

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Headers the proxy sets itself on the way up: the upstream's Host and body length come from
# the request the proxy makes, and traceparent is replaced by one naming the proxy's span.
REPLACED_UPSTREAM = frozenset({"host", "content-length", "traceparent"})
# Answered here: the proxy's server already sent the client its 100 Continue; passed on, it
# would make the proxy's client wait for the upstream's own 100 before sending the body.
ANSWERED_HERE = frozenset({"expect"})

FEEDBACK_PREFIX = "x-feedback"

_NEVER_UPSTREAM = (
    HOP_BY_HOP
    | REPLACED_UPSTREAM
    | ANSWERED_HERE
    | CONSUMED_HEADERS
    | {PROXY_KEY_HEADER, CAPTURE_HEADER}
)
# Every header of the gateways whose dialects we accept stays here, read or not: some carry
# those gateways' own keys (Helicone-Auth), which must never reach a provider.
DIALECT_PREFIXES = ("adaline-", "x-portkey-", "helicone-")
_NEVER_UPSTREAM_PREFIXES = (*CONSUMED_PREFIXES, *DIALECT_PREFIXES, FEEDBACK_PREFIX)

# Headers the proxy adds to every response; the upstream's own copies are dropped.
TRACE_RESPONSE_HEADERS = (
    "X-Trace-Id",
    "X-Span-Id",
    "X-Feedback-Token",
    "X-Feedback-Status",
    "X-Feedback-Error",
)
EXPOSE_HEADERS = ", ".join(TRACE_RESPONSE_HEADERS)
_NEVER_DOWNSTREAM = HOP_BY_HOP | {h.lower() for h in TRACE_RESPONSE_HEADERS} | {"content-length"}


def _connection_tokens(headers: Mapping[str, str]) -> frozenset[str]:
    """Names listed in ``Connection`` are hop-by-hop for this message too."""
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(token.strip().lower() for token in value.split(","))


def upstream_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The client's end-to-end headers, credentials included, minus everything of ours."""
    extra = _connection_tokens(headers)
    kept = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in _NEVER_UPSTREAM or lower in extra or lower.startswith(_NEVER_UPSTREAM_PREFIXES):
            continue
        if not value.isascii():
            _require_utf8(name, value)
        kept.append((name, value))
    return kept


def _require_utf8(name: str, value: str) -> None:
    """aiohttp decodes header bytes with surrogateescape; such a value cannot be re-sent
    faithfully, so it is refused rather than forwarded altered."""
    if not is_valid_utf8(value):
        shown = name[:64] if name.isascii() and name.isprintable() else "a header"
        raise BadRequest(f"{shown}: value is not valid UTF-8", code="invalid_header")


def downstream_headers(
    headers: Iterable[tuple[str, str]], connection: str | None
) -> list[tuple[str, str]]:
    """The upstream's end-to-end response headers (Content-Encoding kept: bytes pass as sent)."""
    extra = _connection_tokens({"connection": connection}) if connection else frozenset()
    return [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in _NEVER_DOWNSTREAM and lower not in extra
    ]
