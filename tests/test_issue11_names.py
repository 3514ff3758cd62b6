"""Issue 11 item 9: dataset names "." and ".." are refused (a URL path segment of only dots is
resolved away, so such a dataset could never be exported), by the admin API and in review
rules; and a JSON export of a missing dataset prints only the error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from proxy.cli.main import main
from proxy.config import ConfigError, load_settings
from proxy.core.ids import DATASET_NAME, DATASET_NAME_RULE
from tests.conftest import RunningProxy, StartProxy


@pytest.fixture
async def admin(start: StartProxy) -> RunningProxy:
    return await start()


@pytest.mark.parametrize("segment", ["%2E", "%2e", "%2E%2E", ".%2E", "%2E."])
async def test_the_api_refuses_dot_names(
    admin: RunningProxy, http: aiohttp.ClientSession, segment: str
) -> None:
    url = URL(f"{admin.admin_url}/api/datasets/{segment}/rows", encoded=True)
    async with http.post(url, json={"trace_ids": ["a"]}) as response:
        assert response.status == 400, await response.text()
        message = (await response.json())["error"]["message"]
    assert message == f"name: {DATASET_NAME_RULE}"
    async with http.get(f"{admin.admin_url}/api/datasets") as response:
        assert (await response.json())["datasets"] == []


def test_the_rule_says_so_and_still_takes_names_with_dots() -> None:
    assert "not . or .." in DATASET_NAME_RULE
    assert not DATASET_NAME.fullmatch(".")
    assert not DATASET_NAME.fullmatch("..")
    for name in ("...", ".a", "a.", "v1.2", "..x"):
        assert DATASET_NAME.fullmatch(name), name


@pytest.mark.parametrize("name", [".", ".."])
def test_a_review_rule_naming_a_dot_dataset_is_a_config_error(name: str) -> None:
    rules = [{"dataset": name, "when": {"user_feedback": "negative"}}]
    with pytest.raises(ConfigError, match=r"review\.rules\[0\]\.dataset: .*not \. or \.\."):
        load_settings(env={}, overrides={"review.rules": rules})


async def test_json_export_of_a_missing_dataset_prints_only_the_error(
    admin: RunningProxy, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["export", "nope", "--format", "json", "--admin-url", admin.admin_url]
    code: Any = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "nope" in err
