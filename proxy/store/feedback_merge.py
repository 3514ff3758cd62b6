"""Feedback merges on Redis: the atomic per-trace script, then idempotent index upkeep.

The script changes only keys of one trace (one cluster slot). Index entries, review-queue
rows and the event stream live in other slots and follow in a second pipeline; they are
``ZADD``/``HSETNX`` operations, so repeating them (a spool replay) changes nothing, and a
query checks every index hit against the record, so a stale entry never shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from proxy.config import ReviewRule
from proxy.core.records import INDEXED_ATTRIBUTES, FeedbackEvent, FeedbackRecord
from proxy.core.tags import thumbs_tag, thumbs_tags_replaced
from proxy.datasets.review import rule_matches
from proxy.store.keys import Keys


@dataclass(frozen=True, slots=True)
class MergeResult:
    status: str  # "applied" (new), "replaced" (same feedback_id), "duplicate" (replay), "full"
    created_ms: int = 0
    annotation_status: str | None = None
    previous: FeedbackEvent | None = None  # the event this one replaced
    indexes: tuple[str, ...] = ()  # index keys that must list the trace at created_ms
    stats: bytes | None = None  # the trace's stats state, when the counters must follow
    removed_tags: tuple[str, ...] = ()  # trace tags the event took away: drop their entries


def merge_args(
    record: FeedbackRecord,
    now_ms: int,
    retention_s: int,
    max_events: int,
    keys: Keys,
    dimensions: tuple[str, ...] = (),
) -> list[Any]:
    """ARGV for merge_feedback.lua from a feedback record (see the script's header)."""
    indexes = feedback_index_keys(keys, record)
    event = record["event"]
    attrs: dict[str, Any] = event["attributes"]
    deleted_attrs = record.get("delete_attributes", [])
    # The thumbs tag follows the current vote: the other verdict's tag goes (both go when
    # the vote is deleted); the script only applies what it is given.
    deleted_tags = [*record.get("delete_tags", []), *thumbs_tags_replaced(attrs, deleted_attrs)]
    vote = attrs.get("user_feedback")
    thumbs = thumbs_tag(attrs)
    tags = [*event["tags"], thumbs] if thumbs and thumbs not in event["tags"] else event["tags"]
    args: list[Any] = [
        record["trace_id"], record["event_key"], orjson.dumps(event), now_ms, retention_s,
        max_events, event.get("span_id") or "", orjson.dumps(vote) if vote else "",
        len(attrs), len(tags), len(deleted_attrs), len(deleted_tags),
        len(indexes), keys.index("annotation", ""), event["received_at"],
        keys.index("upstream", ""), keys.index("tag", ""),
    ]  # fmt: skip
    for key, value in attrs.items():
        args += [key, orjson.dumps(value)]
    return [*args, *tags, *deleted_attrs, *deleted_tags, *indexes, len(dimensions), *dimensions]


def parse_result(raw: list[Any]) -> MergeResult:
    code = int(raw[0])
    if code == -1:
        return MergeResult(status="full")
    return MergeResult(
        status={1: "applied", 2: "replaced", 3: "duplicate"}[code],
        created_ms=int(raw[1] or 0),
        annotation_status=raw[2].decode() if raw[2] else None,
        previous=orjson.loads(raw[3]) if raw[3] else None,
        stats=raw[4] or None,
        removed_tags=tuple(tag.decode() for tag in raw[5] or ()),
        indexes=tuple(name.decode() for name in raw[6:]),
    )


def feedback_index_keys(keys: Keys, record: FeedbackRecord) -> list[str]:
    """The indexes a feedback event puts its trace in (the script adds the annotation one)."""
    event = record["event"]
    indexes = [keys.index_by_time, keys.index("has_feedback", "1")]
    if event.get("span_id"):
        return indexes
    attrs = event["attributes"]
    for dimension, attribute in INDEXED_ATTRIBUTES:
        if attrs.get(attribute) is not None:
            indexes.append(keys.index(dimension, str(attrs[attribute])))
    tags = set(event["tags"])
    thumbs = thumbs_tag(attrs)
    if thumbs is not None:
        tags.add(thumbs)
    return indexes + [keys.index("tag", tag) for tag in sorted(tags)]


def matching_rules(rules: tuple[ReviewRule, ...], record: FeedbackRecord) -> list[str]:
    """Datasets whose review rule this trace-level feedback matches."""
    event = record["event"]
    if event.get("span_id"):
        return []
    return [rule.dataset for rule in rules if rule_matches(rule.when, event["attributes"])]
