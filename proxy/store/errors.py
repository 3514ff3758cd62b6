"""The store's one failure: Redis cannot take or give data right now."""

from redis.exceptions import RedisClusterException, RedisError

from proxy.core.errors import StoreUnavailable

__all__ = ["REDIS_FAILURES", "StoreUnavailable", "unavailable"]

# What a Redis client raises when Redis cannot answer: redis-py's errors, socket errors, and
# the cluster client's slot-map failures (RedisClusterException is not a RedisError).
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, RedisClusterException)


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The one translation of a Redis client failure (``raise unavailable(exc) from exc``)."""
    return StoreUnavailable(f"{type(exc).__name__}: {exc}")
