"""Signed, expiring feedback tokens for browsers (docs/reference.md §4, POST /feedback).

Every proxied response carries one, so :func:`issue` is one HMAC and a few base64 calls.
A token reads ``v1.<trace>.<span>.<expires_at>.<signature>``: the trace and span IDs in unpadded
base64url (IDs may contain ``.``), the expiry in Unix seconds, and an HMAC-SHA256 over everything
before the last dot, so the version, both IDs and the expiry are all signed. Only base64url
characters and dots: safe in any header, no spaces or commas. Pure: imports neither aiohttp nor
redis.
"""

from __future__ import annotations

import hmac
import re
from base64 import urlsafe_b64decode, urlsafe_b64encode

from proxy.core.errors import Unauthorized

__all__ = ["EXPIRED_CODE", "INVALID_CODE", "VERSION", "issue", "verify"]

VERSION = "v1"
INVALID_CODE = "invalid_feedback_token"
EXPIRED_CODE = "expired_feedback_token"
_MAX_TOKEN_CHARS = 1024
# version . trace . span . expiry . signature (32 bytes -> 43 unpadded base64url characters)
_B64 = "[A-Za-z0-9_-]"
_TOKEN = re.compile(rf"v1\.({_B64}+)\.({_B64}+)\.(0|[1-9][0-9]{{0,15}})\.{_B64}{{43}}")


def issue(secret: bytes, trace_id: str, span_id: str, expires_at: int) -> str:
    """A token for feedback on exactly this trace and span, valid until ``expires_at`` (Unix s)."""
    _require_secret(secret)
    payload = f"{VERSION}.{_encode(trace_id)}.{_encode(span_id)}.{expires_at}"
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str, now: int) -> tuple[str, str]:
    """``(trace_id, span_id)`` of a genuine token not yet expired at ``now``; else 401.

    The signature is checked (in constant time) before anything else is believed, so a
    tampered expiry reads as invalid, not as expired.
    """
    _require_secret(secret)
    match = _TOKEN.fullmatch(token) if len(token) <= _MAX_TOKEN_CHARS else None
    if match is None:
        raise _invalid()
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(_sign(secret, payload), signature):
        raise _invalid()
    trace_part, span_part, expiry = match.groups()
    if now > int(expiry):
        raise Unauthorized("feedback token expired", code=EXPIRED_CODE)
    return _decode(trace_part), _decode(span_part)


def _require_secret(secret: bytes) -> None:
    """An empty key would let anyone mint tokens: a wiring mistake, never a client's fault."""
    if not secret:
        raise ValueError("feedback token secret must not be empty")


def _sign(secret: bytes, payload: str) -> str:
    digest = hmac.digest(secret, payload.encode("ascii"), "sha256")  # one-shot, in C
    return urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _encode(value: str) -> str:
    return urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")


def _decode(part: str) -> str:
    """Only reached for signed parts, which this module encoded itself."""
    try:
        return urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise _invalid() from None


def _invalid() -> Unauthorized:
    return Unauthorized("invalid feedback token", code=INVALID_CODE)
