"""Start-up checks of the Redis server (or cluster) the proxy writes to.

A Redis with ``maxmemory`` set and any ``maxmemory-policy`` other than ``noeviction`` deletes
keys on its own once it is full: traces, feedback history and dataset rows would vanish
without an error anywhere, since an evicting Redis still answers every write with OK. With
``noeviction`` a full Redis refuses writes instead, which the writer notices and answers by
spooling, so nothing is lost silently. This check only warns; it never stops or slows the
start beyond its time limit, because many managed Redis services disable ``CONFIG`` entirely.
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
