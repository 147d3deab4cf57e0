"""The SDK's request flows over `httpx.MockTransport`, on both clients: which failures are
retried and how long the client waits, Idempotency-Key, token refresh, the circuit breaker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from roost import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConflictError,
    ConnectionError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TimeoutError,
    ValidationError,
)
from tests.unit.fake_server import FakeServer, error, ok, run

pytestmark = pytest.mark.anyio

Connect = Callable[..., Any]
FOUND = {"found": True, "value": 1, "ttl": -1}
TOKENS = {"access": "access-1", "refresh": "refresh-1", "expires_in": 900, "session_id": "s"}


# -- retry --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried_until_an_answer(
    connect: Connect, status: int
) -> None:
    server = FakeServer()
    server.answer("kv.get", error(status, "scripted"), error(status, "scripted"), ok(FOUND))
    client = connect(server)
    assert (await run(client.kv.get("k"))).value == 1
    assert len(server.calls("kv.get")) == 3


async def test_backoff_grows_between_attempts_then_gives_up(
    connect: Connect, sleeps: list[float]
) -> None:
    server = FakeServer()
    server.answer("kv.get", error(503, "service_unavailable"))
    client = connect(server, max_retries=3, retry_delay=1, retry_multiplier=2, retry_max_delay=3)
    with pytest.raises(ServiceUnavailableError):
        await run(client.kv.get("k"))
    assert len(server.calls("kv.get")) == 4  # the call and its 3 retries
    # full jitter: each wait is half to all of min(max, delay * multiplier ** (retry - 1))
    ceilings = [1, 2, 3]
    assert len(sleeps) == len(ceilings)
    for waited, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= waited <= ceiling


async def test_retry_after_is_honoured(connect: Connect, sleeps: list[float]) -> None:
    server = FakeServer()
    server.answer("kv.get", error(429, "rate_limited", **{"Retry-After": "7"}), ok(FOUND))
    client = connect(server, retry_max_delay=10)
    assert (await run(client.kv.get("k"))).found
    assert sleeps == [7.0]


async def test_a_retry_after_beyond_the_longest_wait_gives_up_at_once(
    connect: Connect, sleeps: list[float]
) -> None:
    server = FakeServer()
    server.answer("kv.get", error(429, "rate_limited", **{"Retry-After": "3600"}), ok(FOUND))
    client = connect(server, retry_max_delay=10)
    with pytest.raises(RateLimitError) as caught:
        await run(client.kv.get("k"))
    assert caught.value.retry_after == 3600
    assert (len(server.calls("kv.get")), sleeps) == (1, [])


async def test_no_retries_when_max_retries_is_zero(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.get", error(500, "internal_error"), ok(FOUND))
    with pytest.raises(ServerError):
        await run(connect(server, max_retries=0).kv.get("k"))
    assert len(server.calls("kv.get")) == 1


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [
        (400, "validation_error", ValidationError),
        (401, "invalid_token", AuthenticationError),
        (403, "forbidden", AuthorizationError),
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (501, "not_implemented", ServerError),
    ],
)
async def test_answers_that_will_not_change_are_not_retried(
    connect: Connect, status: int, code: str, raised: type[APIError]
) -> None:
    server = FakeServer()
    server.answer("kv.get", error(status, code), ok(FOUND))
    with pytest.raises(raised):
        await run(connect(server).kv.get("k"))
    assert len(server.calls("kv.get")) == 1


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (httpx.ConnectError("connection refused"), ConnectionError),
        (httpx.RemoteProtocolError("server disconnected"), ConnectionError),
        (httpx.ReadTimeout("timed out"), TimeoutError),
        (httpx.ConnectTimeout("timed out"), TimeoutError),
    ],
)
async def test_transport_failures_are_retried_then_raised_as_network_errors(
    connect: Connect, failure: Exception, raised: type[Exception]
) -> None:
    server = FakeServer()
    server.answer("kv.get", failure)
    with pytest.raises(raised):
        await run(connect(server, max_retries=2).kv.get("k"))
    assert len(server.calls("kv.get")) == 3

    recovering = FakeServer()
    recovering.answer("kv.get", failure, ok(FOUND))
    assert (await run(connect(recovering).kv.get("k"))).found


# -- idempotency keys -----------------------------------------------------------------------------


async def test_a_call_keeps_its_idempotency_key_across_retries(connect: Connect) -> None:
    server = FakeServer()
    server.answer(
        "kv.set",
        error(503, "service_unavailable"),
        httpx.ReadTimeout("lost answer"),
        ok({"success": True}),
    )
    client = connect(server)
    assert (await run(client.kv.set("k", 1, nx=True))).success
    keys = [request.headers.get("idempotency-key") for request in server.calls("kv.set")]
    assert len(keys) == 3
    assert keys[0]
    assert keys == [keys[0]] * 3


async def test_each_call_gets_a_new_idempotency_key(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.set", ok({"success": True}))
    client = connect(server)
    await run(client.kv.set("k", 1))
    await run(client.kv.set("k", 1))
    first, second = (request.headers["idempotency-key"] for request in server.calls("kv.set"))
    assert first != second


async def test_idempotent_calls_carry_no_idempotency_key(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.get", ok(FOUND))
    await run(connect(server).kv.get("k"))
    assert "idempotency-key" not in server.calls("kv.get")[0].headers


# -- token refresh ------------------------------------------------------------------------------


async def _signed_in(connect: Connect, server: FakeServer) -> Any:
    server.answer("auth.login", ok(TOKENS))
    return await run(connect(server).auth.sign_in_with_password("ann", "secret-password"))


async def test_an_expired_token_is_refreshed_once_and_the_call_replayed(connect: Connect) -> None:
    server = FakeServer()
    user = await _signed_in(connect, server)
    server.answer("kv.get", error(401, "token_expired"), ok(FOUND))
    server.answer("auth.refresh", ok({**TOKENS, "access": "access-2", "refresh": "refresh-2"}))
    assert (await run(user.kv.get("k"))).found
    refreshes = server.calls("auth.refresh")
    assert len(refreshes) == 1
    assert FakeServer.body(refreshes[0]) == {"refresh": "refresh-1"}
    assert "authorization" not in refreshes[0].headers
    sent = [request.headers["authorization"] for request in server.calls("kv.get")]
    assert sent == ["Bearer access-1", "Bearer access-2"]
    await run(user.kv.get("k"))  # later calls keep the new token
    assert server.calls("kv.get")[-1].headers["authorization"] == "Bearer access-2"


async def test_a_refused_refresh_raises_and_does_not_replay(connect: Connect) -> None:
    server = FakeServer()
    user = await _signed_in(connect, server)
    server.answer("kv.get", error(401, "token_expired"), ok(FOUND))
    server.answer("auth.refresh", error(401, "invalid_token"))
    with pytest.raises(AuthenticationError) as caught:
        await run(user.kv.get("k"))
    assert caught.value.code == "invalid_token"
    assert len(server.calls("kv.get")) == 1


async def test_other_authentication_errors_are_not_refreshed(connect: Connect) -> None:
    server = FakeServer()
    user = await _signed_in(connect, server)
    server.answer("kv.get", error(401, "session_revoked"), ok(FOUND))
    with pytest.raises(AuthenticationError):
        await run(user.kv.get("k"))
    assert server.calls("auth.refresh") == []


async def test_a_client_without_a_session_raises_token_expired(connect: Connect) -> None:
    server = FakeServer()
    client = await run(connect(server).auth.sign_in_with_token("some-jwt"))
    server.answer("kv.get", error(401, "token_expired"), ok(FOUND))
    with pytest.raises(AuthenticationError) as caught:
        await run(client.kv.get("k"))
    assert caught.value.code == "token_expired"
    assert server.calls("auth.refresh") == []


# -- circuit breaker ----------------------------------------------------------------------------


async def test_the_circuit_opens_after_failures_in_a_row_and_stops_calling(
    connect: Connect,
) -> None:
    server = FakeServer()
    server.answer("kv.get", error(503, "service_unavailable"))
    client = connect(server, max_retries=0, circuit_breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await run(client.kv.get("k"))
    with pytest.raises(CircuitOpenError) as caught:
        await run(client.kv.get("k"))
    assert caught.value.details["failures"] == 2
    assert len(server.calls("kv.get")) == 2  # the open circuit sent nothing


async def test_an_opening_circuit_ends_the_retries_of_a_call(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.get", httpx.ConnectError("connection refused"))
    client = connect(server, max_retries=5, circuit_breaker_threshold=3)
    with pytest.raises(CircuitOpenError):
        await run(client.kv.get("k"))
    assert len(server.calls("kv.get")) == 3


async def test_client_errors_do_not_open_the_circuit(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.get", error(404, "not_found"))
    client = connect(server, circuit_breaker_threshold=1)
    for _ in range(3):
        with pytest.raises(NotFoundError):
            await run(client.kv.get("k"))
    assert len(server.calls("kv.get")) == 3


async def test_a_success_resets_the_count_of_failures(connect: Connect) -> None:
    server = FakeServer()
    failed = error(503, "service_unavailable")
    server.answer("kv.get", failed, ok(FOUND), failed, ok(FOUND))
    client = connect(server, max_retries=0, circuit_breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await run(client.kv.get("k"))
        assert (await run(client.kv.get("k"))).found


async def test_signed_in_clients_share_the_circuit(connect: Connect) -> None:
    server = FakeServer()
    server.answer("auth.login", ok(TOKENS))
    anonymous = connect(server, max_retries=0, circuit_breaker_threshold=1)
    user = await run(anonymous.auth.sign_in_with_password("ann", "secret-password"))
    server.answer("kv.get", error(503, "service_unavailable"))
    with pytest.raises(ServiceUnavailableError):
        await run(user.kv.get("k"))
    with pytest.raises(CircuitOpenError):
        await run(anonymous.kv.get("k"))
