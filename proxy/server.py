"""Running the listeners: one event loop per worker process, all workers on one port.

With ``proxy.workers = N`` the parent forks N workers that each bind the port with
SO_REUSEPORT (the kernel spreads connections), and forwards SIGTERM/SIGINT to them. SIGTERM
makes a worker stop accepting, report not-ready, let running calls finish for up to
``proxy.drain_seconds``, then exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import suppress

import structlog
from aiohttp import web

from proxy.app import create_app
from proxy.settings import Settings
from proxy.state import STATE

log = structlog.get_logger("proxy.server")


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    if settings.proxy.workers == 1:
        _run_worker(settings, reuse_port=False)
        return 0
    return _run_workers(settings)


def _run_workers(settings: Settings) -> int:
    children = []
    for _ in range(settings.proxy.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_worker(settings, reuse_port=True)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def relay(signum: int, _: object) -> None:
        for child in children:
            with suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    return max(codes, default=0)


def _run_worker(settings: Settings, reuse_port: bool) -> None:
    _install_uvloop()
    asyncio.run(serve(settings, reuse_port=reuse_port))


def _install_uvloop() -> None:
    if sys.platform != "win32":
        with suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def start_proxy(settings: Settings, reuse_port: bool = False) -> web.AppRunner:
    """Start the proxy listener; the caller owns the runner (``await runner.cleanup()``)."""
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=settings.proxy.drain_seconds,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.proxy.host, settings.proxy.port, reuse_port=reuse_port or None
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on (useful with port 0)."""
    return int(runner.addresses[0][1])


async def serve(settings: Settings, reuse_port: bool = False) -> None:
    """Run the proxy listener until SIGTERM or SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = await start_proxy(settings, reuse_port)
    try:
        address = f"http://{settings.proxy.host}:{bound_port(runner)}"
        log.info("listening", address=address, pid=os.getpid())
        await stop.wait()
        runner.app[STATE].draining = True
        log.info("draining", seconds=settings.proxy.drain_seconds)
    finally:
        await runner.cleanup()
        log.info("stopped")
