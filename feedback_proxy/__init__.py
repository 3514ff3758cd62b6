"""Capture feedback from an application that calls its model through feedback-proxy.

Light to import: the standard library only, no server code (no aiohttp, no redis, nothing of
the ``proxy`` package). Works with the official ``openai`` and ``anthropic`` SDKs through
their public options (``default_headers``, ``extra_headers``, ``with_options``, the
raw-response API); it patches nothing.

    from feedback_proxy import FeedbackClient, Trace, answer_ids

    trace = Trace(name="support-chat", session_id="s-1", user_id="u-7")
    chat = trace.client(openai_client)                  # every call of the block joins the trace
    raw = chat.chat.completions.with_raw_response.create(model=..., messages=...)
    ids = answer_ids(raw)                               # trace ID, span ID, feedback token
    FeedbackClient("http://localhost:8080").send(ids, vote="negative", comment="too vague")
"""

from feedback_proxy.answer import AnswerIds, answer_ids
from feedback_proxy.client import AsyncFeedbackClient, FeedbackClient
from feedback_proxy.errors import FeedbackProxyError, ProxyRefused, ProxyUnreachable, TokenExpired
from feedback_proxy.feedback import Feedback, feedback_headers
from feedback_proxy.trace import Trace

__all__ = [
    "AnswerIds",
    "AsyncFeedbackClient",
    "Feedback",
    "FeedbackClient",
    "FeedbackProxyError",
    "ProxyRefused",
    "ProxyUnreachable",
    "TokenExpired",
    "Trace",
    "answer_ids",
    "feedback_headers",
]
