"""Errors of the feedback client: the proxy refused (naming the field), or could not be reached.

The proxy answers its own errors as ``{"error": {"message", "type", "code", "param"?}}``,
and its messages start with the field they are about (``attributes.user_feedback: must be
one of ...``); ``field`` is that name.
"""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\[\]-]*): ")


class FeedbackProxyError(Exception):
    """Anything that kept feedback or a score from being recorded."""


class ProxyUnreachable(FeedbackProxyError):
    """No answer from the proxy (refused, reset, timed out); nothing is known to be stored."""


class ProxyRefused(FeedbackProxyError):
    """The proxy answered with an error: nothing of the request was stored."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        where = f" [{field}]" if field else ""
        super().__init__(f"{status} {code}{where}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class TokenExpired(ProxyRefused):
    """The answer's feedback token has expired: this answer can no longer be rated by token."""


def refused(status: int, answer: Any) -> ProxyRefused:
    """The exception for an error answer of the proxy (or a body that is not its shape)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        message = "the proxy answered without an error body"
        return ProxyRefused(status, f"http_{status}", message, None)
    message = str(error.get("message", ""))
    code = str(error.get("code") or error.get("type") or f"http_{status}")
    match = _FIELD.match(message)
    field = error.get("param") or (match.group(1) if match else None)
    kind = TokenExpired if code == "expired_feedback_token" else ProxyRefused
    return kind(status, code, message, field)
