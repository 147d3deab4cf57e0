"""Liveness and the state of each backend, and of the function runtime (its isolation)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec

from roost._version import __version__
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.common import BackendHealth, Empty, HealthReport


@operation("health.check", access="public", read_only=True, aliases=(("GET", "/health"),))
async def check(ctx: Context, params: Empty) -> HealthReport:
    """Whether the server and each of its backends answer."""
    sql = await _probe(ctx.platform.db.dialect, ctx.platform.db.ping)
    blobs = ctx.platform.blobs
    storage = await _probe(blobs.kind, lambda: _time(blobs.size(".health")))
    functions = _functions(ctx)
    # a server told to run no functions is healthy without them
    running = functions.status == "ok" or ctx.platform.functions is None
    healthy = sql.status == storage.status == "ok" and running
    return HealthReport(
        status="ok" if healthy else "degraded",
        version=__version__,
        backends={"sql": sql, "storage": storage, "functions": functions},
    )


def _functions(ctx: Context) -> BackendHealth:
    """The function runtime: how its workers are isolated, and its figures."""
    runtime = ctx.platform.functions
    if runtime is None:
        return BackendHealth(status="down", backend="off", error="this server runs no functions")
    try:
        stats = msgspec.to_builtins(runtime.stats())
    except Exception as exc:  # the runtime's own failure, not the server's
        return BackendHealth(
            status="down", backend=runtime.isolation, error=f"{type(exc).__name__}: {exc}"[:300]
        )
    return BackendHealth(status="ok", backend=runtime.isolation, stats=stats)


async def _probe(backend: str, ping: Callable[[], Awaitable[float]]) -> BackendHealth:
    try:
        return BackendHealth(status="ok", backend=backend, latency_ms=round(await ping(), 3))
    except Exception as exc:  # any error means the backend is down, not the server
        return BackendHealth(
            status="down", backend=backend, error=f"{type(exc).__name__}: {exc}"[:300]
        )


async def _time(call: Awaitable[object]) -> float:
    start = time.perf_counter()
    await call
    return (time.perf_counter() - start) * 1000
