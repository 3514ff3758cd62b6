"""Tags: the one rule every way in follows, and the thumbs tags a vote implies.

A tag becomes a Redis key (``idx:tag:<tag>``) and a label people filter by, so headers,
``POST /feedback`` bodies and admin PATCH bodies all hold it to one rule: once trimmed, 1 to
``MAX_TAG_CHARS`` characters with no control characters (no NUL, no newline), and at most
``MAX_TAGS`` per request. Pure: imports nothing of the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_TAGS = 64
MAX_TAG_CHARS = 128
TAG_RULE = f"each tag must be 1-{MAX_TAG_CHARS} characters without control characters"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

THUMBS = {"positive": "thumbs-up", "negative": "thumbs-down"}
"""The tag a ``user_feedback`` verdict puts on its trace (the only such mapping)."""
THUMBS_TAGS = frozenset(THUMBS.values())


def is_tag(value: object) -> bool:
    """True for a string that, trimmed, follows ``TAG_RULE``."""
    if not isinstance(value, str):
        return False
    tag = value.strip()
    return 0 < len(tag) <= MAX_TAG_CHARS and _CONTROL.search(tag) is None


def unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Trimmed, first occurrence kept (call after checking each with ``is_tag``)."""
    return tuple(dict.fromkeys(tag.strip() for tag in tags))


def thumbs_tag(attributes: Mapping[str, Any]) -> str | None:
    """``thumbs-up`` or ``thumbs-down`` for a ``user_feedback`` verdict, else None."""
    verdict = attributes.get("user_feedback")
    return THUMBS.get(verdict.strip().lower()) if isinstance(verdict, str) else None


def thumbs_tags_replaced(attributes: Mapping[str, Any], deleted: Iterable[str]) -> list[str]:
    """The thumbs tags a feedback event takes away: the other verdict's when it votes, both
    when it deletes the vote (so the tag always follows the current vote)."""
    tag = thumbs_tag(attributes)
    if tag is not None:
        return sorted(THUMBS_TAGS - {tag})
    return sorted(THUMBS_TAGS) if "user_feedback" in deleted else []
