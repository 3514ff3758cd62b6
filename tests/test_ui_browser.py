"""The Monitor page in a real browser (Debian's chromium driven by Playwright), doing what a
reviewer does: sign in, filter to negative feedback, open a trace, add it to a dataset with a
mapped column, annotate and mark it filled, and see the API agree; one flow by keyboard only.

Every page of every test is watched: a console error (a CSP violation is one), an uncaught
script error or a request to another origin fails the module's last test. One browser and one
server for the module (``loop_scope="module"``); pages are reused. Skipped when
/usr/bin/chromium is absent, unless ``CI=true`` (then it fails). With
``FP_UI_SCREENSHOTS=<dir>`` the screenshot test writes the docs' pictures there.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from proxy.config import load_settings
from proxy.runtime.server import Listeners, bound_port, start_listeners
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.ui_data import HOSTILE_PROMPT, seed_history, seed_reviewer_traces

require_chromium(module_level=True)

from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOKEN = "ui-test-token-9f2c"
WIDTH = 1280
TALL = frozenset(
    {"trace", "trends", "trends-by-model", "trends-agreement"}
)  # whole-page screenshots


@dataclass
class Monitor:
    origin: str
    ids: dict[str, str]
    browser: Browser
    http: aiohttp.ClientSession
    listeners: Listeners
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    async def context(self, refusals: bool = False) -> BrowserContext:
        """A fresh browser profile whose pages are watched for errors and foreign requests;
        with ``refusals``, an answer's 4xx status (a wrong token) is not counted as one."""
        context = await self.browser.new_context(viewport={"width": WIDTH, "height": 900})
        context.set_default_timeout(10_000)
        self.contexts.append(context)

        async def same_origin_only(route: Any) -> None:
            if route.request.url.startswith(self.origin + "/"):
                await route.continue_()
            else:
                self.problems.append(f"request to another origin: {route.request.url}")
                await route.abort()

        await context.route("**/*", same_origin_only)
        context.on("page", lambda page: self.watch(page, refusals))
        return context

    def watch(self, page: Page, refusals: bool) -> None:
        def console(message: Any) -> None:
            refused = refusals and message.text.startswith("Failed to load resource")
            if message.type == "error" and not refused:
                self.problems.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))

    async def score_traces(self, ids: dict[str, str]) -> None:
        """An evaluator's verdicts on the seeded traces (it agrees with most user votes)."""
        verdicts = {ids["negative"]: ("fail", 0.2, "Says the refund was sent; it was not.")}
        verdicts[ids["positive"]] = ("pass", 0.9, "")
        for day in range(14):
            for i in range(0, 12, 3):
                verdicts[f"hist-{day:02d}-{i:02d}"] = ("pass" if (i + day) % 4 else "fail", 0.5, "")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for trace_id, (label, value, why) in verdicts.items():
            body = {"name": "judge.correct", "label": label, "value": value}
            if why:
                body["explanation"] = why
            url = f"{self.origin}/api/traces/{trace_id}/scores"
            async with self.http.post(url, json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()

    async def api(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with self.http.get(self.origin + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def monitor(redis_server: str) -> AsyncIterator[Monitor]:
    with tempfile.TemporaryDirectory() as spool:
        settings = load_settings(env={}, overrides={
            "redis.url": redis_server, "redis.key_prefix": f"ui{uuid.uuid4().hex[:10]}",
            "proxy.host": "127.0.0.1", "proxy.port": 0, "admin.host": "127.0.0.1",
            "admin.port": 0, "admin.token": TOKEN, "writer.spool_dir": spool,
            "redis.data_dir": spool, "feedback.token_secret": "s" * 32,
        })  # fmt: skip
        listeners = await start_listeners(settings)
        store = listeners.services.store
        ids = await seed_reviewer_traces(store)
        await seed_history(store)
        origin = f"http://127.0.0.1:{bound_port(listeners.admin)}"
        try:
            async with async_playwright() as pw, aiohttp.ClientSession() as http:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                monitor = Monitor(origin, ids, browser, http, listeners)
                await monitor.score_traces(ids)
                yield monitor
                await browser.close()
        finally:
            await listeners.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def reviewer(monitor: Monitor) -> Page:
    """A signed-in page, shared by the tests that follow the sign-in."""
    page = await (await monitor.context()).new_page()
    await page.goto(monitor.origin + "/ui/traces")
    await page.get_by_label("Token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/ui/traces")
    return page


async def test_sign_in_asks_for_the_token_once_and_keeps_a_strict_cookie(
    monitor: Monitor,
) -> None:
    """A page opened without a session lands on the sign-in form; a wrong token is refused;
    the right one sets an HttpOnly, SameSite=Strict cookie that is not the token, and the
    page the user asked for opens. The token appears in no URL and no page."""
    context = await monitor.context(refusals=True)
    page = await context.new_page()
    await page.goto(monitor.origin + "/ui/datasets")
    assert "/ui/login" in page.url
    await page.get_by_label("Token").fill("wrong")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("That token is not the admin token.").wait_for()
    await page.get_by_label("Token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/ui/datasets")
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["fp_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert TOKEN not in session["value"]
    assert TOKEN not in page.url
    assert TOKEN not in await page.content()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/ui/login**")
    await page.goto(monitor.origin + "/ui/traces")
    assert "/ui/login" in page.url


async def test_reviewer_turns_a_negative_trace_into_an_annotated_dataset_row(
    monitor: Monitor, reviewer: Page
) -> None:
    """Filter to negative feedback, open the trace, add it to a dataset with a mapped column,
    annotate and mark it filled: the API shows the row, its column and the filled status."""
    page, trace_id = reviewer, monitor.ids["negative"]
    await page.goto(monitor.origin + "/ui/traces")
    await page.get_by_label("Vote").select_option("negative")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**feedback=negative**")
    votes = await page.locator("table.traces tbody td:nth-child(8)").all_inner_texts()
    assert votes
    assert all("negative" in vote for vote in votes)

    await page.locator(f'a[href="/ui/traces/{trace_id}"]').first.click()
    await page.wait_for_url(f"**/ui/traces/{trace_id}")
    assert await page.locator("section.span").count() == 3
    await page.get_by_text('"order_id": "A-1009"').wait_for()  # tool arguments pretty-printed
    await page.locator("table.history").get_by_text("The refund never arrived.").wait_for()

    await page.get_by_label("Dataset", exact=True).fill("refund-review")
    await page.get_by_label("Column 5 name").fill("customer")
    await page.get_by_label("Column 5 value from").fill("trace.user_id")
    await page.get_by_role("button", name="Add to dataset").click()
    await page.get_by_text("Added to dataset").wait_for()
    await page.get_by_role("link", name="refund-review").click()
    await page.wait_for_url("**/ui/datasets/refund-review")

    row = page.locator(f"#row-{trace_id}")
    await row.get_by_label("Annotation").fill("Say the refund is pending, give the date.")
    await row.get_by_role("button", name="Mark filled").click()
    await page.get_by_text("Saved.").wait_for()
    assert "filled" in await page.locator(f"#row-{trace_id} header").inner_text()

    rows = (await monitor.api("/api/datasets/refund-review/rows"))["rows"]
    assert [r["trace_id"] for r in rows] == [trace_id]
    assert rows[0]["annotation_status"] == "filled"
    assert rows[0]["annotation"] == {"text": "Say the refund is pending, give the date."}
    assert rows[0]["feedback"]["customer"] == "alice"
    assert rows[0]["feedback"]["user_feedback"] == "negative"
    assert (await monitor.api(f"/api/traces/{trace_id}"))["annotation_status"] == "filled"


async def test_keyboard_only_reviewer_feedback(monitor: Monitor, reviewer: Page) -> None:
    """From the trace list to a saved reviewer comment with the keyboard alone."""
    page, trace_id = reviewer, monitor.ids["positive"]
    await page.goto(monitor.origin + "/ui/traces?user_id=alice")
    await _tab_to(page, f'a[href="/ui/traces/{trace_id}"]')
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/ui/traces/{trace_id}")
    await _tab_to(page, 'textarea[name="user_feedback_comment"]')
    await page.keyboard.type("Checked by a reviewer.")
    await _tab_to(page, "#feedback button[type=submit]")
    await page.keyboard.press("Enter")
    await page.get_by_text("Feedback recorded.").wait_for()
    trace = await monitor.api(f"/api/traces/{trace_id}")
    assert trace["attributes"]["user_feedback_comment"] == "Checked by a reviewer."
    assert trace["feedback"][-1]["source"] == "api"


async def _tab_to(page: Page, selector: str, presses: int = 120) -> None:
    """Press Tab until ``selector`` has the focus (bounded)."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} never got the keyboard focus")


async def test_a_hostile_prompt_is_shown_as_text(monitor: Monitor, reviewer: Page) -> None:
    """``<script>`` and ``<img onerror>`` inside a prompt, an answer and a comment are
    characters on the page: nothing runs, no image is made."""
    page = reviewer
    await page.goto(f"{monitor.origin}/ui/traces/{monitor.ids['hostile']}")
    text = await page.locator("main").inner_text()
    assert HOSTILE_PROMPT in text
    assert "<script>window.__pwned = 3</script>" in text
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.locator("main img, main b").count() == 0


async def test_screenshots_of_every_view(monitor: Monitor, reviewer: Page) -> None:
    """Each view renders at 1280 px; the pictures go to FP_UI_SCREENSHOTS when set."""
    target = Path(os.environ.get("FP_UI_SCREENSHOTS") or tempfile.mkdtemp(prefix="ui-shots-"))
    target.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the browser works
    page = reviewer
    views = {
        "traces": "/ui/traces?limit=50",
        "traces-negative": "/ui/traces?feedback=negative",
        "trace": f"/ui/traces/{monitor.ids['negative']}",
        "datasets": "/ui/datasets",
        "dataset": "/ui/datasets/refund-review",
        "trends": "/ui/trends?bucket=day",
        "trends-by-model": "/ui/trends?bucket=day&group_by=model",
        "trends-agreement": "/ui/trends?bucket=day&score=judge.correct",
    }
    for name, path in views.items():
        response = await page.goto(monitor.origin + path)
        assert response is not None
        assert response.status == 200, path
        await page.screenshot(path=str(target / f"{name}.png"), full_page=name in TALL)
    login = await (await monitor.context()).new_page()
    await login.goto(monitor.origin + "/ui/traces")
    await login.screenshot(path=str(target / "sign-in.png"))
    assert {p.stem for p in target.glob("*.png")} >= {*views, "sign-in"}  # noqa: ASYNC240


async def test_no_console_error_and_no_request_to_another_origin(monitor: Monitor) -> None:
    """Over every page the tests above opened (runs last in the module)."""
    for context in monitor.contexts:
        await context.close()
    assert monitor.problems == []
