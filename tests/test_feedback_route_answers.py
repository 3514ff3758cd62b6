"""POST /feedback answers like a call does: the trace's ID in X-Trace-Id, one access-log line;
any other method on /feedback is a 405 naming the allowed ones, never forwarded upstream."""

from __future__ import annotations

import aiohttp
import pytest
import structlog

from tests.conftest import RunningProxy
from tests.fake_provider import FakeProvider


async def test_post_feedback_answers_with_the_trace_id_and_is_logged(
    proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    """Applied or refused, the answer names the trace, and the access log has one line."""
    with structlog.testing.capture_logs() as logs:
        ok = {"X-Trace-Id": "fb-answer", "X-Feedback": "positive"}
        async with http.post(f"{proxy.url}/feedback", headers=ok) as resp:
            assert resp.status == 200
            assert resp.headers["X-Trace-Id"] == "fb-answer"
        bad = {"X-Trace-Id": "fb-answer", "X-Feedback": "sideways"}
        async with http.post(f"{proxy.url}/feedback", headers=bad) as resp:
            assert resp.status == 400
            assert resp.headers["X-Trace-Id"] == "fb-answer"
    lines = [entry for entry in logs if entry["event"] == "feedback"]
    assert [(e["trace_id"], e["status"], e["feedback"]) for e in lines] == [
        ("fb-answer", 200, "applied"),
        ("fb-answer", 400, "invalid_feedback"),
    ]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_feedback_are_405_and_not_forwarded(
    proxy: RunningProxy, http: aiohttp.ClientSession, fake_provider: FakeProvider, method: str
) -> None:
    async with http.request(method, f"{proxy.url}/feedback") as resp:
        error = (await resp.json())["error"]
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST, OPTIONS"
    assert error["code"] == "method_not_allowed"
    assert error["message"] == f"{method} /feedback: use POST."
    assert fake_provider.requests == []
