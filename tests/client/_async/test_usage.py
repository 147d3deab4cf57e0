"""Metering through the SDK, on SQLite and PostgreSQL: calls over HTTP and the WebSocket are
counted per tenant and API key, and reported by period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roost import AsyncClient, AuthorizationError, ValidationError
from tests.client._async.calls import Call
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_calls_are_counted_per_api_key_and_period(server: RunningServer) -> None:
    tenant = unique("meter")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password("root", "root-password")
        key = await root.api_keys.create(unique("svc"), ["kv:read", "kv:write"])
        service = await client.auth.sign_in_with_token(key["key"], "api_key")
        for n in range(5):
            await service.kv.set(f"k{n}", n)
        for _ in range(3):
            await service.realtime.call("kv.get", {"key": "k1"})
        report = await root.usage.get("day", by_api_key=True)
        [today] = report["buckets"]
        assert today["start"].endswith("T00:00:00Z") or today["start"].endswith("+00:00")
        by_key = today["api_keys"][key["id"]]
        assert by_key["requests"] >= 8  # 5 over HTTP, 3 over the WebSocket
        assert by_key["bytes_in"] > 0
        assert by_key["bytes_out"] > 0
        assert today["api_keys"][""]["requests"] >= 2  # root's own calls
        assert report["totals"]["requests"] == today["requests"]
        hourly = await root.usage.get("hour")
        # the same calls by hour, and the first usage.get, counted once it had answered
        assert sum(b["requests"] for b in hourly["buckets"]) == report["totals"]["requests"] + 1
        assert all(b["api_keys"] is None for b in hourly["buckets"])
        monthly = await root.usage.get("month", since=datetime.now(UTC) - timedelta(days=1))
        assert monthly["totals"]["requests"] >= report["totals"]["requests"]
        assert (await root.usage.get(until=datetime.now(UTC) - timedelta(days=2)))["buckets"] == []


@pytest.mark.anyio
async def test_usage_refusals(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        now = datetime.now(UTC)
        bad_calls: list[Call] = [
            lambda: admin.usage.get("week"),
            lambda: admin.usage.get(since=now, until=now - timedelta(hours=1)),
            lambda: admin.usage.get(since=datetime(2026, 1, 1)),  # no time zone
        ]
        for bad in bad_calls:
            with pytest.raises(ValidationError):
                await bad()
        name = unique("nometer")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        with pytest.raises(AuthorizationError) as caught:
            await member.usage.get()
        assert caught.value.details["scope"] == "usage:read"
