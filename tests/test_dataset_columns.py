"""Dataset column mapping per request, and a filled row marking its trace as filled."""

from __future__ import annotations

import csv
import io

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.datasets.columns import (
    DEFAULT_COLUMNS,
    InvalidColumns,
    column_value,
    csv_header,
    parse_columns,
)
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.clients import call, rows_url, text_of
from tests.conftest import RunningProxy
from tests.factories import make_trace

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

MAPPING = {
    "verdict": "attributes.user_feedback",
    "why": "attributes.feedback_reason",
    "tier": "attributes.customer_tier",
    "model": "span.model",
    "out_tokens": "span.usage.output_tokens",
    "session": "trace.session_id",
}


async def test_rows_carry_the_columns_the_request_maps(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Columns named by the request, from attributes, the trace and its last span; a value
    the trace lacks is null."""
    await make_trace(store, "tr-1", user_feedback="negative", feedback_reason="hallucination")
    status, body = await call(
        http, "POST", rows_url(admin), {"trace_ids": ["tr-1"], "columns": MAPPING}
    )
    assert (status, body["added"]) == (200, 1)
    _, page = await call(http, "GET", rows_url(admin))
    assert page["rows"][0]["feedback"] == {
        "verdict": "negative", "why": "hallucination", "tier": None,
        "model": "gpt-4o-mini", "out_tokens": None, "session": None,
    }  # fmt: skip


async def test_csv_header_lists_every_mapping_the_dataset_was_given(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Rows added with the default mapping and rows added with another one export in one CSV:
    the header has every column once, in first-use order; a row lacks the others."""
    await make_trace(store, "tr-1", user_feedback="negative")
    await make_trace(store, "tr-2", user_feedback="positive")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    columns = {"verdict": "attributes.user_feedback", "user_feedback": "attributes.user_feedback"}
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-2"], "columns": columns})
    _, text = await text_of(http, rows_url(admin), format="csv")
    header, *records = list(csv.reader(io.StringIO(text, newline="")))
    assert header == csv_header([*DEFAULT_COLUMNS, "verdict"])
    rows = [dict(zip(header, record, strict=True)) for record in records]
    assert [(r["user_feedback"], r["verdict"]) for r in rows] == [
        ("negative", ""),
        ("positive", "positive"),
    ]
    _, jsonl = await text_of(http, rows_url(admin), format="jsonl")
    metadata = [orjson.loads(line)["metadata"] for line in jsonl.splitlines()]
    assert metadata[1]["verdict"] == "positive"
    assert "user_feedback_rating" not in metadata[1]


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        ([], "columns"),
        ({}, "columns"),
        ({"x": "nowhere.y"}, "columns.x"),
        ({"input": "attributes.a"}, "columns.input"),
        ({"9lives": "attributes.a"}, "columns.9lives"),
        ({"x": "trace.spans"}, "columns.x"),
        ({"x": "span.output"}, "columns.x"),
        ({"x": 3}, "columns.x"),
        ({f"c{i}": "attributes.a" for i in range(33)}, "columns"),
    ],
)
def test_bad_mappings_name_the_column(columns: object, named: str) -> None:
    """A column mapping that cannot work is refused with a message naming the bad column."""
    with pytest.raises(InvalidColumns) as error:
        parse_columns(columns)
    assert str(error.value).startswith(f"{named}: ")


async def test_a_bad_mapping_adds_nothing(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A request with a bad mapping answers 400 naming the column and creates no dataset."""
    await make_trace(store, "tr-1")
    status, body = await call(
        http, "POST", rows_url(admin), {"trace_ids": ["tr-1"], "columns": {"x": "span.input"}}
    )
    assert status == 400
    assert body["error"]["message"].startswith("columns.x: ")
    status, _ = await call(http, "GET", rows_url(admin))
    assert status == 404  # the dataset was not even created


def test_column_values_follow_their_source() -> None:
    """A column reads attributes (dotted keys kept whole), the span and the trace; a missing
    source is null, not an error."""
    trace = {"session_id": "s1", "attributes": {"a.b": 1}, "spans": []}
    span = {"usage": {"input_tokens": 3}, "model": "m"}
    assert column_value(trace, span, "attributes.a.b") == 1
    assert column_value(trace, span, "span.usage.input_tokens") == 3
    assert column_value(trace, span, "span.usage.nope") is None
    assert column_value(trace, span, "trace.session_id") == "s1"
    assert column_value(trace, {}, "span.model") is None


async def test_filling_a_row_marks_its_trace_filled(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """The trace's annotation_status follows its row, and the trace list filter sees it."""
    await make_trace(store, "tr-1", user_feedback="negative")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    traces_url = f"{admin.admin_url}/api/traces"
    _, listed = await call(http, "GET", traces_url, annotation_status="empty")
    assert [t["trace_id"] for t in listed["traces"]] == ["tr-1"]
    await call(http, "PATCH", f"{rows_url(admin)}/tr-1", {"annotation_status": "filled"})
    _, trace = await call(http, "GET", f"{traces_url}/tr-1")
    assert trace["annotation_status"] == "filled"
    _, listed = await call(http, "GET", traces_url, annotation_status="filled")
    assert [t["trace_id"] for t in listed["traces"]] == ["tr-1"]
    _, listed = await call(http, "GET", traces_url, annotation_status="empty")
    assert listed["traces"] == []


async def test_filling_the_row_of_an_expired_trace_does_not_bring_it_back(
    admin: RunningProxy,
    store: RedisStore,
    http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
    keys: Keys,
) -> None:
    """Marking a row filled after its trace expired works (200) and does not recreate the
    trace."""
    await make_trace(store, "tr-1")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    assert await store.set_annotation_status("tr-1", "empty")
    await redis_client.delete(*keys.trace("tr-1").all())  # retention
    status, row = await call(
        http, "PATCH", f"{rows_url(admin)}/tr-1", {"annotation_status": "filled"}
    )
    assert (status, row["annotation_status"]) == (200, "filled")
    assert await store.get_trace("tr-1") is None
