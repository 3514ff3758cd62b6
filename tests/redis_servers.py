"""Throwaway redis-server processes with a configuration of a test's choosing."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.store.embedded import free_port, redis_server_binary
from tests.waiting import eventually_blocking


@contextmanager
def redis_process(data_dir: Path, *args: str) -> Iterator[str]:
    """A redis-server on a free loopback port with extra ``args``; its URL while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(data_dir), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    def connect_error() -> int:
        assert process.poll() is None, "redis-server exited at start"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port))

    eventually_blocking(
        connect_error,
        until=lambda errno: errno == 0,
        timeout=10,
        what=f"redis-server listening on port {port}",
    )
