"""``redis.cluster``: the setting, its checks, and the client it selects (no Redis needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from proxy.cli.main import main
from proxy.config import ConfigError, RedisSettings, load_settings
from proxy.store.connection import FailFastCluster, FastConnection, connect_to


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config/feedback-proxy.toml in the working directory: only what a test sets counts."""
    monkeypatch.chdir(tmp_path)


def test_cluster_is_off_by_default() -> None:
    """A single server (or the embedded one) unless the operator says otherwise."""
    assert load_settings(env={}).redis.cluster is False


@pytest.mark.parametrize("text", ["true", "1", "yes", "on", "TRUE"])
def test_the_environment_turns_cluster_on(text: str) -> None:
    """FEEDBACK_PROXY_REDIS__CLUSTER works like every other key's variable."""
    env = {"FEEDBACK_PROXY_REDIS__CLUSTER": text, "FEEDBACK_PROXY_REDIS__URL": "redis://r:7000"}
    assert load_settings(env=env).redis.cluster is True


def test_a_toml_file_turns_cluster_on(tmp_path: Path) -> None:
    """`cluster = true` under [redis] in the TOML file turns cluster mode on, URL kept as given."""
    path = tmp_path / "fp.toml"
    path.write_text('[redis]\nurl = "redis://:secret@r1:7000"\ncluster = true\n')
    redis = load_settings(path, env={}).redis
    assert (redis.cluster, redis.url) == (True, "redis://:secret@r1:7000")


def test_cluster_without_url_is_an_error_naming_the_key() -> None:
    """The embedded Redis (empty url) is one server: it cannot be a cluster."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"FEEDBACK_PROXY_REDIS__CLUSTER": "true"})
    assert caught.value.key == "redis.cluster"
    assert "\n" not in str(caught.value)
    assert "redis.url" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("unix:///run/redis.sock", "redis://host:port"),
        ("redis://r1:7000/3", "only database 0"),
        ("redis://r1:notaport", "not a valid URL"),
    ],
)
def test_a_cluster_url_must_be_a_tcp_seed_node_on_database_0(url: str, problem: str) -> None:
    """A cluster URL that is a socket, names a database other than 0 or is malformed is a
    config error naming redis.url."""
    env = {"FEEDBACK_PROXY_REDIS__CLUSTER": "true", "FEEDBACK_PROXY_REDIS__URL": url}
    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings(env=env)
    assert caught.value.key == "redis.url"


@pytest.mark.parametrize("url", ["redis://r1:7000", "redis://r1:7000/0", "rediss://u:p@r1:7000"])
def test_seed_node_urls_that_are_accepted(url: str) -> None:
    """redis:// and rediss:// seed nodes, with or without /0 and credentials, are accepted."""
    overrides = {"redis.url": url, "redis.cluster": True}
    assert load_settings(env={}, overrides=overrides).redis.cluster


def test_serve_stops_at_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve` never starts an embedded Redis in place of a cluster: exit 2, one line."""
    monkeypatch.setenv("FEEDBACK_PROXY_REDIS__CLUSTER", "true")
    monkeypatch.delenv("FEEDBACK_PROXY_REDIS__URL", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "redis.cluster" in err


async def test_connect_to_picks_the_client_the_settings_ask_for() -> None:
    """A single-server client without ``cluster``; with it, the fail-fast cluster client with
    the same timeouts, the password of the URL and hiredis packing on every node. No I/O:
    both clients connect on first use."""
    single = connect_to(RedisSettings(url="redis://127.0.0.1:1/0"), timeout=0.5)
    cluster = connect_to(RedisSettings(url="redis://:s3cret@127.0.0.1:1", cluster=True), 0.5)
    try:
        assert isinstance(single, aioredis.Redis)
        assert isinstance(cluster, FailFastCluster)
        kwargs = cluster.connection_kwargs
        assert (kwargs["password"], kwargs["socket_timeout"]) == ("s3cret", 0.5)
        assert kwargs["socket_connect_timeout"] == 0.5
        assert cluster.retry.get_retries() == 0
        assert kwargs["connection_class"] is FastConnection
        assert all(node.connection_class is FastConnection for node in cluster.startup_nodes)
    finally:
        await single.aclose()
        await cluster.aclose()
