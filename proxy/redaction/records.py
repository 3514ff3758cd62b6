"""Redaction applied to the records the writer carries, in place and exactly once.

What is redacted, by record kind:

- ``span``: the input, the output (text and tool calls) and the error text; the counts go
  into the span as ``redacted`` (``{"email": 2}``; ``{}`` when nothing was found);
- ``feedback``: the comment (``user_feedback_comment``); counts in the event's ``redacted``;
- ``score``: the evaluator's ``explanation``; counts in the score's ``redacted``;
- any other kind (one added later): every string under a key named ``explanation`` or
  ``comment``, at any depth; counts in the record's ``redacted``.

The ``redacted`` field is also the mark that the record was done: a record that went through
the feedback service is not redacted again by the writer, and a spooled one not again on
replay. IDs, names, tags, attributes, usage, model and timing are never touched.
Pure: imports neither aiohttp nor redis.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from proxy.config.model import RedactSettings
from proxy.redaction.redactor import Redactor

COMMENT_KEY = "user_feedback_comment"
FREE_TEXT_KEYS = frozenset({"explanation", "comment", COMMENT_KEY})
_KEY_CONTEXT = b"feedback-proxy capture.redact hash key v1"


def redactor_for(redact: RedactSettings, token_secret: str) -> Redactor | None:
    """The redactor the settings ask for, or None when they ask for nothing.

    The hash key is ``capture.redact.key``, else one derived from ``feedback.token_secret``
    (an HMAC of a fixed label, so the stored hashes reveal nothing of the token secret)."""
    if not redact.kinds and not redact.patterns:
        return None
    return Redactor(redact.kinds, redact.mode, redact.patterns, hash_key(redact, token_secret))


def hash_key(redact: RedactSettings, token_secret: str) -> bytes:
    """The key of what the proxy stores as a keyed hash (hash-mode tokens, the implicit input
    hash): from ``capture.redact.key``, else ``feedback.token_secret``; empty without both."""
    source = redact.key or token_secret
    return hmac.new(source.encode(), _KEY_CONTEXT, hashlib.sha256).digest() if source else b""


def redact_record(redactor: Redactor, record: Any) -> None:
    """Redact a writer record in place (see the module docstring); a no-op the second time.

    Never raises: should a bug break redaction of one record, its free text is dropped
    (``redacted: {"unredactable": 1}``) rather than stored as it came."""
    try:
        _redact(redactor, record)
    except Exception:  # a bug: drop the text rather than store it unredacted
        _drop_text(record)


def _redact(redactor: Redactor, record: Any) -> None:
    kind = record.get("kind")
    if kind == "span":
        _span(redactor, record["span"])
    elif kind == "feedback":
        _feedback(redactor, record["event"])
    elif kind == "score":
        _score(redactor, record["score"])
    elif "redacted" not in record:
        counts: dict[str, int] = {}
        _free_text(redactor, record, counts, 0)
        record["redacted"] = counts


def _drop_text(record: Any) -> None:
    failed = {"unredactable": 1}
    if record.get("kind") == "span":
        record["span"].update(input=None, output=None, error=None, redacted=failed)
    elif record.get("kind") == "score":
        record["score"].update(explanation=None, redacted=failed)
    elif record.get("kind") == "feedback":
        event = record["event"]
        event["attributes"] = {
            k: v for k, v in (event.get("attributes") or {}).items() if k != COMMENT_KEY
        }
        event["redacted"] = failed
    else:
        _free_text(_DROP, record, {}, 0)
        record["redacted"] = failed


class _Dropper:
    """Stands in for a redactor: every free text becomes empty."""

    def text(self, text: str, counts: dict[str, int]) -> str:
        return ""


_DROP: Any = _Dropper()


def _span(redactor: Redactor, span: dict[str, Any]) -> None:
    if "redacted" in span:
        return
    counts: dict[str, int] = {}
    span["input"] = redactor.value(span.get("input"), counts)
    if span.get("output") is not None:
        span["output"] = redactor.value(span["output"], counts)
    if isinstance(span.get("error"), str):  # a provider's message may quote the input
        span["error"] = redactor.text(span["error"], counts)
    span["redacted"] = counts


def _feedback(redactor: Redactor, event: dict[str, Any]) -> None:
    if "redacted" in event:
        return
    counts: dict[str, int] = {}
    attributes = event.get("attributes") or {}
    comment = attributes.get(COMMENT_KEY)
    if isinstance(comment, str):
        event["attributes"] = {**attributes, COMMENT_KEY: redactor.text(comment, counts)}
    event["redacted"] = counts


def _score(redactor: Redactor, score: dict[str, Any]) -> None:
    if "redacted" in score:
        return
    counts: dict[str, int] = {}
    if isinstance(score.get("explanation"), str):
        score["explanation"] = redactor.text(score["explanation"], counts)
    score["redacted"] = counts


def _free_text(redactor: Redactor, node: Any, counts: dict[str, int], depth: int) -> None:
    if depth > 16:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FREE_TEXT_KEYS and isinstance(value, str):
                node[key] = redactor.text(value, counts)
            else:
                _free_text(redactor, value, counts, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _free_text(redactor, item, counts, depth + 1)
