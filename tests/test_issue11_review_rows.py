"""Issue 11 item 5: a review-queue row holds its trace's content once the trace's spans are
recorded, even when the feedback (and with it the row) came before the span: feedback sent on
a call is merged while that call still runs. And CSV writes an empty cell for a missing value.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import orjson

from proxy.datasets.columns import csv_header
from proxy.datasets.formats import csv_record
from tests.conftest import RunningProxy, StartProxy
from tests.fake_provider import reply_text
from tests.recording_helpers import wait_for_trace

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
TRACE = "one-call-negative"


async def one_call_with_negative_feedback(http: aiohttp.ClientSession, proxy: RunningProxy) -> None:
    """The trace's only call carries the thumbs-down: the review row is written before its span."""
    headers = {"X-Trace-Id": TRACE, "X-Feedback": "negative", "Content-Type": "application/json"}
    body = orjson.dumps({"model": MODEL, "messages": MESSAGES})
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions", data=body, headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["X-Feedback-Status"] == "applied"
    await wait_for_trace(http, proxy.admin_url, TRACE)


async def review_export(http: aiohttp.ClientSession, proxy: RunningProxy, form: str) -> str:
    url = f"{proxy.admin_url}/api/datasets/review/rows"
    async with http.get(url, params={"format": form}) as response:
        assert response.status == 200
        return await response.text(encoding="utf-8")


async def test_a_one_call_trace_row_shows_the_calls_input_and_output(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await start()
    await one_call_with_negative_feedback(http, proxy)
    async with http.get(f"{proxy.admin_url}/api/datasets/review/rows") as response:
        (row,) = (await response.json())["rows"]
    assert row["trace_id"] == TRACE
    assert row["input"]["messages"] == MESSAGES
    assert row["output"]["text"] == reply_text(MODEL)
    assert row["feedback"]["user_feedback"] == "negative"
    (stored,) = await proxy.listeners.services.store.dataset_rows("review")
    assert stored["input"]["messages"] == MESSAGES  # written back: outlives the trace


async def test_the_exports_of_that_row_carry_the_content(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await start()
    await one_call_with_negative_feedback(http, proxy)
    (line,) = (await review_export(http, proxy, "jsonl")).splitlines()
    assert orjson.loads(line)["messages"] == [
        *MESSAGES,
        {"role": "assistant", "content": reply_text(MODEL)},
    ]
    header, record = list(csv.reader(io.StringIO(await review_export(http, proxy, "csv"))))
    cells: dict[str, Any] = dict(zip(header, record, strict=True))
    assert orjson.loads(cells["input"])["messages"] == MESSAGES
    assert cells["output"] == reply_text(MODEL)
    assert cells["annotation"] == ""  # none yet: an empty cell, not the text null


def test_csv_writes_an_empty_cell_for_every_missing_value() -> None:
    row = {"row_id": "t", "trace_id": "t", "input": None, "output": None,
           "feedback": {"user_feedback": None}, "annotation_status": "empty",
           "annotation": None, "added_at": "x"}  # fmt: skip
    cells = csv_record(row, csv_header([]))
    assert "null" not in cells
    assert cells[:4] == ["t", "t", "", ""]
