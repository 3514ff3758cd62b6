"""The chat example (examples/) as a newcomer uses it: ask, rate an answer, see the vote.

Its fake model, a proxy in front of it and the chat app run on loopback; chromium asks two
questions, rates the first Helpful and the second Not helpful with a reason and a comment,
and the admin API shows each vote on its answer's trace. With ``EXAMPLE_SCREENSHOT=<png>``
the page is saved there (docs/images/feedback-widget-example.png was made so).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from examples.chat_app import create_chat_app
from examples.fake_model import create_fake_model
from tests.browser import Browser, browser_fixture
from tests.clients import call
from tests.conftest import RunningProxy, StartProxy
from tests.waiting import eventually


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from browser_fixture()


async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.fixture
async def example(start: StartProxy) -> AsyncIterator[tuple[str, RunningProxy]]:
    """(chat page URL, the proxy): the example's three servers on free loopback ports."""
    async for model_url in serve(create_fake_model()):
        proxy = await start(**{"upstreams.openai.base_url": model_url})
        async for chat_url in serve(create_chat_app(proxy.url, proxy.admin_url)):
            yield chat_url, proxy


async def trace_of(http: aiohttp.ClientSession, proxy: RunningProxy, trace_id: str) -> Any:
    """The trace once its span has landed."""
    answer = await eventually(
        lambda: call(http, "GET", f"{proxy.admin_url}/api/traces/{trace_id}"),
        until=lambda answer: answer[0] == 200 and answer[1]["spans"],
        what=f"the span of {trace_id}",
    )
    return answer[1]


async def test_a_vote_on_the_example_page_shows_in_the_trace(
    browser: Browser, example: tuple[str, RunningProxy], http: aiohttp.ClientSession
) -> None:
    """Two answers, two widgets: each vote lands on its own answer's trace."""
    chat_url, proxy = example
    screenshot = os.environ.get("EXAMPLE_SCREENSHOT")

    async def scenario(context: Any) -> list[str]:
        page = await context.new_page()
        await page.set_viewport_size({"width": 760, "height": 560})
        await page.goto(chat_url)
        for question in ("What is our refund policy?", "Can I get a refund after 60 days?"):
            await page.get_by_label("Message").fill(question)
            await page.get_by_role("button", name="Ask").click()
        turns = [page.locator(".turn").nth(i) for i in (0, 1)]
        first, second = (turn.locator("feedback-widget") for turn in turns)
        await first.wait_for()
        await second.wait_for()
        await first.get_by_role("button", name="Helpful", exact=True).click()
        await second.get_by_role("button", name="Not helpful", exact=True).click()
        await second.get_by_label("Reason").select_option(label="Wrong policy")
        await second.get_by_label("Comment (optional)").fill("Refunds end after 30 days.")
        await second.get_by_role("button", name="Send").click()
        await first.get_by_role("status").filter(has_text="Recorded: helpful.").wait_for()
        await second.get_by_role("status").filter(has_text="with your details").wait_for()
        questions = await page.locator(".question").all_inner_texts()
        assert questions == ["What is our refund policy?", "Can I get a refund after 60 days?"]
        if screenshot:
            await page.screenshot(path=screenshot, full_page=True)
        return [await link.inner_text() for link in await page.locator(".meta a").all()]

    helpful_trace, unhelpful_trace = await browser.run(scenario)
    assert helpful_trace != unhelpful_trace
    helpful = await trace_of(http, proxy, helpful_trace)
    assert helpful["attributes"]["user_feedback"] == "positive"
    assert helpful["name"] == "example-chat"
    unhelpful = await trace_of(http, proxy, unhelpful_trace)
    assert unhelpful["attributes"]["user_feedback"] == "negative"
    assert unhelpful["attributes"]["feedback_reason"] == "wrong_policy"
    assert unhelpful["attributes"]["user_feedback_comment"] == "Refunds end after 30 days."
    assert unhelpful["session_id"] == helpful["session_id"]  # one conversation
