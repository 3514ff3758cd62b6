"""``python -m examples.chat`` (or ``make example``): the chat example, air-gapped, one command.

Starts three things on 127.0.0.1 and stops them on Ctrl-C:

- the fake model (``examples/fake_model.py``) on ``--model-port`` (18000);
- feedback-proxy in front of it (``python -m proxy serve``, embedded Redis, data under
  ``.example-data/``) on ``--proxy-port`` (8080) and ``--admin-port`` (8081);
- the chat app (``examples/chat_app.py``) on ``--port`` (8000): open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aiohttp import web

from examples.chat_app import create_chat_app
from examples.fake_model import create_fake_model

HOST = "127.0.0.1"
DATA = Path(".example-data")
READY_TIMEOUT_S = 60.0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="the chat page")
    parser.add_argument("--proxy-port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=8081)
    parser.add_argument("--model-port", type=int, default=18000, help="the fake model")
    return parser.parse_args()


def _start_proxy(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """feedback-proxy as a child process, in front of the fake model."""
    env = {**os.environ, "FEEDBACK_PROXY_REDIS__DATA_DIR": str(DATA / "redis"),
           "FEEDBACK_PROXY_WRITER__SPOOL_DIR": str(DATA / "spool")}  # fmt: skip
    command = [sys.executable, "-m", "proxy", "serve", "--host", HOST,
               "--port", str(args.proxy_port), "--admin-port", str(args.admin_port),
               "--upstream", f"http://{HOST}:{args.model_port}"]  # fmt: skip
    return subprocess.Popen(command, env=env)


async def _wait_ready(url: str, proxy: subprocess.Popen[bytes]) -> None:
    """Until the proxy answers /readyz (bounded), or its process ended."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proxy.poll() is None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(urllib.request.urlopen, f"{url}/readyz", timeout=1)
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"feedback-proxy did not become ready at {url}")


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner


async def _until_stopped() -> None:
    """Until Ctrl-C or SIGTERM (also when started where SIGINT is ignored)."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()


async def main() -> None:
    args = _arguments()
    proxy_url, admin_url = f"http://{HOST}:{args.proxy_port}", f"http://{HOST}:{args.admin_port}"
    runners = [await _serve(create_fake_model(), args.model_port)]
    proxy = _start_proxy(args)
    try:
        await _wait_ready(proxy_url, proxy)
        runners.append(await _serve(create_chat_app(proxy_url, admin_url), args.port))
        trace_url = f"{admin_url}/api/traces/<the trace ID under an answer>"
        print(f"\n  chat page: http://{HOST}:{args.port}/\n  a trace:   {trace_url}\n"
              "  Ctrl-C stops.\n", flush=True)  # fmt: skip
        await _until_stopped()
    finally:
        proxy.terminate()
        proxy.wait(timeout=40)
        for runner in reversed(runners):
            await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
