"""Admin listener auth: once admin.token is set, every route but /healthz demands it."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartProxy


async def test_admin_token_required_on_every_route_but_healthz(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """Without the bearer token the API answers 401; with it, it answers; /healthz is open."""
    proxy = await start(**{"admin.token": "adm-secret"})
    url = f"{proxy.admin_url}/api/traces/t-1"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "adm-secret"}):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 401
        async with http.patch(url, json={"tags": ["x"]}, headers=headers) as resp:
            assert resp.status == 401
    async with http.get(url, headers={"Authorization": "Bearer adm-secret"}) as resp:
        assert resp.status == 404  # authorised; the trace just does not exist
    async with http.get(f"{proxy.admin_url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{proxy.admin_url}/readyz") as resp:
        assert resp.status == 401


async def test_admin_is_open_on_loopback_without_a_token(
    start: StartProxy, http: aiohttp.ClientSession
) -> None:
    """With no token configured, the loopback admin listener needs no credentials."""
    proxy = await start()
    async with http.get(f"{proxy.admin_url}/readyz") as resp:
        assert resp.status == 200
