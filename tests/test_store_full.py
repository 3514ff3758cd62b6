"""A Redis that is full (maxmemory with noeviction) is an outage, not bad records."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.store.connection import connect
from proxy.store.errors import StoreUnavailable
from proxy.store.keys import Keys
from proxy.store.redis_store import RedisStore
from tests.factories import feedback, span_record
from tests.redis_servers import redis_process


async def test_a_full_redis_raises_store_unavailable_so_the_writer_spools(tmp_path: Path) -> None:
    """Redis refuses the span script with OOM: the store says "unavailable" (the writer then
    spools and replays), never "the script refused these records" (which drops them)."""
    with redis_process(tmp_path, "--maxmemory-policy", "noeviction") as url:
        client = connect(url)
        try:
            await client.set("ballast", b"x" * 4_000_000)
            used = (await client.info("memory"))["used_memory"]
            await client.config_set("maxmemory", used - 1_000_000)  # full: writes are refused
            store = RedisStore(client, Keys("full"), retention_days=1)
            with pytest.raises(StoreUnavailable):
                await store.write_batch([span_record()])
            with pytest.raises(StoreUnavailable):
                await store.write_batch([feedback(user_feedback="negative")])
            await client.delete("ballast")  # DEL is allowed when full
            await store.write_batch([span_record()])  # room again: the same batch goes in
            assert await store.get_trace("tr-1") is not None
        finally:
            await store.close()
            await client.aclose()
