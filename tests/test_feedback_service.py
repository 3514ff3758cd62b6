"""FeedbackService: applied or queued, and counts that a changed vote moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.feedback.events import feedback_record
from proxy.feedback.parse import Feedback
from proxy.feedback.service import FeedbackService
from proxy.store.connection import connect
from proxy.store.embedded import free_port
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.writer.writer import Writer


def vote(value: str, feedback_id: str = "v-1") -> Feedback:
    attrs = {"user_feedback": value, "user_feedback_rating": 1 if value == "negative" else 5}
    return Feedback(attrs, (), None, feedback_id)


@pytest.mark.parametrize("down", [False, True])
async def test_apply_reports_applied_or_queued(
    down: bool, redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    """With Redis up the merge is applied; with Redis unreachable it is queued in the spool."""
    url = f"redis://127.0.0.1:{free_port()}/0" if down else redis_server
    client = connect(url, timeout=0.3)
    store = RedisStore(client, Keys(key_prefix), retention_days=30)
    writer = Writer(store, tmp_path / "spool", write_timeout=0.3)
    await writer.start()
    service = FeedbackService(store, writer, timeout=0.5)
    status = await service.apply(feedback_record("svc-1", vote("negative"), "header"))
    assert status == ("queued" if down else "applied")
    assert (writer.queue_depth + writer.spooled > 0) is down
    await writer.close(deadline=0.5)
    await store.close()
    await client.aclose()


async def test_changed_vote_moves_its_count(
    redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    """The same X-Feedback-Id changing its vote counts once, under the new value."""
    client = connect(redis_server)
    store = RedisStore(client, Keys(key_prefix), retention_days=30)
    writer = Writer(store, tmp_path / "spool")
    service = FeedbackService(store, writer, timeout=1.0)
    await service.apply(feedback_record("svc-2", vote("negative"), "header"))
    await service.apply(feedback_record("svc-2", vote("positive"), "header"))
    await service.apply(feedback_record("svc-2", vote("positive", "v-2"), "header"))
    counts = service.counts.counts  # (label, value, model): no span recorded, so no model
    assert counts[("value", "negative", "")] == 0
    assert counts[("value", "positive", "")] == 2
    assert counts[("rating", "1", "")] == 0
    assert counts[("rating", "5", "")] == 2
    await store.close()
    await client.aclose()


async def test_feedback_waits_behind_the_spool_while_degraded(
    redis_server: str, key_prefix: str, tmp_path: Path
) -> None:
    """While older records wait in the spool, new feedback queues behind them (order kept)."""
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3)
    writer = Writer(RedisStore(dead, Keys(key_prefix), 30), tmp_path / "spool", write_timeout=0.3)
    await writer.start()
    writer.submit(feedback_record("svc-3", vote("negative", "old"), "header"))
    await writer.wait_until(lambda: not writer.redis_ok and writer.spool_bytes > 0, deadline=5)
    client = connect(redis_server)
    store = RedisStore(client, Keys(key_prefix), retention_days=30)  # Redis itself is back
    service = FeedbackService(store, writer, timeout=1.0)
    status = await service.apply(feedback_record("svc-3", vote("positive"), "header"))
    assert status == "queued"
    assert await store.get_trace("svc-3") is None  # not merged ahead of the older vote
    await writer.close(deadline=0.5)
    await store.close()
    await client.aclose()
    await dead.aclose()
