"""The Monitor page's handlers without a browser: what they answer, escape, refuse and protect.

Each test talks HTTP to a real admin listener on loopback over a real Redis and reads the HTML
a browser would get. The browser-driven flows are in ``test_ui_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from proxy.store.redis_store import RedisStore
from tests.conftest import RunningProxy, StartProxy
from tests.ui_data import HOSTILE_PROMPT, LONG_ANSWER, seed_history, seed_reviewer_traces

CSP = "default-src 'self'"
TOKEN = "pages-token-31x"


@pytest.fixture
async def browser_like() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for 127.0.0.1 and does not follow redirects by itself."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with http.get(url, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


async def _post(
    http: aiohttp.ClientSession, url: str, data: dict[str, str], **kw: Any
) -> tuple[int, str, Any]:
    async with http.post(url, data=data, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


def _csrf(body: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', body)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_every_view_renders_with_the_csp_header(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Traces, trace, datasets, dataset and trends answer 200 HTML with the CSP header; / and
    /ui/ lead to the traces."""
    ids = await seed_reviewer_traces(store)
    await seed_history(store, days=3, per_day=4)
    url = f"{admin.admin_url}/api/datasets/review/rows"
    async with http.post(url, json={"trace_ids": [ids["negative"]]}) as resp:
        assert resp.status == 200
    for path in (
        "/ui/traces",
        f"/ui/traces/{ids['negative']}",
        "/ui/datasets",
        "/ui/datasets/review",
        "/ui/datasets/review?annotation_status=empty",
        "/ui/trends",
        "/ui/trends?bucket=hour&group_by=model",
    ):
        status, body, headers = await _get(http, admin.admin_url + path)
        assert status == 200, (path, body[:2000])
        assert headers["Content-Security-Policy"] == CSP
        assert headers["Content-Type"].startswith("text/html")
        assert "<script" not in body
        assert " style=" not in body  # CSP: no inline style either
    for path in ("/", "/ui", "/ui/"):
        status, _, headers = await _get(http, admin.admin_url + path)
        assert (status, headers["Location"]) == (302, "/ui/traces")


async def test_csp_is_on_every_admin_answer(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """API JSON, errors, health, metrics, static files and streamed exports carry it too."""
    await seed_reviewer_traces(store)
    url = f"{admin.admin_url}/api/datasets/d/rows"
    async with http.post(url, json={"trace_ids": ["conv-happy-1"]}) as resp:
        assert resp.status == 200
    for path in ("/api/traces", "/api/traces/nope", "/healthz", "/metrics", "/nowhere",
                 "/ui/static/ui.css", "/ui/datasets/d/export?format=csv"):  # fmt: skip
        _, _, headers = await _get(http, admin.admin_url + path)
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Frame-Options"] == "DENY"


async def test_prompts_and_answers_are_text_never_markup(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """``<script>`` and ``<img onerror>`` in a prompt, an answer and a comment come out
    escaped; a long answer folds into <details> with all of its text inside."""
    ids = await seed_reviewer_traces(store)
    _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces/{ids['hostile']}")
    assert "<script" not in body
    assert "<img" not in body
    assert "<b>" not in body
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in body
    assert HOSTILE_PROMPT not in body
    _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces/{ids['long']}")
    folded = re.search(r'<details class="fold">(.*?)</details>', body, re.S)
    assert folded, "the long answer is not folded"
    assert LONG_ANSWER.splitlines()[-1] in folded.group(1)


async def test_tool_arguments_are_pretty_printed(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A tool call's JSON arguments (sent as one string) are shown indented, key by key."""
    ids = await seed_reviewer_traces(store)
    _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces/{ids['negative']}")
    assert "lookup_order" in body
    assert "\n  &#34;order_id&#34;: &#34;A-1009&#34;,\n" in body


async def test_the_filter_form_is_the_apis_query(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """The page lists what GET /api/traces lists for the same query string, and its Older
    link carries the API's cursor; empty fields are ignored; a bad value is the API's 400."""
    await seed_history(store, days=2, per_day=6)
    for query in ("feedback=negative", "feedback=negative&rating_max=2&model=gpt-4o",
                  "has_feedback=false&limit=3", "user_id=u1&feedback=&reason="):  # fmt: skip
        api = {k: v for k, v in (p.split("=") for p in query.split("&")) if v}
        async with http.get(f"{admin.admin_url}/api/traces", params=api) as resp:
            expected = [t["trace_id"] for t in (await resp.json())["traces"]]
        _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces?{query}")
        shown = re.findall(r'<td class="name"><a href="/ui/traces/([^"]+)"', body)
        assert shown == expected, query
    _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces?limit=2")
    older = re.search(r'href="(/ui/traces\?limit=2&amp;cursor=[^"]+)" rel="next"', body)
    assert older
    async with http.get(f"{admin.admin_url}/api/traces", params={"limit": "2"}) as resp:
        cursor = (await resp.json())["next_cursor"]
    assert older.group(1).replace("&amp;", "&") == f"/ui/traces?limit=2&cursor={cursor}"
    status, body, headers = await _get(http, f"{admin.admin_url}/ui/traces?rating_min=9")
    assert status == 400
    assert "rating_min: must be a number from 1 to 5" in body
    assert headers["Content-Security-Policy"] == CSP


async def test_unknown_things_are_404_pages(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """A missing trace, dataset or page answers a 404 page (HTML, not the API's JSON)."""
    for path in ("/ui/traces/no-such-trace", "/ui/traces/bad%20id", "/ui/datasets/none",
                 "/ui/nothing-here"):  # fmt: skip
        status, body, headers = await _get(http, admin.admin_url + path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("text/html")
        assert "Not found" in body


async def test_writes_without_the_csrf_value_or_from_another_origin_change_nothing(
    admin: RunningProxy, store: RedisStore, browser_like: aiohttp.ClientSession
) -> None:
    """A form POST needs the page's CSRF value (matching its cookie) and no foreign Origin;
    refused, the trace keeps its history. With both, the vote lands as ``api`` feedback."""
    ids = await seed_reviewer_traces(store)
    page = f"{admin.admin_url}/ui/traces/{ids['long']}"
    _, body, _ = await _get(browser_like, page)
    csrf = _csrf(body)
    vote = {"user_feedback": "negative", "feedback_reason": "too_verbose"}
    for data, headers in (
        (vote, {}),
        ({**vote, "csrf": "forged"}, {}),
        ({**vote, "csrf": csrf}, {"Origin": "http://evil.example"}),
        ({**vote, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        status, _, _ = await _post(browser_like, page + "/feedback", data, headers=headers)
        assert status == 403
    assert (await store.get_trace(ids["long"]))["feedback"] == []  # type: ignore[index]
    async with aiohttp.ClientSession() as stranger:  # the value, but not the cookie
        status, _, _ = await _post(stranger, page + "/feedback", {**vote, "csrf": csrf})
        assert status == 403
    status, _, headers = await _post(browser_like, page + "/feedback", {**vote, "csrf": csrf})
    assert status == 303
    assert headers["Location"].endswith("notice=applied#feedback")
    trace = await store.get_trace(ids["long"])
    assert trace is not None
    assert trace["attributes"]["user_feedback"] == "negative"
    assert [e["source"] for e in trace["feedback"]] == ["api"]


async def test_reviewer_feedback_follows_the_patch_rules(
    admin: RunningProxy, store: RedisStore, browser_like: aiohttp.ClientSession
) -> None:
    """A rating out of range is refused with PATCH's message beside the form (400), and
    nothing is recorded; a span-targeted note lands on that span."""
    ids = await seed_reviewer_traces(store)
    page = f"{admin.admin_url}/ui/traces/{ids['negative']}"
    csrf = _csrf((await _get(browser_like, page))[1])
    before = await store.get_trace(ids["negative"])
    status, body, _ = await _post(browser_like, page + "/feedback",
                                  {"csrf": csrf, "user_feedback_rating": "7"})  # fmt: skip
    assert status == 400
    assert "attributes.user_feedback_rating: must be a number from 1 to 5" in body
    assert 'value="7"' in body  # the form keeps what was typed
    assert await store.get_trace(ids["negative"]) == before
    span_id = "0000000000000001"
    form = {"csrf": csrf, "user_feedback_comment": "wrong date", "span_id": span_id, "tags": "x"}
    status, _, _ = await _post(browser_like, page + "/feedback", form)
    assert status == 303
    trace = await store.get_trace(ids["negative"])
    assert trace is not None
    span = next(s for s in trace["spans"] if s["span_id"] == span_id)
    assert span["attributes"]["user_feedback_comment"] == "wrong date"
    assert "x" in span["tags"]


async def test_add_to_dataset_checks_name_and_columns_before_writing(
    admin: RunningProxy, store: RedisStore, browser_like: aiohttp.ClientSession
) -> None:
    """A bad dataset name or column source is refused (400, the API's message) and no
    dataset appears; a good mapping adds one row with exactly those columns."""
    ids = await seed_reviewer_traces(store)
    page = f"{admin.admin_url}/ui/traces/{ids['negative']}"
    csrf = _csrf((await _get(browser_like, page))[1])
    bad = [
        ({"dataset": "../x", "column_name": "a", "column_source": "trace.user_id"}, "Dataset:"),
        ({"dataset": "ok", "column_name": "a", "column_source": "bogus"}, "columns.a:"),
        ({"dataset": "ok", "column_name": "", "column_source": "span.model"}, "columns.:"),
    ]
    for form, message in bad:
        status, body, _ = await _post(browser_like, page + "/datasets", {"csrf": csrf, **form})
        assert status == 400
        assert message in body
    async with browser_like.get(f"{admin.admin_url}/api/datasets") as resp:
        assert (await resp.json())["datasets"] == []
    form = {"csrf": csrf, "dataset": "ok", "column_name": "who", "column_source": "trace.user_id"}
    status, _, headers = await _post(browser_like, page + "/datasets", form)
    assert status == 303
    assert "notice=added" in headers["Location"]
    async with browser_like.get(f"{admin.admin_url}/api/datasets/ok/rows") as resp:
        rows = (await resp.json())["rows"]
    assert [r["feedback"] for r in rows] == [{"who": "alice"}]
    status, _, headers = await _post(browser_like, page + "/datasets", form)
    assert "notice=existing" in headers["Location"]


async def test_annotation_editor_saves_text_or_json_and_marks_filled(
    admin: RunningProxy, store: RedisStore, browser_like: aiohttp.ClientSession
) -> None:
    """Plain text is stored as {"text"}, a JSON object as itself; Mark filled sets the row's
    and the trace's annotation_status; the export link streams the dataset."""
    ids = await seed_reviewer_traces(store)
    url = f"{admin.admin_url}/api/datasets/q/rows"
    async with browser_like.post(url, json={"trace_ids": [ids["negative"]]}) as resp:
        assert resp.status == 200
    page = f"{admin.admin_url}/ui/datasets/q"
    csrf = _csrf((await _get(browser_like, page))[1])
    action = f"{page}/rows/{ids['negative']}"
    form = {"csrf": csrf, "annotation": '{"expected": "pending"}', "action": "save"}
    status, _, headers = await _post(browser_like, action, form)
    assert status == 303
    assert headers["Location"] == f"/ui/datasets/q?notice=saved#row-{ids['negative']}"
    async with browser_like.get(url) as resp:
        row = (await resp.json())["rows"][0]
    assert (row["annotation"], row["annotation_status"]) == ({"expected": "pending"}, "empty")
    form = {
        "csrf": csrf,
        "annotation": "just text",
        "action": "filled",
        "here": "annotation_status=empty",
    }
    status, _, headers = await _post(browser_like, action, form)
    assert headers["Location"].startswith("/ui/datasets/q?annotation_status=empty&notice=saved")
    async with browser_like.get(url) as resp:
        row = (await resp.json())["rows"][0]
    assert (row["annotation"], row["annotation_status"]) == ({"text": "just text"}, "filled")
    assert (await store.get_trace(ids["negative"]))["annotation_status"] == "filled"  # type: ignore[index]
    _, body, _ = await _get(browser_like, page + "?annotation_status=filled")
    assert "just text</textarea>" in body
    status, body, headers = await _get(browser_like, page + "/export?format=jsonl")
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="q.jsonl"'
    assert "A-1009" in body


async def test_with_a_token_the_page_wants_a_session_and_the_api_the_bearer(
    start: StartProxy, store: RedisStore, browser_like: aiohttp.ClientSession
) -> None:
    """Signed out, pages redirect to the sign-in form and writes are 401; a wrong token is
    refused; the right one sets an HttpOnly SameSite=Strict cookie that is not the token and
    opens the pages, but not the API, which keeps demanding the bearer header."""
    admin = await start(**{"admin.token": TOKEN})
    ids = await seed_reviewer_traces(store)
    base = admin.admin_url
    status, _, headers = await _get(browser_like, f"{base}/ui/traces?feedback=negative")
    assert status == 303
    location = urlsplit(headers["Location"])
    assert location.path == "/ui/login"
    assert parse_qs(location.query) == {"next": ["/ui/traces?feedback=negative"]}
    status, _, _ = await _post(browser_like, f"{base}/ui/traces/{ids['long']}/feedback", {})
    assert status == 401
    status, body, _ = await _get(browser_like, f"{base}/ui/login?next=/ui/datasets")
    assert status == 200
    assert 'name="token"' in body
    csrf = _csrf(body)
    form = {"csrf": csrf, "token": "nope", "next": "/ui/datasets"}
    status, body, headers = await _post(browser_like, f"{base}/ui/login", form)
    assert status == 401
    assert "Set-Cookie" not in headers or "fp_session" not in headers["Set-Cookie"]
    status, body, headers = await _post(browser_like, f"{base}/ui/login", {**form, "token": TOKEN})
    assert (status, headers["Location"]) == (303, "/ui/datasets")
    cookie = headers["Set-Cookie"]
    assert "fp_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    for path in ("/ui/traces", f"/ui/traces/{ids['negative']}", "/ui/datasets", "/ui/trends"):
        status, body, _ = await _get(browser_like, base + path)
        assert status == 200, path
        assert TOKEN not in body
    status, _, _ = await _get(browser_like, f"{base}/api/traces")
    assert status == 401  # the cookie is not the API's credential
    async with aiohttp.ClientSession() as script:  # the bearer header opens the page too
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await _get(script, f"{base}/ui/traces", headers=bearer))[0] == 200
        assert (await _get(script, f"{base}/ui/traces", headers={"Cookie": "fp_session=1.2.3"}))[
            0
        ] == 303
    away = {**form, "token": TOKEN, "next": "https://evil.example/"}
    status, _, headers = await _post(browser_like, f"{base}/ui/login", away)
    assert headers["Location"] == "/ui/traces"  # never a redirect to another site


async def test_a_session_of_another_token_or_too_old_is_refused() -> None:
    """Sessions are signed with a key derived from the token and expire."""
    from proxy.admin.ui.signing import SESSION_TTL_S, new_session, session_key, session_valid

    key = session_key("one")
    value = new_session(key, now=1_000_000)
    assert session_valid(key, value, now=1_000_010)
    assert not session_valid(session_key("two"), value, now=1_000_010)
    assert not session_valid(key, value, now=1_000_000 + SESSION_TTL_S)
    assert not session_valid(key, value.replace(".", "x", 1), now=1_000_010)
    assert not session_valid(key, "", now=1_000_010)


async def test_trends_show_evaluator_agreement_when_the_build_has_it(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """With the scores feature merged (``GET /api/stats/agreement``), naming a score on the
    trends page shows its agreement with user votes, as the API computes it; a bad score
    name is the API's 400. Skipped on a build without it."""
    pytest.importorskip("proxy.admin.api.scores")
    ids = await seed_reviewer_traces(store)
    for trace_id, label in ((ids["negative"], "fail"), (ids["positive"], "pass")):
        url = f"{admin.admin_url}/api/traces/{trace_id}/scores"
        async with http.post(url, json={"name": "judge", "label": label}) as resp:
            assert resp.status == 200, await resp.text()
    async with http.get(f"{admin.admin_url}/api/stats/agreement?score=judge") as resp:
        expected = await resp.json()
    status, body, _ = await _get(http, f"{admin.admin_url}/ui/trends?score=judge")
    assert status == 200
    assert "Evaluator agreement" in body
    assert f"judge: {expected['n']} traces with a vote and this score" in body
    status, body, _ = await _get(http, f"{admin.admin_url}/ui/trends?score=Bad%20Name")
    assert status == 400
    assert "score: required;" in body


async def test_the_filter_form_has_a_control_for_every_api_filter(
    admin: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Every parameter GET /api/traces takes (but the cursor, which the pager carries) is a
    control of the form, under the same name, and the form has no other control."""
    from proxy.admin.params import trace_list_names

    _, body, _ = await _get(http, f"{admin.admin_url}/ui/traces")
    form = re.search(r'<form method="get" action="/ui/traces".*?</form>', body, re.S)
    assert form
    names = set(re.findall(r'<(?:input|select|textarea)[^>]* name="([^"]+)"', form.group(0)))
    assert names == trace_list_names() - {"cursor"}


async def test_status_counts_stop_at_their_cap(
    admin: RunningProxy, store: RedisStore, http: aiohttp.ClientSession
) -> None:
    """Counting a dataset's rows by status reads at most the cap and says when it stopped."""
    from proxy.admin.ui.datasets_view import status_counts

    ids = await seed_reviewer_traces(store)
    url = f"{admin.admin_url}/api/datasets/big/rows"
    async with http.post(url, json={"trace_ids": list(ids.values())}) as resp:
        assert resp.status == 200
    datasets = admin.listeners.services.datasets
    full = await status_counts(datasets, "big")
    assert (full.empty, full.filled, full.capped) == (5, 0, False)
    capped = await status_counts(datasets, "big", cap=2)
    assert (capped.total, capped.capped) == (2, True)
