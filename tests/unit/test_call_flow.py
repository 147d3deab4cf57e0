"""The sans-I/O flow of one call (`client/_core/retry.py`), driven by hand: no client, no
transport, no event loop. Each test sends the flow the replies a server would give."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from roost import AuthenticationError, CircuitOpenError, ConnectionError, ServiceUnavailableError
from roost.client._core.breaker import CircuitBreaker
from roost.client._core.config import ClientConfig
from roost.client._core.credentials import TokenSession
from roost.client._core.protocol import PreparedRequest
from roost.client._core.retry import (
    Backoff,
    CallFlow,
    Refresh,
    Retry,
    Send,
    Sleep,
    Step,
    call_flow,
)

CONFIG = ClientConfig.resolve(api_url="http://roost.test")
TOKENS = {"access": "a", "refresh": "r", "expires_in": 900}


def _request() -> PreparedRequest:
    return PreparedRequest("POST", "/api/v1/kv/get", {}, b"{}")


def _flow(retries: int = 2, threshold: int = 5, session: TokenSession | None = None) -> CallFlow:
    retry = Retry(Backoff(1, 2, 4), retries)
    return call_flow(
        _request, CONFIG, retry=retry, breaker=CircuitBreaker(threshold, 30), session=session
    )


def _answer(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _failed(status: int, code: str) -> httpx.Response:
    return _answer(status, {"error": {"code": code, "message": code, "details": {}}})


def _step(flow: CallFlow, reply: httpx.Response | httpx.TransportError | None) -> Step | Any:
    """The flow's next step, or its result once it returns."""
    try:
        return flow.send(reply)
    except StopIteration as done:
        return done.value


def test_a_retryable_answer_asks_for_a_sleep_then_the_same_request() -> None:
    flow = _flow()
    first = _step(flow, None)
    assert isinstance(first, Send)
    pause = _step(flow, _failed(503, "service_unavailable"))
    assert isinstance(pause, Sleep)
    assert pause.seconds == pytest.approx(0.75, abs=0.25)
    again = _step(flow, None)
    assert again == first  # same request, same Idempotency-Key
    assert _step(flow, _answer(200, {"value": 1})) == {"value": 1}


def test_retry_after_sets_the_sleep() -> None:
    flow = _flow()
    _step(flow, None)
    assert _step(flow, _answer(429, {}, **{"Retry-After": "3"})) == Sleep(3.0)


def test_transport_errors_end_as_a_network_error() -> None:
    flow = _flow(retries=1)
    _step(flow, None)
    assert isinstance(_step(flow, httpx.ConnectError("refused")), Sleep)
    _step(flow, None)
    with pytest.raises(ConnectionError, match="cannot reach"):
        _step(flow, httpx.ConnectError("refused"))


def test_the_last_retryable_answer_is_raised() -> None:
    flow = _flow(retries=0)
    _step(flow, None)
    with pytest.raises(ServiceUnavailableError):
        _step(flow, _failed(503, "service_unavailable"))


def test_an_open_circuit_stops_the_flow_before_sending() -> None:
    flow = _flow(retries=3, threshold=1)
    _step(flow, None)
    _step(flow, httpx.ConnectError("refused"))  # a sleep
    with pytest.raises(CircuitOpenError):
        _step(flow, None)


def test_an_expired_token_asks_for_one_forced_refresh_then_replays() -> None:
    flow = _flow(session=TokenSession(TOKENS))
    assert isinstance(_step(flow, None), Send)
    assert _step(flow, _failed(401, "token_expired")) == Refresh(force=True)
    assert isinstance(_step(flow, None), Send)
    assert _step(flow, _answer(200, {"ok": True})) == {"ok": True}


def test_a_due_session_is_refreshed_before_the_first_send() -> None:
    due = TokenSession({**TOKENS, "expires_in": 0})
    flow = _flow(session=due)
    assert _step(flow, None) == Refresh(force=False)


def test_an_expired_token_without_a_session_is_raised() -> None:
    flow = _flow()
    _step(flow, None)
    with pytest.raises(AuthenticationError) as caught:
        _step(flow, _failed(401, "token_expired"))
    assert caught.value.code == "token_expired"
