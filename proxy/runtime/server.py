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
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from proxy.admin.app import create_admin_app
from proxy.config import Settings
from proxy.gateway.app import create_proxy_app
from proxy.metrics import workers as metrics_shared
from proxy.recording.price_cache import load_price_table
from proxy.runtime.http_errors import SafeAppRunner
from proxy.runtime.services import (
    Services,
    open_services,
    publish_final_metrics,
    publishing_metrics,
)
from proxy.store.embedded import die_with_parent

log = structlog.get_logger("proxy.server")
REAP_INTERVAL_S = 0.2  # how often the parent looks for exited workers


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    if settings.proxy.workers == 1:
        _run_worker(settings, reuse_port=False)
        return 0
    return _run_workers(settings)


def _run_workers(settings: Settings) -> int:
    """Fork the workers; relay SIGTERM/SIGINT to them; exit with the worst exit code.

    The workers publish their metrics into a fresh directory that outlives each of them
    (a scrape on any worker sums them all) and goes when the last one has exited."""
    load_price_table()  # once, before forking: the workers share the parent's table
    metrics_dir = metrics_shared.create_directory()
    try:
        return _fork_workers(settings, metrics_dir)
    finally:
        metrics_shared.remove_directory(metrics_dir)


def _fork_workers(settings: Settings, metrics_dir: Path) -> int:
    children: list[int] = []

    def relay(signum: int, _: object) -> None:
        for child in children:
            with suppress(ProcessLookupError):
                os.kill(child, signum)

    # Installed before forking, so a signal arriving meanwhile is not lost to the parent.
    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    parent = os.getpid()
    for _ in range(settings.proxy.workers):
        pid = os.fork()
        if pid == 0:
            os._exit(_worker_main(settings, parent, metrics_dir))
        children.append(pid)
    return max(_reap(children, metrics_dir), default=0)


def _reap(children: list[int], metrics_dir: Path) -> list[int]:
    """Exit codes of the workers, each marked dead for the metrics as soon as it exits."""
    pending, codes = set(children), []
    while pending:
        for child in sorted(pending):
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                pending.discard(child)
                metrics_shared.mark_dead(metrics_dir, child)
                codes.append(os.waitstatus_to_exitcode(status))
        if pending:
            time.sleep(REAP_INTERVAL_S)
    return codes


def _worker_main(settings: Settings, parent: int, metrics_dir: Path | None = None) -> int:
    """A forked worker: its own event loop; a failure is logged, never silent.

    It drains and exits when its parent dies, even by SIGKILL (no one else would ever stop
    it: it would go on serving the port on its own)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        return 0
    try:
        _run_worker(settings, reuse_port=True, metrics_dir=metrics_dir)
    except BaseException:
        log.exception("worker failed", pid=os.getpid())
        return 1
    return 0


def _run_worker(settings: Settings, reuse_port: bool, metrics_dir: Path | None = None) -> None:
    _install_uvloop()
    asyncio.run(serve(settings, reuse_port=reuse_port, metrics_dir=metrics_dir))


def _install_uvloop() -> None:
    if sys.platform != "win32":
        with suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass(slots=True)
class Listeners:
    """The services and the two listeners of one worker; ``stop()`` drains and closes all."""

    services: Services
    proxy: web.AppRunner
    admin: web.AppRunner
    _resources: AsyncExitStack

    async def stop(self) -> None:
        """Report draining, stop accepting proxy calls and let them finish, stop the admin
        listener (its /readyz says "draining" until then), then close the services: the
        session, then the writer's drain into Redis or the spool, then Redis."""
        self.services.lifecycle.draining = True
        try:
            try:
                await self.proxy.cleanup()
            finally:  # the admin listener stops even when the proxy's drain failed
                await self.admin.cleanup()
        finally:
            await self._resources.aclose()
            publish_final_metrics(self.services)


async def start_listeners(
    settings: Settings, reuse_port: bool = False, metrics_dir: Path | None = None
) -> Listeners:
    """Build the services, then start the proxy and the admin listener; the caller owns
    ``stop()``. A failure half-way closes whatever was started."""
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(open_services(settings, metrics_dir))
        await stack.enter_async_context(publishing_metrics(services))
        proxy = await _start_runner(
            create_proxy_app(services.gateway_view()), settings.proxy.host, settings.proxy.port,
            reuse_port, shutdown_timeout=settings.proxy.drain_seconds,
        )  # fmt: skip
        try:
            admin = await _start_runner(
                create_admin_app(services.admin_view()), settings.admin.host,
                settings.admin.port, reuse_port, shutdown_timeout=5,
            )  # fmt: skip
        except BaseException:
            await proxy.cleanup()
            raise
        resources = stack.pop_all()  # from here on, Listeners.stop() closes them
    return Listeners(services, proxy, admin, resources)


async def _start_runner(
    app: web.Application, host: str, port: int, reuse_port: bool, shutdown_timeout: float
) -> web.AppRunner:
    runner = SafeAppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on (useful with port 0)."""
    return int(runner.addresses[0][1])


async def serve(
    settings: Settings, reuse_port: bool = False, metrics_dir: Path | None = None
) -> None:
    """Run both listeners until SIGTERM or SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listeners = await start_listeners(settings, reuse_port, metrics_dir)
    try:
        log.info(
            "listening",
            proxy=f"http://{settings.proxy.host}:{bound_port(listeners.proxy)}",
            admin=f"http://{settings.admin.host}:{bound_port(listeners.admin)}",
            pid=os.getpid(),
        )
        await stop.wait()
        log.info("draining", seconds=settings.proxy.drain_seconds)
    finally:
        await listeners.stop()
        log.info("stopped")
