"""Traces a reviewer would meet, written through the store: for the Monitor page's tests, its
screenshots and its benchmark. Every record is in the recorder's format (``span_record``),
feedback goes through ``merge_feedback`` like a header would."""

from __future__ import annotations

import time
from typing import Any

from proxy.store.redis_store import RedisStore
from tests.factories import feedback, span_record

HOSTILE_PROMPT = 'Hi <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">'
HOSTILE_COMMENT = "<script>window.__pwned = 4</script>"
HOSTILE_ANSWER = "Sure: <b>bold</b> <script>window.__pwned = 3</script>"
LONG_ANSWER = "\n".join(
    f"Step {i}: check the order status, then the refund policy." for i in range(60)
)
DAY_MS = 86_400_000


def chat_span(
    trace_id: str,
    n: int,
    started_ms: int,
    question: str,
    answer: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """Span ``n`` of a chat trace: OpenAI chat input and output, usage and timings."""
    trace = {k: fields.pop(k) for k in ("name", "session_id", "user_id") if k in fields}
    record = span_record(trace_id, f"{n:016x}", started_ms, **trace)
    messages = [
        {"role": "system", "content": "You are the support assistant of a web shop."},
        {"role": "user", "content": question},
    ]
    record["span"].update(
        parent_span_id=None,
        method="POST",
        path="/v1/chat/completions",
        status=200,
        duration_ms=840.0 + 37 * n,
        ttft_ms=210.0 + 5 * n,
        stream=True,
        finish_reason="stop",
        response_model=None,
        raw_usage=None,
        request_bytes=420,
        response_bytes=1800,
        error=None,
        usage={"input_tokens": 120 + n, "output_tokens": 48, "total_tokens": 168 + n},
        input={"messages": messages},
        output={"text": answer, "tool_calls": []},
    )
    record["span"].update(fields)
    return record


async def seed_reviewer_traces(store: RedisStore, now_ms: int | None = None) -> dict[str, str]:
    """A handful of traces (ids returned by role): a negative multi-span conversation with a
    tool call, a hostile prompt, a long answer, a failed call, and positive ones."""
    now = now_ms or int(time.time() * 1000)
    ids = {
        "negative": "conv-refund-7f3a",
        "hostile": "conv-hostile-01",
        "long": "conv-long-answer",
        "failed": "conv-upstream-500",
        "positive": "conv-happy-1",
    }
    t = ids["negative"]
    who = {"name": "support-chat", "session_id": "sess-42", "user_id": "alice"}
    arguments = '{"order_id": "A-1009", "fields": ["status", "refund"]}'
    tool = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": arguments},
    }
    spans = [
        chat_span(
            t,
            0,
            now - 60_000,
            "Where is my refund for order A-1009?",
            None,
            **who,
            finish_reason="tool_calls",
            output={"text": None, "tool_calls": [tool]},
            cost_usd=0.00021,
        ),
        chat_span(
            t,
            1,
            now - 58_900,
            "Where is my refund for order A-1009?",
            "Your refund was sent on Monday; it takes 3-5 days.",
            **who,
            cost_usd=0.00034,
            implicit=[
                {
                    "signal": "regenerated",
                    "at": "2026-12-01T10:00:00.000Z",
                    "by_span_id": "0000000000000002",
                }
            ],
        ),
        chat_span(
            t,
            2,
            now - 57_500,
            "That is not true, nothing arrived.",
            "I apologise. The refund for A-1009 is still pending.",
            **who,
        ),
    ]
    await store.write_batch(
        [
            *spans,
            chat_span(
                ids["hostile"],
                0,
                now - 50_000,
                HOSTILE_PROMPT,
                HOSTILE_ANSWER,
                name="support-chat",
                session_id="sess-9",
                user_id="mallory",
            ),
            chat_span(
                ids["long"],
                0,
                now - 40_000,
                "How do I return an item?",
                LONG_ANSWER,
                name="support-chat",
                session_id="sess-7",
                user_id="bob",
            ),
            chat_span(
                ids["failed"],
                0,
                now - 30_000,
                "Hello?",
                None,
                name="support-chat",
                session_id="sess-8",
                user_id="carol",
                status=500,
                error="upstream answered 500",
                output=None,
                usage=None,
            ),
            chat_span(
                ids["positive"],
                0,
                now - 20_000,
                "Thanks, that worked!",
                "Glad to help.",
                name="support-chat",
                session_id="sess-42",
                user_id="alice",
            ),
        ]
    )
    await store.merge_feedback(
        feedback(
            t,
            "vote",
            user_feedback="negative",
            user_feedback_rating=2,
            feedback_reason="hallucination",
            user_feedback_category="incorrect",
            user_feedback_comment="The refund never arrived.",
        )
    )
    await store.merge_feedback(
        feedback(ids["hostile"], user_feedback="negative", user_feedback_comment=HOSTILE_COMMENT)
    )
    await store.merge_feedback(
        feedback(ids["positive"], user_feedback="positive", user_feedback_rating=5)
    )
    return ids


async def seed_history(store: RedisStore, days: int = 14, per_day: int = 12) -> None:
    """Traces over the past days with votes and ratings, for the trends charts."""
    now = int(time.time() * 1000)
    records, votes = [], []
    for day in range(days):
        for i in range(per_day):
            trace_id = f"hist-{day:02d}-{i:02d}"
            model = ("gpt-4o-mini", "gpt-4o")[i % 2]
            started = now - (days - day) * DAY_MS + i * 600_000
            records.append(
                chat_span(
                    trace_id,
                    0,
                    started,
                    "Question?",
                    "Answer.",
                    model=model,
                    name="support-chat",
                    session_id=f"s{i % 4}",
                    user_id=f"u{i % 5}",
                )
            )
            negative = (i + day) % 5 < 1 + day // 5
            if i % 3 != 2:
                rating = 2 if negative else 4 + (i % 2)
                verdict = "negative" if negative else "positive"
                votes.append(feedback(trace_id, user_feedback=verdict, user_feedback_rating=rating))
    await store.write_batch(records)
    for vote in votes:
        await store.merge_feedback(vote)
