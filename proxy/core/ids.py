"""IDs and names, and the rules they follow wherever they arrive: headers, bodies, paths.

One rule per kind, so a trace ID accepted by ``X-Trace-Id`` is accepted by the admin API too,
and every refusal says the same thing. Pure: imports nothing of the proxy.
"""

from __future__ import annotations

import os
import re
from typing import TypeGuard

MAX_ID_CHARS = 128
ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
"""What a trace, span, feedback or row ID may be."""
ID_RULE = f"must be 1-{MAX_ID_CHARS} characters of A-Z a-z 0-9 . _ : -"

# A dataset name is the hash tag of its keys: it must not hold braces (an empty or shifted tag
# would put a dataset's keys in different cluster slots). The admin API and the review rules
# in the config both check names against it.
# Not "." or "..": a URL path segment of only dots is resolved away (RFC 3986, also when sent
# as %2E), so such a dataset could be created but never read or exported.
DATASET_NAME = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]{1,64}")
DATASET_NAME_RULE = "must be 1-64 characters of A-Z a-z 0-9 . _ -, and not . or .."

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def is_id(value: object) -> TypeGuard[str]:
    """True for a string that follows ``ID_RULE``."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def new_trace_id() -> str:
    """A fresh random trace ID: 32 lowercase hex, never all zeros."""
    trace_id = os.urandom(16).hex()
    return trace_id if trace_id != _ZERO_TRACE_ID else new_trace_id()


def new_span_id() -> str:
    """A fresh random span ID: 16 lowercase hex, never all zeros."""
    span_id = os.urandom(8).hex()
    return span_id if span_id != _ZERO_SPAN_ID else new_span_id()


def is_valid_utf8(text: str) -> bool:
    """False for text that came from bytes that were not UTF-8.

    aiohttp decodes header bytes with ``surrogateescape``: a lone surrogate in the ``str`` is a
    byte that was not UTF-8. Such a value cannot be stored or re-sent faithfully."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
