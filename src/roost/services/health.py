"""Liveness and the state of each backend."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

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
    healthy = sql.status == storage.status == "ok"
    return HealthReport(
        status="ok" if healthy else "degraded",
        version=__version__,
        backends={"sql": sql, "storage": storage},
    )


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
