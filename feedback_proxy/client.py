"""Send feedback (``POST /feedback`` on the proxy) and evaluator scores (the admin API).

Feedback goes with the answer's feedback token when there is one (the same token a browser
would use; nothing else is needed), else with the trace ID and the proxy key. Scores go to
``POST /api/traces/{id}/scores`` on the admin listener with the admin token. The async
client runs the same requests in a worker thread.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from feedback_proxy.answer import AnswerIds
from feedback_proxy.feedback import Feedback, Vote
from feedback_proxy.transport import post_json

DEFAULT_TIMEOUT_S = 5.0


def token_ids(token: str) -> tuple[str, str]:
    """(trace ID, span ID) a feedback token is for (``v1.<trace>.<span>.<expiry>.<sig>``,
    IDs in unpadded base64url); the proxy checks the signature, not this."""
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != "v1":
        raise ValueError("feedback_token: not a feedback-proxy token")
    trace, span = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode() for p in parts[1:3])
    return trace, span


class _Requests:
    """What the sync and async clients share: URLs, headers and bodies."""

    def __init__(
        self,
        proxy_url: str,
        *,
        admin_url: str | None = None,
        proxy_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.admin_url = admin_url.rstrip("/") if admin_url else None
        self.proxy_key = proxy_key
        self.admin_token = admin_token
        self.timeout = timeout

    def feedback_request(
        self,
        answer: AnswerIds | str,
        feedback: Feedback,
        feedback_id: str | None,
        span: bool,
        tags: Sequence[str],
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(URL, body, headers) of ``POST /feedback`` for an answer or a bare trace ID."""
        token = answer.feedback_token if isinstance(answer, AnswerIds) else None
        trace_id = answer.trace_id if isinstance(answer, AnswerIds) else answer
        span_id = answer.span_id if isinstance(answer, AnswerIds) else None
        if token is not None:
            trace_id, span_id = token_ids(token)
        body: dict[str, Any] = {"trace_id": trace_id, "attributes": feedback.attributes()}
        if span:
            if span_id is None:
                raise ValueError("span: rating one span needs the answer's span ID")
            body["span_id"] = span_id
        if feedback_id is not None:
            body["feedback_id"] = feedback_id
        if tags:
            body["tags"] = list(tags)
        headers = {"X-Feedback-Token": token} if token else self._proxy_key_header()
        return f"{self.proxy_url}/feedback", body, headers

    def score_request(
        self, trace_id: str, name: str, **fields: Any
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(URL, body, headers) of ``POST /api/traces/{id}/scores`` on the admin listener."""
        if self.admin_url is None:
            raise ValueError("admin_url: needed to send scores (the admin listener's URL)")
        body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        url = f"{self.admin_url}/api/traces/{quote(trace_id, safe='')}/scores"
        return url, body, headers

    def _proxy_key_header(self) -> dict[str, str]:
        return {"X-Proxy-Key": self.proxy_key} if self.proxy_key else {}


def _feedback(feedback: Feedback | None, vote: Vote | None, fields: Mapping[str, Any]) -> Feedback:
    """The feedback given as an object or as keywords (not both)."""
    if feedback is not None:
        if vote is not None or fields:
            raise ValueError("feedback: pass a Feedback or keywords, not both")
        return feedback
    return Feedback(vote=vote, **fields)


class FeedbackClient(_Requests):
    """Blocking client: ``send`` feedback on an answer, ``score`` a trace.

    ``proxy_url`` is the proxy listener's base URL (``http://localhost:8080``), ``admin_url``
    the admin listener's (``http://127.0.0.1:8081``, for scores).
    """

    def send(
        self,
        answer: AnswerIds | str,
        feedback: Feedback | None = None,
        *,
        vote: Vote | None = None,
        feedback_id: str | None = None,
        span: bool = False,
        tags: Sequence[str] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """Record feedback on ``answer`` (its IDs, or a trace ID with the proxy key).

        ``fields``: ``rating``, ``comment``, ``category``, ``reason``, ``timestamp``. The same
        ``feedback_id`` again replaces the earlier event (a changed vote). ``span=True`` rates
        the answer's span instead of the whole trace. Answers ``{trace_id, applied, status}``.
        """
        url, body, headers = self.feedback_request(
            answer, _feedback(feedback, vote, fields), feedback_id, span, tags
        )
        return dict(post_json(url, body, headers, self.timeout))

    def score(
        self,
        trace_id: str,
        name: str,
        *,
        value: float | None = None,
        label: str | None = None,
        explanation: str | None = None,
        span_id: str | None = None,
        score_id: str | None = None,
    ) -> dict[str, Any]:
        """Record an evaluator score (a value, a label, or both) on a trace or one span."""
        url, body, headers = self.score_request(
            trace_id, name, value=value, label=label, explanation=explanation,
            span_id=span_id, score_id=score_id,
        )  # fmt: skip
        return dict(post_json(url, body, headers, self.timeout))


async def _in_thread(
    url: str, body: dict[str, Any], headers: dict[str, str], limit_s: float
) -> Any:
    """``post_json`` in a worker thread. asyncio is imported here: it is a third of this
    package's import time, and an app that only uses the blocking client never needs it."""
    import asyncio

    return await asyncio.to_thread(post_json, url, body, headers, limit_s)


class AsyncFeedbackClient(_Requests):
    """The same as :class:`FeedbackClient`, awaitable (each request in a worker thread)."""

    async def send(
        self,
        answer: AnswerIds | str,
        feedback: Feedback | None = None,
        *,
        vote: Vote | None = None,
        feedback_id: str | None = None,
        span: bool = False,
        tags: Sequence[str] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """See :meth:`FeedbackClient.send`."""
        url, body, headers = self.feedback_request(
            answer, _feedback(feedback, vote, fields), feedback_id, span, tags
        )
        return dict(await _in_thread(url, body, headers, self.timeout))

    async def score(
        self,
        trace_id: str,
        name: str,
        *,
        value: float | None = None,
        label: str | None = None,
        explanation: str | None = None,
        span_id: str | None = None,
        score_id: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`FeedbackClient.score`."""
        url, body, headers = self.score_request(
            trace_id, name, value=value, label=label, explanation=explanation,
            span_id=span_id, score_id=score_id,
        )  # fmt: skip
        return dict(await _in_thread(url, body, headers, self.timeout))
