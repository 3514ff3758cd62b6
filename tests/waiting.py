"""Waiting for what happens behind a test's back (spans written after the response, a process
starting, a cluster settling): poll until a condition holds, bounded by a deadline.

``eventually`` (async) and ``eventually_blocking`` (for synchronous fixtures and helpers) are
the only polling loops in the suite. A wait that runs out raises with what was awaited and the
last value seen, so a failure says what never happened instead of hanging or passing late.
Never ``sleep`` for a result: wait for the result itself.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 5.0  # generous on a loaded 2-core box; a wait that holds returns at once
INTERVAL = 0.02


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    until: Callable[[T], object] = bool,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """``probe()`` (sync or async) every ``interval`` seconds until ``until(value)`` holds;
    returns that value. Probes at least once, and once more at the deadline; after
    ``timeout`` seconds raises ``AssertionError`` naming ``what`` and the last value (or one
    of the ``ignoring`` exceptions) seen. Other exceptions, assertions included, end the wait
    at once."""
    deadline = time.monotonic() + timeout
    while True:
        last: Any
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            if until(value):
                return value
            last = value
        except ignoring as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s; last seen: {last!r}")
        await asyncio.sleep(interval)


def eventually_blocking(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str = "the condition",
    ignoring: tuple[type[BaseException], ...] = (),
    error: type[Exception] = AssertionError,
) -> T:
    """``eventually`` for code that runs outside the event loop (session fixtures, subprocess
    helpers); raises ``error`` when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        last: Any
        try:
            value = probe()
            if until(value):
                return value
            last = value
        except ignoring as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise error(f"{what} did not happen within {timeout:g} s; last seen: {last!r}")
        time.sleep(interval)
