"""The <feedback-widget> (GET /feedback.js) in a real browser, on a page of another origin.

A page server on a second loopback port (another origin than the proxy) holds the widget for
an answer's X-Feedback-Token; what counts is what the user sees and what the trace records.
One chromium for the whole module (tests/browser.py).
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.feedback.token import issue
from tests.browser import Browser, browser_fixture
from tests.clients import call
from tests.conftest import RunningProxy, StartProxy
from tests.waiting import eventually

SECRET = "widget-test-secret-of-some-length"
REASONS = ["hallucination", "tone_of_voice"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from browser_fixture()


@pytest.fixture
async def app_proxy(start: StartProxy) -> RunningProxy:
    """A proxy with a known token secret (to mint an expired token) and its own reasons."""
    return await start(**{"feedback.token_secret": SECRET, "feedback.reasons": REASONS})


class Pages:
    """A web app on another origin: ``/`` is the page the test set last."""

    def __init__(self) -> None:
        self.html = ""
        self.url = ""

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.html, content_type="text/html")


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    pages = Pages()
    app = web.Application()
    app.router.add_get("/", pages.page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pages.url = f"http://127.0.0.1:{port}/"
    yield pages
    await runner.cleanup()


def widget_page(proxy: RunningProxy, token: str, attributes: str = "") -> str:
    """The page an app would render for one answer; it records every feedback-sent event."""
    return f"""<!doctype html><html lang="en"><title>answer</title>
<script>window.sent = [];
addEventListener("feedback-sent", e => window.sent.push(e.detail));</script>
<script src="{proxy.url}/feedback.js"></script>
<p>An answer.</p><feedback-widget token="{html.escape(token)}" {attributes}></feedback-widget>"""


async def answer(http: aiohttp.ClientSession, proxy: RunningProxy) -> tuple[str, str]:
    """(trace ID, feedback token) of one real proxied answer."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(f"{proxy.url}/v1/chat/completions", json=body) as response:
        assert response.status == 200
        return response.headers["X-Trace-Id"], response.headers["X-Feedback-Token"]


async def recorded_trace(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> Any:
    """The trace as the admin API shows it, once its span has landed."""
    return await eventually(
        lambda: call(http, "GET", f"{proxy.admin_url}/api/traces/{trace_id}"),
        until=lambda answer: answer[0] == 200 and answer[1]["spans"],
        what=f"trace {trace_id} with its span",
    )


async def test_thumbs_down_comment_then_flip_leaves_one_event_with_the_final_vote(
    browser: Browser, app_proxy: RunningProxy, pages: Pages, http: aiohttp.ClientSession
) -> None:
    """Not helpful, a reason and a comment, then Helpful: the page (another origin) shows each
    step, aria-pressed follows the vote, and the trace holds one event with the final vote."""
    trace_id, token = await answer(http, app_proxy)
    pages.html = widget_page(app_proxy, token, "comment reasons")
    assert pages.url.split("/")[2] != app_proxy.url.split("/")[2]  # another origin

    async def scenario(context: Any) -> dict[str, Any]:
        page = await context.new_page()
        await page.goto(pages.url)
        helpful = page.get_by_role("button", name="Helpful", exact=True)
        not_helpful = page.get_by_role("button", name="Not helpful", exact=True)
        status = page.get_by_role("status")
        await not_helpful.click()
        await status.filter(has_text="Recorded: not helpful.").wait_for()
        assert await not_helpful.get_attribute("aria-pressed") == "true"
        await page.get_by_label("Reason").select_option(label="Tone of voice")
        await page.get_by_label("Comment (optional)").fill("Zu vage, bitte genauer")
        await page.get_by_role("button", name="Send").click()
        await status.filter(has_text="with your details").wait_for()
        await helpful.click()
        await status.filter(has_text="Recorded: helpful.").wait_for()
        return {
            "pressed": [await b.get_attribute("aria-pressed") for b in (helpful, not_helpful)],
            "comment_visible": await page.get_by_label("Comment (optional)").is_visible(),
            "sent": await page.evaluate("window.sent"),
        }

    seen = await browser.run(scenario)
    assert seen["pressed"] == ["true", "false"]
    assert not seen["comment_visible"]
    votes = [event["attributes"]["user_feedback"] for event in seen["sent"]]
    assert votes == ["negative", "negative", "positive"]
    assert seen["sent"][1]["attributes"]["feedback_reason"] == "tone_of_voice"
    assert len({event["feedbackId"] for event in seen["sent"]}) == 1
    _, trace = await recorded_trace(http, app_proxy, trace_id)
    assert len(trace["feedback"]) == 1
    assert trace["feedback"][0]["attributes"]["user_feedback"] == "positive"
    assert trace["attributes"]["user_feedback"] == "positive"
    assert "thumbs-up" in trace["tags"]
    assert "thumbs-down" not in trace["tags"]


async def test_an_expired_token_says_so_and_stores_nothing(
    browser: Browser, app_proxy: RunningProxy, pages: Pages, http: aiohttp.ClientSession
) -> None:
    """A vote with a token past its expiry shows that it expired; no feedback-sent event, and
    the trace has no feedback."""
    trace_id, fresh = await answer(http, app_proxy)
    span_id = fresh.split(".")[2]  # any span of the trace: the expiry is what is refused
    expired = issue(SECRET.encode(), trace_id, _b64(span_id), int(time.time()) - 60)
    pages.html = widget_page(app_proxy, expired)

    async def scenario(context: Any) -> dict[str, Any]:
        page = await context.new_page()
        await page.goto(pages.url)
        await page.get_by_role("button", name="Not helpful", exact=True).click()
        status = page.get_by_role("status")
        await status.filter(has_text="expired").wait_for()
        widget = page.locator("feedback-widget")
        return {
            "text": await status.inner_text(),
            "state": await widget.get_attribute("state"),
            "sent": await page.evaluate("window.sent"),
        }

    seen = await browser.run(scenario)
    assert seen["state"] == "failed"
    assert "can no longer be rated" in seen["text"]
    assert seen["sent"] == []
    _, trace = await recorded_trace(http, app_proxy, trace_id)
    assert trace["feedback"] == []
    assert "user_feedback" not in trace["attributes"]


async def test_keyboard_only_vote_reason_and_comment(
    browser: Browser, app_proxy: RunningProxy, pages: Pages, http: aiohttp.ClientSession
) -> None:
    """Tab, Space, arrow keys, typing and Enter alone cast a thumbs-down with a reason and a
    comment; the focused button shows a focus ring."""
    trace_id, token = await answer(http, app_proxy)
    pages.html = widget_page(app_proxy, token, "comment reasons")

    async def scenario(context: Any) -> dict[str, Any]:
        page = await context.new_page()
        await page.goto(pages.url)
        keyboard = page.keyboard
        await keyboard.press("Tab")  # Helpful
        await keyboard.press("Tab")  # Not helpful
        focused = await page.evaluate(
            "(() => { const el = document.querySelector('feedback-widget').shadowRoot"
            ".activeElement; return [el.textContent.trim(), getComputedStyle(el).outlineStyle] })()"
        )
        await keyboard.press("Space")
        status = page.get_by_role("status")
        await status.filter(has_text="Recorded: not helpful.").wait_for()
        await keyboard.press("Tab")  # Reason
        await keyboard.press("ArrowDown")  # (no reason) -> Hallucination
        await keyboard.press("Tab")  # Comment
        await keyboard.type("Made up a policy")
        await keyboard.press("Tab")  # Send
        await keyboard.press("Enter")
        await status.filter(has_text="with your details").wait_for()
        return {"focused": focused}

    seen = await browser.run(scenario)
    assert seen["focused"][0].endswith("Not helpful")
    assert seen["focused"][1] == "solid"
    _, trace = await recorded_trace(http, app_proxy, trace_id)
    assert len(trace["feedback"]) == 1
    assert trace["attributes"]["user_feedback"] == "negative"
    assert trace["attributes"]["feedback_reason"] == "hallucination"
    assert trace["attributes"]["user_feedback_comment"] == "Made up a policy"


def _b64(part: str) -> str:
    """The span ID a token's third part encodes."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


async def test_feedback_allowed_origins_admit_the_listed_page_and_refuse_others(
    browser: Browser, start: StartProxy, pages: Pages, http: aiohttp.ClientSession
) -> None:
    """With feedback.allowed_origins naming the page's origin, the vote lands; with another
    origin listed, the browser refuses the answer (CORS), the widget says it could not send,
    and nothing is stored."""
    origin = pages.url.rstrip("/")
    listed = await start(**{"feedback.allowed_origins": [origin]})
    unlisted = await start(**{"feedback.allowed_origins": ["http://elsewhere.example"]})

    async def vote(context: Any) -> str:
        page = await context.new_page()
        await page.goto(pages.url)
        await page.get_by_role("button", name="Helpful", exact=True).click()
        widget = page.locator("feedback-widget")
        await page.locator("feedback-widget:is([state=sent], [state=failed])").wait_for()
        status = await page.get_by_role("status").inner_text()
        return f"{await widget.get_attribute('state')}: {status}"

    results = {}
    for name, proxy in (("listed", listed), ("unlisted", unlisted)):
        trace_id, token = await answer(http, proxy)
        pages.html = widget_page(proxy, token)
        shown = await browser.run(vote)
        _, trace = await recorded_trace(http, proxy, trace_id)
        results[name] = (shown, trace)
    assert results["listed"][0] == "sent: Thanks! Recorded: helpful."
    assert results["listed"][1]["attributes"]["user_feedback"] == "positive"
    assert results["unlisted"][0].startswith("failed: Not sent: ")
    assert "origin" in results["unlisted"][0]
    assert results["unlisted"][1]["feedback"] == []


async def test_a_malformed_token_is_named_without_asking_the_proxy(
    browser: Browser, app_proxy: RunningProxy, pages: Pages
) -> None:
    """A token that is not one of ours (cut, or not base64url) fails at once, saying so."""
    pages.html = widget_page(app_proxy, "v1.%%%.###.1.sig")

    async def scenario(context: Any) -> tuple[str | None, str, list[str]]:
        page = await context.new_page()
        posted: list[str] = []
        page.on("request", lambda request: posted.append(request.url))
        await page.goto(pages.url)
        await page.get_by_role("button", name="Helpful", exact=True).click()
        await page.locator("feedback-widget[state=failed]").wait_for()
        state = await page.locator("feedback-widget").get_attribute("state")
        return state, await page.get_by_role("status").inner_text(), posted

    state, text, requests = await browser.run(scenario)
    assert (state, text) == ("failed", "Not sent: the feedback token is missing or malformed.")
    assert not [url for url in requests if url.endswith("/feedback")]
