"""A writer process that dies in the middle of a spool replay (run by test_writer.py).

``python tests/crashing_replay.py REDIS_URL HASH_KEY SPOOL_DIR``: replays SPOOL_DIR in batches
of 4 into the hash HASH_KEY, writes the first batch whole, and exits with status 9 after two
records of the second, as a process killed mid-batch would (no clean-up, no checkpoint).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.writer.writer import Writer

EXIT_STATUS = 9


class CrashingStore:
    """Writes the first batch, then the process dies after two records of the second."""

    def __init__(self, url: str, key: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.key = key
        self.calls = 0

    async def write_batch(self, records: Sequence[dict[str, Any]]) -> None:
        self.calls += 1
        for index, record in enumerate(records):
            if self.calls == 2 and index == 2:
                os._exit(EXIT_STATUS)
            await self.client.hset(self.key, record["id"], orjson.dumps(record))


async def main(url: str, key: str, spool_dir: str) -> None:
    writer = Writer(CrashingStore(url, key), Path(spool_dir), batch_size=4)
    await writer.start()
    await writer.wait_idle(10)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
