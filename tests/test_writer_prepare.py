"""The writer's ``prepare`` hook (redaction): run in the flush task, never in ``submit()``,
on every record before the store or the spool sees it, once per record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from proxy.core.errors import StoreUnavailable
from proxy.feedback.events import feedback_record
from proxy.feedback.parse import Feedback
from proxy.feedback.service import FeedbackService
from proxy.redaction import Redactor, redact_record
from proxy.store.connection import connect
from proxy.store.embedded import free_port
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from proxy.writer import Writer


class Recording:
    """A store that keeps what it was given; down while ``down`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.down = False

    async def write_batch(self, records: Sequence[Any]) -> None:
        if self.down:
            raise StoreUnavailable("down")
        self.batches.append([dict(r) for r in records])


def record(n: int) -> dict[str, Any]:
    return {"id": f"span:t:{n}", "kind": "span", "span": {"text": f"secret-{n}"}}


def spooled(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.glob("spool-*"))


class Prepare:
    """Replaces the text and marks the record, noting which task ran it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, rec: Any) -> None:
        task = asyncio.current_task()
        self.calls.append(task.get_name() if task else "")
        if "done" not in rec["span"]:
            rec["span"].update(text="[REDACTED]", done=True)


async def test_prepare_runs_in_the_flush_task_before_the_store(tmp_path: Path) -> None:
    """submit() only queues; the writer's own task prepares each record before writing it."""
    store, prepare = Recording(), Prepare()
    writer = Writer(store, tmp_path, flush_interval=0.0, prepare=prepare)
    await writer.start()
    try:
        for n in range(3):
            writer.submit(record(n))
        assert prepare.calls == []  # nothing ran on the caller's path
        await writer.wait_idle(5)
    finally:
        await writer.close(2)
    assert set(prepare.calls) == {"proxy-writer"}
    written = [r for batch in store.batches for r in batch]
    assert [r["span"]["text"] for r in written] == ["[REDACTED]"] * 3


async def test_spooled_records_are_prepared_once_and_replayed_as_they_are(
    tmp_path: Path,
) -> None:
    """Records go to the spool prepared; the replay writes them without preparing again."""
    store, calls = Recording(), []

    def prepare(rec: Any) -> None:
        if "done" not in rec["span"]:
            calls.append(rec["id"])
            rec["span"].update(text="[REDACTED]", done=True)

    store.down = True
    writer = Writer(store, tmp_path, flush_interval=0.0, retry_interval=0.05, prepare=prepare)
    await writer.start()
    try:
        for n in range(4):
            writer.submit(record(n))
        await writer.wait_until(lambda: writer.spooled == 4, 5)
        assert b"secret-" not in spooled(tmp_path)
        store.down = False
        await writer.wait_idle(5)
    finally:
        await writer.close(2)
    assert sorted(calls) == [f"span:t:{n}" for n in range(4)]
    written = [r for batch in store.batches for r in batch]
    assert [r["span"]["text"] for r in written] == ["[REDACTED]"] * 4


async def test_a_queued_feedback_comment_reaches_the_spool_redacted(tmp_path: Path) -> None:
    """Redis away: the feedback service redacts the comment before it queues the record, and
    the writer spools it as it is (marked, not redacted twice)."""
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3)  # nobody listens
    store = RedisStore(client, Keys("t-prep"), retention_days=30)
    prepare = partial(redact_record, Redactor(("email",)))
    writer = Writer(store, tmp_path, write_timeout=0.3, prepare=prepare)
    await writer.start()
    service = FeedbackService(store, writer, timeout=0.5, redact=prepare)
    comment = {"user_feedback": "negative", "user_feedback_comment": "mail me: jo@example.com"}
    record = feedback_record("tr-1", Feedback(comment, (), None, None), "header")
    try:
        assert await service.apply(record) == "queued"
        await writer.wait_until(lambda: writer.spooled >= 1, 5)
    finally:
        await writer.close(deadline=0.5)
        await store.close()
        await client.aclose()
    on_disk = spooled(tmp_path)
    assert b"mail me: [REDACTED:email]" in on_disk
    assert b"jo@example.com" not in on_disk
