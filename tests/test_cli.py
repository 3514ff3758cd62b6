"""The ``feedback-proxy`` command run for real, as a subprocess, in an empty working directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.store.embedded import free_port
from tests.fake_provider import FakeProvider
from tests.recording_helpers import wait_healthy
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

RUN_TIMEOUT = 20.0  # one check-config / --help run
START_TIMEOUT = 15.0  # serve: first log line, then /healthz
STOP_TIMEOUT = 10.0  # serve: exit after SIGTERM
SECRET_AUTH = "sk-secret-xyz"
REPO_ROOT = Path(__file__).resolve().parent.parent


def minimal_env(**extra: str) -> dict[str, str]:
    """No FEEDBACK_PROXY_* from the caller's environment leaks into the command.

    PYTHONPATH makes the command import the same ``proxy`` package as these tests.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.update(extra)
    return env


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        cwd=cwd,
        env=env if env is not None else minimal_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


# ----------------------------------------------------------------------------- help


def test_python_m_proxy_help(tmp_path: Path) -> None:
    """`python -m proxy --help` prints the usage and exits 0."""
    done = run_cli(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout
    assert "check-config" in done.stdout


def test_console_script_help(tmp_path: Path) -> None:
    """The installed `feedback-proxy --help` works the same and exits 0."""
    script = Path(sys.executable).parent / "feedback-proxy"
    assert script.is_file(), script
    done = subprocess.run(
        [str(script), "--help"],
        cwd=tmp_path,
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "feedback-proxy" in done.stdout
    assert "serve" in done.stdout


def test_serve_help_lists_the_flags(tmp_path: Path) -> None:
    """`serve --help` documents --config, --upstream, --redis, --port and --workers."""
    done = run_cli(tmp_path, "serve", "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--config", "--upstream", "--redis", "--redis-cluster", "--port", "--workers"):
        assert flag in done.stdout


# ----------------------------------------------------------------------------- check-config


def test_check_config_prints_masked_json(tmp_path: Path) -> None:
    """check-config prints the effective settings as JSON, without any secret value."""
    env = minimal_env(
        FEEDBACK_PROXY_ADMIN__TOKEN="admin-tok-s3cret",
        FEEDBACK_PROXY_PROXY__KEYS="proxy-key-s3cret-1,proxy-key-s3cret-2",
        FEEDBACK_PROXY_FEEDBACK__TOKEN_SECRET="hmac-s3cret",
    )
    done = run_cli(
        tmp_path,
        "check-config",
        "--port", "9123",
        "--upstream", "http://127.0.0.1:9999",
        "--redis", "redis://:redis-pw-s3cret@127.0.0.1:6390/0",
        "--workers", "3",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for secret in ("admin-tok-s3cret", "proxy-key-s3cret", "hmac-s3cret", "redis-pw-s3cret"):
        assert secret not in done.stdout
        assert secret not in done.stderr
    shown = json.loads(done.stdout)
    assert shown["admin"]["token"] == "***"
    assert shown["proxy"]["keys"] == ["***", "***"]
    assert shown["feedback"]["token_secret"] == "***"
    assert shown["redis"]["url"] == "redis://:***@127.0.0.1:6390/0"
    assert shown["proxy"]["port"] == 9123
    assert shown["proxy"]["workers"] == 3
    assert shown["upstreams"]["openai"]["base_url"] == "http://127.0.0.1:9999"
    assert shown["upstreams"]["anthropic"]["base_url"] == "https://api.anthropic.com"


def test_check_config_defaults_in_empty_dir(tmp_path: Path) -> None:
    """With nothing configured, check-config shows the built-in defaults."""
    done = run_cli(tmp_path, "check-config")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["proxy"]["port"] == 8080
    assert shown["redis"]["url"] == ""
    assert shown["redis"]["data_dir"] == ".feedback-proxy"
    assert shown["upstreams"]["openai"]["base_url"] == "https://api.openai.com"


def test_check_config_reads_config_file_and_env(tmp_path: Path) -> None:
    """--config is read, the environment beats it and a flag beats both."""
    config = tmp_path / "my.toml"
    config.write_text("[proxy]\nport = 7001\nworkers = 2\nhost = '127.0.0.1'\n")
    env = minimal_env(FEEDBACK_PROXY_PROXY__WORKERS="4", FEEDBACK_PROXY_PROXY__PORT="7002")
    done = run_cli(tmp_path, "check-config", "--config", str(config), "--port", "7003", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["proxy"]["host"] == "127.0.0.1"
    assert shown["proxy"]["workers"] == 4
    assert shown["proxy"]["port"] == 7003


def test_redis_cluster_flag_sets_the_switch(tmp_path: Path) -> None:
    """--redis-cluster with --redis: the URL is a cluster seed node; without it, no cluster."""
    url = "redis://127.0.0.1:7000"
    done = run_cli(tmp_path, "check-config", "--redis", url, "--redis-cluster")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["redis"]["cluster"] is True
    plain = json.loads(run_cli(tmp_path, "check-config", "--redis", url).stdout)
    assert plain["redis"]["cluster"] is False


def test_upstream_flag_retargets_the_default_upstream(tmp_path: Path) -> None:
    """--upstream changes the base URL of whichever upstream is the default."""
    env = minimal_env(FEEDBACK_PROXY_PROXY__DEFAULT_UPSTREAM="anthropic")
    done = run_cli(tmp_path, "check-config", "--upstream", "http://127.0.0.1:9998", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["upstreams"]["anthropic"]["base_url"] == "http://127.0.0.1:9998"
    assert shown["upstreams"]["openai"]["base_url"] == "https://api.openai.com"


def assert_one_line_error(done: subprocess.CompletedProcess[str], key: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert key in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        (["check-config", "--port", "70000"], {}, "proxy.port"),
        (["serve", "--port", "70000"], {}, "proxy.port"),
        (["check-config"], {"FEEDBACK_PROXY_PROXY__WORKERS": "abc"}, "proxy.workers"),
        (["serve"], {"FEEDBACK_PROXY_PROXY__WORKERS": "abc"}, "proxy.workers"),
        (["check-config", "--upstream", "localhost:1"], {}, "upstreams.openai.base_url"),
        (["check-config", "--redis", "http://x"], {}, "redis.url"),
        (["check-config", "--workers", "0"], {}, "proxy.workers"),
        (["check-config", "--config", "missing.toml"], {}, "missing.toml"),
        (["check-config"], {"FEEDBACK_PROXY_PROXI__PORT": "1"}, "proxi"),
    ],
)
def test_bad_value_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], key: str
) -> None:
    """A bad setting exits with code 2 and one stderr line naming the key; serve starts nothing."""
    done = run_cli(tmp_path, *args, env=minimal_env(**env))
    assert_one_line_error(done, key)
    assert not (tmp_path / ".feedback-proxy").exists()


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        (["check-config", "--config", "."], {}, "config"),
        (["check-config"], {"FEEDBACK_PROXY_PROXY__KEYS": '["a",'}, "proxy.keys"),
    ],
)
def test_unreadable_config_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], key: str
) -> None:
    """A config path that is a directory, or a broken list in the env, is one line and exit 2."""
    assert_one_line_error(run_cli(tmp_path, *args, env=minimal_env(**env)), key)


# ----------------------------------------------------------------------------- serve


@dataclass
class Served:
    process: asyncio.subprocess.Process
    cwd: Path
    port: int
    stdout: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.cwd / ".feedback-proxy"

    async def read_line(self, timeout: float = START_TIMEOUT) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        text = line.decode()
        self.stdout.append(text)
        return text

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Poll /healthz until it answers 200 (or the process dies, or time runs out); a
        process that died says why (its stderr)."""
        async with aiohttp.ClientSession() as http:
            try:
                await wait_healthy(http, self.url, timeout, self.process)
            except AssertionError:
                if self.process.returncode is None:
                    raise
                assert self.process.stderr is not None
                err = (await self.process.stderr.read()).decode()
                raise AssertionError(f"serve exited during start-up:\n{err[-3000:]}") from None

    async def stop(self) -> tuple[int, str, str]:
        """SIGTERM, wait for the exit; (exit code, rest of stdout, stderr)."""
        self.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.process.communicate(), STOP_TIMEOUT)
        self.stdout.append(out.decode())
        assert self.process.returncode is not None
        return self.process.returncode, "".join(self.stdout), err.decode()


async def spawn_serve(cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", *args,
        cwd=cwd,
        env=minimal_env(FEEDBACK_PROXY_PROXY__DRAIN_SECONDS="5"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def serving(cwd: Path, upstream: str) -> AsyncIterator[Served]:
    """`feedback-proxy serve` on free loopback ports with the embedded Redis; killed at the end."""
    port = free_port()
    process = await spawn_serve(
        cwd,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--admin-port", str(free_port()),
        "--upstream", upstream,
    )  # fmt: skip
    served = Served(process, cwd, port)
    try:
        yield served
    finally:
        if process.returncode is None:
            process.kill()  # its redis-server child gets SIGTERM via PR_SET_PDEATHSIG
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


@pytest.fixture
async def fake_provider() -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    await provider.start()
    yield provider
    await provider.stop()


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def wait_gone(pid: int, timeout: float) -> None:
    """Until process ``pid`` is gone; fails after ``timeout`` seconds."""
    await eventually(lambda: not _pid_alive(pid), timeout=timeout, what=f"process {pid} exiting")


def json_lines(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.strip():
            events.append(json.loads(line))  # every stdout line is JSON when not a terminal
    return events


async def test_serve_embedded_redis_end_to_end(tmp_path: Path, fake_provider: FakeProvider) -> None:
    """serve without Redis says so first, forwards a call, logs it safely, stops cleanly on TERM;
    it never loads the libraries of what it does not use (genai-prices' pydantic, protobuf)."""
    async with serving(tmp_path, fake_provider.base_url) as served:
        first = json.loads(await served.read_line())
        assert "embedded" in first["event"]
        assert "default" in first["event"]
        assert first["data_dir"] == str((tmp_path / ".feedback-proxy").resolve())
        assert Path(first["data_dir"]).is_absolute()
        await served.wait_healthy()

        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{served.url}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {SECRET_AUTH}"},
            ) as resp,
        ):
            body = await resp.json()
            assert resp.status == 200, body
            trace_id = resp.headers.get("X-Trace-Id")
        assert trace_id
        assert body["choices"][0]["message"]["content"] == "Hello from fake gpt-4o-mini!"
        assert [r.path for r in fake_provider.requests] == ["/v1/chat/completions"]

        redis_pid = int((served.data_dir / "redis.pid").read_text().strip())
        assert _pid_alive(redis_pid)
        libraries = await asyncio.to_thread(Path(f"/proc/{served.process.pid}/maps").read_text)
        assert "pydantic_core" not in libraries  # pricing reads a table, not genai-prices
        assert "google/_upb" not in libraries  # no OTLP export configured: no protobuf

        code, stdout, stderr = await served.stop()
        assert code == 0, stderr
        await wait_gone(redis_pid, STOP_TIMEOUT)  # the embedded redis-server does not outlive it

    assert SECRET_AUTH not in stdout
    assert SECRET_AUTH not in stderr
    access = [e for e in json_lines(stdout) if e.get("trace_id") == trace_id]
    assert len(access) == 1, stdout
    line = access[0]
    assert line["span_id"]
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["duration_ms"] >= 0
    assert not any("authorization" in key.lower() for key in line)


async def test_second_serve_on_same_data_dir_fails_fast(tmp_path: Path) -> None:
    """A second serve in the same folder refuses at once: the embedded Redis is already in use."""
    unused_upstream = f"http://127.0.0.1:{free_port()}"
    async with serving(tmp_path, unused_upstream) as first:
        await first.read_line()
        await first.wait_healthy()
        second = await spawn_serve(
            tmp_path,
            "--host", "127.0.0.1",
            "--port", str(free_port()),
            "--admin-port", str(free_port()),
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(second.communicate(), START_TIMEOUT)
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        assert second.returncode != 0
        message = err.decode()
        assert "already" in message, message
        assert "Redis" in message, message
        assert str(first.data_dir.resolve()) in message
        assert "Traceback" not in message
        # the first one is untouched
        await first.wait_healthy(timeout=2)
        code, _, stderr = await first.stop()
        assert code == 0, stderr


def test_anthropic_upstream_flag_retargets_anthropic_only(tmp_path: Path) -> None:
    """--anthropic-upstream sets upstreams.anthropic.base_url, beside --upstream (the default)."""
    done = run_cli(
        tmp_path, "check-config",
        "--upstream", "http://127.0.0.1:9997", "--anthropic-upstream", "http://127.0.0.1:9998",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["upstreams"]["anthropic"]["base_url"] == "http://127.0.0.1:9998"
    assert shown["upstreams"]["openai"]["base_url"] == "http://127.0.0.1:9997"


def test_anthropic_upstream_flag_is_validated_and_listed_for_serve(tmp_path: Path) -> None:
    """A bad --anthropic-upstream is one line naming the key; serve --help lists the flag."""
    done = run_cli(tmp_path, "check-config", "--anthropic-upstream", "localhost:1")
    assert_one_line_error(done, "upstreams.anthropic.base_url")
    assert "--anthropic-upstream" in run_cli(tmp_path, "serve", "--help").stdout
