"""Workers never outlive their parent: a parent killed hard (SIGKILL, OOM) used to leave its
workers serving on the port forever, holding stale settings and a Redis nobody watches."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from proxy.store.embedded import free_port
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_healthy
from tests.test_cli import minimal_env
from tests.waiting import eventually


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def _is_worker(pid: int) -> bool:
    try:
        return b"-m\x00proxy\x00serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


async def test_workers_exit_when_their_parent_is_killed(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    """SIGKILL the parent of two workers: both drain and exit on their own."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--workers",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--admin-port",
        str(free_port()),
        "--upstream",
        fake_provider.base_url,
        cwd=tmp_path,
        env=minimal_env(FEEDBACK_PROXY_PROXY__DRAIN_SECONDS="5"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip  (no pipes: a surviving worker must not keep the test waiting on one)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, f"http://127.0.0.1:{port}", 15, process)
        workers = [child for child in _children(process.pid) if _is_worker(child)]
        assert len(workers) == 2
    finally:
        process.kill()
        await process.wait()
    await eventually(
        lambda: all(_gone(worker) for worker in workers), timeout=20, what="workers exiting"
    )
