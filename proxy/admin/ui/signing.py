"""Session values of the Monitor page: signed, short-lived, and never the token itself.

With ``admin.token`` set, signing in sets a cookie ``<issued>.<nonce>.<mac>``: the MAC is an
HMAC-SHA256 under a key derived from the token, so every worker and replica that shares the
token accepts the cookie without a session store, a new token ends every session, and the
cookie tells nothing about the token. Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_TTL_S = 12 * 3600
_CLOCK_SKEW_S = 60
_KEY_LABEL = b"feedback-proxy/ui-session/v1"


def session_key(token: str) -> bytes:
    """The signing key of ``token``'s sessions (the token itself never signs anything)."""
    return hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def new_session(key: bytes, now: float) -> str:
    """A fresh session value issued at ``now`` (epoch seconds)."""
    payload = f"{int(now)}.{secrets.token_hex(16)}"
    return f"{payload}.{_mac(key, payload)}"


def session_valid(key: bytes, value: str, now: float) -> bool:
    """Whether ``value`` is a session this key issued less than SESSION_TTL_S ago."""
    issued, _, rest = value.partition(".")
    nonce, _, mac = rest.partition(".")
    if not issued.isascii() or not issued.isdigit() or not nonce or not mac:
        return False
    if not hmac.compare_digest(mac, _mac(key, f"{issued}.{nonce}")):
        return False
    return -_CLOCK_SKEW_S <= now - int(issued) < SESSION_TTL_S


def new_csrf_value() -> str:
    """A random per-browser value, echoed by every form of the page (double submit)."""
    return secrets.token_urlsafe(24)


def same_value(sent: str, expected: str) -> bool:
    """Constant-time equality of two secrets (an empty one never matches)."""
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())
