"""The KV cache through the SDK, on the embedded store and on Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost import AsyncClient, AuthorizationError, ConflictError, NotFoundError, ValidationError
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    require_redis,
    unique,
)


@pytest.mark.anyio
async def test_values_counters_and_hashes(server: RunningServer, admin_token: str) -> None:
    ns = unique("kv") + ":"
    async with AsyncClient(api_url=server.url) as client:
        kv = (await client.auth.sign_in_with_token(admin_token)).kv
        assert (await kv.set(ns + "session", {"user": 1}, ttl=60)).success
        got = await kv.get(ns + "session")
        assert (got.found, got.value) == (True, {"user": 1})
        assert got.ttl is not None
        assert 0 < got.ttl <= 60
        assert await kv.setnx(ns + "session", "other") is False
        assert not (await kv.get(ns + "nothing")).found
        assert await kv.incr(ns + "views", 5) == 5
        assert await kv.decr(ns + "views") == 4
        with pytest.raises(ValidationError) as caught:
            await kv.incr(ns + "session")
        assert caught.value.code == "not_an_integer"
        assert await kv.hset(ns + "user", "name", "Ann") == 1
        assert await kv.hget(ns + "user", "name") == "Ann"
        assert await kv.hgetall(ns + "user") == {"name": "Ann"}
        assert await kv.hdel(ns + "user", "name", "age") == 1
        assert await kv.expire(ns + "views", 100)
        assert await kv.ttl(ns + "views") == 100
        assert await kv.ttl(ns + "gone") is None
        assert await kv.delete(ns + "session", ns + "views", ns + "gone") == 2


@pytest.mark.anyio
async def test_scan_pages_through_every_key_of_the_tenant(
    server: RunningServer, admin_token: str
) -> None:
    ns = unique("scan") + ":"
    async with AsyncClient(api_url=server.url) as client:
        kv = (await client.auth.sign_in_with_token(admin_token)).kv
        for i in range(12):
            await kv.set(f"{ns}{i:02d}", i)
        seen: list[str] = []
        page = await kv.scan(ns, count=5)
        seen += page.keys
        while page.has_more:
            page = await kv.scan(ns, page.cursor, count=5)
            seen += page.keys
        assert sorted(seen) == [f"{ns}{i:02d}" for i in range(12)]


@pytest.mark.anyio
async def test_lock_is_held_for_the_block_and_refused_meanwhile(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("lock")
    async with AsyncClient(api_url=server.url) as client:
        kv = (await client.auth.sign_in_with_token(admin_token)).kv
        async with kv.lock(name, ttl=30):
            with pytest.raises(ConflictError):
                async with kv.lock(name, wait=0.2):
                    pass
        async with kv.lock(name, wait=0.2):
            pass


@pytest.mark.anyio
async def test_kv_refusals(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        with pytest.raises(ValidationError):
            await admin.kv.set("", 1)
        with pytest.raises(ValidationError):
            await admin.kv.set("k" * 513, 1)
        with pytest.raises(ValidationError):
            await admin.kv.set("bad\x00key", 1)
        with pytest.raises(ValidationError):
            await admin.kv.set("big", "x" * (1024 * 1024 + 10))
        with pytest.raises(ValidationError):
            await admin.kv.set("both", 1, nx=True, xx=True)
        await admin.kv.hset(unique("h"), "f", 1)
        reader_key = await admin.api_keys.create(unique("r"), ["kv:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert not (await reader.kv.get("anything")).found
        with pytest.raises(AuthorizationError):
            await reader.kv.set("x", 1)


@pytest.mark.anyio
async def test_ttl_bounds_of_the_server_are_enforced(
    make_server: Callable[..., RunningServer],
) -> None:
    bounded = make_server(kv_min_ttl=60, kv_max_ttl=86400)
    async with AsyncClient(api_url=bounded.url) as client:
        kv = (await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)).kv
        assert (await kv.set("ok", 1, ttl=3600)).success
        for ttl in (None, 10, 90000):
            with pytest.raises(ValidationError) as caught:
                await kv.set("bad", 1, ttl=ttl)
            assert caught.value.details["field"] == "ttl"


@pytest.mark.anyio
async def test_two_replicas_on_redis_share_keys_and_locks(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    first, second = make_server(redis_url=REDIS_URL), make_server(redis_url=REDIS_URL)
    key, name = unique("shared"), unique("lock")
    async with AsyncClient(api_url=first.url) as one, AsyncClient(api_url=second.url) as two:
        a, b = (
            (await one.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)).kv,
            (await two.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)).kv,
        )
        await a.set(key, {"from": "first"})
        assert (await b.get(key)).value == {"from": "first"}
        assert await a.incr(key + ":n") == 1
        assert await b.incr(key + ":n") == 2
        async with a.lock(name, ttl=30):
            with pytest.raises(ConflictError):
                async with b.lock(name, wait=0.2):
                    pass
        await a.delete(key, key + ":n")


@pytest.mark.anyio
async def test_a_tenant_can_have_ttl_bounds_of_its_own(
    server: RunningServer, admin_token: str
) -> None:
    tenant = unique("ttl")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.tenants.create(tenant, admin_username="boss", admin_password="boss-password-1")
        bounds = await admin.tenants.set_kv_ttl_bounds(tenant, min_ttl=60, max_ttl=86400)
        assert bounds == {"name": tenant, "min_ttl": 60, "max_ttl": 86400}
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            boss = await other.auth.sign_in_with_password("boss", "boss-password-1")
            assert (await boss.kv.set("ok", 1, ttl=3600)).success
            for ttl in (None, 10, 90000):
                with pytest.raises(ValidationError) as caught:
                    await boss.kv.set("bad", 1, ttl=ttl)
                assert caught.value.details["field"] == "ttl"
            assert (await admin.kv.set(unique("free"), 1)).success  # other tenants unbound
            await admin.tenants.set_kv_ttl_bounds(tenant)  # back to the server's bounds
            assert (await boss.kv.set("free", 1)).success
            with pytest.raises(AuthorizationError):
                await boss.tenants.set_kv_ttl_bounds(tenant, max_ttl=10)
        with pytest.raises(ValidationError):
            await admin.tenants.set_kv_ttl_bounds(tenant, min_ttl=100, max_ttl=10)
        with pytest.raises(NotFoundError):
            await admin.tenants.set_kv_ttl_bounds(unique("none"), max_ttl=10)
