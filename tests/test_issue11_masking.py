"""Issue 11: check-config masks a password in the userinfo of every URL setting, upstream base
URLs too (Redis URLs already were), and leaves URLs without one as they are."""

from __future__ import annotations

import json
from pathlib import Path

from proxy.config import load_settings, masked
from tests.test_cli import minimal_env, run_cli


def test_check_config_masks_passwords_in_upstream_urls(tmp_path: Path) -> None:
    env = minimal_env(
        FEEDBACK_PROXY_UPSTREAMS__ANTHROPIC__BASE_URL="https://bob:gw-s3cret@gw.example/anthropic",
    )
    done = run_cli(
        tmp_path, "check-config", "--upstream", "http://user:up-s3cret@127.0.0.1:9999/v", env=env
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout
    assert "s3cret" not in done.stderr
    shown = json.loads(done.stdout)["upstreams"]
    assert shown["openai"]["base_url"] == "http://user:***@127.0.0.1:9999/v"
    assert shown["anthropic"]["base_url"] == "https://bob:***@gw.example/anthropic"


def test_urls_without_a_password_are_shown_unchanged() -> None:
    settings = load_settings(
        env={},
        overrides={
            "upstreams.openai.base_url": "http://user@127.0.0.1:9999/a%20b",
            "redis.url": "redis://127.0.0.1:6390/0?socket_keepalive=",
        },
    )
    shown = masked(settings)
    assert shown["upstreams"]["openai"]["base_url"] == "http://user@127.0.0.1:9999/a%20b"
    assert shown["redis"]["url"] == "redis://127.0.0.1:6390/0?socket_keepalive="
