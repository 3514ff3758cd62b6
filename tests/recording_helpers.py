"""Waiting for recorded traces: poll the admin API until the condition holds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp


async def wait_for_trace(
    http: aiohttp.ClientSession, admin_url: str, trace_id: str, spans: int = 1, timeout: float = 5
) -> dict[str, Any]:
    """The trace once it has at least ``spans`` spans; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        async with http.get(f"{admin_url}/api/traces/{trace_id}") as resp:
            last = await resp.json() if resp.status in (200, 404) else resp.status
            if resp.status == 200 and len(last["spans"]) >= spans:
                return dict(last)
        await asyncio.sleep(0.02)
    raise AssertionError(f"trace {trace_id} not recorded with {spans} span(s): {last}")


async def wait_healthy(
    http: aiohttp.ClientSession, url: str, timeout: float, process: Any = None
) -> None:
    """Until ``url``/healthz answers 200; fails early when ``process`` (a Popen or an asyncio
    subprocess) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process is None or _running(process), "proxy process exited"
        try:
            async with http.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not become healthy")


def _running(process: Any) -> bool:
    poll = getattr(process, "poll", None)  # subprocess.Popen; an asyncio process has none
    return (poll() if poll is not None else process.returncode) is None
