"""Start-up checks of the Redis server (or cluster) the proxy writes to.

A Redis with ``maxmemory`` set and any ``maxmemory-policy`` other than ``noeviction`` deletes
keys on its own once it is full: traces, feedback history and dataset rows would vanish
without an error anywhere, since an evicting Redis still answers every write with OK. With
``noeviction`` a full Redis refuses writes instead, which the writer notices and answers by
spooling, so nothing is lost silently. This check only warns; it never stops or slows the
start beyond its time limit, because many managed Redis services disable ``CONFIG`` entirely.

The other check is the ``redis.cluster`` switch itself: a single-server client on a cluster
node gets MOVED for most keys, and a cluster client on a plain server cannot start; both
would only show as "Redis unavailable" later, so start-up names the setting at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster

from proxy.store.errors import REDIS_FAILURES

# The same bound as the client's connect timeout (proxy.store.connection.connect).
CHECK_TIMEOUT_S = 2.0
SAFE_POLICY = "noeviction"
_PARAMETER = "maxmemory-policy"


async def startup_checks(client: aioredis.Redis | RedisCluster) -> None:
    """Both checks at once, so an unreachable Redis delays start-up by one time limit only."""
    await asyncio.gather(check_eviction_policy(client), check_cluster_mode(client))


async def check_cluster_mode(
    client: aioredis.Redis | RedisCluster, time_limit: float = CHECK_TIMEOUT_S
) -> bool:
    """Log an error naming ``redis.cluster`` when it does not match the server; True if it
    matches or could not be told."""
    log = structlog.get_logger("proxy.store.redis_checks")
    try:
        async with asyncio.timeout(time_limit):
            if isinstance(client, RedisCluster):
                await client.initialize()
                return True
            info = await client.info("cluster")
    except REDIS_FAILURES as exc:
        if "cluster mode is not enabled" not in str(exc).lower():
            return True  # unreachable or not allowed: the writer reports outages itself
        log.error("redis.cluster is true but redis.url is not a cluster node: set it to false")
        return False
    if str(info.get("cluster_enabled", 0)) == "1":
        log.error("redis.url is a Redis Cluster node but redis.cluster is false: set it to true")
        return False
    return True


async def check_eviction_policy(
    client: aioredis.Redis | RedisCluster, time_limit: float = CHECK_TIMEOUT_S
) -> str | None:
    """Warn when Redis may evict keys; return the (first unsafe) policy, or None if unknown.

    ``CONFIG GET`` may be renamed or forbidden (managed Redis, ACLs), and Redis may be down at
    start-up (the proxy starts anyway and spools): then one info line says it was not checked.
    On a cluster every primary is asked, since each one evicts its own keys.
    """
    log = structlog.get_logger("proxy.store.redis_checks")  # looked up per call: runs once
    try:
        async with asyncio.timeout(time_limit):
            policies = await _policies(client)
    except REDIS_FAILURES as exc:  # TimeoutError is an OSError
        log.info(
            "redis maxmemory-policy not checked (CONFIG GET unavailable or Redis unreachable)",
            error=f"{type(exc).__name__}: {exc}",
        )
        return None
    if not policies:
        log.info("redis maxmemory-policy not checked (CONFIG GET gave no value)")
        return None
    unsafe = {node: policy for node, policy in policies.items() if policy != SAFE_POLICY}
    if not unsafe:
        return SAFE_POLICY
    policy = sorted(set(unsafe.values()))[0]
    log.warning(
        f"redis maxmemory-policy is {policy}, not {SAFE_POLICY}: once maxmemory is reached "
        "Redis silently deletes traces, feedback and dataset rows; "
        f"set maxmemory-policy {SAFE_POLICY}",
        maxmemory_policy=policy,
        **({"nodes": sorted(unsafe)} if isinstance(client, RedisCluster) else {}),
    )
    return policy


async def _policies(client: aioredis.Redis | RedisCluster) -> dict[str, str]:
    """Node name -> policy (a single server is the one node ``redis``)."""
    if isinstance(client, RedisCluster):
        reply = await client.config_get(_PARAMETER, target_nodes=RedisCluster.PRIMARIES)
        per_node = {str(node): _policy_from(value) for node, value in reply.items()}
    else:
        per_node = {"redis": _policy_from(await client.config_get(_PARAMETER))}
    return {node: policy for node, policy in per_node.items() if policy is not None}


def _policy_from(reply: Any) -> str | None:
    """The value in one server's ``CONFIG GET`` answer (a dict; bytes or str, per client)."""
    if not isinstance(reply, dict):
        return None
    for key, value in reply.items():
        if _text(key) == _PARAMETER:
            return _text(value)
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
