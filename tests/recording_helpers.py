"""Waiting for recorded traces: poll the admin API until the condition holds."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.waiting import eventually


async def wait_for_trace(
    http: aiohttp.ClientSession, admin_url: str, trace_id: str, spans: int = 1, timeout: float = 5
) -> dict[str, Any]:
    """The trace once it has at least ``spans`` spans; fails after ``timeout`` seconds."""

    async def read() -> Any:
        async with http.get(f"{admin_url}/api/traces/{trace_id}") as resp:
            return await resp.json() if resp.status == 200 else (resp.status, await resp.text())

    trace = await eventually(
        read,
        until=lambda last: isinstance(last, dict) and len(last["spans"]) >= spans,
        timeout=timeout,
        what=f"trace {trace_id} recorded with {spans} span(s)",
    )
    return dict(trace)


async def wait_healthy(
    http: aiohttp.ClientSession, url: str, timeout: float, process: Any = None
) -> None:
    """Until ``url``/healthz answers 200; fails early when ``process`` (a Popen or an asyncio
    subprocess) has exited."""

    async def status() -> int:
        assert process is None or _running(process), "proxy process exited"
        async with http.get(f"{url}/healthz") as resp:
            return resp.status

    await eventually(
        status,
        until=lambda code: code == 200,
        timeout=timeout,
        interval=0.05,
        what=f"{url}/healthz answering 200",
        ignoring=(aiohttp.ClientConnectionError,),
    )


def _running(process: Any) -> bool:
    poll = getattr(process, "poll", None)  # subprocess.Popen; an asyncio process has none
    return (poll() if poll is not None else process.returncode) is None
