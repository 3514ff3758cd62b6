"""The store's one failure: Redis cannot take or give data right now."""

from redis.exceptions import RedisClusterException, RedisError

# What a Redis client raises when Redis cannot answer: redis-py's errors, socket errors, and
# the cluster client's slot-map failures (RedisClusterException is not a RedisError).
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, RedisClusterException)


class StoreUnavailable(Exception):
    """Redis is down, slow past its timeout, or refused the command (e.g. a cluster slot down).

    The writer answers it by spooling; the admin API by 503. Raised only by the store, which
    translates redis-py's exceptions in one place.
    """


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The one translation of a Redis client failure (``raise unavailable(exc) from exc``)."""
    return StoreUnavailable(f"{type(exc).__name__}: {exc}")
