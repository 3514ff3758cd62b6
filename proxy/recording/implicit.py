"""Implicit feedback seen from the side of a call: what a user did rather than said.

Pure. ``observe`` adds to a finished call's span record what the store needs to record the
signals of docs/reference.md §12, without a round trip of its own:

- ``stopped``: the client closed a stream (or a call that asked to stream) before the
  upstream finished it. Known here, so it goes straight onto the span. An upstream that broke
  the stream (``upstream_broken``, ``upstream_timeout``) is an error, not a user stop.
- ``regenerated``: a later call with the same input messages. Only the store can tell (it
  keeps the latest span per input hash, per trace and per session), so the record carries
  the hash of the call's input; ``record_span.lua`` compares it in the span's own script.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from proxy.core.records import ImplicitSignal, SpanRecord, iso_from_ms

CLIENT_GONE = "client_disconnected"


def input_hash(parsed_input: dict[str, Any] | None, key: bytes) -> str | None:
    """HMAC-SHA256 (hex) of the call's input as the provider parser read it (messages, system,
    tools), keys sorted so equal inputs hash equal; None without an input. Keyed, so a stored
    hash cannot confirm a guessed prompt (it is kept even with ``X-Capture: metadata``)."""
    if not parsed_input:
        return None
    message = b"implicit input\0" + orjson.dumps(parsed_input, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def stopped(at_ms: float) -> ImplicitSignal:
    return {"signal": "stopped", "at": iso_from_ms(at_ms), "by_span_id": None}


def observe(
    record: SpanRecord,
    error: str | None,
    streaming: bool,
    parsed_input: dict[str, Any] | None,
    now_ms: float,
    key: bytes,
) -> None:
    """Add the stopped signal and the input hash to ``record`` (in place)."""
    if error == CLIENT_GONE and streaming:
        record["span"]["implicit"] = [stopped(now_ms)]
    digest = input_hash(parsed_input, key)
    if digest is not None:
        record["input_hash"] = digest
