"""The export's consumer group on a real Redis: lease, takeover, backlog and the stream's cap."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis

from proxy.config import ConfigError, load_settings, masked
from proxy.store.event_stream import EventStream
from proxy.store.keys import Keys

pytestmark = pytest.mark.redis_backends


async def add(client: aioredis.Redis, keys: Keys, n: int) -> list[str]:
    ids = []
    for i in range(n):
        fields = {"type": "span", "trace_id": f"t{i}", "span_id": f"{i:016x}",
                  "data": orjson.dumps({"span_id": f"{i:016x}"})}  # fmt: skip
        ids.append((await client.xadd(keys.events, fields)).decode())  # type: ignore[arg-type]
    return ids


async def test_one_lease_holder_at_a_time_and_handover(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    stream = EventStream(redis_client, keys, "otlp")
    assert await stream.hold_lease("a", 5)
    assert not await stream.hold_lease("b", 5)
    assert await stream.hold_lease("a", 5)  # renewal
    await stream.release_lease("b")  # not b's to release
    assert not await stream.hold_lease("b", 5)
    await stream.release_lease("a")
    assert await stream.hold_lease("b", 5)


async def test_a_dead_consumers_pending_entries_are_taken_over_oldest_first(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    stream = EventStream(redis_client, keys, "otlp")
    await stream.ensure_group()
    await stream.ensure_group()  # idempotent: the group keeps its position
    ids = await add(redis_client, keys, 5)
    read = await stream.read_new("dead", 3, 100)
    assert [e.entry_id for e in read] == ids[:3]
    assert (await stream.backlog()).pending == 3
    claimed = await stream.claim_pending("alive", 10)
    assert [e.entry_id for e in claimed.entries] == ids[:3]
    assert [e.type for e in claimed.entries] == ["span"] * 3
    await stream.ack(ids[:3])
    assert [e.entry_id for e in await stream.read_new("alive", 10, 100)] == ids[3:]
    await stream.ack(ids[3:])
    backlog = await stream.backlog()
    assert (backlog.pending, backlog.undelivered, backlog.overrun) == (0, 0, False)
    await stream.forget_idle_consumers("alive", 0)
    names = [row["name"] for row in await redis_client.xinfo_consumers(keys.events, "otlp")]
    assert names == [b"alive"]


async def test_falling_behind_the_cap_is_seen_as_an_overrun(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """Entries trimmed before the group read them: the backlog says so; pending entries that
    were trimmed come back as trimmed IDs (acknowledged and counted by the exporter)."""
    stream = EventStream(redis_client, keys, "otlp")
    await stream.ensure_group()
    ids = await add(redis_client, keys, 4)
    await stream.read_new("c", 2, 100)  # ids[0:2] pending
    assert (await stream.backlog()).undelivered == 2
    await add(redis_client, keys, 6)
    await redis_client.xtrim(keys.events, maxlen=3, approximate=False)
    backlog = await stream.backlog()
    assert backlog.overrun
    assert backlog.undelivered == 3  # what is left unread
    claimed = await stream.claim_pending("c", 10)
    assert claimed.entries == []
    assert sorted(claimed.trimmed) == sorted(ids[:2])


def test_export_settings_are_checked_and_headers_masked() -> None:
    env = {"FEEDBACK_PROXY_EXPORT__OTLP__HEADERS__X_API_KEY": "secret-key"}
    settings = load_settings(env=env, overrides={"export.otlp.endpoint": "http://otel:4318"})
    assert settings.otlp.headers == {"x-api-key": "secret-key"}
    assert masked(settings)["export"]["otlp"]["headers"] == {"x-api-key": "***"}
    for overrides, key in (
        ({"export.otlp.endpoint": "otel:4318"}, "export.otlp.endpoint"),
        ({"export.otlp.lease_seconds": 5, "export.otlp.timeout": 10}, "export.otlp.lease_seconds"),
        ({"export.otlp.batch_size": 0}, "export.otlp.batch_size"),
        ({"export.otlp.nope": 1}, "export.otlp.nope"),
        ({"export.other": {}}, "export"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(env={}, overrides=overrides)
