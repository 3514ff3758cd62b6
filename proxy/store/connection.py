"""The Redis client the proxy uses: fail-fast timeouts and commands packed in C.

redis-py's asyncio connections pack commands in pure Python, which was the largest single
cost of recording a span (about 45 µs of 8 commands). hiredis, already a dependency for
parsing replies, packs them in C; these subclasses only swap that one method.

``redis.cluster = true`` gets redis-py's ``RedisCluster`` with the same policy: no retries,
short timeouts, hiredis packing. Topology discovery and redirects (MOVED, ASK) are redis-py's
own; the proxy adds that a failure is never retried or waited out, that "no node answers" is
a ``ConnectionError`` like a dead single server, and that ``ping`` asks every master.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

if TYPE_CHECKING:
    from proxy.config import RedisSettings

# Connections per cluster node. redis-py's cluster client raises MaxConnectionsError past it
# (it does not wait), and the single-server pool has no limit: so high that only a runaway
# could reach it, as with one server.
CLUSTER_MAX_CONNECTIONS = 10_000


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        # redis-py sends multi-word commands ("SCRIPT LOAD") as one string: split it as it does.
        first = args[0]
        if (isinstance(first, str) and " " in first) or (
            isinstance(first, bytes) and b" " in first
        ):
            args = (*first.split(), *args[1:])
        return [hiredis.pack_command(args)]


class FastConnection(_HiredisPacking, Connection):
    pass


class FastUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


class FastSSLConnection(_HiredisPacking, SSLConnection):
    pass


_FAST: dict[type, type] = {
    Connection: FastConnection,
    UnixDomainSocketConnection: FastUnixConnection,
    SSLConnection: FastSSLConnection,
}


def connect(url: str, timeout: float = 2.0) -> aioredis.Redis:
    """A client that fails fast: no retries, short timeouts (the writer decides what to do)."""
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    pool = client.connection_pool
    pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    return client


class ClusterUnreachable(RedisConnectionError):
    """No node of the cluster answered (or none could say who serves every slot)."""


class FailFastCluster(RedisCluster):
    """redis-py's cluster client with the failures the store knows.

    When no seed node answers, redis-py raises ``RedisClusterException``, which is not a
    ``RedisError``: the store would take it for a bad record instead of Redis being away,
    and the writer would drop the batch instead of spooling it. Here it is a
    ``ConnectionError``, as a dead single server is. ``ping`` asks every master, so "Redis
    answers" (``/readyz``) means that every slot can be written, not just one node's.
    """

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnreachable(str(exc)) from exc

    async def ping(self, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return await super().ping(**kwargs)


def connect_cluster(url: str, timeout: float = 2.0) -> RedisCluster:
    """A Redis Cluster client from one seed node's URL, as fail-fast as ``connect``.

    ``retry`` with no retries makes a failed command raise at once (redis-py otherwise retries
    three times with backoff, reloading the topology each time); the client still follows
    MOVED/ASK redirects, which are answers, not failures, and reloads the slot map on the
    next command after a node failed. One pause is redis-py's and stays: a CLUSTERDOWN answer
    (the cluster marked a master failed) closes the connections and waits 0.25 s before it
    raises. Connections are opened per node on first use.
    """
    client = FailFastCluster.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        max_connections=CLUSTER_MAX_CONNECTIONS,
    )
    # Every node, the seed and those discovered later, is built from these kwargs.
    kwargs = client.connection_kwargs
    kwargs["connection_class"] = _FAST.get(kwargs["connection_class"], kwargs["connection_class"])
    for node in client.startup_nodes:
        node.connection_class = kwargs["connection_class"]
    return client


def connect_to(settings: RedisSettings, timeout: float = 2.0) -> aioredis.Redis:
    """The client ``redis.url`` and ``redis.cluster`` ask for.

    A ``RedisCluster`` is not a ``redis.asyncio.Redis`` subclass, but it answers every command
    the store sends (the store's contract tests run on both, tests/conftest.py). The store is
    annotated with ``Redis`` only, so the cluster client is cast here, in this one place.
    """
    if settings.cluster:
        return cast(aioredis.Redis, connect_cluster(settings.url, timeout))
    return connect(settings.url, timeout)
