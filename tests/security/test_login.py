"""Password guessing against the sign-in limits, over HTTP from several client addresses.

The attacks: many concurrent guesses slipping past a limit that was checked before it was
counted; an attacker's failures locking the real owner out; the same account counted twice,
once by username and once by email. Each runs on SQLite and PostgreSQL (the limiter in the
process) and on the Redis limiter shared by replicas. Client addresses are distinct loopback
addresses (127.x.y.z), so attacks do not share the per-address count with other tests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from roost import AsyncClient
from tests.conftest import REDIS_URL, RunningServer, require_redis, unique

PASSWORD = "right-password-1"


def _address() -> str:
    """A loopback address of its own (Linux routes all of 127.0.0.0/8 to the loopback)."""
    first, second = secrets.token_bytes(2)
    return f"127.{first}.{second}.2"


@asynccontextmanager
async def _from(url: str, address: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose connections come from `address`."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address or _address(), limits=httpx.Limits(max_connections=50)
    )
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=60) as http:
        yield http


async def _login(http: httpx.AsyncClient, login: str, password: str) -> int:
    response = await http.post("/api/v1/auth/login", json={"username": login, "password": password})
    return response.status_code


async def _member(url: str) -> str:
    name = unique("victim")
    async with AsyncClient(api_url=url, max_retries=0) as client:
        await client.auth.register(name, PASSWORD, email=f"{name}@example.com")
    return name


def _limited(make_server: Callable[..., RunningServer], limiter: str, **settings: int) -> str:
    """A server with its own limits, counting in this process or in Redis."""
    if limiter == "redis":
        require_redis()
        return make_server(redis_url=REDIS_URL, **settings).url
    return make_server(**settings).url


# -- the attacks, each run against a server's URL ---------------------------------------------


async def _concurrent_guesses_evaluate_at_most_the_limit(url: str, limit: int) -> None:
    name = await _member(url)
    async with _from(url) as http:
        answers = Counter(
            await asyncio.gather(*(_login(http, name, f"guess-{i:04d}") for i in range(40)))
        )
    assert answers == {401: limit, 429: 40 - limit}


async def _others_cannot_lock_the_owner_out(url: str, limit: int) -> None:
    name = await _member(url)
    for _ in range(2):  # two attackers, each from an address of its own, each hits the limit
        async with _from(url) as attacker:
            for attempt in range(limit):
                assert await _login(attacker, name, f"guess-{attempt}") == 401
            assert await _login(attacker, name, PASSWORD) == 429
    async with _from(url) as owner:
        assert await _login(owner, name, PASSWORD) == 200


async def _username_and_email_count_as_one_account(url: str, limit: int) -> None:
    name = await _member(url)
    logins = [name, f"{name}@example.com", name.upper(), f"{name}@EXAMPLE.com"]
    async with _from(url) as attacker:
        for attempt in range(limit):
            assert await _login(attacker, logins[attempt % len(logins)], "wrong-guess") == 401
        for login in logins:
            assert await _login(attacker, login, "wrong-guess") == 429


# -- on SQLite and PostgreSQL, with the limiter in the process ---------------------------------


@pytest.mark.anyio
async def test_concurrent_guesses_evaluate_at_most_the_limit(server: RunningServer) -> None:
    await _concurrent_guesses_evaluate_at_most_the_limit(
        server.url, server.settings.login_failures_per_account
    )


@pytest.mark.anyio
async def test_failures_from_other_addresses_do_not_lock_the_owner_out(
    server: RunningServer,
) -> None:
    await _others_cannot_lock_the_owner_out(server.url, server.settings.login_failures_per_account)


@pytest.mark.anyio
async def test_username_and_email_count_as_one_account(server: RunningServer) -> None:
    await _username_and_email_count_as_one_account(
        server.url, server.settings.login_failures_per_account
    )


@pytest.mark.anyio
async def test_a_success_clears_the_failures_from_its_address(server: RunningServer) -> None:
    name = await _member(server.url)
    async with _from(server.url) as owner:
        for _ in range(3):
            for attempt in range(server.settings.login_failures_per_account - 1):
                assert await _login(owner, name, f"typo-{attempt}") == 401
            assert await _login(owner, name, PASSWORD) == 200


# -- with the Redis limiter (and the process one, for the global limit) ------------------------


@pytest.mark.anyio
async def test_concurrent_guesses_evaluate_at_most_the_limit_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    url = _limited(make_server, "redis", login_failures_per_account=5)
    await _concurrent_guesses_evaluate_at_most_the_limit(url, 5)


@pytest.mark.anyio
async def test_owner_is_not_locked_out_and_email_counts_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    url = _limited(make_server, "redis", login_failures_per_account=3)
    await _others_cannot_lock_the_owner_out(url, 3)
    await _username_and_email_count_as_one_account(url, 3)


@pytest.mark.anyio
@pytest.mark.parametrize("limiter", ["memory", "redis"])
async def test_the_global_account_limit_stops_guesses_spread_over_addresses(
    make_server: Callable[..., RunningServer], limiter: str
) -> None:
    url = _limited(
        make_server, limiter, login_failures_per_account=2, login_failures_per_account_global=5
    )
    name = await _member(url)
    outcomes = []
    for _ in range(4):  # four addresses, two guesses each: the fifth failure fills the limit
        async with _from(url) as attacker:
            outcomes += [await _login(attacker, name, "wrong-guess") for _ in range(2)]
    assert outcomes == [401] * 5 + [429] * 3
    async with _from(url) as elsewhere:
        assert await _login(elsewhere, name, "wrong-guess") == 429
