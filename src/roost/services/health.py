"""Liveness and the state of each backend."""

from __future__ import annotations

from roost._version import __version__
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.common import BackendHealth, Empty, HealthReport


@operation("health.check", access="public", read_only=True, aliases=(("GET", "/health"),))
async def check(ctx: Context, params: Empty) -> HealthReport:
    """Whether the server and each of its backends answer."""
    db = ctx.platform.db
    try:
        sql = BackendHealth(status="ok", backend=db.dialect, latency_ms=round(await db.ping(), 3))
    except OSError as exc:
        sql = BackendHealth(status="down", backend=db.dialect, error=str(exc))
    except Exception as exc:  # any driver error means the backend is down, not the server
        sql = BackendHealth(status="down", backend=db.dialect, error=type(exc).__name__)
    return HealthReport(
        status="ok" if sql.status == "ok" else "degraded",
        version=__version__,
        backends={"sql": sql},
    )
