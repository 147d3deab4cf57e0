"""When to retry a request, how long to wait first (exponential backoff, full jitter), and
the sans-I/O flow of one call (retries, token refresh, circuit breaker)."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from email.utils import parsedate_to_datetime
from time import monotonic, time
from typing import Any

import httpx
import msgspec

from roost.client._core.breaker import CircuitBreaker
from roost.client._core.config import ClientConfig
from roost.client._core.credentials import TokenSession
from roost.client._core.protocol import PreparedRequest, read_response, timeout_of
from roost.errors import AuthenticationError, ConnectionError, NetworkError, TimeoutError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Backoff(msgspec.Struct, frozen=True):
    """`compute(n)`: a random wait of half to all of min(max_delay, base * multiplier**(n-1))."""

    base: float
    multiplier: float
    max_delay: float

    def compute(self, failures: int) -> float:
        ceiling = min(self.max_delay, self.base * self.multiplier ** max(failures - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


class Retry(msgspec.Struct, frozen=True):
    """How many times to retry, and the wait before each retry."""

    backoff: Backoff
    retries: int

    def delay(self, failures: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `failures`, or None to give up.

        A server's Retry-After is honoured; one longer than the backoff's ceiling gives up at
        once rather than block the caller for minutes.
        """
        if failures > self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.backoff.max_delay else None
        return self.backoff.compute(failures)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
    except (TypeError, ValueError):
        return None


# -- the flow of one call -------------------------------------------------------------------
#
# Retry, refresh and breaker decisions are made here, without I/O, in the style of httpx's
# `Auth.auth_flow`: a generator yields what the client must do next (send a request, sleep,
# refresh the session) and receives what came of it. Both clients only drive it, so the
# generated sync client holds no logic of its own.


class Send(msgspec.Struct, frozen=True):
    """Send `request`; the flow receives the response, or the httpx.TransportError raised."""

    request: PreparedRequest
    timeout: httpx.Timeout


class Sleep(msgspec.Struct, frozen=True):
    """Wait `seconds` before the next attempt."""

    seconds: float


class Refresh(msgspec.Struct, frozen=True):
    """Refresh the session's tokens; `force`: even if they are not yet due."""

    force: bool


Step = Send | Sleep | Refresh
Reply = httpx.Response | httpx.TransportError | None
CallFlow = Generator[Step, Reply, Any]


def call_flow(
    build: Callable[[], PreparedRequest],
    config: ClientConfig,
    *,
    retry: Retry,
    breaker: CircuitBreaker,
    session: TokenSession | None = None,
    wait: float = 0,
    timeout: float | None = None,
) -> CallFlow:
    """One operation call: refresh a due session first, send with retries, and on an
    expired token refresh once and replay. Returns the decoded result.

    `build` makes the request (called again after a refresh, for the new token); `session`
    is the signed-in session the call authenticates with, None for an anonymous call.
    """
    if session is not None and session.needs_refresh():
        yield Refresh(force=False)

    def send() -> CallFlow:
        return send_flow(build(), config, retry=retry, breaker=breaker, wait=wait, timeout=timeout)

    try:
        return (yield from send())
    except AuthenticationError as exc:
        if exc.code != "token_expired" or session is None:
            raise
    yield Refresh(force=True)
    return (yield from send())


def send_flow(
    request: PreparedRequest,
    config: ClientConfig,
    *,
    retry: Retry,
    breaker: CircuitBreaker,
    wait: float = 0,
    timeout: float | None = None,
) -> CallFlow:
    """Send `request` until an answer that will not change, the retries run out or the
    circuit opens. Returns the decoded result; raises its APIError or NetworkError. Each
    attempt may take `timeout` seconds (the client's if None), plus `wait` (long polls)."""
    seconds = (config.timeout if timeout is None else timeout) + wait
    send = Send(request, timeout_of(seconds, config.pool_timeout))
    failures = 0
    started = monotonic()
    while True:
        breaker.before_call(config.api_url)
        reply = yield send
        assert reply is not None, "a Send step is answered with a response or an error"
        retry_after = None
        if isinstance(reply, httpx.TransportError):
            outcome: httpx.Response | NetworkError = network_error(reply, config.api_url, seconds)
            breaker.record_failure()
        else:
            outcome = reply
            if reply.status_code not in RETRY_STATUSES:
                breaker.record_success()
                return decode_response(reply)
            retry_after = parse_retry_after(reply.headers.get("retry-after"))
            if reply.status_code >= 500:  # 408 and 429 say nothing of the server's health
                breaker.record_failure()
        failures += 1
        delay = retry.delay(failures, retry_after=retry_after)
        if delay is None:  # out of retries: the last answer stands
            if isinstance(outcome, NetworkError):
                raise _after_attempts(outcome, failures, monotonic() - started)
            return decode_response(outcome)
        yield Sleep(delay)


def _after_attempts(error: NetworkError, attempts: int, elapsed: float) -> NetworkError:
    """`error` saying what the whole call cost when it was retried: a caller who set a 5 s
    timeout and waited 23 s must read 23 s, not 5."""
    if attempts == 1:
        return error
    summary = f"{attempts} attempts over {elapsed:.1f} s in all, retries included"
    return type(error)(
        f"{error.message}; {summary}",
        code=error.code,
        details={**error.details, "attempts": attempts, "elapsed_seconds": round(elapsed, 3)},
    )


def decode_response(response: httpx.Response) -> Any:
    """The decoded result of a response, or the APIError it describes."""
    return read_response(
        response.status_code,
        response.headers,
        response.content,
        parse_retry_after(response.headers.get("retry-after")),
    )


def network_error(exc: httpx.TransportError, target: str, seconds: float | None) -> NetworkError:
    """The SDK's error for a request to `target` that got no answer (the one mapper of
    transport errors: every HTTP call of the SDK goes through it)."""
    if isinstance(exc, httpx.TimeoutException):
        within = f" within {seconds} s" if seconds is not None else ""
        return TimeoutError(f"no answer from {target}{within} ({type(exc).__name__})")
    return ConnectionError(f"cannot reach {target}: {exc}")
