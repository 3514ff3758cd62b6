"""`feedback-proxy traces` and `feedback-proxy export` against a running proxy's admin API.

The commands run in-process (``main`` in a thread, as the console script would call it), so
their stdout and stderr are captured by pytest.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.cli.admin_client import TerminalProgress, _RowCounter, format_traces
from proxy.cli.main import main
from proxy.store.embedded import free_port
from tests.conftest import RunningProxy, StartProxy
from tests.recording_helpers import wait_for_trace

pytestmark = [pytest.mark.timeout(60), pytest.mark.redis_backends]  # single and Cluster

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Q?"}]}
VOTES = {"cli-good": "positive", "cli-bad-1": "negative", "cli-bad-2": "negative"}


async def make_trace(
    http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str, vote: str
) -> None:
    """One chat completion through the proxy, recorded, then the user's vote on it."""
    async with http.post(
        f"{proxy.url}/openai/v1/chat/completions",
        data=orjson.dumps(CHAT),
        headers={"Content-Type": "application/json", "X-Trace-Id": trace_id},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await wait_for_trace(http, proxy.admin_url, trace_id)
    async with http.post(
        f"{proxy.url}/feedback", headers={"X-Trace-Id": trace_id, "X-Feedback": vote}
    ) as resp:
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def running(start: StartProxy, http: aiohttp.ClientSession) -> RunningProxy:
    """A proxy with three voted traces, all three rows of dataset ``ds``."""
    proxy = await start()
    for trace_id, vote in VOTES.items():
        await make_trace(http, proxy, trace_id, vote)
    async with http.post(
        f"{proxy.admin_url}/api/datasets/ds/rows", json={"trace_ids": list(VOTES)}
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["added"] == 3
    return proxy


async def cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


# ----------------------------------------------------------------------------- traces


async def test_traces_table_lists_every_trace(
    running: RunningProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default output is a table with a header and one line per trace."""
    assert await cli("traces", "--admin-url", running.admin_url) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "created_at", "trace_id", "feedback", "rating", "category", "reason", "models", "spans",
        "cost_usd", "annotation",
    ]  # fmt: skip
    for trace_id, vote in VOTES.items():
        line = next(line for line in lines if trace_id in line)
        assert vote in line.split()
        assert "gpt-4o-mini" in line
        assert re.search(r"  0\.0000\d\d  ", line)  # a gpt-4o-mini call of a few tokens
    assert lines[-1] == "(no more pages)"


async def test_traces_json_and_feedback_filter(
    running: RunningProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the API's answer; --feedback negative keeps only the negative traces."""
    code = await cli("traces", "--feedback", "negative", "--json", "--admin-url", running.admin_url)
    assert code == 0
    page = json.loads(capsys.readouterr().out)
    assert {t["trace_id"] for t in page["traces"]} == {"cli-bad-1", "cli-bad-2"}
    assert page["next_cursor"] is None


async def test_traces_score_filter(
    running: RunningProxy, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """--score-label passes the score filter on: only the trace scored that way is listed."""
    async with http.post(f"{running.admin_url}/api/traces/cli-good/scores",
                         json={"name": "judge", "label": "pass"}) as resp:  # fmt: skip
        assert resp.status == 200, await resp.text()
    args = ("traces", "--score-label", "judge:pass", "--json", "--admin-url", running.admin_url)
    assert await cli(*args) == 0
    page = json.loads(capsys.readouterr().out)
    assert [t["trace_id"] for t in page["traces"]] == ["cli-good"]
    args = ("traces", "--implicit", "stopped", "--json", "--admin-url", running.admin_url)
    assert await cli(*args) == 0
    assert json.loads(capsys.readouterr().out)["traces"] == []


async def test_traces_pages_with_cursor(
    running: RunningProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit gives a next cursor that --cursor follows."""
    assert await cli("traces", "--limit", "2", "--json", "--admin-url", running.admin_url) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["traces"]) == 2
    assert first["next_cursor"]
    assert await cli("traces", "--limit", "2", "--admin-url", running.admin_url) == 0
    assert f"--cursor {first['next_cursor']}" in capsys.readouterr().out
    args = ("traces", "--limit", "2", "--cursor", first["next_cursor"], "--json")
    assert await cli(*args, "--admin-url", running.admin_url) == 0
    second = json.loads(capsys.readouterr().out)
    seen = [t["trace_id"] for t in first["traces"] + second["traces"]]
    assert sorted(seen) == sorted(VOTES)


async def test_traces_bad_parameter_prints_the_api_message(
    running: RunningProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 prints the API's own message on one line and exits 1."""
    assert await cli("traces", "--rating-min", "9", "--admin-url", running.admin_url) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "rating_min: must be a number from 1 to 5" in err


# ----------------------------------------------------------------------------- export


async def test_export_jsonl_file(running: RunningProxy, tmp_path: Path) -> None:
    """`export --format jsonl -o FILE` writes one chat row per line, each ending in the
    assistant's answer."""
    out = tmp_path / "ds.jsonl"
    assert await cli("export", "ds", "--format", "jsonl", "-o", str(out),
                     "--admin-url", running.admin_url) == 0  # fmt: skip
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 3
    assert all(row["messages"][-1]["role"] == "assistant" for row in rows)


async def test_export_csv_file(running: RunningProxy, tmp_path: Path) -> None:
    """`export --format csv -o FILE` writes a CSV with a header and one row per dataset row,
    feedback included."""
    out = tmp_path / "ds.csv"
    assert await cli("export", "ds", "--format", "csv", "-o", str(out),
                     "--admin-url", running.admin_url) == 0  # fmt: skip
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert sorted(row["user_feedback"] for row in rows) == ["negative", "negative", "positive"]


async def test_export_json_follows_pages(
    running: RunningProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON export walks next_cursor (pages of one here) and writes one array."""
    monkeypatch.setattr("proxy.cli.admin_client.PAGE_LIMIT", 1)
    out = tmp_path / "ds.json"
    assert await cli("export", "ds", "--format", "json", "-o", str(out),
                     "--admin-url", running.admin_url) == 0  # fmt: skip
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    assert len(rows) == 3


async def test_export_to_stdout(running: RunningProxy, capsysbinary: Any) -> None:
    """Without -o the export goes to stdout, filters applied (only the rows still to annotate)."""
    assert await cli("export", "ds", "--format", "jsonl", "--annotation-status", "empty",
                     "--admin-url", running.admin_url) == 0  # fmt: skip
    assert len(capsysbinary.readouterr().out.splitlines()) == 3


# ----------------------------------------------------------------------------- errors


async def test_unknown_dataset_exits_1(
    running: RunningProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """404: one line naming the dataset, exit 1, and no file left behind."""
    out = tmp_path / "nope.csv"
    assert await cli("export", "nope", "--format", "csv", "-o", str(out),
                     "--admin-url", running.admin_url) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope" in err
    assert "404" in err
    assert not out.exists()


@pytest.mark.parametrize("command", [["traces"], ["export", "ds", "--format", "jsonl"]])
async def test_unreachable_admin_api_exits_1(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """No admin API at the URL: exit 1, nothing on stdout, one stderr line naming the URL
    and asking whether `feedback-proxy serve` runs."""
    url = f"http://127.0.0.1:{free_port()}"
    assert await cli(*command, "--admin-url", url) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert f"cannot reach the admin API at {url}" in captured.err
    assert "is `feedback-proxy serve` running?" in captured.err


async def test_admin_url_from_settings_and_token(
    start: StartProxy,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --admin-url the command reads admin.host/port and sends admin.token."""
    proxy = await start(admin__token="s3cret")
    port = proxy.admin_url.rsplit(":", 1)[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEEDBACK_PROXY_ADMIN__HOST", "0.0.0.0")
    monkeypatch.setenv("FEEDBACK_PROXY_ADMIN__PORT", port)
    monkeypatch.setenv("FEEDBACK_PROXY_ADMIN__TOKEN", "wrong")
    assert await cli("traces") == 1
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("FEEDBACK_PROXY_ADMIN__TOKEN", "s3cret")
    assert await cli("traces", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"traces": [], "next_cursor": None}


# ----------------------------------------------------------------------------- pure parts


def test_csv_row_counter_ignores_newlines_in_quotes() -> None:
    """The progress counter counts CSV rows, not lines: a quoted newline is not a row, at
    any chunk border."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["a", "b"])
    writer.writerow(['line\none "quoted"', "x"])
    writer.writerow(["plain", "y"])
    data = text.getvalue().encode()
    counter = _RowCounter("csv")
    for i in range(0, len(data), 3):  # chunk borders anywhere
        counter.feed(data[i : i + 3])
    assert counter.rows == 2


def test_table_of_an_empty_page() -> None:
    """`traces` on an empty result says so instead of printing an empty table."""
    assert format_traces({"traces": [], "next_cursor": None}) == (
        "no matching traces\n(no more pages)\n"
    )


def test_terminal_progress_rewrites_one_line() -> None:
    """Progress on a terminal rewrites one line (rows, human-readable bytes) and ends it once,
    with "done"."""
    stream = io.StringIO()
    progress = TerminalProgress(stream, interval=0)
    progress(1, 10, False)
    progress(3, 2048, True)
    text = stream.getvalue()
    assert text.startswith("\r1 rows, 10 B")
    assert "\r3 rows, 2.0 KiB — done" in text
    assert text.endswith("\n")
    assert text.count("\n") == 1
