"""RPC over the WebSocket without I/O: the pool's figures, its rules for timeouts, its errors."""

from __future__ import annotations

import math

import msgspec

from roost.errors import ConnectionError, TimeoutError, ValidationError

MAX_METHOD_LENGTH = 100  # what the server's door takes (`roost.wire.ws.CallFrame`)


class PoolStats(msgspec.Struct, frozen=True):
    """What `client.rpc.stats()` reports of the client's pool of RPC connections."""

    size: int
    """The most connections the pool opens (`pool_size`)."""
    calls_per_connection: int
    """The most calls in flight on one connection before the pool uses the next."""
    connections: int
    """Connections open now."""
    in_flight: int
    """Calls (streams included) being answered now."""
    waiting: int
    """Callers waiting for room (at most `pool_timeout` seconds)."""
    opened: int
    """Connections opened so far: one more for each that dropped and was replaced."""


def checked_method(method: str) -> str:
    """`method`, if the server's door can take it. A name it cannot take would make it refuse
    the whole array frame, and with it the calls that travel alongside, so it never leaves."""
    if not isinstance(method, str) or not 1 <= len(method) <= MAX_METHOD_LENGTH:
        shown = repr(method) if len(repr(method)) <= 60 else repr(method)[:57] + "..."
        raise ValidationError(
            f"method must name an operation in 1 to {MAX_METHOD_LENGTH} characters, got {shown}",
            code="invalid_frame",
            details={"field": "method"},
        )
    return method


def call_timeout(timeout: float | None, default: float) -> float:
    """The seconds a call may take: `timeout`, else the client's."""
    if timeout is None:
        return default
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (0 < timeout < math.inf):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def call_timed_out(method: str, seconds: float, *, streamed: bool = False) -> TimeoutError:
    """A call that did not answer in time (a stream: sent no next item in time)."""
    what = "sent no next item" if streamed else "did not answer"
    return TimeoutError(
        f"{method} {what} within {seconds:g} s; the server was told to cancel it",
        details={"method": method, "timeout": seconds},
    )


def pool_timed_out(
    seconds: float, size: int, calls_per_connection: int, *, opened: bool = True
) -> TimeoutError:
    """No room in the pool within `pool_timeout` (DotDo's connection acquire timeout): every
    connection was busy, or (`opened` false) none could be opened in that time."""
    if opened:
        why = (
            f"{size} connection(s) of {calls_per_connection} calls each are busy; raise "
            "pool_size or calls_per_connection, or pool_timeout to wait longer"
        )
    else:
        why = "no connection could be opened in that time (is the server answering?)"
    return TimeoutError(
        f"no RPC connection had room within {seconds:g} s (pool_timeout): {why}",
        code="pool_timeout",
        details={"pool_size": size, "calls_per_connection": calls_per_connection},
    )


def dropped(url: str, close_code: int | None, close_reason: str) -> ConnectionError:
    """The error of a WebSocket that went away without the client closing it."""
    how = f" (close code {close_code}{': ' + close_reason if close_reason else ''})"
    return ConnectionError(
        f"the WebSocket to {url} dropped{how if close_code is not None else ''}",
        code="connection_lost",
    )
