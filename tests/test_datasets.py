"""Datasets through the admin API on a real Redis: add, idempotency, annotation queue, exports."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from proxy.datasets.columns import csv_header
from proxy.datasets.formats import chat_messages, csv_record, jsonl_line
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.clients import call, rows_url, text_of
from tests.conftest import RunningProxy
from tests.factories import make_trace, span_record

pytestmark = pytest.mark.redis_backends  # each test runs on a single Redis and on a Cluster

TRICKY = 'Wrong, "very" wrong,\nsee line two; ünïcode'


async def test_add_by_ids_builds_rows_from_the_last_span_and_feedback(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Each known trace becomes one empty row (input, output, feedback); unknown ids are missing."""
    await make_trace(store, "tr-1", user_feedback="negative", user_feedback_rating=2)
    await make_trace(store, "tr-2")
    status, body = await call(
        http, "POST", rows_url(admin), {"trace_ids": ["tr-1", "tr-2", "nope", "tr-1"]}
    )
    assert status == 200
    assert body == {"dataset": "regressions", "added": 2, "existing": 0,
                    "missing": ["nope"], "truncated": False}  # fmt: skip
    _, page = await call(http, "GET", rows_url(admin))
    first = page["rows"][0]
    assert first["row_id"] == first["trace_id"] == "tr-1"
    assert first["input"]["messages"][1] == {"role": "user", "content": "Q?"}
    assert first["output"]["text"] == "Paris."
    assert first["feedback"]["user_feedback"] == "negative"
    assert first["feedback"]["user_feedback_rating"] == 2
    assert (first["annotation_status"], first["annotation"]) == ("empty", None)
    assert first["added_at"].endswith("Z")


async def test_adding_twice_reports_existing_and_keeps_one_row(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A trace is in a dataset once: the second add changes nothing and says so."""
    await make_trace(store, "tr-1")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    status, body = await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    assert (status, body["added"], body["existing"], body["missing"]) == (200, 0, 1, [])
    _, page = await call(http, "GET", rows_url(admin))
    assert [r["trace_id"] for r in page["rows"]] == ["tr-1"]


async def test_add_by_filter_adds_exactly_the_matching_traces(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """``{"filter": ...}`` takes the GET /api/traces filters as JSON values."""
    base = int(time.time() * 1000) - 10_000
    await make_trace(store, "bad-1", started_ms=base, user_feedback="negative",
                     feedback_reason="hallucination")  # fmt: skip
    await make_trace(store, "bad-2", started_ms=base + 1, user_feedback="negative")
    await make_trace(store, "good", started_ms=base + 2, user_feedback="positive")
    await make_trace(store, "plain", started_ms=base + 3)
    status, body = await call(
        http, "POST", rows_url(admin), {"filter": {"feedback": "negative", "has_feedback": True}}
    )
    assert (status, body["added"], body["missing"]) == (200, 2, [])
    _, page = await call(http, "GET", rows_url(admin))
    assert {r["trace_id"] for r in page["rows"]} == {"bad-1", "bad-2"}
    _, again = await call(http, "POST", rows_url(admin), {"filter": {"tag": ["thumbs-down"]}})
    assert (again["added"], again["existing"]) == (0, 2)


async def test_list_datasets_counts_rows(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """GET /api/datasets lists every dataset with its number of rows."""
    for trace_id in ("tr-1", "tr-2"):
        await make_trace(store, trace_id)
    await call(http, "POST", rows_url(admin, "b"), {"trace_ids": ["tr-1", "tr-2"]})
    await call(http, "POST", rows_url(admin, "a.v1"), {"trace_ids": ["tr-2"]})
    status, body = await call(http, "GET", f"{admin.admin_url}/api/datasets")
    assert status == 200
    assert body == {"datasets": [{"name": "a.v1", "rows": 1}, {"name": "b", "rows": 2}]}


async def test_rows_come_in_the_order_added_page_by_page(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Pages follow the order rows were added (not trace time) and every row shows once."""
    ids = [f"tr-{n:02d}" for n in range(7)]
    for trace_id in ids:
        await make_trace(store, trace_id)
    await call(http, "POST", rows_url(admin), {"trace_ids": ids[3:][::-1]})
    await call(http, "POST", rows_url(admin), {"trace_ids": ids[:3]})
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await call(http, "GET", rows_url(admin), **params)
        assert status == 200
        seen += [r["row_id"] for r in page["rows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[3:][::-1] + ids[:3]


async def test_annotation_flow(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A reviewer lists empty rows, fills one with an annotation, and it moves to filled."""
    for trace_id in ("tr-1", "tr-2"):
        await make_trace(store, trace_id, user_feedback="negative")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1", "tr-2"]})
    _, empty = await call(http, "GET", rows_url(admin), annotation_status="empty")
    assert [r["row_id"] for r in empty["rows"]] == ["tr-1", "tr-2"]
    annotation = {"corrected": "Lyon.", "comment": TRICKY}
    status, row = await call(http, "PATCH", f"{rows_url(admin)}/tr-1",
                             {"annotation": annotation, "annotation_status": "filled"})  # fmt: skip
    assert status == 200
    assert (row["annotation"], row["annotation_status"]) == (annotation, "filled")
    _, filled = await call(http, "GET", rows_url(admin), annotation_status="filled")
    assert [(r["row_id"], r["annotation"]) for r in filled["rows"]] == [("tr-1", annotation)]
    _, empty = await call(http, "GET", rows_url(admin), annotation_status="empty")
    assert [r["row_id"] for r in empty["rows"]] == ["tr-2"]


async def test_patch_keeps_what_it_does_not_name(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Setting only the status keeps the annotation, and the rest of the row is unchanged."""
    await make_trace(store, "tr-1")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    _, before = await call(http, "PATCH", f"{rows_url(admin)}/tr-1", {"annotation": {"x": 1}})
    _, after = await call(http, "PATCH", f"{rows_url(admin)}/tr-1", {"annotation_status": "filled"})
    assert after == {**before, "annotation_status": "filled"}
    assert after["annotation"] == {"x": 1}


async def annotated_dataset(admin: RunningProxy, store: RedisStore, http: Any) -> None:
    await make_trace(store, "tr-1", answer=TRICKY, user_feedback="negative",
                     user_feedback_rating=1.5, feedback_reason="hallucination")  # fmt: skip
    await make_trace(store, "tr-2", answer="Fine.")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1", "tr-2"]})
    await call(http, "PATCH", f"{rows_url(admin)}/tr-1",
               {"annotation": {"comment": TRICKY}, "annotation_status": "filled"})  # fmt: skip


async def test_json_export_parses_back(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """format=json is the page answer, readable by any JSON parser."""
    await annotated_dataset(admin, store, http)
    content_type, text = await text_of(http, rows_url(admin), format="json")
    assert content_type.startswith("application/json")
    rows = orjson.loads(text)["rows"]
    assert [r["output"]["text"] for r in rows] == [TRICKY, "Fine."]


async def test_jsonl_export_is_openai_chat_format(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """One line per row: input messages plus the assistant's answer, feedback as metadata."""
    await annotated_dataset(admin, store, http)
    _, text = await text_of(http, rows_url(admin), format="jsonl", limit="1")
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert len(lines) == 2  # the whole dataset: limit does not apply to an export
    first = lines[0]
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": TRICKY},
    ]
    assert first["metadata"] == {
        "trace_id": "tr-1", "user_feedback": "negative", "user_feedback_category": None,
        "feedback_reason": "hallucination", "user_feedback_rating": 1.5,
        "annotation_status": "filled", "annotation": {"comment": TRICKY},
    }  # fmt: skip
    _, filled = await text_of(http, rows_url(admin), format="jsonl", annotation_status="empty")
    assert [orjson.loads(line)["metadata"]["trace_id"] for line in filled.splitlines()] == ["tr-2"]


async def test_csv_export_round_trips_through_the_csv_module(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """UTF-8 CSV with a header; commas, quotes and newlines survive RFC 4180 quoting."""
    await annotated_dataset(admin, store, http)
    content_type, text = await text_of(http, rows_url(admin), format="csv")
    assert content_type.startswith("text/csv")
    header, *records = list(csv.reader(io.StringIO(text, newline="")))
    assert header == csv_header([])
    first = dict(zip(header, records[0], strict=True))
    assert first["output"] == TRICKY
    assert orjson.loads(first["annotation"]) == {"comment": TRICKY}
    assert orjson.loads(first["input"])["messages"][1]["content"] == "Q?"
    assert (first["user_feedback"], first["user_feedback_rating"]) == ("negative", "1.5")
    assert (first["annotation_status"], first["user_feedback_category"]) == ("filled", "")
    assert [r[0] for r in records] == ["tr-1", "tr-2"]


async def test_a_large_export_streams_every_row(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """More rows than one read chunk still export completely and in order."""
    ids = [f"tr-{n:04d}" for n in range(1200)]
    for i in range(0, len(ids), 100):
        records = [span_record(t, "a" * 16) for t in ids[i : i + 100]]
        await store.write_batch(records)
    for i in range(0, len(ids), 1000):
        status, _ = await call(http, "POST", rows_url(admin), {"trace_ids": ids[i : i + 1000]})
        assert status == 200
    _, text = await text_of(http, rows_url(admin), format="jsonl")
    assert [orjson.loads(line)["metadata"]["trace_id"] for line in text.splitlines()] == ids


async def test_delete_row_and_dataset(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A deleted row is gone (and may be added again); a deleted dataset is not listed."""
    for trace_id in ("tr-1", "tr-2"):
        await make_trace(store, trace_id)
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1", "tr-2"]})
    status, _ = await call(http, "DELETE", f"{rows_url(admin)}/tr-1")
    assert status == 200
    _, page = await call(http, "GET", rows_url(admin))
    assert [r["row_id"] for r in page["rows"]] == ["tr-2"]
    assert (await call(http, "DELETE", f"{rows_url(admin)}/tr-1"))[0] == 404
    _, body = await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    assert body["added"] == 1
    status, _ = await call(http, "DELETE", f"{admin.admin_url}/api/datasets/regressions")
    assert status == 200
    _, listed = await call(http, "GET", f"{admin.admin_url}/api/datasets")
    assert listed == {"datasets": []}
    assert (await call(http, "GET", rows_url(admin)))[0] == 404
    assert (await call(http, "DELETE", f"{admin.admin_url}/api/datasets/regressions"))[0] == 404


async def test_rows_do_not_expire(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession,
    redis_client: aioredis.Redis, keys: Keys,
) -> None:  # fmt: skip
    """Dataset keys carry no TTL: rows are copies that outlive their traces."""
    await make_trace(store, "tr-1")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    for key in (keys.dataset_rows("regressions"), keys.dataset_order("regressions")):
        assert await redis_client.ttl(key) == -1


async def test_unknown_row_is_404(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Patching a row that is not in the dataset answers 404 and creates nothing."""
    await make_trace(store, "tr-1")
    await call(http, "POST", rows_url(admin), {"trace_ids": ["tr-1"]})
    status, body = await call(http, "PATCH", f"{rows_url(admin)}/tr-9", {"annotation": {}})
    assert (status, body["error"]["code"]) == (404, "row_not_found")
    assert (await call(http, "GET", rows_url(admin, "never")))[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("POST", "bad name/rows", {"trace_ids": ["a"]}, {}, "name"),
        ("POST", "bad%2Fname/rows", {"trace_ids": ["a"]}, {}, "name"),
        ("POST", f"{'x' * 65}/rows", {"trace_ids": ["a"]}, {}, "name"),
        ("GET", "b@d/rows", None, {}, "name"),
        ("POST", "ok/rows", {}, {}, "body"),
        ("POST", "ok/rows", [], {}, "body"),
        ("POST", "ok/rows", {"trace_ids": ["a"], "filter": {}}, {}, "body"),
        ("POST", "ok/rows", {"trace_ids": []}, {}, "trace_ids"),
        ("POST", "ok/rows", {"trace_ids": ["a" * 1001]}, {}, "trace_ids[0]"),
        ("POST", "ok/rows", {"trace_ids": ["ok", 5]}, {}, "trace_ids[1]"),
        ("POST", "ok/rows", {"trace_ids": [f"t{n}" for n in range(1001)]}, {}, "trace_ids"),
        ("POST", "ok/rows", {"filter": {"feedback": "meh"}}, {}, "filter.feedback"),
        ("POST", "ok/rows", {"filter": {"limit": 5}}, {}, "filter.limit"),
        ("POST", "ok/rows", {"filter": {"color": "red"}}, {}, "filter.color"),
        ("POST", "ok/rows", {"filter": {"model": {"a": 1}}}, {}, "filter.model"),
        ("POST", "ok/rows", {"filter": []}, {}, "filter"),
        ("PATCH", "ok/rows/tr-1", {"annotation": "text"}, {}, "annotation"),
        ("PATCH", "ok/rows/tr-1", {"annotation_status": "done"}, {}, "annotation_status"),
        ("PATCH", "ok/rows/tr-1", {"note": 1}, {}, "note"),
        ("PATCH", "ok/rows/tr-1", {}, {}, "body"),
        ("GET", "ok/rows", None, {"format": "xml"}, "format"),
        ("GET", "ok/rows", None, {"annotation_status": "x"}, "annotation_status"),
        ("GET", "ok/rows", None, {"limit": "0"}, "limit"),
        ("GET", "ok/rows", None, {"cursor": "%%%"}, "cursor"),
        ("GET", "ok/rows", None, {"sort": "x"}, "sort"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    admin: RunningProxy,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    field: str,
) -> None:
    """Every bad name, body or parameter is refused before Redis is asked, naming the field."""
    url = f"{admin.admin_url}/api/datasets/{path}"
    async with http.request(method, url, json=body, params=params or None) as response:
        assert response.status == 400
        message = (await response.json())["error"]["message"]
    assert message.startswith(f"{field}:")


def test_export_shapes_of_a_row_without_capture() -> None:
    """A row whose trace captured no bodies still exports: no messages but the empty answer."""
    row = {"row_id": "t", "trace_id": "t", "input": None, "output": None, "feedback": {},
           "annotation_status": "empty", "annotation": None, "added_at": "x"}  # fmt: skip
    assert orjson.loads(jsonl_line(row))["messages"] == [{"role": "assistant", "content": ""}]
    assert csv_record(row, csv_header([]))[:4] == ["t", "t", "", ""]


def test_chat_messages_reads_each_provider_input() -> None:
    """Anthropic system + messages, Responses instructions + input text, completion prompts."""
    user = {"role": "user", "content": "hi"}
    assert chat_messages({"system": "S", "messages": [user]}) == [
        {"role": "system", "content": "S"}, user,
    ]  # fmt: skip
    assert chat_messages({"instructions": "S", "input": "hi"})[-1] == user
    assert chat_messages({"prompt": "hi"}) == [user]
