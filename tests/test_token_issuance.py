"""Feedback tokens are handed out only on answers the proxy actually relayed for an
authorised caller: a client without the proxy key gets none, so it cannot vote on any trace."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.conftest import RunningProxy, StartProxy
from tests.recording_helpers import wait_for_trace

PROXY_KEY = "pk-issuance"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def keyed(start: StartProxy) -> RunningProxy:
    """A proxy whose listener requires the proxy key."""
    return await start(**{"proxy.keys": [PROXY_KEY]})


async def _call(
    http: aiohttp.ClientSession, proxy: RunningProxy, path: str, **headers: str
) -> aiohttp.ClientResponse:
    async with http.post(proxy.url + path, data=orjson.dumps(CHAT), headers=headers) as resp:
        await resp.read()
        return resp


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/openai/v1/chat/completions", {}, 401),  # no proxy key
        ("/openai/v1/chat/completions", {"X-Proxy-Key": "wrong"}, 401),
        ("/nowhere/v1/chat/completions", {"X-Proxy-Key": PROXY_KEY}, 404),  # no such upstream
        (
            "/openai/v1/chat/completions",
            {"X-Proxy-Key": PROXY_KEY, "X-Feedback": "sideways"},
            400,  # bad feedback: nothing forwarded
        ),
    ],
)
async def test_no_token_on_an_answer_the_proxy_made_itself(
    keyed: RunningProxy,
    http: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    """Refused before forwarding (401, 404, 400): trace IDs yes, a feedback token no."""
    resp = await _call(http, keyed, path, **{"X-Trace-Id": "victim-trace", **headers})
    assert resp.status == status
    assert resp.headers["X-Trace-Id"] == "victim-trace"
    assert "X-Feedback-Token" not in resp.headers


async def test_a_refused_caller_cannot_vote_on_someone_elses_trace(
    keyed: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Without the key there is no token to replay, and POST /feedback without either is 401;
    the victim's trace gets no vote."""
    owner = await _call(
        http,
        keyed,
        "/openai/v1/chat/completions",
        **{"X-Trace-Id": "victim", "X-Proxy-Key": PROXY_KEY},
    )
    assert owner.status == 200
    assert owner.headers["X-Feedback-Token"]
    attacker = await _call(http, keyed, "/openai/v1/chat/completions", **{"X-Trace-Id": "victim"})
    token = attacker.headers.get("X-Feedback-Token", "")
    body = {"trace_id": "victim", "attributes": {"user_feedback": "negative"}}
    async with http.post(
        keyed.url + "/feedback", json=body, headers={"X-Feedback-Token": token}
    ) as resp:
        assert resp.status == 401
    trace = await wait_for_trace(http, keyed.admin_url, "victim")
    assert trace["feedback"] == []
    assert "user_feedback" not in trace["attributes"]


async def test_a_relayed_answer_carries_a_token(
    keyed: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """An authorised call the upstream answered gets its token."""
    ok = await _call(http, keyed, "/openai/v1/chat/completions", **{"X-Proxy-Key": PROXY_KEY})
    assert ok.status == 200
    assert ok.headers["X-Feedback-Token"].startswith("v1.")
