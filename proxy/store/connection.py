"""The Redis client the proxy uses: fail-fast timeouts and commands packed in C.

redis-py's asyncio connections pack commands in pure Python, which was the largest single
cost of recording a span (about 45 µs of 8 commands). hiredis, already a dependency for
parsing replies, packs them in C; these subclasses only swap that one method.

Connections are a bounded pool of ``redis.max_connections``: a command that finds every one
in use waits for a free one, up to the client's timeout, and only then fails as "Redis is
away". redis-py 8's default pool (100) raises ``MaxConnectionsError`` at once instead, which
turned a burst of 400 feedback calls into 300 ``queued`` ones on a healthy Redis.

``redis.cluster = true`` gets redis-py's ``RedisCluster`` with the same policy: no retries,
short timeouts, hiredis packing, and the same bound (a gate on commands in flight, because
redis-py's cluster nodes cannot wait for a connection). Topology discovery and redirects
(MOVED, ASK) are redis-py's own; the proxy adds that a failure is never retried or waited
out, that "no node answers" is a ``ConnectionError`` like a dead single server, and that
``ping`` asks every master.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import (
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException

if TYPE_CHECKING:
    from proxy.config import RedisSettings

# Connections per cluster node, a backstop only: redis-py's cluster client raises
# MaxConnectionsError past it (it does not wait), so the real bound is the client's gate
# (``redis.max_connections`` commands in flight, each on at most one connection per node).
CLUSTER_MAX_CONNECTIONS = 10_000
DEFAULT_MAX_CONNECTIONS = 128
# How long one command (or one cluster topology refresh) may take before Redis counts as away.
# The record path has its own, shorter bounds (writer.write_timeout); this one is what an admin
# request waits on a hung server (one that accepts connections and never answers, e.g.
# SIGSTOPped) before its 503: under 2 s. A command that takes longer on a working Redis is
# far outside what the proxy sends (each is O(page) or a short script).
COMMAND_TIMEOUT = 1.5


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


class WaitingConnectionPool(ConnectionPool):
    """A bounded pool whose callers wait for a free connection, and pay for waiting only when
    they have to.

    redis-py's ``BlockingConnectionPool`` takes an ``asyncio.Condition`` and starts a timeout on
    every command, which cost a feedback merge about 15 % more CPU in ``bench/``. Here a
    command first takes a connection the plain way; only when the pool is full does it wait,
    up to ``timeout``, for a release. Releases are counted, so one that happens between the
    failed attempt and the wait is never missed.
    """

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wait_timeout = timeout
        self._releases = 0
        self._waiters = 0
        self._released: asyncio.Condition | None = None  # made on first use, in the loop

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._take(*args, **kwargs)
        except MaxConnectionsError:
            return await self._wait_for_connection(*args, **kwargs)

    async def _take(self, *args: Any, **kwargs: Any) -> Any:
        plain: Any = super()  # redis-py's own get_connection is untyped
        return await plain.get_connection(*args, **kwargs)

    async def _wait_for_connection(self, *args: Any, **kwargs: Any) -> Any:
        released = self._condition()
        self._waiters += 1
        try:
            async with asyncio.timeout(self._wait_timeout):
                while True:
                    seen = self._releases
                    with contextlib.suppress(MaxConnectionsError):
                        return await self._take(*args, **kwargs)
                    async with released:
                        await released.wait_for(functools.partial(self._released_since, seen))
        except TimeoutError:
            raise NoConnectionAvailable("No connection available.") from None
        finally:
            self._waiters -= 1

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        self._releases += 1
        if self._waiters:
            released = self._condition()
            async with released:
                released.notify()

    def _released_since(self, seen: int) -> bool:
        return self._releases != seen

    def _condition(self) -> asyncio.Condition:
        if self._released is None:
            self._released = asyncio.Condition()
        return self._released


def connect(
    url: str, timeout: float = COMMAND_TIMEOUT, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> aioredis.Redis:
    """A client that fails fast: no retries, short timeouts (the writer decides what to do).

    Its pool holds ``max_connections`` at most; a caller past it waits up to ``timeout`` for
    one to come back. A dead server still fails at once: each failed connect frees its slot.
    """
    pool = WaitingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    pool.connection_class = _FAST.get(pool.connection_class, pool.connection_class)
    return aioredis.Redis.from_pool(pool)


class ClusterUnreachable(RedisConnectionError):
    """No node of the cluster answered (or none could say who serves every slot)."""


class NoConnectionAvailable(RedisConnectionError):
    """Every connection stayed in use for the whole wait: Redis counts as away."""


# The gate a task already holds a slot of: a pipeline re-sends redirected commands through the
# client, and that inner command must not wait for a second slot (it could wait for itself).
_HOLDING: ContextVar[object | None] = ContextVar("redis_gate_holding", default=None)


class CommandGate:
    """At most ``limit`` commands or pipelines in flight; a caller waits ``timeout`` for a slot.

    The cluster client's stand-in for a blocking pool: each holder uses at most one connection
    per node, so no node ever needs more than ``limit`` connections.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._timeout = timeout

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if _HOLDING.get() is self:
            yield
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise NoConnectionAvailable("No connection available.") from None
        token = _HOLDING.set(self)
        try:
            yield
        finally:
            _HOLDING.reset(token)
            self._slots.release()


class FailFastCluster(RedisCluster):
    """redis-py's cluster client with the failures the store knows.

    When no seed node answers, redis-py raises ``RedisClusterException``, which is not a
    ``RedisError``: the store would take it for a bad record instead of Redis being away,
    and the writer would drop the batch instead of spooling it. Here it is a
    ``ConnectionError``, as a dead single server is. ``ping`` asks every master, so "Redis
    answers" (``/readyz``) means that every slot can be written, not just one node's.
    """

    init_timeout: float = COMMAND_TIMEOUT  # set by connect_cluster

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        """Load the slot map, bounded as one command is: redis-py asks the known nodes one
        after the other, each up to the socket timeout, so against hung nodes (after the first
        failed command every next command reloads the map first) an admin request took
        nodes x timeout (6 s on three masters) instead of one timeout."""
        try:
            async with asyncio.timeout(self.init_timeout):
                return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnreachable(str(exc)) from exc
        except TimeoutError:
            raise ClusterUnreachable(
                f"no cluster node answered within {self.init_timeout:g} s"
            ) from None

    async def aclose(self) -> None:
        """Close every node's connections, also after a failure marked the slot map stale:
        redis-py's ``aclose`` does nothing then (it reads the "reload the map" flag as "never
        connected"), which leaked the connections of a client closed during an outage."""
        await super().aclose()
        await self.nodes_manager.aclose()
        await self.nodes_manager.aclose("startup_nodes")

    async def ping(self, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", RedisCluster.PRIMARIES)
        return await super().ping(**kwargs)

    gate: CommandGate | None = None  # set by connect_cluster

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.gate is None:
            return await super().execute_command(*args, **kwargs)
        async with self.gate.slot():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # redis-py's stubs mark ClusterPipeline abstract (_event_dispatcher); it builds one too.
        return _GatedPipeline(self, transaction)  # type: ignore[abstract]


class _GatedPipeline(ClusterPipeline):
    """A cluster pipeline that holds one of the client's gate slots while it executes, and
    that reloads the slot map after a node failed.

    redis-py's cluster pipeline reloads the map only on a retry, and the proxy allows none: a
    pipeline that failed on a dead master kept going to its address after its replica had
    taken over, so the writer's spool never replayed. A single command marks the map stale
    on such a failure; a pipeline now does too (the next command or pipeline reloads it,
    bounded by ``FailFastCluster.initialize``)."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        gate = getattr(self.cluster_client, "gate", None)
        try:
            if gate is None:
                return await super().execute(raise_on_error, allow_redirections)
            async with gate.slot():
                return await super().execute(raise_on_error, allow_redirections)
        except RedisCluster.ERRORS_ALLOW_RETRY:
            self.cluster_client._initialize = True  # as RedisCluster.execute_command does
            raise


def connect_cluster(
    url: str, timeout: float = COMMAND_TIMEOUT, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> FailFastCluster:
    """A Redis Cluster client from one seed node's URL, as fail-fast as ``connect``.

    ``retry`` with no retries makes a failed command raise at once (redis-py otherwise retries
    three times with backoff, reloading the topology each time); the client still follows
    MOVED/ASK redirects, which are answers, not failures, and reloads the slot map on the
    next command after a node failed. One pause is redis-py's and stays: a CLUSTERDOWN answer
    (the cluster marked a master failed) closes the connections and waits 0.25 s before it
    raises. Connections are opened per node on first use; ``max_connections`` commands run at
    once, a caller past them waits up to ``timeout`` (``CommandGate``).
    """
    client: FailFastCluster = FailFastCluster.from_url(  # type: ignore[assignment]
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
    client.gate = CommandGate(max_connections, timeout)
    client.init_timeout = timeout
    return client


def connect_to(settings: RedisSettings, timeout: float = COMMAND_TIMEOUT) -> aioredis.Redis:
    """The client ``redis.url`` and ``redis.cluster`` ask for.

    A ``RedisCluster`` is not a ``redis.asyncio.Redis`` subclass, but it answers every command
    the store sends (the store's contract tests run on both, tests/conftest.py). The store is
    annotated with ``Redis`` only, so the cluster client is cast here, in this one place.
    """
    if settings.cluster:
        cluster = connect_cluster(settings.url, timeout, settings.max_connections)
        return cast(aioredis.Redis, cluster)
    return connect(settings.url, timeout, settings.max_connections)
