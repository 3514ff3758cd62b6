"""Evaluator scores: the strict rules of a score body, and the record the store merges.

Pure, like ``parse`` and ``events``: the record is plain JSON data, so the writer can spool it
while Redis is away and the same service path as feedback applies it (docs/reference.md §12).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

from proxy.core.errors import BadRequest
from proxy.core.ids import ID_RULE, is_id, is_valid_utf8
from proxy.core.records import Score, ScoreRecord, iso_from_ms

NAME_PATTERN = re.compile(r"[a-z0-9_.\-]{1,64}")
NAME_RULE = "must be 1-64 characters of a-z 0-9 _ . -"
LABEL_RULE = "must be a token of 1-64 characters of a-z 0-9 _ . - (compared lowercase)"
MAX_EXPLANATION_CHARS = 2000
FIELDS = frozenset({"name", "value", "label", "explanation", "span_id", "score_id"})
ERROR_CODE = "invalid_score"


class InvalidScore(BadRequest):
    """A score body that breaks a rule: 400 naming the field."""

    kind = "invalid_score"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}", code=ERROR_CODE, param=field)


def parse_score(body: Any) -> dict[str, Any]:
    """The validated fields of a ``POST /api/traces/{id}/scores`` body; raises InvalidScore.

    All or nothing: one bad field refuses the whole body."""
    if not isinstance(body, dict):
        raise InvalidScore("body", "must be a JSON object")
    for key in body:
        if key not in FIELDS:
            raise InvalidScore(str(key), "unknown field (known: " + ", ".join(sorted(FIELDS)) + ")")
    fields = {
        "name": _name(body.get("name")),
        "value": _value(body.get("value")),
        "label": _label(body.get("label")),
        "explanation": _explanation(body.get("explanation")),
        "span_id": _id(body.get("span_id"), "span_id"),
        "score_id": _id(body.get("score_id"), "score_id"),
    }
    if fields["value"] is None and fields["label"] is None:
        raise InvalidScore("value", "a score needs a value, a label, or both")
    return fields


def _name(value: Any) -> str:
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise InvalidScore("name", NAME_RULE)
    return value


def _value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidScore("value", "must be a finite number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidScore("value", "must be a finite number")
    return number


def _label(value: Any) -> str | None:
    if value is None:
        return None
    token = value.strip().lower() if isinstance(value, str) else None
    if token is None or NAME_PATTERN.fullmatch(token) is None:
        raise InvalidScore("label", LABEL_RULE)
    return token


def _explanation(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_valid_utf8(value) or "\x00" in value:
        raise InvalidScore("explanation", "must be UTF-8 text without NUL")
    if len(value) > MAX_EXPLANATION_CHARS:
        raise InvalidScore("explanation", f"at most {MAX_EXPLANATION_CHARS} characters")
    return value


def _id(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not is_id(value):
        raise InvalidScore(field, ID_RULE)
    return value


def score_record(trace_id: str, fields: dict[str, Any], source: str = "api") -> ScoreRecord:
    """The record the store merges; without a ``score_id`` the score gets a fresh one."""
    score_id = fields.get("score_id") or uuid.uuid4().hex
    score: Score = {
        "score_id": score_id,
        "name": fields["name"],
        "value": fields.get("value"),
        "label": fields.get("label"),
        "explanation": fields.get("explanation"),
        "span_id": fields.get("span_id"),
        "source": source,
        "created_at": iso_from_ms(time.time() * 1000),
    }
    return {"id": f"sc:{trace_id}:{score_id}", "kind": "score", "trace_id": trace_id,
            "score": score}  # fmt: skip
