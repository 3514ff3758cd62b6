"""Who may use the proxy listener: the proxy key check, in one place (pure)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

PROXY_KEY_HEADER = "x-proxy-key"


def proxy_key_ok(headers: Mapping[str, str], keys: Sequence[str]) -> bool:
    """True when no keys are configured, or the request's X-Proxy-Key is one of them."""
    if not keys:
        return True
    sent = headers.get(PROXY_KEY_HEADER, "").encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(sent, key.encode()) for key in keys)
