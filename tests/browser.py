"""One headless Debian chromium per test module, driven by Playwright from a thread of its own.

The tests' event loop runs the proxy and the page servers; Playwright's async API runs on a
second loop in a worker thread, so a test awaits a browser scenario (``await browser.run(fn)``)
while its own loop keeps serving the pages the browser asks for. Without /usr/bin/chromium the
module is skipped, unless ``CI=true``: then it fails, so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
T = TypeVar("T")
Scenario = Callable[[Any], Awaitable[T]]  # gets a fresh BrowserContext


def require_chromium(module_level: bool = False) -> None:
    """Skip without Debian's chromium, or fail under ``CI=true``: CI never passes by skipping
    the browser tests. ``module_level`` skips a whole module at import."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing: CI must run the browser tests", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=module_level)


class Browser:
    """A launched chromium on its own loop; ``run`` gives each scenario a fresh context."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._playwright: Any = None
        self._browser: Any = None
        self.started_s = time.perf_counter()
        self._call(self._launch())

    def _call(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)  # type: ignore[arg-type]

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )

    async def run(self, scenario: Scenario[T], timeout: float = 30.0) -> T:
        """``scenario(context)`` on the browser's loop, awaited from the test's loop."""

        async def in_context() -> T:
            context = await self._browser.new_context()
            context.set_default_timeout(10_000)
            try:
                return await scenario(context)
            finally:
                await context.close()

        future: Future[T] = asyncio.run_coroutine_threadsafe(in_context(), self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def close(self) -> None:
        async def stop() -> None:
            await self._browser.close()
            await self._playwright.stop()

        try:
            self._call(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def browser_fixture() -> Iterator[Browser]:
    """Body of a module-scoped ``browser`` fixture: skip (or fail on CI) without chromium, and
    print how long the module's browser lived."""
    require_chromium()
    browser = Browser()
    try:
        yield browser
    finally:
        browser.close()
        print(f"\nbrowser module time: {time.perf_counter() - browser.started_s:.2f} s")
