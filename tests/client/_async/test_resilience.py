"""Retries, idempotency, timeouts and the circuit breaker, over real sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost import (
    AsyncClient,
    CircuitOpenError,
    ConnectionError,
    ServiceUnavailableError,
    TimeoutError,
)
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, free_port, unique
from tests.proxy import FlakyProxy


@pytest.mark.anyio
async def test_a_retried_create_does_not_create_twice(
    server: RunningServer, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy = flaky_proxy(server.url)
    async with AsyncClient(api_url=proxy.url, retry_delay=0.05) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        name = unique("retried")
        proxy.drop_responses = 1
        created = await admin.users.create_user(name, "retried-password")
        assert proxy.dropped == 1
        assert created["username"] == name
        page = await admin.users.list_users(search=name)
        assert page["total"] == 1


@pytest.mark.anyio
async def test_lost_answers_are_retried_for_reads(
    server: RunningServer, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy = flaky_proxy(server.url)
    proxy.drop_responses = 2
    async with AsyncClient(api_url=proxy.url, retry_delay=0.05, max_retries=3) as client:
        assert (await client.health.check()).status == "ok"
    assert proxy.dropped == 2


@pytest.mark.anyio
async def test_retryable_statuses_are_retried_honouring_retry_after(
    server: RunningServer, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy = flaky_proxy(server.url)
    proxy.refuse_with = [503, 429, 502]
    async with AsyncClient(api_url=proxy.url, retry_delay=0.05, max_retries=3) as client:
        assert (await client.health.check()).status == "ok"
    assert proxy.refused == 3
    proxy.refuse_with = [503, 503]
    async with AsyncClient(api_url=proxy.url, retry_delay=0.05, max_retries=1) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.health.check()


@pytest.mark.anyio
async def test_unreachable_server_is_retried_then_opens_the_circuit() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(
        api_url=url, max_retries=2, retry_delay=0.01, circuit_breaker_threshold=3
    ) as client:
        with pytest.raises(ConnectionError) as caught:
            await client.health.check()
        assert url in caught.value.message
        with pytest.raises(CircuitOpenError) as opened:
            await client.health.check()
        assert "3 failures" in opened.value.message


@pytest.mark.anyio
async def test_a_silent_server_times_out(silent_port: int) -> None:
    async with AsyncClient(
        api_url=f"http://127.0.0.1:{silent_port}", timeout=1, max_retries=0
    ) as client:
        with pytest.raises(TimeoutError):
            await client.health.check()


@pytest.mark.anyio
async def test_signed_in_clients_share_the_pool_and_leave_the_original_alone(
    server: RunningServer,
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert admin._shared is client._shared
        assert admin is not client
        assert not client.is_authenticated
        assert "authenticated" in repr(admin)
