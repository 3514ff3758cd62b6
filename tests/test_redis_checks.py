"""The start-up check of Redis's eviction policy, against real redis-servers of its own.

The session's shared Redis runs with ``noeviction`` and is never reconfigured here: every other
case gets a throwaway redis-server started with the configuration under test. The session's
test cluster is changed on one node for one test, and restored in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from proxy.store.connection import connect, connect_cluster
from proxy.store.embedded import free_port
from proxy.store.redis_checks import check_cluster_mode, check_eviction_policy
from tests.cluster_support import LocalCluster
from tests.conftest import StartProxy
from tests.redis_servers import redis_process


@pytest.fixture(scope="module")
def evicting_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis that evicts (allkeys-lru), as a cache-configured server would."""
    with redis_process(tmp_path_factory.mktemp("lru"), "--maxmemory-policy", "allkeys-lru") as url:
        yield url


@pytest.fixture(scope="module")
def managed_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis without CONFIG, as managed services ship it (the command is renamed away)."""
    with redis_process(tmp_path_factory.mktemp("managed"), "--rename-command", "CONFIG", "") as url:
        yield url


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[str], aioredis.Redis]]:
    """Factory: the proxy's own fail-fast client for a URL, closed after the test."""
    clients: list[aioredis.Redis] = []

    def make(url: str) -> aioredis.Redis:
        clients.append(connect(url))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


def _events(logs: list[dict[str, Any]], level: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["log_level"] == level]


async def test_an_evicting_policy_logs_one_warning_naming_it(
    evicting_redis: str, client_for: Callable[[str], aioredis.Redis]
) -> None:
    """allkeys-lru: one warning that names the policy and says what eviction would lose."""
    with capture_logs() as logs:
        policy = await check_eviction_policy(client_for(evicting_redis))
    assert policy == "allkeys-lru"
    [warning] = _events(logs, "warning")
    assert warning["maxmemory_policy"] == "allkeys-lru"
    assert "allkeys-lru" in warning["event"]
    assert "noeviction" in warning["event"]
    assert "traces" in warning["event"]


async def test_noeviction_logs_nothing(
    redis_server: str, client_for: Callable[[str], aioredis.Redis]
) -> None:
    """The session's Redis runs noeviction (read only, never changed): no line at all."""
    with capture_logs() as logs:
        policy = await check_eviction_policy(client_for(redis_server))
    assert policy == "noeviction"
    assert logs == []


async def test_a_redis_without_config_is_reported_at_info_not_as_a_failure(
    managed_redis: str, client_for: Callable[[str], aioredis.Redis]
) -> None:
    """CONFIG renamed away (managed Redis): one info line that it could not be checked."""
    with capture_logs() as logs:
        policy = await check_eviction_policy(client_for(managed_redis))
    assert policy is None
    [line] = logs
    assert line["log_level"] == "info"
    assert "not checked" in line["event"]
    assert "unknown command" in line["error"].lower()


async def test_an_unreachable_redis_is_reported_at_info(
    client_for: Callable[[str], aioredis.Redis],
) -> None:
    """Redis down at start-up does not stop the proxy (it spools): just an info line."""
    with capture_logs() as logs:
        policy = await check_eviction_policy(client_for(f"redis://127.0.0.1:{free_port()}/0"))
    assert policy is None
    assert [line["log_level"] for line in logs] == ["info"]


async def test_a_silent_redis_delays_start_up_no_longer_than_the_timeout(
    client_for: Callable[[str], aioredis.Redis],
) -> None:
    """A server that accepts and never answers: the check gives up at its timeout."""
    held: list[asyncio.StreamWriter] = []  # keep the connections open, unanswered
    server = await asyncio.start_server(lambda _, w: held.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with capture_logs() as logs:
            policy = await check_eviction_policy(
                client_for(f"redis://127.0.0.1:{port}/0"), time_limit=0.2
            )
        elapsed = time.monotonic() - started
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert policy is None
    assert elapsed < 1.0
    assert "TimeoutError" in logs[0]["error"]


async def test_the_proxy_warns_at_start_up_on_an_evicting_redis(
    start: StartProxy, evicting_redis: str
) -> None:
    """The check is wired into start-up: starting a proxy on an evicting Redis warns once."""
    with capture_logs() as logs:
        await start(redis__url=evicting_redis)
    warnings = [e for e in _events(logs, "warning") if "maxmemory_policy" in e]
    assert [e["maxmemory_policy"] for e in warnings] == ["allkeys-lru"]


async def test_every_primary_of_a_cluster_is_asked(redis_cluster: LocalCluster) -> None:
    """On a cluster whose primaries all run noeviction: no line, the policy is returned."""
    client = connect_cluster(redis_cluster.url)
    try:
        with capture_logs() as logs:
            policy = await check_eviction_policy(client)
    finally:
        await client.aclose()
    assert policy == "noeviction"
    assert logs == []


async def test_one_evicting_primary_of_a_cluster_is_named(redis_cluster: LocalCluster) -> None:
    """Each primary evicts its own keys: one of three on volatile-lru warns, naming that node."""
    node = redis_cluster.nodes[1]
    direct = aioredis.Redis(host="127.0.0.1", port=node.port)
    client = connect_cluster(redis_cluster.url)
    await direct.config_set("maxmemory-policy", "volatile-lru")
    try:
        with capture_logs() as logs:
            policy = await check_eviction_policy(client)
    finally:
        await direct.config_set("maxmemory-policy", "noeviction")
        await direct.aclose()
        await client.aclose()
    assert policy == "volatile-lru"
    [warning] = logs
    assert warning["log_level"] == "warning"
    assert warning["nodes"] == [node.address]


# -- the redis.cluster switch against the server it points at --------------------------------


@pytest.mark.parametrize("cluster_setting", [False, True])
async def test_a_matching_cluster_setting_logs_nothing(
    cluster_setting: bool, redis_server: str, redis_cluster: LocalCluster
) -> None:
    """redis.cluster matching the server (plain or cluster) passes the start-up check
    silently."""
    url = redis_cluster.url if cluster_setting else redis_server
    client = connect_cluster(url) if cluster_setting else connect(url)
    try:
        with capture_logs() as logs:
            assert await check_cluster_mode(client)
    finally:
        await client.aclose()
    assert logs == []


async def test_a_plain_client_on_a_cluster_node_names_the_setting(
    redis_cluster: LocalCluster,
) -> None:
    """redis.cluster false against a Cluster node: the check fails with one error log naming
    the setting."""
    client = connect(redis_cluster.url)
    try:
        with capture_logs() as logs:
            assert not await check_cluster_mode(client)
    finally:
        await client.aclose()
    [error] = logs
    assert error["log_level"] == "error"
    assert "redis.cluster is false" in error["event"]


async def test_a_cluster_client_on_a_plain_server_names_the_setting(redis_server: str) -> None:
    """redis.cluster true against a plain server: the check fails with an error naming the
    setting."""
    client = connect_cluster(redis_server)
    try:
        with capture_logs() as logs:
            assert not await check_cluster_mode(client)
    finally:
        await client.aclose()
    [error] = logs
    assert "redis.cluster is true" in error["event"]
