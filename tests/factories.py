"""Records as the proxy builds them, for tests that write to the store directly; and a seeded
plan of many varied traces, for tests that check queries against what was written."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from proxy.core.records import iso_from_ms
from proxy.feedback.events import feedback_record
from proxy.feedback.parse import Feedback, feedback_tags
from proxy.store.redis_store import RedisStore


def span_record(
    trace_id: str = "tr-1",
    span_id: str = "a" * 16,
    started_ms: int | None = None,
    **trace: Any,
) -> dict[str, Any]:
    """A span record of ``trace_id`` (trace-level fields in ``trace``), started now by default."""
    started_ms = started_ms or int(time.time() * 1000)
    return {
        "id": f"span:{trace_id}:{span_id}",
        "kind": "span",
        "started_ms": started_ms,
        "trace": {"trace_id": trace_id, "attributes": {}, "tags": [], **trace},
        "span": {"span_id": span_id, "started_at": iso_from_ms(started_ms),
                 "model": "gpt-4o-mini", "upstream": "openai", "attributes": {}, "tags": []},
    }  # fmt: skip


def feedback(
    trace_id: str = "tr-1",
    feedback_id: str | None = None,
    span_id: str | None = None,
    tags: tuple[str, ...] = (),
    **attributes: Any,
) -> dict[str, Any]:
    """A feedback record as the proxy builds it."""
    event = Feedback(attributes, (*tags, *feedback_tags(attributes)), span_id, feedback_id)
    return feedback_record(trace_id, event, source="header")


async def make_trace(
    store: RedisStore,
    trace_id: str,
    answer: str = "Paris.",
    started_ms: int | None = None,
    **attributes: Any,
) -> None:
    """A one-span trace asking a question, with optional trace-level feedback."""
    record = span_record(trace_id, "a" * 16, started_ms or int(time.time() * 1000))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    record["span"].update(input={"messages": messages}, output={"text": answer, "tool_calls": []})
    await store.write_batch([record])
    if attributes:
        await store.merge_feedback(feedback(trace_id, **attributes))


# ----------------------------------------------------------------------------- planned traces

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku")
UPSTREAMS = ("openai", "anthropic")
SPAN_TAGS = ("alpha", "beta", "gamma")
RATINGS = (1, 2, 2.5, 3, 4, 5)


@dataclass
class Planned:
    """What the fixture wrote for one trace, to compute expected answers independently."""

    trace_id: str
    created_ms: int
    session_id: str
    user_id: str
    models: set[str] = field(default_factory=set)
    upstreams: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)
    annotation: str | None = None
    has_feedback: bool = False


Fixture = list[Planned]


def spans_of(rng: random.Random, plan: Planned) -> list[dict[str, Any]]:
    """One or two spans starting in the same millisecond (so every index score is creation)."""
    records = []
    for n in range(rng.choice((1, 1, 2))):
        model, upstream = rng.choice(MODELS), rng.choice(UPSTREAMS)
        record = span_record(plan.trace_id, f"{n:016x}", plan.created_ms,
                             session_id=plan.session_id, user_id=plan.user_id,
                             tags=sorted(plan.tags))  # fmt: skip
        record["span"].update(model=model, upstream=upstream)
        plan.models.add(model)
        plan.upstreams.add(upstream)
        records.append(record)
    return records


def feedback_of(rng: random.Random, plan: Planned) -> list[dict[str, Any]]:
    """Random trace feedback (some changed votes, span-targeted notes, extra tags)."""
    attrs: dict[str, Any] = {}
    vote = rng.choice((None, None, "negative", "positive"))
    if vote:
        attrs["user_feedback"] = vote
    if rng.random() < 0.5:
        attrs["user_feedback_rating"] = rng.choice(RATINGS)
    if vote == "negative" and rng.random() < 0.6:
        attrs["user_feedback_category"] = rng.choice(("incorrect", "unhelpful"))
    if rng.random() < 0.3:
        attrs["feedback_reason"] = rng.choice(("hallucination", "too_long"))
    extra = ("flagged",) if rng.random() < 0.1 else ()
    records = []
    changed = vote == "positive" and rng.random() < 0.4
    if changed:  # first a thumbs-down, then the same feedback_id changed to thumbs-up
        records.append(feedback(plan.trace_id, "vote", user_feedback="negative"))
    if attrs or extra:
        records.append(feedback(plan.trace_id, "vote", tags=extra, **attrs))
    if rng.random() < 0.1:
        records.append(feedback(plan.trace_id, span_id="0" * 16, user_feedback_comment="hm"))
    plan.attributes = attrs
    plan.tags |= set(extra) | ({"thumbs-down"} if vote == "negative" else set())
    plan.tags |= {"thumbs-up"} if vote == "positive" else set()
    plan.has_feedback = bool(records)
    plan.annotation = "empty" if vote == "negative" or changed else None
    return records


def plan_traces(rng: random.Random, n: int, base_ms: int) -> Fixture:
    """n traces, three per millisecond (ties), spread over sessions and users."""
    return [
        Planned(
            trace_id=f"t-{rng.getrandbits(40):010x}",
            created_ms=base_ms + (i // 3) * 1000,
            session_id=f"s{rng.randrange(8)}",
            user_id=f"u{rng.randrange(5)}",
            tags={t for t in SPAN_TAGS if rng.random() < 0.3},
        )
        for i in range(n)
    ]
